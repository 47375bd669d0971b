"""The portfolio: the table's rows, filtered and sorted by the database, and its headline
figures and charts."""

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

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
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Collate, Concat, Lower, NullIf, Trim
from django.utils import timezone
from django.utils.safestring import mark_safe

from partnerships.models import (
    ActionItem,
    Agreement,
    AgreementType,
    Review,
    ReviewStatus,
    Stage,
    Tier,
)
from partnerships.reviews import OPEN_STATUSES, review_status
from scoring.models import Scorecard, ScoringRun, run_results_q

from .. import charts
from ..cache import run_cached, run_cached_each
from ..program.overdue import current_tiers
from ..templatetags.numbers import change_sign
from .months import TREND_MONTHS, month_range, month_shift
from .rows import (
    CARD_COLUMNS,
    MONTH_CARD_DEFAULTS,
    PREVIOUS_CARD_COLUMNS,
    TIER_RANK,
    MonthCard,
    PortfolioRow,
    TrendPoint,
)

PORTFOLIO_SORTS = ("partner", "agreement", "type", "stage", "owner", "tier", "overall",
                   "rolling", "trend", "coverage", "flags", "payout", "review", "actions")


# The flags of the month's scorecard, and what is overdue today (dashboards/program/overdue.py).
CARD_FLAGS = ("at_risk", "incomplete")
FLAG_CHOICES = (*CARD_FLAGS, "review_overdue", "actions_overdue")


def with_overdue(queryset: QuerySet[Agreement], *, today: dt.date) -> QuerySet[Agreement]:
    """Agreements with the date of their last held review (`_last_held_review`) and their
    overdue actions (`_overdue_actions`) as columns: an index lookup each, in the same query."""
    annotations = {"_last_held_review": last_held_review()}
    if "_overdue_actions" not in queryset.query.annotations:
        annotations["_overdue_actions"] = overdue_actions_count(today=today)
    return queryset.annotate(**annotations)


def rows_overdue(rows: list[PortfolioRow], *, run, today: dt.date,
                 tiers: dict[int, str] | None = None) -> list[PortfolioRow]:
    """Rows of `with_overdue` agreements with their review's days overdue today (the rules of
    partnerships.reviews, with each agreement's current tier: `tiers`, read once by a caller
    that calls this many times) and their overdue actions."""
    if tiers is None:
        tiers = current_tiers(run=run)
    for row in rows:
        agreement = row.agreement
        row.review_overdue_days = review_status(
            stage=agreement.stage, start=agreement.start_date, cadence=agreement.review_cadence,
            tier=tiers.get(agreement.pk, ""), last_review=agreement._last_held_review,
            today=today)[1]
        row.overdue_actions = agreement._overdue_actions or 0
    return rows


def last_held_review() -> Subquery:
    """The date of an agreement's last held review (planned ones do not count): correlated."""
    return Subquery(Review.objects.filter(agreement_id=OuterRef("pk"), status=ReviewStatus.HELD)
                    .order_by("-held_on").values("held_on")[:1])


def overdue_actions_count(*, today: dt.date, side: str = "") -> Subquery:
    """An agreement's open actions (of `side`, or either) due before `today`: a correlated
    count."""
    actions = ActionItem.objects.filter(agreement_id=OuterRef("pk"), status__in=OPEN_STATUSES,
                                        due_date__lt=today)
    if side:
        actions = actions.filter(owner_side=side)
    return Coalesce(Subquery(
        actions
        .order_by().values("agreement_id").annotate(count=Count("pk")).values("count")[:1],
        output_field=IntegerField()), Value(0))


class RowCards(NamedTuple):
    """What a row of the table shows of one agreement's scorecards in a run, up to a month."""

    card: tuple | None  # the month's CARD_COLUMNS
    previous: tuple | None  # the month before's
    trend: list[TrendPoint]
    sparkline_svg: str  # drawn once per run and month, like the rest


def _row_cards(*, ids: list[int], run, period: str, trend_months: int) -> dict[int, RowCards]:
    """The scorecards of the `trend_months` months up to `period` of each agreement: one
    query, however many agreements."""
    previous_period = month_shift(period, -1)
    window = month_range(last=period, count=trend_months)
    cards: dict[tuple[int, str], tuple] = {
        (values[0], values[1]): values[2:] for values in Scorecard.objects.of_run(run).filter(
            period__gte=min(window[0], previous_period), period__lte=period,
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
        result[pk] = RowCards(card=cards.get((pk, period)),
                              previous=cards.get((pk, previous_period)), trend=trend,
                              sparkline_svg=str(charts.sparkline_svg(points=trend)))
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
        rows.append(PortfolioRow(
            agreement=agreement, trend=cards.trend,
            scorecard=None if cards.card is None else MonthCard(*cards.card),
            previous=None if cards.previous is None else MonthCard(*cards.previous),
            # Escaped by charts.trend_svg when it was drawn.
            sparkline_svg=mark_safe(cards.sparkline_svg)))  # noqa: S308
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
            "scorecards",
            condition=run_results_q(run, "scorecards__") & Q(scorecards__period=month))})
        queryset = queryset.annotate(**{f"_{name}_{column}": F(f"{name}_join__{column}")
                                        for column in columns})
    return queryset


def _trend_annotations(*, run, period: str, trend_months: int = TREND_MONTHS) -> dict:
    """`_trend`: the last minus the first scored overall score of the trend window, NULL below
    two scored months (PortfolioRow.trend_change in SQL). Three correlated index lookups."""
    window = month_range(last=period, count=trend_months)
    scored = Scorecard.objects.of_run(run).filter(
        period__gte=window[0], period__lte=period, has_scorecard=True,
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


def _sort_annotations(*, column: str, run, period: str, using: str,
                      review_overdue: dict[int, int]) -> dict:
    """`_sort`: the value of `column` the table sorts by, NULL where it is missing."""
    if column == "review":
        # Days overdue, from the review rules applied in Python (few agreements are overdue);
        # 0 when not overdue, like a row without flags.
        days = [When(pk=pk, then=Value(value)) for pk, value in review_overdue.items() if value]
        return {"_sort": Case(*days, default=Value(0), output_field=IntegerField())
                if days else Value(0, output_field=IntegerField())}
    if column == "actions":
        return {"_sort": F("_overdue_actions")}
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
    "start_date", "review_cadence",
)


def portfolio_queryset(*, agreements: QuerySet[Agreement], run, period: str, sort: str,
                       type: str = "", stage: str = "", tier: str = "",
                       flag: str | Sequence[str] = "", search: str = "",
                       owner_id: int | None = None, review_overdue: dict[int, int] | None = None,
                       today: dt.date | None = None) -> QuerySet[Agreement]:
    """The agreements of the table, filtered and sorted by the database: count it and slice
    it for a page; partner, owner and incentive plan are joined, with only the columns the
    table, the home page's cards and the CSV show (PORTFOLIO_COLUMNS).

    `flag`: one flag of FLAG_CHOICES or several (rows with any of them); `review_overdue` the
    days each agreement's review is overdue today (`overdue_for`), needed to filter or sort
    by it; overdue actions are counted by the database as of `today`.

    Sorted by a column of PORTFOLIO_SORTS ('-' first for descending), ties by code in the same
    direction, missing values last by code; exactly as `portfolio_sort` sorts rows."""
    flags = [flag] if isinstance(flag, str) else list(flag)
    flags = [name for name in FLAG_CHOICES if name in flags]
    review_overdue = review_overdue or {}
    queryset = (agreements.select_related("partner", "owner", "incentive_plan")
                .only(*PORTFOLIO_COLUMNS))
    column = sort.lstrip("-")
    if column not in PORTFOLIO_SORTS:
        column, sort = "agreement", "agreement"
    if "actions_overdue" in flags or column == "actions":
        queryset = queryset.annotate(
            _overdue_actions=overdue_actions_count(today=today or timezone.localdate()))
    if tier or set(flags) & set(CARD_FLAGS) or column in CARD_SORTS:
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
    if flags:
        any_flag = Q()
        for name in flags:
            if name in CARD_FLAGS:
                any_flag |= Q(**{f"_card_{name}": True})
            elif name == "actions_overdue":
                any_flag |= Q(_overdue_actions__gt=0)
            else:
                any_flag |= Q(pk__in=[pk for pk, days in review_overdue.items() if days])
        queryset = queryset.filter(any_flag)
    code = _bytewise(F("code"), using=queryset.db)
    queryset = queryset.annotate(**_sort_annotations(column=column, run=run, period=period,
                                                     using=queryset.db,
                                                     review_overdue=review_overdue))
    if sort.startswith("-"):
        return queryset.order_by(
            F("_sort").desc(nulls_last=True),
            # Missing values keep the code order; present ones tie by code descending.
            Case(When(_sort__isnull=True, then=code)).asc(), code.desc())
    return queryset.order_by(F("_sort").asc(nulls_last=True), code.asc())


def portfolio_export_queryset(*, queryset: QuerySet[Agreement], run, period: str,
                              today: dt.date | None = None) -> QuerySet[Agreement]:
    """The table's query with the month's and the month before's scorecards joined, the
    overdue actions of today and the trend change as columns."""
    queryset = with_month_cards(queryset, run=run, period=period)
    if "_overdue_actions" not in queryset.query.annotations:
        queryset = queryset.annotate(
            _overdue_actions=overdue_actions_count(today=today or timezone.localdate()))
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
                        change=getattr(agreement, "_trend", None),
                        overdue_actions=getattr(agreement, "_overdue_actions", 0) or 0)


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


def _scorecards_of(*, agreements: QuerySet[Agreement], run) -> QuerySet[Scorecard]:
    """The run's scorecards of the given (already scoped) agreements. Every scorecard has an
    agreement: when the user sees them all (host staff), the semi-join would only cost."""
    scorecards = Scorecard.objects.of_run(run)
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
    bins = charts.SCORE_TOP // charts.SCORE_BIN
    # A bin per 10 points, as charts.score_bins counts them (comparisons, not a division, so
    # a bin edge falls exactly where Python's // puts it): below 0 counts in the first bin,
    # 120 (the cap) and above in the last.
    score_bin = Case(When(Q(period=period) & scored, then=Case(
        *(When(overall__lt=(index + 1) * charts.SCORE_BIN, then=Value(index))
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


def portfolio_figures_kept(*, agreements: QuerySet[Agreement], run: ScoringRun, month: str,
                           total: int, last_id: int, active: int) -> dict:
    """The headline cards and the tier and score charts of the given agreements (the whole
    portfolio, not only the filtered rows). They depend on the run's scorecards alone (and,
    for the number of active agreements, on today's stages): for all agreements they are
    computed once per run, month and set of agreements (`total`, `last_id`)."""

    def compute() -> dict:
        figures = portfolio_figures(agreements=agreements, run=run, period=month,
                                    active=active)
        counts = figures["tier_counts"]
        # Only months from the first one with a tier: leading empty months say nothing.
        tiered = [item for item in sorted(counts) if any(counts[item].values())]
        counts = {item: counts[item] for item in sorted(counts)
                  if tiered and item >= tiered[0]}
        # The chart bins the scores itself: one value per scorecard, at the bottom of its bin.
        scores = [float(index * charts.SCORE_BIN)
                  for index, count in enumerate(figures["score_bins"]) for _ in range(count)]
        return {
            "summary": figures["summary"],
            "tier_figure": charts.tier_distribution_figure(counts=counts, period=month)
            if tiered else None,
            "score_figure": charts.score_distribution_figure(
                values=scores, period=month,
                cut_lines=charts.score_cut_lines(settings_snapshot=run.settings_snapshot or {}),
            ) if scores else None,
        }

    if agreements.query.where:  # a narrower scope than the whole program
        return compute()
    figures = run_cached(run=run, name="portfolio-figures", compute=compute,
                         parts=(month, total, last_id))
    return {**figures, "summary": {**figures["summary"], "active": active}}
