"""Read-only queries behind the ecosystem page: the program as a whole, month by month.

Every figure is one aggregate query over querysets the scoping layer gave the view, so the page
runs the same dozen queries for ten agreements or ten thousand.
"""

import datetime as dt
import math
from collections import defaultdict

from django.conf import settings
from django.db.models import Avg, Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from partnerships.models import (
    Aggregation,
    Agreement,
    AgreementType,
    Category,
    ImportBatch,
    ImportStatus,
    KPIDefinition,
    MetricObservation,
    Review,
    ReviewStatus,
    Stage,
    StageTransition,
    Tier,
)
from scoring.models import KPIScore, Scorecard

from .months import month_range, month_shift

CHURN_STAGES = (Stage.EXITING, Stage.ENDED)
NO_TIER = ""
# KPIs whose code or name contains one of these measure satisfaction directly.
SATISFACTION_WORDS = ("satisf", "nps", "csat")


def _first_day(month: str) -> dt.date:
    return dt.date.fromisoformat(month + "-01")


def _bounds(months: list[str]) -> tuple[dt.date, dt.date]:
    """The first day of the first month and the first day after the last month."""
    return _first_day(months[0]), _first_day(month_shift(months[-1], 1))


def _aware(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _month_key(value) -> str:
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
    return value.strftime("%Y-%m")


def _series(months: list[str], counts: dict[str, float]) -> list:
    return [counts.get(month, 0) for month in months]


def ecosystem_latest_month(*, observations: QuerySet[MetricObservation], run,
                           today: dt.date) -> str:
    """The month the page opens on: the latest one that has ended and has data (an
    observation the user may see, or a published scorecard); the month in progress, whose
    figures are partial, only when no ended month has data; today's month when none has.
    Metrics arrive after their month ends, so today's month is usually still empty."""
    this_month = today.strftime("%Y-%m")
    observed = observations.filter(date__lte=today).order_by().aggregate(
        last=Max("date"), ended=Max("date", filter=Q(date__lt=today.replace(day=1))))

    def latest_with_data(*, observed_day: dt.date | None, last_month: str) -> str | None:
        candidates = [observed_day.strftime("%Y-%m")] if observed_day is not None else []
        scored = [month for month in (run.periods if run is not None else [])
                  if month <= last_month]
        return max(candidates + scored[-1:], default=None)

    return (latest_with_data(observed_day=observed["ended"],
                             last_month=month_shift(this_month, -1))
            or latest_with_data(observed_day=observed["last"], last_month=this_month)
            or this_month)


def ecosystem_months(*, end: str, span: int) -> list[str]:
    return month_range(last=end, count=span)


def growth_new_agreements(*, agreements: QuerySet[Agreement], months: list[str]) -> list[int]:
    """Agreements whose start date falls in each month."""
    start, after = _bounds(months)
    rows = (agreements.filter(start_date__gte=start, start_date__lt=after).order_by()
            .annotate(month=TruncMonth("start_date")).values("month")
            .annotate(n=Count("id")).values_list("month", "n"))
    return _series(months, {_month_key(month): n for month, n in rows})


def growth_stage_moves(*, agreements: QuerySet[Agreement],
                       months: list[str]) -> dict[str, list[int]]:
    """Recorded stage changes per month, by the stage moved to (only stages that occur)."""
    start, after = _bounds(months)
    rows = (StageTransition.objects.filter(agreement__in=agreements, at__gte=_aware(start),
                                           at__lt=_aware(after)).order_by()
            .annotate(month=TruncMonth("at")).values("month", "to_stage")
            .annotate(n=Count("id")).values_list("month", "to_stage", "n"))
    by_stage: dict[str, dict[str, int]] = defaultdict(dict)
    for month, stage, n in rows:
        key = _month_key(month)
        by_stage[stage][key] = by_stage[stage].get(key, 0) + n
    return {stage: _series(months, by_stage[stage]) for stage in Stage.values
            if stage in by_stage}


def engagement_imports(*, batches: QuerySet[ImportBatch],
                       months: list[str]) -> dict[str, list[int]]:
    """Successful metric imports per month, by the uploader's side."""
    start, after = _bounds(months)
    rows = (batches.filter(status=ImportStatus.SUCCEEDED, created_at__gte=_aware(start),
                           created_at__lt=_aware(after)).order_by()
            .annotate(month=TruncMonth("created_at")).values("month", "side")
            .annotate(n=Count("id")).values_list("month", "side", "n"))
    by_side: dict[str, dict[str, int]] = {"host": {}, "partner": {}}
    for month, side, n in rows:
        key = _month_key(month)
        by_side.setdefault(side, {})[key] = by_side.setdefault(side, {}).get(key, 0) + n
    return {f"{side} side": _series(months, counts) for side, counts in by_side.items()}


def engagement_reviews(*, agreements: QuerySet[Agreement], months: list[str]) -> list[int]:
    """Business reviews held per month (any kind)."""
    start, after = _bounds(months)
    rows = (Review.objects.filter(agreement__in=agreements, status=ReviewStatus.HELD,
                                  held_on__gte=start, held_on__lt=after).order_by()
            .annotate(month=TruncMonth("held_on")).values("month")
            .annotate(n=Count("id")).values_list("month", "n"))
    return _series(months, {_month_key(month): n for month, n in rows})


def _summed_observations(*, observations: QuerySet[MetricObservation],
                         agreements: QuerySet[Agreement], months: list[str]) -> QuerySet:
    start, after = _bounds(months)
    return observations.filter(
        agreement__in=agreements, kpi__category=Category.FINANCIAL,
        kpi__aggregation=Aggregation.SUM, side=F("kpi__source"),
        date__gte=start, date__lt=after,
    ).order_by()


def _plausible() -> Q:
    """Values within the magnitude limit. Older imports let absurd values in (1.7e308 twice
    overflows PostgreSQL's sum over double precision); within the limit no sum can overflow,
    and ±inf and NaN are outside it (PostgreSQL sorts NaN above every number)."""
    limit = float(settings.METRIC_VALUE_MAX_ABS)
    return Q(value__gte=-limit, value__lte=limit)


def value_revenue(*, observations: QuerySet[MetricObservation], agreements: QuerySet[Agreement],
                  months: list[str]) -> dict[tuple[str, str], list[float | None]]:
    """Per month, the sum of the source-of-truth side's observations of every financial KPI
    aggregated by sum (revenue-like): one series per KPI, keyed by (name, unit). Values beyond
    the magnitude limit are left out (`value_left_out` counts them)."""
    rows = (_summed_observations(observations=observations, agreements=agreements,
                                 months=months)
            .filter(_plausible()).annotate(month=TruncMonth("date"))
            .values("month", "kpi__name", "kpi__unit")
            .annotate(total=Sum("value"))
            .values_list("month", "kpi__name", "kpi__unit", "total"))
    by_kpi: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for month, name, unit, total in rows:
        if total is not None and math.isfinite(total):
            by_kpi[(name, unit)][_month_key(month)] = total
    return {name: [by_month.get(month) for month in months]
            for name, by_month in sorted(by_kpi.items())}


def value_left_out(*, observations: QuerySet[MetricObservation], agreements: QuerySet[Agreement],
                   months: list[str]) -> int:
    """Observations `value_revenue` leaves out: beyond the magnitude limit, or not finite."""
    return (_summed_observations(observations=observations, agreements=agreements,
                                 months=months)
            .exclude(_plausible()).count())


def health_tier_moves(*, run, agreements: QuerySet[Agreement], month: str) -> dict:
    """How many agreements went from each tier of the month before to each tier of `month`
    (published scorecards; "no tier" where an agreement had none)."""
    order = [*Tier.values, NO_TIER]
    matrix = {before: dict.fromkeys(order, 0) for before in order}
    previous = month_shift(month, -1)
    if run is not None:
        tiers: dict[int, dict[str, str]] = defaultdict(dict)
        for agreement_id, period, tier in Scorecard.objects.of_run(run).filter(
            period__in=(previous, month), agreement__in=agreements
        ).values_list("agreement_id", "period", "tier"):
            tiers[agreement_id][period] = tier
        for by_period in tiers.values():
            matrix[by_period.get(previous, NO_TIER)][by_period.get(month, NO_TIER)] += 1
    labels = dict(Tier.choices) | {NO_TIER: "no tier"}
    return {
        "month": month, "previous": previous,
        "columns": [labels[tier] for tier in order],
        "column_tiers": order,
        "rows": [(before, labels[before], [matrix[before][after] for after in order])
                 for before in order],
        "moved": sum(matrix[before][after] for before in order for after in order
                     if before != after),
        "total": sum(sum(row.values()) for row in matrix.values()),
    }


def health_at_risk(*, run, agreements: QuerySet[Agreement], months: list[str]) -> list[int]:
    """Agreements flagged at risk per month (published scorecards)."""
    if run is None:
        return [0] * len(months)
    rows = (Scorecard.objects.of_run(run).filter(at_risk=True, period__gte=months[0],
                                     period__lte=months[-1], agreement__in=agreements)
            .order_by().values("period").annotate(n=Count("id")).values_list("period", "n"))
    return _series(months, dict(rows))


def health_satisfaction(*, run, agreements: QuerySet[Agreement], months: list[str]) -> dict:
    """Mean satisfaction score per month: the scores (0–120) of the KPIs named like
    satisfaction, NPS or CSAT when the program has any, else the relationship category score."""
    match = Q()
    for word in SATISFACTION_WORDS:
        match |= Q(code__icontains=word) | Q(name__icontains=word)
    kpis = list(KPIDefinition.objects.filter(match).order_by("name").values_list("id", "name"))
    means: dict[str, float] = {}
    if kpis:
        source = "mean score of " + ", ".join(name for _, name in kpis)
        if run is not None:
            means = dict(
                KPIScore.objects.of_run(run).filter(kpi_id__in=[pk for pk, _ in kpis],
                                        period__gte=months[0], period__lte=months[-1],
                                        agreement__in=agreements, score__isnull=False)
                .order_by().values("period").annotate(mean=Avg("score"))
                .values_list("period", "mean"))
    else:
        source = "mean relationship category score (no KPI named like satisfaction or NPS)"
        if run is not None:
            means = dict(
                Scorecard.objects.of_run(run).filter(has_scorecard=True,
                                         relationship__isnull=False, period__gte=months[0],
                                         period__lte=months[-1], agreement__in=agreements)
                .order_by().values("period").annotate(mean=Avg("relationship"))
                .values_list("period", "mean"))
    return {"source": source, "values": [means.get(month) for month in months]}


def health_churn(*, agreements: QuerySet[Agreement], months: list[str]) -> list[int]:
    """Agreements that moved to exiting or ended per month: by the recorded stage change, or,
    for agreements in those stages without one, by their end date."""
    start, after = _bounds(months)
    moved = (StageTransition.objects.filter(
        agreement__in=agreements, to_stage__in=CHURN_STAGES,
        at__gte=_aware(start), at__lt=_aware(after),
    ).order_by().annotate(month=TruncMonth("at")).values("month")
        .annotate(n=Count("agreement", distinct=True)).values_list("month", "n"))
    ended = (agreements.filter(stage__in=CHURN_STAGES, end_date__gte=start, end_date__lt=after)
             .exclude(stage_transitions__to_stage__in=CHURN_STAGES).order_by()
             .annotate(month=TruncMonth("end_date")).values("month")
             .annotate(n=Count("id")).values_list("month", "n"))
    counts: dict[str, int] = defaultdict(int)
    for month, n in [*moved, *ended]:
        counts[_month_key(month)] += n
    return _series(months, counts)


def diversity_by_type(*, agreements: QuerySet[Agreement]) -> list[tuple[str, int]]:
    """Agreements per type today, ended ones left out; every type listed, zeros included."""
    counts = dict(agreements.exclude(stage=Stage.ENDED).order_by().values("type")
                  .annotate(n=Count("id")).values_list("type", "n"))
    return [(label, counts.get(value, 0)) for value, label in AgreementType.choices]
