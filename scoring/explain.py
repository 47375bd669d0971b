"""Where an agreement's overall score comes from, and what one KPI would need for the next tier.

Pure numpy/pandas, like rules.py, whose functions compute the scores here (kpi_score,
overall_score, effective_weight, coverage, rolling_score, hysteresis_walk; rule 3's category
mean is summed exactly as score_agreements sums it, and a test holds the two to the bit): one
agreement in one month, with its KPIs as a frame of kpi_id, category, weight, target, floor and
actual (NaN when the KPI is missing that month) and the agreement's four category weights.

The breakdown (`score_breakdown`). With the weights of rules 3 and 4, a KPI's share of the
overall is

    share_k = W_c / Σ W of the categories with data × w_k / Σ w of the KPIs of c with data,

so the overall is Σ share_k × score_k over the KPIs with data (its *contribution*, in points),
and 100 − overall is Σ share_k × (100 − score_k): the points each KPI *leaves on the table*
against every KPI on target (score 100). A KPI above target (up to the cap of 120) leaves a
negative amount: it makes up for others. A missing KPI has share 0 and neither contributes nor
leaves anything: rules 3 and 4 average over the KPIs and categories with data, so the shares
of the others grow to fill its place; what it costs shows in the coverage instead (rule 5, its
`coverage_weight`), and a category without data, or with weight 0, has share 0 the same way.

The path (`tier_path`). The rolling score of month p is R = mean of the complete months' overall
among p−2, p−1 and p (rule 6). With everything else as it was, changing one KPI's actual value
in p changes only p's overall; whether p is complete depends only on which KPIs have data, so
for a KPI given a value R is a non-decreasing linear function of its score s in [0, 120]: the
score that reaches the mark is solved exactly from R at s = 0 and at s = 120, turned into the
actual value by s = 100 × (actual − floor) / (target − floor) (lower-is-better KPIs have a
target below their floor, the same formula), and checked through the rules (nudged by a few
ulps if rounding left it a hair short). A KPI that even at its cap (120) leaves R below the
mark, or R undefined (fewer than two complete months), or that belongs to a category of weight
0, is "not reachable by this KPI alone". Months p−1 and p−2 are taken as the run stored them:
for a closed month that is its frozen overall and completeness, as rules version 2 reads them.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .rules import (
    CATEGORIES,
    COMPLETE_COVERAGE,
    COVERAGE_TOLERANCE,
    SCORE_CAP,
    TIERS,
    coverage,
    effective_weight,
    hysteresis_walk,
    kpi_score,
    overall_score,
    rolling_score,
)

# The agreement KPIs of one month: a DataFrame, or a mapping of its columns to sequences.
KPIColumns = pd.DataFrame | Mapping[str, Sequence]

FULL_SCORE = 100.0
# The nudge after the exact solve: rounding can leave the solved value a few ulps short.
NUDGES = 64


@dataclass(frozen=True)
class KPIBreakdown:
    """One agreement KPI in a month: its score (None when missing), its share of the overall
    (0 when missing), the points it contributes and the points it leaves against 100; its
    coverage_weight is rule 5's effective weight, counted whether or not it has data."""

    kpi_id: int
    category: str
    score: float | None
    present: bool
    coverage_weight: float
    share: float
    contribution: float
    left: float


@dataclass(frozen=True)
class CategoryBreakdown:
    """One of the four categories: state "scored", "missing" (no KPI with data) or
    "unweighted" (weight 0: its KPIs never count)."""

    category: str
    weight: float
    state: str
    score: float | None
    share: float
    contribution: float
    left: float


@dataclass(frozen=True)
class Breakdown:
    """The overall (None without a scorecard), coverage and completeness recomputed by the
    rules, and the breakdown per category and per KPI (kpi_id order)."""

    overall: float | None
    coverage: float
    complete: bool
    categories: tuple[CategoryBreakdown, ...]
    kpis: tuple[KPIBreakdown, ...]


@dataclass(frozen=True)
class KPIPath:
    """What one KPI alone needs in the month for the rolling score to reach the mark.

    needed: the actual value (the month's period value, by the KPI's aggregation), None when not
    reachable by this KPI alone; any_value: a missing KPI whose having data at all reaches the
    mark (needed is then its floor, the worst value that counts); lower_is_better: the value
    needed is an upper bound; relative_change: (needed − actual) / |actual|, None when the KPI
    is missing or its actual is 0; score_change: the KPI's score needed minus its score now
    (from 0 when missing); best_rolling: the rolling score at the KPI's best (its cap), None
    when even then undefined; month_complete: whether the month is complete (coverage ≥ 50 %)
    with the KPI at its best, which it must be to count in the rolling score."""

    kpi_id: int
    actual: float | None
    needed: float | None
    any_value: bool
    lower_is_better: bool
    relative_change: float | None
    score_change: float | None
    best_rolling: float | None
    month_complete: bool

    @property
    def reachable(self) -> bool:
        return self.needed is not None


@dataclass(frozen=True)
class TierPath:
    """The mark, the rolling score as the rules give it with the month as it was, whether that
    reaches the mark already, and each KPI's path: reachable ones by the smallest relative
    change (KPIs without one, by the score change), then those not reachable."""

    mark: float
    rolling: float | None
    reached: bool
    kpis: tuple[KPIPath, ...]


@dataclass(frozen=True)
class _Kpis:
    kpi_id: np.ndarray
    category: np.ndarray
    weight: np.ndarray
    target: np.ndarray
    floor: np.ndarray
    actual: np.ndarray
    category_weights: np.ndarray
    coverage_weight: np.ndarray


@dataclass(frozen=True)
class _Scores:
    kpi_scores: np.ndarray
    present: np.ndarray
    category_scores: np.ndarray
    overall: np.ndarray
    coverage: np.ndarray
    has_scorecard: np.ndarray
    complete: np.ndarray


def _prepare(*, kpis: KPIColumns, category_weights: Mapping[str, float]) -> _Kpis:
    """The agreement KPIs as arrays in kpi_id order (the order every sum of the rules runs in)."""
    kpi_id = np.asarray(kpis["kpi_id"], dtype="int64")
    order = np.argsort(kpi_id, kind="stable")
    names = np.asarray(kpis["category"], dtype=object)[order]
    codes = {name: code for code, name in enumerate(CATEGORIES)}
    category = np.array([codes.get(name, -1) for name in names], dtype="int64")
    if (category < 0).any():
        raise ValueError("kpis: unknown category")
    weight = np.asarray(kpis["weight"], dtype="float64")[order]
    target = np.asarray(kpis["target"], dtype="float64")[order]
    floor = np.asarray(kpis["floor"], dtype="float64")[order]
    if (target == floor).any() or not (weight > 0).all():
        raise ValueError("kpis: target and floor must differ and weights be positive")
    weights = np.array([float(category_weights[name]) for name in CATEGORIES])
    # As rules.score_agreements sums them: Σ W left to right, Σ w per category in kpi_id order.
    total_category_weight = weights[0]
    for column in range(1, len(CATEGORIES)):
        total_category_weight = total_category_weight + weights[column]
    category_kpi_weight = np.bincount(category, weights=weight, minlength=len(CATEGORIES))
    return _Kpis(
        kpi_id=kpi_id[order],
        category=category,
        weight=weight,
        target=target,
        floor=floor,
        actual=np.asarray(kpis["actual"], dtype="float64")[order],
        category_weights=weights,
        coverage_weight=effective_weight(
            category_weight=weights[category],
            kpi_weight=weight,
            category_kpi_weight=category_kpi_weight[category],
            total_category_weight=np.full(len(weight), total_category_weight),
        ),
    )


def _score_variants(kpis: _Kpis, actuals: np.ndarray) -> _Scores:
    """Rules 2–5 for (variants × KPIs) actual values of the one agreement and month, bit for
    bit as rules.score_agreements computes them."""
    variants = actuals.shape[0]
    scores = kpi_score(actual=actuals, target=kpis.target, floor=kpis.floor)
    # Rule 3: a KPI of a zero-weight category never counts as present.
    present = ~np.isnan(actuals) & (kpis.category_weights[kpis.category] > 0)
    # Rule 3 as rules.score_agreements computes it: per (variant, category) the weighted sum of
    # the present KPI scores in kpi_id order (np.bincount adds sequentially), over Σ w.
    cell, column = np.nonzero(present)
    slot = cell * len(CATEGORIES) + kpis.category[column]
    slots = variants * len(CATEGORIES)
    weight = kpis.weight[column]
    weighted_sum = np.bincount(slot, weights=weight * scores[cell, column], minlength=slots)
    weight_sum = np.bincount(slot, weights=weight, minlength=slots)
    with np.errstate(invalid="ignore", divide="ignore"):
        category_scores = np.where(weight_sum > 0, weighted_sum / weight_sum, np.nan)
    category_scores = np.clip(category_scores, 0.0, FULL_SCORE * SCORE_CAP)
    category_scores = category_scores.reshape(variants, len(CATEGORIES))
    overall = overall_score(
        category_scores=category_scores,
        category_weights=np.broadcast_to(kpis.category_weights, (variants, len(CATEGORIES))),
    )
    # Coverage sums the present KPIs' effective weights by category, then kpi_id.
    by_category = np.lexsort((kpis.kpi_id, kpis.category))
    cell, column = np.nonzero(present[:, by_category])
    cell_coverage = coverage(
        cell=cell, effective_weights=kpis.coverage_weight[by_category][column], cells=variants
    )
    has_scorecard = present.any(axis=1)
    complete = has_scorecard & ~(cell_coverage < COMPLETE_COVERAGE - COVERAGE_TOLERANCE)
    return _Scores(
        kpi_scores=scores,
        present=present,
        category_scores=category_scores,
        overall=overall,
        coverage=cell_coverage,
        has_scorecard=has_scorecard,
        complete=complete,
    )


def _finite_or_none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def score_breakdown(*, kpis: KPIColumns, category_weights: Mapping[str, float]) -> Breakdown:
    """Each KPI's and category's share of the overall, contribution (share × score) and points
    left against 100 (share × (100 − score)); the contributions add up to the overall and the
    points left to 100 − overall. kpis: kpi_id, category, weight, target, floor, actual."""
    prepared = _prepare(kpis=kpis, category_weights=category_weights)
    scored = _score_variants(prepared, prepared.actual[np.newaxis, :])
    present = scored.present[0]
    category_scores = scored.category_scores[0]
    counted = ~np.isnan(category_scores)
    counted_weight = float(prepared.category_weights[counted].sum())
    categories, category_share = [], np.zeros(len(CATEGORIES))
    for column, name in enumerate(CATEGORIES):
        weight = float(prepared.category_weights[column])
        if weight <= 0:
            state = "unweighted"
        elif counted[column]:
            state = "scored"
            category_share[column] = weight / counted_weight
        else:
            state = "missing"
        share = float(category_share[column])
        score = _finite_or_none(category_scores[column])
        categories.append(CategoryBreakdown(
            category=name, weight=weight, state=state, score=score, share=share,
            contribution=share * score if score is not None else 0.0,
            left=share * (FULL_SCORE - score) if score is not None else 0.0,
        ))
    present_weight = np.bincount(prepared.category, weights=np.where(present, prepared.weight, 0.0),
                                 minlength=len(CATEGORIES))
    rows = []
    for index, kpi_id in enumerate(prepared.kpi_id):
        column = prepared.category[index]
        score = _finite_or_none(scored.kpi_scores[0, index])
        share = (float(category_share[column] * prepared.weight[index] / present_weight[column])
                 if present[index] else 0.0)
        rows.append(KPIBreakdown(
            kpi_id=int(kpi_id), category=CATEGORIES[column], score=score,
            present=bool(present[index]),
            coverage_weight=float(prepared.coverage_weight[index]), share=share,
            contribution=share * score if present[index] else 0.0,
            left=share * (FULL_SCORE - score) if present[index] else 0.0,
        ))
    return Breakdown(
        overall=_finite_or_none(scored.overall[0]),
        coverage=float(scored.coverage[0]),
        complete=bool(scored.complete[0]),
        categories=tuple(categories),
        kpis=tuple(rows),
    )


def _rolling(scored: _Scores, earlier: np.ndarray, earlier_complete: np.ndarray) -> np.ndarray:
    """Rule 6 for month p of each variant, with p−2 and p−1 as given (the same for all)."""
    variants = len(scored.overall)
    overall = np.column_stack([np.broadcast_to(earlier, (variants, 2)), scored.overall])
    complete = np.column_stack(
        [np.broadcast_to(earlier_complete, (variants, 2)), scored.complete])
    return rolling_score(overall=overall, complete=complete)[:, -1]


def _at_score(kpis: _Kpis, score: float) -> np.ndarray:
    """Per KPI, the actual value that scores `score` (0 at the floor, 100 on target)."""
    return kpis.floor + score / FULL_SCORE * (kpis.target - kpis.floor)


def _with_values(kpis: _Kpis, values: np.ndarray) -> np.ndarray:
    """(KPIs × KPIs) actuals: row j is the month as it was with KPI j at values[j]."""
    actuals = np.tile(kpis.actual, (len(values), 1))
    actuals[np.arange(len(values)), np.arange(len(values))] = values
    return actuals


def tier_path(
    *,
    kpis: KPIColumns,
    category_weights: Mapping[str, float],
    earlier_months: Sequence[tuple[float | None, bool]],
    mark: float,
) -> TierPath:
    """For each KPI alone, the actual value in month p that brings the rolling score R(p) to
    `mark`, everything else as it was. earlier_months: (overall, complete) of p−2 and p−1 as
    the run stored them (None overall without a scorecard)."""
    if len(earlier_months) != 2:
        raise ValueError("earlier_months: p−2 and p−1 expected")
    prepared = _prepare(kpis=kpis, category_weights=category_weights)
    earlier = np.array([np.nan if overall is None else overall for overall, _ in earlier_months],
                       dtype="float64")
    earlier_complete = np.array([bool(complete) for _, complete in earlier_months])
    now = _score_variants(prepared, prepared.actual[np.newaxis, :])
    rolling_now = _rolling(now, earlier, earlier_complete)[0]
    reached = bool(rolling_now >= mark)

    # Each KPI at its floor (score 0) and at its cap (120), in one pass: rows 0..K−1, K..2K−1.
    best_values = _at_score(prepared, FULL_SCORE * SCORE_CAP)
    count = len(prepared.kpi_id)
    at_ends = _score_variants(prepared, np.vstack([
        _with_values(prepared, _at_score(prepared, 0.0)),
        _with_values(prepared, best_values)]))
    lowest, best = np.split(_rolling(at_ends, earlier, earlier_complete), [count])
    best_complete = at_ends.complete[count:]
    counted = prepared.category_weights[prepared.category] > 0
    reachable = counted & (best >= mark)  # NaN (undefined) compares False
    any_value = reachable & (lowest >= mark)
    solve = reachable & ~any_value
    # R is linear in the KPI's score between 0 and the cap (see the module's docstring).
    with np.errstate(invalid="ignore", divide="ignore"):
        needed_score = np.where(
            solve, FULL_SCORE * SCORE_CAP * (mark - lowest) / (best - lowest), 0.0)
    needed_score = np.clip(needed_score, 0.0, FULL_SCORE * SCORE_CAP)
    solved = _at_score(prepared, needed_score)
    needed = solved.copy()
    # Rounding may leave the solved value a hair short: step towards the target until the
    # rules say the mark is reached (never past the cap, which reaches it).
    towards_target = np.sign(prepared.target - prepared.floor)
    step = np.finfo("float64").eps * (np.abs(solved) + np.abs(prepared.target - prepared.floor))
    for nudge in range(NUDGES):
        rolling = _rolling(_score_variants(prepared, _with_values(prepared, needed)),
                           earlier, earlier_complete)
        short = solve & ~(rolling >= mark)
        if not short.any():
            break
        needed = np.where(short, solved + towards_target * step * 2.0**nudge, needed)
        beyond = towards_target * (needed - best_values) > 0
        needed = np.where(short & beyond, best_values, needed)

    paths = []
    for index, kpi_id in enumerate(prepared.kpi_id):
        actual = _finite_or_none(prepared.actual[index])
        present = bool(now.present[0, index])
        value = None
        if reachable[index]:
            value = float(prepared.floor[index] if any_value[index] else needed[index])
        relative = score_change = None
        if value is not None:
            if actual is not None and actual != 0:
                relative = (value - actual) / abs(actual)
            score_now = float(now.kpi_scores[0, index]) if present else 0.0
            score_change = float(needed_score[index]) - score_now
        paths.append(KPIPath(
            kpi_id=int(kpi_id), actual=actual, needed=value, any_value=bool(any_value[index]),
            lower_is_better=bool(prepared.target[index] < prepared.floor[index]),
            relative_change=relative, score_change=score_change,
            best_rolling=_finite_or_none(best[index]) if counted[index] else None,
            month_complete=bool(best_complete[index]),
        ))
    paths.sort(key=lambda path: (
        not path.reachable,
        path.relative_change is None,
        abs(path.relative_change) if path.relative_change is not None
        else (path.score_change if path.score_change is not None else 0.0),
        path.kpi_id,
    ))
    return TierPath(mark=float(mark), rolling=_finite_or_none(rolling_now), reached=reached,
                    kpis=tuple(paths))


def tier_after_reaching(*, wanted: str, tier_before: str | None, streak_before: int,
                        hysteresis: int) -> str | None:
    """The tier at the end of the month if its candidate is `wanted` (rule 8, walked from the
    tier and streak at the end of the month before)."""
    start = TIERS.index(tier_before) if tier_before else -1
    tiers, _ = hysteresis_walk(
        candidates=np.array([[TIERS.index(wanted)]]), hysteresis=hysteresis,
        tier=np.array([start]), streak=np.array([streak_before if tier_before else 0]),
    )
    return TIERS[int(tiers[0, 0])]
