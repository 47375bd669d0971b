"""The worklist: every agreement that needs attention, with its reasons (`scoring.attention`).

Set-based: a fixed number of queries however many agreements (the program settings, the
agreements with their last held review and each side's overdue actions, the published run's
scorecards of two months, the open disputes). The costly parts, each KPI's latest observation
and the objectives' progress, are computed for the whole program and kept until the day, the
published run, the program or the observations change (dashboards/cache.py).
"""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, F, Max, OuterRef, QuerySet, Subquery
from django.utils import timezone

from partnerships.models import (
    Agreement,
    AgreementKPI,
    Dispute,
    DisputeStatus,
    ImportBatch,
    ImportStatus,
    MetricObservation,
    Objective,
    ProgramSettings,
    Side,
    Stage,
)
from partnerships.months import month_shift
from partnerships.reviews import UNREVIEWED_STAGES, review_status
from scoring.attention import (
    REASONS,
    AttentionFacts,
    attention_reasons,
    kpi_stale_month,
)
from scoring.models import Scorecard, ScoringRun
from scoring.objectives import AT_RISK, OVERDUE

from ..cache import program_cached, run_label
from ..program.overdue import current_tiers
from ..program.progress import objectives_progress
from .months import month_default
from .portfolio import last_held_review, overdue_actions_count

ATTENTION_SORTS = ("reasons", "agreement", "partner", "owner", "review", "ends")


STAGE_LABELS = dict(Stage.choices)


@dataclass(frozen=True)
class AgreementLine:
    """What the worklist shows of an agreement: read as one row of columns, since a thousand
    model instances cost more than the query that reads them."""

    pk: int
    code: str
    title: str
    stage: str
    start_date: dt.date
    end_date: dt.date | None
    review_cadence: str
    owner_id: int | None
    _partner_name: str
    _owner_first: str | None
    _owner_last: str | None
    _owner_username: str | None
    _last_held_review: dt.date | None
    _overdue_host: int
    _overdue_partner: int

    def get_stage_display(self) -> str:
        return STAGE_LABELS.get(self.stage, self.stage)


@dataclass
class AttentionRow:
    """One agreement of the worklist: its facts and the reasons they give."""

    agreement: AgreementLine
    facts: AttentionFacts
    reasons: list[str]

    @property
    def partner_name(self) -> str:
        return self.agreement._partner_name

    @property
    def owner_name(self) -> str:
        agreement = self.agreement
        if agreement.owner_id is None:
            return ""
        return (f"{agreement._owner_first} {agreement._owner_last}".strip()
                or agreement._owner_username)


@dataclass
class Worklist:
    """The agreements that need attention (every one with a reason, before any filter), the
    month their flags and tiers are of, and the day the rules were applied."""

    rows: list[AttentionRow]
    month: str
    today: dt.date
    stale_after_days: int
    checked: int  # agreements looked at

    def counts(self) -> dict[str, int]:
        """How many agreements have each reason, in REASONS order."""
        counts = dict.fromkeys(REASONS, 0)
        for row in self.rows:
            for reason in row.reasons:
                counts[reason] += 1
        return counts

    def chosen(self, *, reasons: list[str] | tuple = ()) -> list[AttentionRow]:
        """The rows with at least one of `reasons` (every row when none is given)."""
        if not reasons:
            return list(self.rows)
        wanted = set(reasons)
        return [row for row in self.rows if wanted.intersection(row.reasons)]


def _semi_join(queryset: QuerySet, agreements: QuerySet[Agreement]) -> QuerySet:
    """Rows of the given (already scoped) agreements; host staff see every agreement, and
    then the semi-join would only cost."""
    if agreements.query.where or agreements.query.is_sliced:
        return queryset.filter(agreement__in=agreements.order_by().values("pk"))
    return queryset


def _month_cards(*, agreements: QuerySet[Agreement], run: ScoringRun | None,
                 month: str) -> dict[tuple[int, str], tuple]:
    """(at_risk, incomplete, has_scorecard, tier) of the month and the month before: one query."""
    if run is None or not month:
        return {}
    return {
        (agreement_id, period): rest for agreement_id, period, *rest in _semi_join(
            Scorecard.objects.of_run(run).filter(period__in=(month, month_shift(month, -1))),
            agreements).order_by().values_list("agreement_id", "period", "at_risk",
                                               "incomplete", "has_scorecard", "tier")
    }


def _open_disputes(*, agreements: QuerySet[Agreement]) -> dict[int, int]:
    return dict(_semi_join(Dispute.objects.filter(status=DisputeStatus.OPEN), agreements)
                .order_by().values("agreement_id").annotate(count=Count("pk"))
                .values_list("agreement_id", "count"))


def _stale_kpis(*, today: dt.date, stale_after_days: int) -> dict[int, list[tuple[str, str]]]:
    """The stale KPIs (code, first month without a value) of every agreement that can have
    stale data, of the whole program: one query, an index lookup per agreement KPI (the
    observations' natural key); kept until the day, the program (stages, KPIs, the setting)
    or the observations change. Every observation is written by an import batch that then
    finishes: the last finish and the number of finished batches name the observations."""
    finished = ImportBatch.objects.filter(status=ImportStatus.SUCCEEDED).aggregate(
        last=Max("finished_at"), count=Count("pk"))

    def compute() -> dict[int, list[tuple[str, str]]]:
        latest = (MetricObservation.objects.filter(
            agreement_id=OuterRef("agreement_id"), kpi_id=OuterRef("kpi_id"),
            side=OuterRef("kpi__source")).order_by("-date").values("date")[:1])
        result: dict[int, list[tuple[str, str]]] = {}
        for agreement_id, code, start, end, last in (
                AgreementKPI.objects.exclude(agreement__stage__in=UNREVIEWED_STAGES)
                .order_by().annotate(latest=Subquery(latest))
                .values_list("agreement_id", "kpi__code", "agreement__start_date",
                             "agreement__end_date", "latest")):
            missing = kpi_stale_month(last_observed=last, start=start, end=end, today=today,
                                      stale_after_days=stale_after_days)
            if missing:
                result.setdefault(agreement_id, []).append((code, missing))
        return {pk: sorted(kpis) for pk, kpis in result.items()}

    last = finished["last"].isoformat() if finished["last"] else ""
    return program_cached(name="attention-stale",
                          parts=(today.isoformat(), stale_after_days, last, finished["count"]),
                          compute=compute)


def _objective_counts(*, run: ScoringRun | None, today: dt.date) -> dict[int, dict[str, int]]:
    """Objectives at risk and overdue by agreement (scoring.objectives' rule), of the whole
    program: three queries, then kept until the day, the published run or the program
    changes. Callers read the agreements they may see; the rule is the costly part (thousands
    of objectives), not the choice of agreements."""

    def compute() -> dict[int, dict[str, int]]:
        # Objectives without a linked KPI are never at risk: they are not measured.
        objectives = (Objective.objects.filter(kpi__isnull=False).select_related("agreement")
                      .only("agreement_id", "kpi_id", "target_value", "set_on", "deadline",
                            "agreement__start_date")
                      .order_by("agreement_id", "deadline", "pk"))
        result: dict[int, dict[str, int]] = {}
        for progress in objectives_progress(objectives=objectives, run=run, today=today):
            if progress.status in (AT_RISK, OVERDUE):
                counts = result.setdefault(progress.objective.agreement_id, {})
                counts[progress.status] = counts.get(progress.status, 0) + 1
        return result

    return program_cached(name="attention-objectives",
                          parts=(today.isoformat(), run_label(run)), compute=compute)


# What the rules and the list read of an agreement (not its written terms), in
# AgreementLine's order.
WORKLIST_COLUMNS = ("pk", "code", "title", "stage", "start_date", "end_date", "review_cadence",
                    "owner_id", "_partner_name", "_owner_first", "_owner_last",
                    "_owner_username", "_last_held_review", "_overdue_host", "_overdue_partner")


def attention_worklist(*, agreements: QuerySet[Agreement], run: ScoringRun | None = None,
                       today: dt.date | None = None) -> Worklist:
    """Every agreement of `agreements` (already scoped to the user) that needs attention, with
    its reasons, sorted by code; flags and tiers are of the month the pages open on."""
    today = today or timezone.localdate()
    if run is None:
        run = ScoringRun.objects.current()
    month = month_default(run.periods) if run is not None else ""
    stale_after_days = ProgramSettings.current().stale_after_days
    # The last held review and the overdue actions of each side, in the same query.
    sides = Side.values
    listed = [AgreementLine(*values) for values in agreements.annotate(
        _partner_name=F("partner__name"), _owner_first=F("owner__first_name"),
        _owner_last=F("owner__last_name"), _owner_username=F("owner__username"),
        _last_held_review=last_held_review(),
        **{f"_overdue_{side}": overdue_actions_count(today=today, side=side)
           for side in sides}).order_by("code").values_list(*WORKLIST_COLUMNS)]
    if not listed:
        return Worklist(rows=[], month=month, today=today, stale_after_days=stale_after_days,
                        checked=0)
    cards = _month_cards(agreements=agreements, run=run, month=month)
    previous = month_shift(month, -1) if month else ""
    tiers = current_tiers(run=run)
    disputes = _open_disputes(agreements=agreements)
    objectives = _objective_counts(run=run, today=today)
    stale = _stale_kpis(today=today, stale_after_days=stale_after_days)
    rows = []
    for agreement in listed:
        pk = agreement.pk
        card = cards.get((pk, month))
        card_before = cards.get((pk, previous))
        review_due, review_overdue_days = review_status(
            stage=agreement.stage, start=agreement.start_date, cadence=agreement.review_cadence,
            tier=tiers.get(pk, ""), last_review=agreement._last_held_review, today=today)
        facts = AttentionFacts(
            stage=agreement.stage, end=agreement.end_date,
            at_risk=bool(card and card[0]), incomplete=bool(card and card[1]),
            review_overdue_days=review_overdue_days, review_due=review_due,
            overdue_actions={side: getattr(agreement, f"_overdue_{side}")
                             for side in sides if getattr(agreement, f"_overdue_{side}")},
            stale_kpis=stale.get(pk, []),
            open_disputes=disputes.get(pk, 0),
            tier=card[3] if card else "", previous_tier=card_before[3] if card_before else "",
            objectives=objectives.get(pk, {}),
        )
        reasons = attention_reasons(facts=facts, today=today)
        if reasons:
            rows.append(AttentionRow(agreement=agreement, facts=facts, reasons=reasons))
    return Worklist(rows=rows, month=month, today=today, stale_after_days=stale_after_days,
                    checked=len(listed))


def _sort_key(column: str):
    far = dt.date.max
    return {
        "reasons": lambda row: (-len(row.reasons), row.agreement.code),
        "agreement": lambda row: row.agreement.code,
        "partner": lambda row: (row.partner_name.casefold(), row.agreement.code),
        "owner": lambda row: (not row.owner_name, row.owner_name.casefold(),
                              row.agreement.code),
        "review": lambda row: (-row.facts.review_overdue_days, row.agreement.code),
        "ends": lambda row: (row.agreement.end_date or far, row.agreement.code),
    }[column]


def attention_sorted(rows: list[AttentionRow], *, sort: str) -> list[AttentionRow]:
    """Rows sorted by a column of ATTENTION_SORTS ('-' first reverses the order)."""
    column = sort.lstrip("-")
    if column not in ATTENTION_SORTS:
        column, sort = "reasons", "reasons"
    return sorted(rows, key=_sort_key(column), reverse=sort.startswith("-"))
