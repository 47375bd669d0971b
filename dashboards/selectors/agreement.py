"""One agreement's dashboard: its scorecards month by month, its KPI table, its tier."""

from decimal import Decimal

from django.db.models import QuerySet, Sum

from partnerships.models import (
    Agreement,
    ImportBatch,
    KPIDefinition,
    MetricObservation,
    ProgramMonth,
    Stage,
    Tier,
)
from partnerships.tolerance import beyond_tolerance, difference_percent
from scoring.models import KPIScore, Scorecard, StatementLine
from scoring.rules import CANDIDATE_STAGES

from ..cache import run_cached_each
from .months import month_shift, trend_window
from .statements import APPROVED, REOPENED, statement_statuses


def agreement_scorecards(*, run, agreement: Agreement) -> list[Scorecard]:
    """The agreement's scorecard rows of the run, oldest month first: read once per run."""
    if run is None:
        return []
    return agreement_scorecards_kept(run=run, ids=[agreement.pk])[agreement.pk]


def _scorecards_of_each(*, run, ids: list[int]) -> dict[int, list[Scorecard]]:
    result: dict[int, list[Scorecard]] = {pk: [] for pk in ids}
    for card in Scorecard.objects.of_run(run).filter(agreement_id__in=ids).order_by(
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


# What the KPI table shows of a KPI score (the run's values, which never change): the
# columns of scoring.models.KPIScore the page reads, not the rules' frame (rules.KPI_TABLE_COLUMNS).
KPI_TABLE_COLUMNS = ("kpi_id", "actual", "target", "floor", "score", "other_side_actual")


def _kpi_scores_of_each(*, run, ids: list[int], period: str,
                        trend_periods: list[str] | tuple) -> dict[int, tuple[list, dict]]:
    """For each agreement: the month's KPI_TABLE_COLUMNS of each KPI, and each KPI's score by
    month of `trend_periods`. One query."""
    result: dict[int, tuple[list, dict]] = {pk: ([], {}) for pk in ids}
    for values in KPIScore.objects.of_run(run).filter(
        agreement_id__in=ids, period__in={period, *trend_periods}
    ).order_by().values_list("agreement_id", "period", "score", *KPI_TABLE_COLUMNS):
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
        delta = difference_percent(source_value=actual, other_value=other)
        by_month = trends.get(kpi_id, {})
        rows.append({
            "kpi": kpi,
            # Numbers: the template writes them (KPI values by their unit, scores with one
            # decimal); the CSV of the table writes the same with 4 decimals.
            "actual": actual, "target": target, "floor": floor, "score": score,
            "source": kpi.source,
            "other": other, "delta": delta,
            # Beyond the KPI's own tolerance (percent or absolute; partnerships.tolerance).
            "delta_large": actual is not None and other is not None and beyond_tolerance(
                source_value=actual, other_value=other, kind=kpi.tolerance_kind,
                tolerance=kpi.tolerance),
            "trend_scores": [by_month.get(month) for month in trend_periods],
        })
    rows.sort(key=lambda row: (row["kpi"].category, row["kpi"].code))
    return rows


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


def agreement_payouts(*, agreement: Agreement, rows: list[dict]) -> dict:
    """The payouts of the tier-and-payout table: a closed month's is the sum of its statement
    lines (approved or awaiting approval), an open month's the scorecard's payout, an estimate;
    "paid up to" is the last month of `rows` up to which every statement is approved. Sets each
    row's "payout", "payout_status" (approved, awaiting, estimate, no_statement) and
    "currency"; four queries."""
    written = {period: (total, currency) for period, currency, total in (
        StatementLine.objects.filter(agreement=agreement).order_by("period")
        .values_list("period", "currency").annotate(total=Sum("amount")))}
    last_closed = ProgramMonth.objects.last_closed()
    statuses = statement_statuses(months=written, last_closed=last_closed)
    last_closed = last_closed or ""
    paid_through, paid_total = "", Decimal("0.00")
    for row in rows:
        status = statuses.get(row["period"])
        if status is None or status.status == REOPENED:
            # Closed without a line of this agreement (no plan then): nothing is due.
            closed = row["period"] <= last_closed and status is None
            row["payout_status"] = "no_statement" if closed else "estimate"
            row["payout"] = None if closed else row["payout"]
            row["currency"] = ""
            continue
        row["payout"], row["currency"] = written[row["period"]]
        row["payout_status"] = status.status
    # Paid up to the last month before which every statement is approved: one awaiting
    # approval stops it, even if a later month was approved first.
    for row in sorted(rows, key=lambda row: row["period"]):
        if row["payout_status"] in ("estimate", "no_statement"):
            continue
        if row["payout_status"] != APPROVED:
            break
        paid_through = row["period"]
        paid_total += row["payout"]
    return {
        "payout_total": sum(float(row["payout"]) for row in rows if row["payout"]),
        "paid_through": paid_through, "paid_total": paid_total,
        "has_statements": bool(written),
        "has_estimates": any(row["payout_status"] == "estimate" and row["payout"]
                             for row in rows),
    }


def tier_hint(*, card: Scorecard | None, stage: str, cutoffs: dict) -> dict | None:
    """Why the agreement is not ranked this month, or what the next tier up needs ("reason":
    stage, no_rolling, top or needs, with that tier, the rolling score it needs and the gap);
    the page writes it. None without a scorecard or a known cut-off."""
    if card is None:
        return None
    if stage not in CANDIDATE_STAGES:
        return {"reason": "stage", "stage": Stage(stage).label.lower()}
    if card.rolling is None:
        return {"reason": "no_rolling"}
    candidate = card.candidate_tier
    if candidate == Tier.STRATEGIC:
        return {"reason": "top"}
    wanted = Tier.GROWTH if candidate == Tier.TRANSACTIONAL else Tier.STRATEGIC
    needed = cutoffs.get(wanted)
    if needed is None:
        return None
    return {"reason": "needs", "tier": Tier(wanted).label.lower(), "needed": needed,
            "gap": needed - card.rolling}


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


def agreement_months_to(*, scorecards: list[Scorecard], period: str) -> list[dict]:
    """`agreement_months` up to `period`: the agreement as it stood then, newest first."""
    return agreement_months(scorecards=[card for card in scorecards if card.period <= period])


def agreement_kpi_table(*, run, agreement: Agreement, period: str) -> list[dict]:
    """The KPI table of a month as the dashboard shows it (read with the dashboard's trend
    window, so both read the same kept scores); none without a month."""
    if not period:
        return []
    return agreement_kpi_rows(run=run, agreement=agreement, period=period,
                              trend_periods=trend_window(period))
