"""Where an agreement's score comes from and what reaches the next tier, as its dashboard shows
them to both sides (the rules: scoring/explain.py)."""

import math
from typing import NamedTuple

from partnerships.models import Agreement, AgreementKPI, Tier
from scoring.closing import current_month
from scoring.explain import score_breakdown, tier_after_reaching, tier_path
from scoring.models import Scorecard
from scoring.rules import CANDIDATE_STAGES

from ..cache import program_cached, run_label
from ..templatetags.numbers import apportioned, rounded
from .agreement import KPI_TABLE_COLUMNS, agreement_kpi_scores_kept
from .months import month_shift, trend_window
from .runs import tier_cutoffs_kept

# The next tier up from each candidate tier.
NEXT_TIER = {Tier.TRANSACTIONAL: Tier.GROWTH, Tier.GROWTH: Tier.STRATEGIC}
# What the value of a month is, by the KPI's aggregation (DOMAIN.md § Scoring, rule 1).
PERIOD_VALUE = {"sum": "the month's total", "mean": "the month's mean",
                "last": "the month's last value"}


class KPIFacts(NamedTuple):
    """What the section shows of a KPI (and what `kpi_value` reads to write its values)."""

    code: str
    name: str
    unit: str
    value_type: str
    category: str
    aggregation: str


class AgreementKPIRow(NamedTuple):
    kpi_id: int
    weight: float
    target: float
    floor: float
    kpi: KPIFacts


def _agreement_kpis(agreement: Agreement) -> list[AgreementKPIRow]:
    """The agreement's KPIs now, in kpi_id order: one query, no model instances."""
    return [AgreementKPIRow(kpi_id, weight, target, floor, KPIFacts(*facts))
            for kpi_id, weight, target, floor, *facts in AgreementKPI.objects.filter(
                agreement=agreement).order_by("kpi_id").values_list(
                "kpi_id", "weight", "target", "floor", "kpi__code", "kpi__name", "kpi__unit",
                "kpi__value_type", "kpi__category", "kpi__aggregation")]


# The overall of the month as it is shown and as the KPI scores give it with the weights now:
# closer than this, they are the same figure (a run computes it from the same numbers).
SAME_OVERALL = 1e-9


def _month_frame(*, agreement_kpis: list[AgreementKPIRow], scores: list[tuple]) -> dict:
    """The rules' view of one month (scoring.explain's columns): every KPI of the agreement now,
    with the run's actual value, target and floor where the run scored it (the KPI's own
    otherwise, actual missing)."""
    by_kpi = {values[0]: dict(zip(KPI_TABLE_COLUMNS, values, strict=False)) for values in scores}
    columns: dict[str, list] = {name: [] for name in
                                ("kpi_id", "category", "weight", "target", "floor", "actual")}
    for item in agreement_kpis:
        scored = by_kpi.get(item.kpi_id)
        actual = scored["actual"] if scored else None
        columns["kpi_id"].append(item.kpi_id)
        columns["category"].append(item.kpi.category)
        columns["weight"].append(item.weight)
        columns["target"].append(scored["target"] if scored else item.target)
        columns["floor"].append(scored["floor"] if scored else item.floor)
        columns["actual"].append(math.nan if actual is None else actual)
    return columns


def _breakdown_rows(*, breakdown, kpis: dict, total: float) -> list[dict]:
    """Per category, then its KPIs: share, score, contribution and points left, each rounded
    so that the rows add up to the figures shown (KPIs to their category, categories to the
    overall, 100 % and 100 − overall)."""
    categories = list(breakdown.categories)
    shares = apportioned([row.share for row in categories], total=1.0, places=3)
    contributions = apportioned([row.contribution for row in categories], total=total)
    # 100 less the overall as shown, so that contributions and points left make 100.0.
    lefts = apportioned([row.left for row in categories], total=100.0 - rounded(total))
    rows = []
    for index, category in enumerate(categories):
        members = [row for row in breakdown.kpis if row.category == category.category]
        present = [row for row in members if row.present]
        kpi_shares = apportioned([row.share for row in present], total=shares[index], places=3)
        kpi_contributions = apportioned([row.contribution for row in present],
                                        total=contributions[index])
        kpi_lefts = apportioned([row.left for row in present], total=lefts[index])
        kpi_rows = [{"kpi": kpis[row.kpi_id], "score": row.score, "share": kpi_shares[place],
                     "contribution": kpi_contributions[place], "left": kpi_lefts[place],
                     "above_target": row.score is not None and row.score > 100}
                    for place, row in enumerate(present)]
        missing = [{"kpi": kpis[row.kpi_id], "coverage_weight": row.coverage_weight}
                   for row in members if not row.present]
        rows.append({
            "name": category.category, "state": category.state, "weight": category.weight,
            "score": category.score, "share": shares[index],
            "contribution": contributions[index], "left": lefts[index],
            "kpis": kpi_rows, "missing": missing,
        })
    return rows


def _walk_before(*, by_period: dict[str, Scorecard], period: str) -> tuple[str | None, int]:
    """The hysteresis walk's (tier, streak) at the end of the month before `period`: the last
    earlier month's tier, and its streak if that month is the one just before."""
    earlier = [card for month, card in by_period.items() if month < period and card.tier]
    if not earlier:
        return None, 0
    card = max(earlier, key=lambda item: item.period)
    return card.tier, card.streak if card.period == month_shift(period, -1) else 0


def _path(*, period: str, wanted: str, mark: float, mark_month: str, frame: dict,
          weights: dict, by_period: dict[str, Scorecard], kpis: dict,
          hysteresis: int) -> dict:
    earlier = []
    for lag in (2, 1):
        card = by_period.get(month_shift(period, -lag))
        has = card is not None and card.has_scorecard
        earlier.append((card.overall if has else None, has and not card.incomplete))
    path = tier_path(kpis=frame, category_weights=weights, earlier_months=earlier, mark=mark)
    tier_before, streak_before = _walk_before(by_period=by_period, period=period)
    rows = []
    for item in path.kpis:
        kpi = kpis[item.kpi_id]
        rows.append({
            "kpi": kpi, "actual": item.actual, "needed": item.needed,
            "any_value": item.any_value, "lower_is_better": item.lower_is_better,
            "change": item.relative_change * 100 if item.relative_change is not None else None,
            "best_rolling": item.best_rolling, "month_complete": item.month_complete,
            "period_value": PERIOD_VALUE.get(kpi.aggregation, "the month's value"),
        })
    return {
        "period": period, "tier": wanted, "tier_label": Tier(wanted).label.lower(),
        "mark": mark, "mark_month": mark_month, "rolling": path.rolling,
        "gap": mark - path.rolling if path.rolling is not None else None,
        "reached": path.reached,
        "reachable": [row for row in rows if row["needed"] is not None],
        "unreachable": [row for row in rows if row["needed"] is None],
        # Why not, by reason: at its best still short; alone it leaves the month incomplete;
        # the rolling score stays undefined; its category has weight 0.
        "short": [row for row in rows if row["needed"] is None and row["month_complete"]
                  and row["best_rolling"] is not None],
        "incomplete": [row for row in rows if row["needed"] is None
                       and weights[row["kpi"].category] > 0 and not row["month_complete"]],
        "no_rolling": [row for row in rows if row["needed"] is None and row["month_complete"]
                       and row["best_rolling"] is None],
        "unweighted": [row for row in rows if weights[row["kpi"].category] <= 0],
        "tier_after": tier_after_reaching(wanted=wanted, tier_before=tier_before,
                                          streak_before=streak_before, hysteresis=hysteresis),
        "tier_before": tier_before or "",
    }


def _target(*, card: Scorecard | None, cutoffs: dict) -> tuple[str, float] | None:
    """The next tier up from the month's candidate and the rolling score it takes, if known."""
    if card is None or card.candidate_tier not in NEXT_TIER:
        return None
    wanted = NEXT_TIER[card.candidate_tier]
    mark = cutoffs.get(wanted)
    return (wanted, float(mark)) if mark is not None else None


def _explanation(*, run, agreement: Agreement, scorecards: list[Scorecard], month: str,
                 current: str, policy: dict, cutoffs: dict) -> dict | None:
    by_period = {card.period: card for card in scorecards}
    card = by_period.get(month)
    agreement_kpis = _agreement_kpis(agreement)
    if card is None or not agreement_kpis:
        return None
    kpis = {item.kpi_id: item.kpi for item in agreement_kpis}
    weights = {name: float(value) for name, value in agreement.category_weights.items()}
    scores = agreement_kpi_scores_kept(run=run, ids=[agreement.pk], period=month,
                                       trend_periods=trend_window(month))[agreement.pk][0]
    frame = _month_frame(agreement_kpis=agreement_kpis, scores=scores)
    result: dict = {"breakdown": None, "paths": [], "policy": policy}
    if card.has_scorecard:
        breakdown = score_breakdown(kpis=frame, category_weights=weights)
        if breakdown.overall is not None:
            # Weights edited since the run, or a KPI removed: the breakdown adds up to the
            # overall the weights give now, and the page says so.
            same = (card.overall is not None
                    and abs(breakdown.overall - card.overall) <= SAME_OVERALL)
            result["breakdown"] = {
                "overall": breakdown.overall, "shown_overall": card.overall, "same": same,
                "rows": _breakdown_rows(breakdown=breakdown, kpis=kpis,
                                        total=breakdown.overall),
                "left": 100.0 - rounded(breakdown.overall),
            }
    if agreement.stage not in CANDIDATE_STAGES:
        return result
    target = _target(card=card, cutoffs=cutoffs)
    if target is not None:
        result["paths"].append(_path(
            period=month, wanted=target[0], mark=target[1], mark_month=month, frame=frame,
            weights=weights, by_period=by_period, kpis=kpis,
            hysteresis=policy["hysteresis"]))
    if current > month:
        now = by_period.get(current)
        scored_now = current in run.periods
        current_cutoffs = tier_cutoffs_kept(run=run, period=current) if scored_now else {}
        current_target = _target(card=now, cutoffs=current_cutoffs)
        mark_month = current
        if current_target is None and (now is None or not now.candidate_tier):
            # Not ranked so far this month: the tier and mark of the month shown.
            current_target, mark_month = target, month
        if current_target is not None:
            current_scores = agreement_kpi_scores_kept(
                run=run, ids=[agreement.pk], period=current, trend_periods=()
            )[agreement.pk][0] if scored_now else []
            result["paths"].append(_path(
                period=current, wanted=current_target[0], mark=current_target[1],
                mark_month=mark_month,
                frame=_month_frame(agreement_kpis=agreement_kpis, scores=current_scores),
                weights=weights, by_period=by_period, kpis=kpis,
                hysteresis=policy["hysteresis"]))
    for path in result["paths"]:
        path["in_progress"] = path["period"] == current
    return result


def agreement_explanation(*, run, agreement: Agreement, scorecards: list[Scorecard],
                          month: str, policy: dict, cutoffs: dict) -> dict | None:
    """The breakdown of the month's overall score and the path to the next tier, for the month
    shown and the month in progress ("breakdown", "paths"); None without a scorecard row or
    KPIs. Kept per run, agreement and month until the program changes (its weights, targets
    and stage are read as they are now); one query, two or three more on the first view of a
    run's month in progress."""
    if run is None or not month:
        return None
    current = current_month()
    return program_cached(
        name="agreement-explanation", parts=(run_label(run), agreement.pk, month, current),
        compute=lambda: _explanation(run=run, agreement=agreement, scorecards=scorecards,
                                     month=month, current=current, policy=policy,
                                     cutoffs=cutoffs))

