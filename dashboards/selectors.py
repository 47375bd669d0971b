"""Read-only queries behind the pages."""

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from django.core.cache import cache
from django.db import connections
from django.db.models import (
    Case,
    CharField,
    Count,
    ExpressionWrapper,
    F,
    FilteredRelation,
    FloatField,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Collate, Concat, Lower, NullIf, Trim
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from partnerships.models import (
    Agreement,
    AgreementType,
    ImportBatch,
    KPIDefinition,
    MetricObservation,
    Stage,
    Tier,
)
from scoring.exports import format_number, safe_text
from scoring.models import KPIScore, Scorecard, ScoringRun

from .templatetags.numbers import score_text


def scoring_status() -> dict:
    """The published run (what pages show) and the newest run (which may be active or failed)."""
    latest = ScoringRun.objects.select_related("triggered_by").order_by("-created_at").first()
    published = ScoringRun.objects.current()
    return {
        "published_run": published,
        "latest_run": latest,
        "latest_failed": latest is not None and latest.status == ScoringRun.Status.FAILED,
        "active_run": latest if latest is not None and latest.active else None,
    }


def scoring_runs_recent(*, limit: int = 20) -> list[ScoringRun]:
    return list(ScoringRun.objects.select_related("triggered_by").order_by("-created_at")[:limit])


# ---- Portfolio and agreement dashboards ----------------------------------------------------

TIER_RANK = {Tier.TRANSACTIONAL: 1, Tier.GROWTH: 2, Tier.STRATEGIC: 3}
PORTFOLIO_SORTS = ("partner", "agreement", "type", "stage", "owner", "tier", "overall",
                   "rolling", "trend", "coverage", "flags", "payout")
FLAG_CHOICES = ("at_risk", "incomplete")
# How many months, up to the selected one, the trend (sparkline) of a row covers.
TREND_MONTHS = 12
# The score histogram's bins, as charts.score_bins draws them (charts imports this module).
SCORE_BIN = 10
SCORE_TOP = 120


def one_decimal(value: float | None) -> str:
    """A score as pages write it (`numbers.score_text`): one decimal, thousands separators,
    rounded half up from the export's 4 decimals; "" (shown as "—") when missing or not
    finite, three digits for an absurd magnitude."""
    return score_text(value)


def change_sign(change: float | None) -> str:
    """"up", "down" or "same" (a change that reads 0.0 on screen), "" when there is none."""
    if change is None or not math.isfinite(change):
        return ""
    if not score_text(change).strip("-0.,"):
        return "same"
    return "up" if change > 0 else "down"


def month_shift(period: str, months: int) -> str:
    year, month = (int(part) for part in period.split("-"))
    index = year * 12 + month - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_range(*, last: str, count: int) -> list[str]:
    """`count` calendar months ending with `last`, oldest first."""
    return [month_shift(last, offset) for offset in range(1 - count, 1)]


class TrendPoint(NamedTuple):
    period: str
    overall: float | None  # None: no scorecard that month
    tier: str


def sparkline(*, points: list[TrendPoint], width: int = 100, height: int = 24,
              top: float = 120.0) -> dict | None:
    """An inline-SVG sparkline of the overall score: one polyline per run of scored months.

    x: the month's slot in the window; y: the score on a fixed 0–`top` scale, so rows compare.
    None when no month of the window has a score."""
    scored = [point for point in points if point.overall is not None]
    if not scored:
        return None
    pad = 2.0
    slots = max(len(points) - 1, 1)

    def xy(index: int, value: float) -> tuple[float, float]:
        clamped = min(max(value, 0.0), top)
        return (round(index * width / slots, 1),
                round(height - pad - clamped / top * (height - 2 * pad), 1))

    segments, current = [], []
    for index, point in enumerate(points):
        if point.overall is None:
            if current:
                segments.append(current)
            current = []
            continue
        current.append(xy(index, point.overall))
    if current:
        segments.append(current)
    last_index = max(index for index, point in enumerate(points) if point.overall is not None)
    label = (
        f"Overall score {points[0].period} to {points[-1].period}: "
        f"{len(scored)} of {len(points)} months scored, "
        f"from {one_decimal(scored[0].overall)} ({scored[0].period}) "
        f"to {one_decimal(scored[-1].overall)} ({scored[-1].period}); "
        f"low {one_decimal(min(p.overall for p in scored))}, "
        f"high {one_decimal(max(p.overall for p in scored))}"
    )
    return {
        "width": width, "height": height,
        # A lone month between gaps is a dot rather than an invisible one-point line.
        "lines": [" ".join(f"{x},{y}" for x, y in segment) for segment in segments
                  if len(segment) > 1],
        "dots": [segment[0] for segment in segments if len(segment) == 1],
        "last": xy(last_index, points[last_index].overall),
        "label": label,
    }


def sparkline_svg(spark: dict | None) -> str:
    """The sparkline as inline SVG markup (escaped here, so a page with 50 rows renders no
    template include per row); "no scores" when there is none."""
    if spark is None:
        return mark_safe('<span class="muted">no scores</span>')
    width, height = spark["width"], spark["height"]
    return format_html(
        '<svg class="sparkline" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        'aria-label="{label}" focusable="false"><title>{label}</title>'
        '<line class="sparkline__baseline" x1="0" x2="{w}" y1="{base}" y2="{base}"/>'
        "{lines}{dots}"
        '<circle class="sparkline__last" cx="{lx}" cy="{ly}" r="2.5"/></svg>',
        w=width, h=height, base=height - 2, label=spark["label"],
        lines=format_html_join("", '<polyline class="sparkline__line" points="{}"/>',
                               ((points,) for points in spark["lines"])),
        dots=format_html_join("", '<circle class="sparkline__dot" cx="{}" cy="{}" r="1.5"/>',
                              spark["dots"]),
        lx=spark["last"][0], ly=spark["last"][1],
    )


class MonthCard(NamedTuple):
    """What the table shows of a month's scorecard (CARD_COLUMNS): lighter than the model."""

    has_scorecard: bool
    overall: float | None
    rolling: float | None
    coverage: float
    tier: str
    at_risk: bool
    incomplete: bool
    payout: float | None

    @property
    def flags(self) -> list[str]:
        flags = (("incomplete", self.incomplete), ("at_risk", self.at_risk))
        return [name for name, on in flags if on]

    def get_tier_display(self) -> str:
        return TIER_LABELS.get(self.tier, self.tier)


TIER_LABELS = dict(Tier.choices)


@dataclass
class PortfolioRow:
    agreement: Agreement
    scorecard: MonthCard | None
    previous: MonthCard | None
    trend: list[TrendPoint] = field(default_factory=list)
    # The trend change computed by the database, for rows loaded without their trend.
    change: float | None = None

    @property
    def tier(self) -> str:
        return self.scorecard.tier if self.scorecard else ""

    @property
    def tier_move(self) -> str:
        before = TIER_RANK.get(self.previous.tier if self.previous else "", 0)
        now = TIER_RANK.get(self.tier, 0)
        if not now or not before or now == before:
            return ""
        return "up" if now > before else "down"

    @property
    def has_scorecard(self) -> bool:
        return self.scorecard is not None and self.scorecard.has_scorecard

    def value(self, name: str) -> float | None:
        if self.scorecard is None:
            return None
        return getattr(self.scorecard, name)

    # Numbers, written by the template edge (templatetags/numbers.py); None when missing.
    @property
    def overall(self) -> float | None:
        return self.value("overall") if self.has_scorecard else None

    @property
    def rolling(self) -> float | None:
        return self.value("rolling")

    @property
    def coverage(self) -> float | None:
        """The share of the KPI weight with data, in [0, 1]."""
        return self.value("coverage") if self.has_scorecard else None

    @property
    def flags(self) -> list[str]:
        return self.scorecard.flags if self.scorecard else []

    @property
    def payout(self) -> float | None:
        return self.value("payout")

    @property
    def currency(self) -> str:
        """The incentive plan's currency ('' without a plan); joined, so no query."""
        # A missing plan raises RelatedObjectDoesNotExist, an AttributeError.
        plan = getattr(self.agreement, "incentive_plan", None)
        return plan.currency if plan is not None else ""

    @property
    def owner_name(self) -> str:
        owner = self.agreement.owner
        if owner is None:
            return ""
        return owner.get_full_name() or owner.get_username()

    @property
    def trend_change(self) -> float | None:
        """Last minus first scored overall score of the trend window (None below two months)."""
        if not self.trend:
            return self.change
        scored = [point.overall for point in self.trend if point.overall is not None]
        return scored[-1] - scored[0] if len(scored) >= 2 else None

    @cached_property
    def sparkline(self) -> dict | None:
        return sparkline(points=self.trend)

    @cached_property
    def sparkline_svg(self) -> str:
        return sparkline_svg(self.sparkline)


class RowCards(NamedTuple):
    """What a row of the table shows of one agreement's scorecards in a run, up to a month."""

    card: tuple | None  # the month's CARD_COLUMNS
    previous: tuple | None  # the month before's
    trend: list[TrendPoint]
    sparkline: dict | None
    sparkline_svg: str


def _row_cards(*, ids: list[int], run, period: str, trend_months: int) -> dict[int, RowCards]:
    """The scorecards of the `trend_months` months up to `period` of each agreement: one
    query, however many agreements."""
    previous_period = month_shift(period, -1)
    window = month_range(last=period, count=trend_months)
    cards: dict[tuple[int, str], tuple] = {
        (values[0], values[1]): values[2:] for values in Scorecard.objects.filter(
            run=run, period__gte=min(window[0], previous_period), period__lte=period,
            agreement_id__in=ids,
        ).order_by().values_list("agreement_id", "period", *CARD_COLUMNS)
    }
    scored_at, overall_at, tier_at = (CARD_COLUMNS.index(column)
                                      for column in ("has_scorecard", "overall", "tier"))
    result = {}
    for pk in ids:
        trend = []
        for month in window:
            values = cards.get((pk, month))
            trend.append(TrendPoint(period=month, overall=None, tier="") if values is None
                         else TrendPoint(period=month, tier=values[tier_at],
                                         overall=values[overall_at] if values[scored_at]
                                         else None))
        spark = sparkline(points=trend)
        result[pk] = RowCards(card=cards.get((pk, period)),
                              previous=cards.get((pk, previous_period)), trend=trend,
                              sparkline=spark, sparkline_svg=sparkline_svg(spark))
    return result


def row_cards_kept(*, run, period: str, ids: list[int],
                   trend_months: int = TREND_MONTHS) -> dict[int, RowCards]:
    """`_row_cards` of each agreement, read once per run and month, then from the cache."""
    return run_cached_each(
        run=run, name="row-cards", parts=(period, trend_months), ids=ids,
        compute=lambda missing: _row_cards(ids=missing, run=run, period=period,
                                           trend_months=trend_months))


def _rows_of(*, agreement_list: list[Agreement], run, period: str,
             trend_months: int = TREND_MONTHS) -> list[PortfolioRow]:
    """The given agreements (partner, owner and plan joined), in their order, with their
    scorecards of the `trend_months` months up to `period`: the month's and the month
    before's whole, the others as points of the trend and its sparkline. A run's scorecards
    never change: each agreement's are read from the database once per run and month, then
    from the cache. At most one query, none without agreements."""
    if run is None or not period or not agreement_list:
        return [PortfolioRow(agreement=agreement, scorecard=None, previous=None)
                for agreement in agreement_list]
    each = row_cards_kept(run=run, period=period, trend_months=trend_months,
                          ids=[agreement.pk for agreement in agreement_list])

    rows = []
    for agreement in agreement_list:
        cards = each[agreement.pk]
        row = PortfolioRow(
            agreement=agreement, trend=cards.trend,
            scorecard=None if cards.card is None else MonthCard(*cards.card),
            previous=None if cards.previous is None else MonthCard(*cards.previous))
        # Drawn once with the rest (cached properties).
        row.__dict__.update(sparkline=cards.sparkline,
                            sparkline_svg=mark_safe(cards.sparkline_svg))
        rows.append(row)
    return rows


def portfolio_rows(*, agreements: QuerySet[Agreement] | list[Agreement], run, period: str,
                   trend_months: int = TREND_MONTHS) -> list[PortfolioRow]:
    """Agreements with their scorecard of the month, of the month before, and their overall
    score over the `trend_months` months up to `period`: a queryset all of it by code (a
    partner's few agreements on their home page), a list (a page of `portfolio_queryset`) as
    given.

    Two queries for a queryset, one for a list, whatever the number of agreements."""
    if not isinstance(agreements, list):
        agreements = list(agreements.select_related("partner", "owner", "incentive_plan")
                          .order_by("code"))
    return _rows_of(agreement_list=agreements, run=run, period=period,
                    trend_months=trend_months)


def _bytewise(expression, *, using: str):
    """`expression` compared by code point, like Python compares strings (the database's
    default collation may ignore punctuation or order letters by locale)."""
    vendor = connections[using].vendor
    if vendor == "postgresql":
        return Collate(expression, "C")
    if vendor == "sqlite":
        return Collate(expression, "BINARY")
    return expression


# The columns of a month's scorecard a row of the table shows, and of the month before's.
CARD_COLUMNS = MonthCard._fields
PREVIOUS_CARD_COLUMNS = ("has_scorecard", "overall", "tier")
# The table's sorts that read the month's scorecard.
CARD_SORTS = ("tier", "flags", "overall", "coverage", "rolling", "payout")


def with_month_cards(queryset: QuerySet[Agreement], *, run, period: str,
                     previous: bool = True) -> QuerySet[Agreement]:
    """Agreements with their scorecard of `period` joined as `_card_<column>` (NULL without
    one: coverage is never NULL on a scorecard) and, with `previous`, the month before's as
    `_previous_<column>`: a join on the scorecards' (run, agreement, period) key each, where a
    subquery per agreement and column cost a lookup each. Added once: a queryset that has
    the month's join already gains only the month before's."""
    months = {} if "_card_coverage" in queryset.query.annotations else {"card": period}
    if previous:
        months["previous"] = month_shift(period, -1) if period else ""
    for name, month in months.items():
        columns = CARD_COLUMNS if name == "card" else PREVIOUS_CARD_COLUMNS
        if run is None or not month:
            queryset = queryset.annotate(**{f"_{name}_{column}": Value(
                None, output_field=CharField()) for column in columns})
            continue
        queryset = queryset.annotate(**{f"{name}_join": FilteredRelation(
            "scorecards", condition=Q(scorecards__run=run, scorecards__period=month))})
        queryset = queryset.annotate(**{f"_{name}_{column}": F(f"{name}_join__{column}")
                                        for column in columns})
    return queryset


def _trend_annotations(*, run, period: str, trend_months: int = TREND_MONTHS) -> dict:
    """`_trend`: the last minus the first scored overall score of the trend window, NULL below
    two scored months (PortfolioRow.trend_change in SQL). Three correlated index lookups."""
    window = month_range(last=period, count=trend_months)
    scored = Scorecard.objects.filter(
        run=run, period__gte=window[0], period__lte=period, has_scorecard=True,
        overall__isnull=False, agreement=OuterRef("pk")).order_by()
    return {
        "_trend_last_period": Subquery(scored.order_by("-period").values("period")[:1]),
        "_trend_last": Subquery(scored.order_by("-period").values("overall")[:1]),
        # The first scored month before the last one: none (NULL) with a single month.
        "_trend_first": Subquery(scored.filter(period__lt=OuterRef("_trend_last_period"))
                                 .order_by("period").values("overall")[:1]),
        "_trend": ExpressionWrapper(F("_trend_last") - F("_trend_first"),
                                    output_field=FloatField()),
    }


def _sort_annotations(*, column: str, run, period: str, using: str) -> dict:
    """`_sort`: the value of `column` the table sorts by, NULL where it is missing."""
    if column == "trend":
        return {**_trend_annotations(run=run, period=period), "_sort": F("_trend")}
    if column == "partner":
        key = _bytewise(Lower("partner__name"), using=using)
    elif column == "agreement":
        key = _bytewise(F("code"), using=using)
    elif column in ("type", "stage"):
        choices = AgreementType.choices if column == "type" else Stage.choices
        key = _bytewise(Case(*(When(**{column: value}, then=Value(label))
                               for value, label in choices),
                             default=F(column), output_field=CharField()), using=using)
    elif column == "owner":
        full_name = NullIf(Trim(Concat("owner__first_name", Value(" "), "owner__last_name",
                                       output_field=CharField())), Value(""))
        key = _bytewise(NullIf(Lower(Coalesce(full_name, "owner__username")), Value("")),
                        using=using)
    elif column == "tier":
        key = Case(*(When(_card_tier=value, then=Value(rank))
                     for value, rank in TIER_RANK.items()),
                   default=None, output_field=IntegerField())
    elif column == "flags":
        # Rows without flags (or without a scorecard) sort as 0, not as missing.
        key = (Case(When(_card_at_risk=True, then=Value(2)), default=Value(0))
               + Case(When(_card_incomplete=True, then=Value(1)), default=Value(0)))
    elif column in ("overall", "coverage"):  # only with a scorecard
        key = Case(When(_card_has_scorecard=True, then=F(f"_card_{column}")), default=None,
                   output_field=FloatField())
    else:  # rolling and payout from any row
        key = F(f"_card_{column}")
    return {"_sort": key}


# What a row of the table shows of its agreement: reading the whole rows of four tables
# and building them cost more than the query itself.
PORTFOLIO_COLUMNS = (
    "code", "title", "type", "stage", "partner_id", "owner_id", "partner__name",
    "owner__first_name", "owner__last_name", "owner__username", "incentive_plan__currency",
)


def portfolio_queryset(*, agreements: QuerySet[Agreement], run, period: str, sort: str,
                       type: str = "", stage: str = "", tier: str = "", flag: str = "",
                       search: str = "", owner_id: int | None = None) -> QuerySet[Agreement]:
    """The agreements of the table, filtered and sorted by the database: count it and slice
    it for a page; partner, owner and incentive plan are joined, with only the columns the
    table, the home page's cards and the CSV show (PORTFOLIO_COLUMNS).

    Sorted by a column of PORTFOLIO_SORTS ('-' first for descending), ties by code in the same
    direction, missing values last by code; exactly as `portfolio_sort` sorts rows."""
    queryset = (agreements.select_related("partner", "owner", "incentive_plan")
                .only(*PORTFOLIO_COLUMNS))
    column = sort.lstrip("-")
    if column not in PORTFOLIO_SORTS:
        column, sort = "agreement", "agreement"
    if tier or flag in FLAG_CHOICES or column in CARD_SORTS:
        # Only then: joining every agreement's scorecard before the page is cut off costs
        # more than reading the page's fifty afterwards.
        queryset = with_month_cards(queryset, run=run, period=period, previous=False)
    if type:
        queryset = queryset.filter(type=type)
    if stage:
        queryset = queryset.filter(stage=stage)
    if owner_id is not None:
        queryset = queryset.filter(owner_id=owner_id)
    needle = search.strip()
    if needle:
        queryset = queryset.filter(Q(code__icontains=needle) | Q(partner__name__icontains=needle)
                                   | Q(title__icontains=needle))
    if tier:
        queryset = queryset.filter(_card_tier=tier)
    if flag in FLAG_CHOICES:
        queryset = queryset.filter(**{f"_card_{flag}": True})
    code = _bytewise(F("code"), using=queryset.db)
    queryset = queryset.annotate(**_sort_annotations(column=column, run=run, period=period,
                                                     using=queryset.db))
    if sort.startswith("-"):
        return queryset.order_by(
            F("_sort").desc(nulls_last=True),
            # Missing values keep the code order; present ones tie by code descending.
            Case(When(_sort__isnull=True, then=code)).asc(), code.desc())
    return queryset.order_by(F("_sort").asc(nulls_last=True), code.asc())


def portfolio_export_queryset(*, queryset: QuerySet[Agreement], run,
                              period: str) -> QuerySet[Agreement]:
    """The table's query with the month's and the month before's scorecards joined and the
    trend change as a column."""
    queryset = with_month_cards(queryset, run=run, period=period)
    if "_trend" in queryset.query.annotations:
        return queryset
    return queryset.annotate(**_trend_annotations(run=run, period=period))


def portfolio_row(agreement: Agreement) -> PortfolioRow:
    """A row of `with_month_cards`, its scorecards rebuilt from the columns."""
    card = previous = None
    # coverage is never NULL on a scorecard: NULL here means no scorecard that month.
    if agreement._card_coverage is not None:
        card = MonthCard(*(getattr(agreement, f"_card_{column}") for column in CARD_COLUMNS))
    if agreement._previous_has_scorecard is not None:
        previous = MonthCard(**{
            column: getattr(agreement, f"_previous_{column}", None) if column in
            PREVIOUS_CARD_COLUMNS else MONTH_CARD_DEFAULTS[column] for column in CARD_COLUMNS})
    return PortfolioRow(agreement=agreement, scorecard=card, previous=previous,
                        change=getattr(agreement, "_trend", None))


# What a card of the month before holds beyond PREVIOUS_CARD_COLUMNS (nothing shows them).
MONTH_CARD_DEFAULTS = {"rolling": None, "coverage": 0.0, "at_risk": False,
                       "incomplete": False, "payout": None}


# A nightly run's whole day and some: the next run publishes under new keys anyway.
RUN_CACHE_SECONDS = 26 * 3600
# Part of every key: raised when what is kept changes shape, so that a new release reads
# nothing an older one wrote.
RUN_CACHE_FORMAT = 1


def run_key(run: ScoringRun, name: str, parts: Iterable = ()) -> str:
    """The cache key of a value of a published run: its id and when it was published."""
    return ":".join([f"run{RUN_CACHE_FORMAT}", str(run.pk), run.published_at.isoformat(), name,
                     *(str(part) for part in parts)])


def run_cached(*, run: ScoringRun, name: str, parts: Iterable = (), compute):
    """`compute()` for a published run, computed once and then read from the cache.

    Only for values that depend on nothing but the run's own results and on what `parts`
    name: a published run's scorecards never change, so a key naming the run (its id and when
    it was published) cannot go stale, and the next run publishes under new keys. (Deleting
    an agreement deletes its scorecards: values over many agreements name their number and
    highest id in `parts`.) A run not published (yet) is computed each time."""
    if run.published_at is None:
        return compute()
    key = run_key(run, name, parts)
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, RUN_CACHE_SECONDS)
    return value


def run_cached_each(*, run: ScoringRun, name: str, parts: Iterable = (), ids: list[int],
                    compute) -> dict:
    """`run_cached` for one value per agreement: those in the cache in one read, the others
    by `compute(missing ids)`, which returns a value for each."""
    if run.published_at is None:
        return compute(list(ids))
    prefix = run_key(run, name, parts)
    keys = {pk: f"{prefix}:{pk}" for pk in ids}
    found = cache.get_many(list(keys.values()))
    values = {pk: found[key] for pk, key in keys.items() if key in found}
    missing = [pk for pk in ids if pk not in values]
    if missing:
        computed = compute(missing)
        cache.set_many({keys[pk]: computed[pk] for pk in missing}, RUN_CACHE_SECONDS)
        values.update(computed)
    return values


def portfolio_overview(*, agreements: QuerySet[Agreement]) -> dict:
    """How many agreements, how many active, the highest id (with the count, it changes
    whenever an agreement is added or deleted), and their host-side owners by name. One
    query: the agreements grouped by owner."""
    total = active = last_id = 0
    owners: dict[int, str] = {}
    for owner_id, first, last, username, count, active_count, group_last_id in (
        agreements.order_by().values("owner_id")
        .annotate(count=Count("pk"), active_count=Count("pk", filter=Q(stage=Stage.ACTIVE)),
                  last_id=Max("pk"))
        .values_list("owner_id", "owner__first_name", "owner__last_name", "owner__username",
                     "count", "active_count", "last_id")
    ):
        total += count
        active += active_count
        last_id = max(last_id, group_last_id)
        if owner_id is not None:
            owners[owner_id] = f"{first} {last}".strip() or username
    return {
        "total": total, "active": active, "last_id": last_id,
        "owners": sorted(owners.items(), key=lambda item: (item[1].casefold(), item[0])),
    }


def portfolio_filter(*, rows: list[PortfolioRow], type: str = "", stage: str = "",
                     tier: str = "", flag: str = "", search: str = "",
                     owner_id: int | None = None) -> list[PortfolioRow]:
    """Rows matching every given filter (empty filters match all): `portfolio_queryset`'s
    filters on rows already loaded."""
    needle = search.strip().casefold()
    return [
        row for row in rows
        if (not type or row.agreement.type == type)
        and (not stage or row.agreement.stage == stage)
        and (not tier or row.tier == tier)
        and (not flag or flag in row.flags)
        and (owner_id is None or row.agreement.owner_id == owner_id)
        and (not needle or needle in row.agreement.code.casefold()
             or needle in row.agreement.partner.name.casefold()
             or needle in row.agreement.title.casefold())
    ]


def portfolio_sort(*, rows: list[PortfolioRow], sort: str) -> list[PortfolioRow]:
    """Sorted by a column of PORTFOLIO_SORTS; '-' first for descending; missing values last.
    `portfolio_queryset`'s order on rows already loaded (the tests hold the two together)."""
    descending = sort.startswith("-")
    column = sort.lstrip("-")
    if column not in PORTFOLIO_SORTS:
        return rows

    def key(row: PortfolioRow):
        if column == "partner":
            return row.agreement.partner.name.casefold()
        if column == "agreement":
            return row.agreement.code
        if column == "type":
            return row.agreement.get_type_display()
        if column == "stage":
            return row.agreement.get_stage_display()
        if column == "owner":
            return row.owner_name.casefold() or None
        if column == "tier":
            return TIER_RANK.get(row.tier) or None
        if column == "trend":
            return row.trend_change
        if column == "flags":
            # At risk weighs more than incomplete; rows without flags sort as 0, not missing.
            return ("at_risk" in row.flags) * 2 + ("incomplete" in row.flags)
        if column in ("overall", "coverage") and not row.has_scorecard:
            return None
        value = row.value(column)
        return None if value is None or math.isnan(value) else value

    rows = sorted(rows, key=lambda row: row.agreement.code)
    present = [row for row in rows if key(row) is not None]
    missing = [row for row in rows if key(row) is None]
    present.sort(key=lambda row: (key(row), row.agreement.code), reverse=descending)
    return present + missing


def _scorecards_of(*, agreements: QuerySet[Agreement], run) -> QuerySet[Scorecard]:
    """The run's scorecards of the given (already scoped) agreements. Every scorecard has an
    agreement: when the user sees them all (host staff), the semi-join would only cost."""
    scorecards = Scorecard.objects.filter(run=run)
    if agreements.query.where or agreements.query.is_sliced:
        scorecards = scorecards.filter(agreement__in=agreements.order_by().values("pk"))
    return scorecards


def portfolio_figures(*, agreements: QuerySet[Agreement], run, period: str, active: int,
                      trend_months: int = TREND_MONTHS) -> dict:
    """The headline cards ("summary"), the tiers per month of the trend window
    ("tier_counts") and the month's overall scores in 10-point bins ("score_bins") of the
    given agreements. One query: their scorecards of the window grouped by month, tier and,
    for the month's scored ones, score bin."""
    window = month_range(last=period, count=trend_months)
    previous = month_shift(period, -1)
    scored = Q(has_scorecard=True, overall__isnull=False)
    bins = SCORE_TOP // SCORE_BIN
    # A bin per 10 points, as charts.score_bins counts them (comparisons, not a division, so
    # a bin edge falls exactly where Python's // puts it): below 0 counts in the first bin,
    # 120 (the cap) and above in the last.
    score_bin = Case(When(Q(period=period) & scored, then=Case(
        *(When(overall__lt=(index + 1) * SCORE_BIN, then=Value(index))
          for index in range(bins - 1)),
        default=Value(bins - 1))), default=None, output_field=IntegerField())
    groups = (
        _scorecards_of(agreements=agreements, run=run)
        .filter(period__gte=window[0], period__lte=period)
        .order_by().annotate(score_bin=score_bin).values("period", "tier", "score_bin")
        .annotate(cards=Count("pk"), scored=Count("pk", filter=scored),
                  overall_sum=Sum("overall", filter=scored), payout_sum=Sum("payout"),
                  at_risk=Count("pk", filter=Q(at_risk=True)),
                  incomplete=Count("pk", filter=Q(incomplete=True)))
    ) if run is not None and period else []
    # Tier.values walks the enum each time: read it once.
    tiers = Tier.values
    tier_counts = {month: dict.fromkeys(tiers, 0) for month in window}
    score_bins = [0] * bins
    totals = {"scored": 0, "overall": 0.0, "scored_before": 0, "overall_before": 0.0,
              "payout": 0.0, "at_risk": 0, "incomplete": 0}
    for group in groups:
        if group["tier"]:
            tier_counts[group["period"]][group["tier"]] += group["cards"]
        if group["period"] == period:
            totals["scored"] += group["scored"]
            totals["overall"] += group["overall_sum"] or 0.0
            totals["payout"] += group["payout_sum"] or 0.0
            totals["at_risk"] += group["at_risk"]
            totals["incomplete"] += group["incomplete"]
            if group["score_bin"] is not None:
                score_bins[group["score_bin"]] += group["scored"]
        elif group["period"] == previous:
            totals["scored_before"] += group["scored"]
            totals["overall_before"] += group["overall_sum"] or 0.0
    mean_now = totals["overall"] / totals["scored"] if totals["scored"] else None
    mean_before = (totals["overall_before"] / totals["scored_before"]
                   if totals["scored_before"] else None)
    change = mean_now - mean_before if mean_now is not None and mean_before is not None else None
    this_tiers = tier_counts.get(period, dict.fromkeys(tiers, 0))
    summary = {
        "active": active,
        "scored": totals["scored"],
        "mean_overall": mean_now,
        "mean_change": change,
        "mean_change_sign": change_sign(change),
        "tiers": [(tier, label, this_tiers[tier]) for tier, label in
                  reversed(list(zip(Tier.values, Tier.labels, strict=True)))],
        "at_risk": totals["at_risk"],
        "incomplete": totals["incomplete"],
        "payout": totals["payout"],
    }
    return {"summary": summary, "tier_counts": tier_counts, "score_bins": score_bins}


def portfolio_summary(*, rows: list[PortfolioRow]) -> dict:
    """The headline cards of rows already loaded (`portfolio_figures` computes them in SQL)."""

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    now = [row.scorecard.overall for row in rows
           if row.has_scorecard and row.scorecard.overall is not None]
    before = [row.previous.overall for row in rows
              if row.previous is not None and row.previous.has_scorecard
              and row.previous.overall is not None]
    mean_now, mean_before = mean(now), mean(before)
    change = mean_now - mean_before if mean_now is not None and mean_before is not None else None
    tiers = {tier: sum(1 for row in rows if row.tier == tier) for tier in Tier.values}
    payouts = [row.scorecard.payout for row in rows
               if row.scorecard is not None and row.scorecard.payout]
    return {
        "active": sum(1 for row in rows if row.agreement.stage == "active"),
        "scored": len(now),
        "mean_overall": mean_now,
        "mean_change": change,
        "mean_change_sign": change_sign(change),
        "tiers": [(tier, label, tiers[tier]) for tier, label in
                  reversed(list(zip(Tier.values, Tier.labels, strict=True)))],
        "at_risk": sum(1 for row in rows if "at_risk" in row.flags),
        "incomplete": sum(1 for row in rows if "incomplete" in row.flags),
        "payout": sum(payouts),
    }


PORTFOLIO_EXPORT_HEADER = [
    "period", "partner", "agreement", "title", "type", "stage", "owner", "tier", "tier_move",
    "overall", "rolling", "coverage", "flags", "payout", "currency", "trend_change",
]


def portfolio_export_rows(*, rows: Iterable[PortfolioRow], period: str) -> list[list[str]]:
    """The table as CSV cells: the stored values with the scorecard export's 4 decimals, text
    cells a spreadsheet would run as formulas escaped."""
    cells = []
    for row in rows:
        card = row.scorecard
        scored = row.has_scorecard
        cells.append([
            period,
            safe_text(row.agreement.partner.name),
            safe_text(row.agreement.code),
            safe_text(row.agreement.title),
            row.agreement.type,
            row.agreement.stage,
            safe_text(row.owner_name),
            row.tier,
            row.tier_move,
            format_number(card.overall) if scored else "",
            format_number(card.rolling) if card is not None else "",
            format_number(card.coverage) if scored else "",
            ";".join(row.flags),
            "" if card is None or card.payout is None else f"{card.payout:.2f}",
            row.currency,
            format_number(row.trend_change),
        ])
    return cells


def agreement_scorecards(*, run, agreement: Agreement) -> list[Scorecard]:
    """The agreement's scorecard rows of the run, oldest month first: read once per run."""
    if run is None:
        return []
    return agreement_scorecards_kept(run=run, ids=[agreement.pk])[agreement.pk]


def _scorecards_of_each(*, run, ids: list[int]) -> dict[int, list[Scorecard]]:
    result: dict[int, list[Scorecard]] = {pk: [] for pk in ids}
    for card in Scorecard.objects.filter(run=run, agreement_id__in=ids).order_by(
            "agreement_id", "period"):
        result[card.agreement_id].append(card)
    return result


def agreement_scorecards_kept(*, run, ids: list[int]) -> dict[int, list[Scorecard]]:
    """Each agreement's scorecard rows of the run, oldest month first: one query for those
    not kept yet."""
    return run_cached_each(run=run, name="agreement-scorecards", ids=ids,
                           compute=lambda missing: _scorecards_of_each(run=run, ids=missing))


def tier_since(*, scorecards: list[Scorecard], period: str) -> str:
    """The first month of the unbroken run of the tier the agreement has in `period`."""
    by_period = {card.period: card for card in scorecards}
    card = by_period.get(period)
    if card is None or not card.tier:
        return ""
    since = period
    while True:
        earlier = by_period.get(month_shift(since, -1))
        if earlier is None or earlier.tier != card.tier:
            return since
        since = earlier.period


# What the KPI table shows of a KPI score (the run's values, which never change).
KPI_SCORE_COLUMNS = ("kpi_id", "actual", "target", "floor", "score", "other_side_actual")


def _kpi_scores_of_each(*, run, ids: list[int], period: str,
                        trend_periods: list[str] | tuple) -> dict[int, tuple[list, dict]]:
    """For each agreement: the month's KPI_SCORE_COLUMNS of each KPI, and each KPI's score by
    month of `trend_periods`. One query."""
    result: dict[int, tuple[list, dict]] = {pk: ([], {}) for pk in ids}
    for values in KPIScore.objects.filter(
        run=run, agreement_id__in=ids, period__in={period, *trend_periods}
    ).order_by().values_list("agreement_id", "period", "score", *KPI_SCORE_COLUMNS):
        month, trends = result[values[0]]
        if values[1] == period:
            month.append(values[3:])
        trends.setdefault(values[3], {})[values[1]] = values[2]
    return result


def agreement_kpi_scores_kept(*, run, ids: list[int], period: str,
                              trend_periods: list[str] | tuple) -> dict[int, tuple[list, dict]]:
    """`_kpi_scores_of_each`, read once per run and month, then from the cache."""
    return run_cached_each(
        run=run, name="agreement-kpi-scores", parts=(period, *trend_periods), ids=ids,
        compute=lambda missing: _kpi_scores_of_each(run=run, ids=missing, period=period,
                                                    trend_periods=trend_periods))


def agreement_kpi_rows(*, run, agreement: Agreement, period: str,
                       trend_periods: list[str] | tuple = ()) -> list[dict]:
    """The KPI table of a month: scores, the source side and the other side's value (Δ %),
    and each KPI's score over `trend_periods` ("trend_scores", None for a missing month).
    The scores are the run's (read once per run and month); the KPIs as they are now (their
    names and units may be edited): one query."""
    if run is None:
        return []
    month, trends = agreement_kpi_scores_kept(
        run=run, ids=[agreement.pk], period=period, trend_periods=trend_periods)[agreement.pk]
    kpis = KPIDefinition.objects.in_bulk([values[0] for values in month])
    rows = []
    for kpi_id, actual, target, floor, score, other in month:
        kpi = kpis.get(kpi_id)
        if kpi is None:  # deleted since the run
            continue
        delta = None
        if actual is not None and other is not None and actual != 0:
            delta = (other - actual) / abs(actual) * 100
        by_month = trends.get(kpi_id, {})
        rows.append({
            "kpi": kpi,
            # Numbers: the template writes them (KPI values by their unit, scores with one
            # decimal); the CSV of the table writes the same with 4 decimals.
            "actual": actual, "target": target, "floor": floor, "score": score,
            "source": kpi.source,
            "other": other, "delta": delta,
            "delta_large": delta is not None and abs(delta) > 5,
            "trend_scores": [by_month.get(month) for month in trend_periods],
        })
    rows.sort(key=lambda row: (row["kpi"].category, row["kpi"].code))
    return rows


# ---- Agreement dashboard: month by month, tier bands, trends, imports ---------------------

# What a tier means for the partner (DOMAIN.md § Concepts), shown beside the tier.
TIER_SERVICE = {
    Tier.STRATEGIC: "a dedicated manager and quarterly executive reviews",
    Tier.GROWTH: "monthly check-ins",
    Tier.TRANSACTIONAL: "automated reporting and quarterly touchpoints",
}
# What each flag means (DOMAIN.md § Scoring, rules 5 and 9).
FLAG_MEANINGS = {
    "incomplete": (
        "Less than half of the KPI weight had data this month (coverage below 50 %). The "
        "scorecard is shown, but it does not count towards the rolling score, the tier or a "
        "payout."
    ),
    "at_risk": (
        "The overall score was below 50 on complete scorecards this month and in each of the "
        "two months before it. The agreement's exit criteria call for a review."
    ),
}
# Stages whose agreements are ranked for a tier (DOMAIN.md § Scoring, rule 7).
RANKED_STAGES = ("pilot", "active", "under_review")


def agreement_months(*, scorecards: list[Scorecard]) -> list[dict]:
    """One row per month with a scorecard or a tier, newest first: tier (and whether it changed
    that month), scores, flags and payout, as the page and its CSV show them."""
    rows, previous_tier = [], ""
    for card in scorecards:
        if not card.has_scorecard and not card.tier:
            continue
        rows.append({
            "period": card.period,
            "tier": card.tier,
            "tier_label": card.get_tier_display() if card.tier else "",
            "changed": bool(card.tier) and card.tier != previous_tier,
            "from_tier": previous_tier,
            "has_scorecard": card.has_scorecard,
            "card": card,
            # Numbers (None when missing), written by the template edge.
            "overall": card.overall if card.has_scorecard else None,
            "rolling": card.rolling,
            "coverage": card.coverage if card.has_scorecard else None,
            "flags": card.flags if card.has_scorecard else [],
            "payout": card.payout,
        })
        previous_tier = card.tier or previous_tier
    rows.reverse()
    return rows


def tier_policy(*, run) -> dict:
    """The tier policy the run's scores were computed with (its settings snapshot)."""
    snapshot = (run.settings_snapshot if run is not None else None) or {}
    return {
        "policy": snapshot.get("policy", "percentile"),
        "strategic_threshold": float(snapshot.get("strategic_threshold", 85.0)),
        "growth_threshold": float(snapshot.get("growth_threshold", 70.0)),
        "hysteresis": int(snapshot.get("hysteresis", 2)),
    }


def tier_cutoffs(*, run, period: str, policy: dict) -> dict:
    """The lowest rolling score that made each candidate tier in `period`, and how many
    agreements were ranked. Thresholds need no query; percentiles take one aggregate."""
    if policy["policy"] == "threshold":
        return {"strategic": policy["strategic_threshold"],
                "growth": policy["growth_threshold"], "ranked": None}
    if run is None:
        return {"strategic": None, "growth": None, "ranked": 0}
    return Scorecard.objects.filter(run=run, period=period).aggregate(
        strategic=Min("rolling", filter=Q(candidate_tier=Tier.STRATEGIC)),
        growth=Min("rolling", filter=Q(candidate_tier__in=(Tier.STRATEGIC, Tier.GROWTH))),
        ranked=Count("pk", filter=~Q(candidate_tier="")),
    )


def tier_cutoffs_kept(*, run, period: str) -> dict:
    """`tier_cutoffs` of the run's policy, once per run: the cut-offs the run ranked with
    (an agreement deleted since then still counted)."""
    return run_cached(run=run, name="tier-cutoffs", parts=(period,),
                      compute=lambda: tier_cutoffs(run=run, period=period,
                                                   policy=tier_policy(run=run)))


def tier_hint(*, card: Scorecard | None, stage: str, cutoffs: dict) -> str:
    """What the next tier up needs this month: "strategic needs rolling ≥ 82.4 (+11.4)"."""
    if card is None:
        return ""
    if stage not in RANKED_STAGES:
        return (f"Not ranked in the {Stage(stage).label.lower()} stage: only pilot, active "
                "and under-review agreements get a tier.")
    if card.rolling is None:
        return ("Not ranked this month: the rolling score needs two complete months of the "
                "last three.")
    candidate = card.candidate_tier
    if candidate == Tier.STRATEGIC:
        return "Ranks strategic this month"
    wanted = Tier.GROWTH if candidate == Tier.TRANSACTIONAL else Tier.STRATEGIC
    needed = cutoffs.get(wanted)
    if needed is None:
        return ""
    gap = needed - card.rolling
    return (f"{Tier(wanted).label.lower()} needs rolling ≥ {one_decimal(needed)} this month"
            f" ({'+' if gap >= 0 else ''}{one_decimal(gap)})")


def agreement_recent_imports(*, batches: QuerySet[ImportBatch], agreement: Agreement,
                             limit: int = 5) -> list[ImportBatch]:
    """The newest of the given (already scoped) import batches that wrote observations of this
    agreement. One query."""
    # DISTINCT: the few batch ids, hashed, rather than a semi-join of every observation
    # against every recent batch (4 ms against 0.6 ms for 1,100 observations).
    touched = (MetricObservation.objects.filter(agreement=agreement).order_by()
               .values("batch_id").distinct())
    return list(batches.filter(pk__in=touched).select_related("user")
                .order_by("-created_at")[:limit])


AGREEMENT_KPI_EXPORT_HEADER = [
    "agreement", "period", "kpi", "name", "category", "unit", "actual", "target", "floor",
    "score", "source_side", "other_side_value", "difference_percent",
]
AGREEMENT_MONTHS_EXPORT_HEADER = [
    "agreement", "period", "tier", "tier_changed", "financial", "strategic", "operational",
    "relationship", "overall", "coverage", "rolling", "flags", "payout",
]


def agreement_kpi_export_rows(*, agreement: Agreement, period: str,
                              rows: list[dict]) -> list[list[str]]:
    """The KPI table as CSV rows: full precision (4 decimals), text escaped for spreadsheets."""
    return [
        [safe_text(agreement.code), period, safe_text(row["kpi"].code),
         safe_text(row["kpi"].name), row["kpi"].category, safe_text(row["kpi"].unit),
         format_number(row["actual"]), format_number(row["target"]),
         format_number(row["floor"]), format_number(row["score"]), row["source"],
         format_number(row["other"]), format_number(row["delta"])]
        for row in rows
    ]


def agreement_months_export_rows(*, agreement: Agreement,
                                 months: list[dict]) -> list[list[str]]:
    """The month-by-month table as CSV rows, the scores as in the scorecard export."""
    rows = []
    for month in months:
        card = month["card"]
        scored = month["has_scorecard"]
        rows.append([
            safe_text(agreement.code), month["period"], month["tier"],
            "yes" if month["changed"] else "",
            *(format_number(getattr(card, name)) if scored else ""
              for name in ("financial", "strategic", "operational", "relationship", "overall",
                           "coverage")),
            format_number(card.rolling), ";".join(month["flags"]),
            "" if card.payout is None else f"{card.payout:.2f}",
        ])
    return rows
