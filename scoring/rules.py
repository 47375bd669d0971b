"""Scoring and incentive rules, versions 1 and 2 (DOMAIN.md § Scoring, § Incentives,
§ Closing months).

Pure pandas/numpy: no Django, no ORM. Everything is vectorised across agreements; only the
hysteresis walks the months one by one, because a tier depends on the previous month's tier.

Version 2 scores the open months after the last closed month C; months up to C are frozen and
are not outputs. What the closed months carry in is an argument, a ``ClosedState``:

- ``months``: the frozen (overall, complete) of C − 1 and C, the closed months that the windows
  of rules 6 and 9 reach from the open months. A closed month without a row had no scorecard,
  so it is not complete.
- ``walk``: the frozen hysteresis state (tier, streak) at the end of C.

Each open month is scored by rules 1–9 with the definitions and settings given, except that
rule 6 (rolling) and rule 9 (at risk) take the frozen months of their window as they are, and
rule 8 (hysteresis) continues the walk from the frozen tier and streak (an agreement without a
tier at C starts as in version 1). Rule 7 ranks, in each open month, the agreements eligible in
that month. ``score_agreements`` and ``assign_tiers`` take the same ``closed`` argument, and
their periods are then the open months only. With no ``closed`` argument the results are
version 1's; they are version 2's as well, since with no closed month the two agree to the bit.

Bit-reproducibility: every sum runs in a canonical order (agreement, KPI or category, date,
recorded order) with ``np.bincount``, which adds sequentially per bin, so a result depends only
on the rows of its own group, never on the input row order nor on which agreements are scored
together. Rolling means are explicit sums over shifts of a dense (agreement × month) grid;
``.rolling()`` is avoided because its online algorithm carries bits over from earlier windows.

Tiers are returned as ``object`` columns holding a tier name (``str``) or ``None``.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# A run without closed months keeps version 1: version 2 gives exactly its results then, so its
# runs and their fingerprints stay comparable with earlier ones. A run given a carried-in state
# of closed months is version 2 (see rules_version).
RULES_VERSION = 1
CLOSED_MONTHS_RULES_VERSION = 2

CATEGORIES = ("financial", "strategic", "operational", "relationship")
AGGREGATIONS = ("sum", "mean", "last")
SIDES = ("host", "partner")
STAGES = ("prospect", "pilot", "active", "under_review", "exiting", "ended")
CANDIDATE_STAGES = ("pilot", "active", "under_review")
# The order matters: a tier code is an index into this tuple (-1 = no tier).
TIERS = ("strategic", "growth", "transactional")
POLICIES = ("percentile", "threshold")

SCORE_CAP = 1.2
COMPLETE_COVERAGE = 0.5
# Coverage is a sum of fractions: exactly 0.5 must count as complete whatever the rounding.
COVERAGE_TOLERANCE = 1e-9
AT_RISK_BELOW = 50.0
PAYOUT_SCORE_CAP = 120.0
DEFAULT_BASELINE = 60.0
DEFAULT_MULTIPLIERS = {"transactional": 1.0, "growth": 1.25, "strategic": 1.5}

KPI_SCORE_COLUMNS = (
    "agreement_id",
    "kpi_id",
    "period",
    "actual",
    "other_side_actual",
    "target",
    "floor",
    "score",
)
SCORECARD_COLUMNS = (
    "agreement_id",
    "period",
    *CATEGORIES,
    "overall",
    "coverage",
    "has_scorecard",
    "incomplete",
    "complete",
    "rolling",
)
TIER_COLUMNS = ("candidate_tier", "tier", "streak", "at_risk", "payout")

_NO_TIER = -1
_TIER_NAMES = np.array([*TIERS, None], dtype=object)  # code -1 picks the trailing None
# Rules 6 and 9 look back two months: the closed months they can reach from an open one.
CARRIED_MONTHS = 2


def _empty_months() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "agreement_id": pd.Series(dtype="int64"),
            "period": pd.Series(dtype="str"),
            "overall": pd.Series(dtype="float64"),
            "complete": pd.Series(dtype=bool),
        }
    )


def _empty_walk() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "agreement_id": pd.Series(dtype="int64"),
            "tier": pd.Series(dtype=object),
            "streak": pd.Series(dtype="int64"),
        }
    )


@dataclass(frozen=True, eq=False)
class ClosedState:
    """What the closed months carry into the scoring of the open months (rules version 2).

    last_closed: C, the last closed month ("YYYY-MM"); the months after it are open.
    months: frozen scorecards, columns agreement_id, period, overall, complete. Only C − 1 and C
        are read (earlier rows are ignored); a closed month without a row had no scorecard.
    walk: the hysteresis walk at the end of C, columns agreement_id, tier (a name in TIERS, or
        None or "" for no tier), streak. An agreement without a row has no tier and streak 0.
    """

    last_closed: str
    months: pd.DataFrame = field(default_factory=_empty_months)
    walk: pd.DataFrame = field(default_factory=_empty_walk)


def rules_version(*, closed: ClosedState | None) -> int:
    """The rules version of a run: 1 without closed months, 2 with a carried-in state."""
    return RULES_VERSION if closed is None else CLOSED_MONTHS_RULES_VERSION


def month_number(*, periods: pd.Series | list[str] | np.ndarray) -> np.ndarray:
    """Months since year 0 of "YYYY-MM" strings: 12 × year + month − 1."""
    text = pd.Series(np.asarray(periods, dtype=object), dtype="str")
    year = text.str.slice(0, 4).astype("int64").to_numpy()
    month = text.str.slice(5, 7).astype("int64").to_numpy()
    return year * 12 + month - 1


def kpi_score(*, actual: np.ndarray, target: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """KPI score = 100 × clip((actual − floor) / (target − floor), 0, 1.2); NaN when missing."""
    ratio = np.clip((actual - floor) / (target - floor), 0.0, SCORE_CAP)
    # A lower-is-better KPI exactly on its floor gives 0 / negative = −0.0; export wants 0.0.
    return 100.0 * ratio + 0.0


def period_value(*, group: np.ndarray, value: np.ndarray, aggregation: np.ndarray) -> np.ndarray:
    """Per group of sorted rows: Σ value (sum), Σ value / count (mean) or the last value (last)."""
    group_count = int(group[-1]) + 1 if len(group) else 0
    total = np.bincount(group, weights=value, minlength=group_count)
    count = np.bincount(group, minlength=group_count)
    ends = np.append(group[1:] != group[:-1], True) if len(group) else np.zeros(0, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.select(
            [aggregation == AGGREGATIONS.index("sum"), aggregation == AGGREGATIONS.index("mean")],
            [total, total / count],
            default=value[ends],
        )


def effective_weight(
    *,
    category_weight: np.ndarray,
    kpi_weight: np.ndarray,
    category_kpi_weight: np.ndarray,
    total_category_weight: np.ndarray,
) -> np.ndarray:
    """Effective KPI weight = W_category × w_k / Σ w in its category / Σ W of the four."""
    return category_weight * kpi_weight / category_kpi_weight / total_category_weight


def coverage(*, cell: np.ndarray, effective_weights: np.ndarray, cells: int) -> np.ndarray:
    """Coverage of a cell = Σ effective weights of its present KPIs, summed in input order."""
    total = np.bincount(cell, weights=effective_weights, minlength=cells)
    # A sum of fractions of 1 can overshoot 1 by rounding; +0.0 turns −0.0 into 0.0.
    return np.minimum(total, 1.0) + 0.0


def overall_score(*, category_scores: np.ndarray, category_weights: np.ndarray) -> np.ndarray:
    """Overall = Σ W_c × score_c / Σ W_c over the present categories, in CATEGORIES order."""
    numerator = np.zeros(len(category_scores))
    denominator = np.zeros(len(category_scores))
    for column in range(len(CATEGORIES)):
        present = ~np.isnan(category_scores[:, column])
        weight = category_weights[:, column]
        numerator += np.where(present, weight * category_scores[:, column], 0.0)
        denominator += np.where(present, weight, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = np.where(denominator > 0, numerator / denominator, np.nan)
    # A weighted mean of scores in [0, 120] can leave the range by one ulp of rounding.
    return np.clip(overall, 0.0, 100.0 * SCORE_CAP)


def rolling_score(
    *,
    overall: np.ndarray,
    complete: np.ndarray,
    carried_overall: np.ndarray | None = None,
    carried_complete: np.ndarray | None = None,
) -> np.ndarray:
    """R(p) = Σ overall of complete months among p−2, p−1, p / their count, when count ≥ 2.

    carried_overall, carried_complete: (agreements × 2) the two months before the grid's first
    (frozen closed months, version 2); without them those months are not complete.
    """
    if carried_overall is not None and carried_complete is not None:
        whole = rolling_score(
            overall=np.concatenate([carried_overall, overall], axis=1),
            complete=np.concatenate([carried_complete, complete], axis=1),
        )
        return whole[:, CARRIED_MONTHS:]
    total = np.zeros(overall.shape)
    count = np.zeros(overall.shape, dtype="int64")
    for lag in (2, 1, 0):
        # Months before the first scored month have no scorecard, hence are not complete.
        lagged_complete = _shift_months(complete, lag=lag, fill=False)
        lagged_overall = _shift_months(overall, lag=lag, fill=np.nan)
        total += np.where(lagged_complete, lagged_overall, 0.0)
        count += lagged_complete
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= 2, total / count, np.nan)


def score_agreements(
    *,
    observations: pd.DataFrame,
    agreement_kpis: pd.DataFrame,
    agreements: pd.DataFrame,
    periods: list[str],
    closed: ClosedState | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """KPI scores and the dense (agreement × period) scorecards of rules 1–6.

    With `closed` (version 2) the periods are the open months after its last closed month, and
    the rolling score reaches back into the frozen closed months.
    """
    _check_periods(periods=periods)
    agreement_ids, category_weights = _agreement_weights(agreements=agreements)
    kpis = _prepare_agreement_kpis(agreement_kpis=agreement_kpis, agreement_ids=agreement_ids)
    period_count = len(periods)
    cells = len(agreement_ids) * period_count
    slots = cells * len(CATEGORIES)

    kpi_agreement = np.searchsorted(agreement_ids, kpis["agreement_id"])
    kpi_category = kpis["category"]
    kpi_weight = kpis["weight"]
    kpi_category_weight = category_weights[kpi_agreement, kpi_category]
    total_category_weight = category_weights[:, 0].copy()
    for column in range(1, len(CATEGORIES)):
        total_category_weight += category_weights[:, column]
    # KPIs are sorted by (agreement_id, kpi_id): each category's Σ w runs in kpi_id order.
    category_kpi_weight = np.bincount(
        kpi_agreement * len(CATEGORIES) + kpi_category,
        weights=kpi_weight,
        minlength=len(agreement_ids) * len(CATEGORIES),
    )
    kpi_effective_weight = effective_weight(
        category_weight=kpi_category_weight,
        kpi_weight=kpi_weight,
        category_kpi_weight=category_kpi_weight[kpi_agreement * len(CATEGORIES) + kpi_category],
        total_category_weight=total_category_weight[kpi_agreement],
    )

    group_kpi, group_side, group_position, group_value = _side_period_values(
        observations=observations, kpis=kpis, periods=periods
    )
    from_source = group_side == kpis["source"][group_kpi]
    group_key = group_kpi * period_count + group_position
    # One row per (agreement KPI, period) reported by either side, in (agreement, KPI, period)
    # order because KPI rows are sorted by (agreement_id, kpi_id).
    keys = np.unique(group_key)
    row_kpi = keys // period_count if period_count else keys
    row_position = keys % period_count if period_count else keys
    actual = np.full(len(keys), np.nan)
    actual[np.searchsorted(keys, group_key[from_source])] = group_value[from_source]
    other_side_actual = np.full(len(keys), np.nan)
    other_side_actual[np.searchsorted(keys, group_key[~from_source])] = group_value[~from_source]
    score = kpi_score(actual=actual, target=kpis["target"][row_kpi], floor=kpis["floor"][row_kpi])
    kpi_scores = pd.DataFrame(
        {
            "agreement_id": kpis["agreement_id"][row_kpi],
            "kpi_id": kpis["kpi_id"][row_kpi],
            "period": _period_column(periods=periods, position=row_position),
            "actual": actual,
            "other_side_actual": other_side_actual,
            "target": kpis["target"][row_kpi],
            "floor": kpis["floor"][row_kpi],
            "score": score,
        }
    )

    # Rule 3: a KPI of a zero-weight category never counts as present.
    present = ~np.isnan(actual) & (kpi_category_weight[row_kpi] > 0)
    present_kpi = row_kpi[present]
    present_category = kpi_category[present_kpi]
    cell = kpi_agreement[present_kpi] * period_count + row_position[present]
    # Rows run in kpi_id order within a cell, so each category's sums run in kpi_id order.
    slot = cell * len(CATEGORIES) + present_category
    weight = kpi_weight[present_kpi]
    weighted_sum = np.bincount(slot, weights=weight * score[present], minlength=slots)
    weight_sum = np.bincount(slot, weights=weight, minlength=slots)
    with np.errstate(invalid="ignore", divide="ignore"):
        category_scores = np.where(weight_sum > 0, weighted_sum / weight_sum, np.nan)
    # Rounding guard only: a weighted mean of scores in [0, 120] stays in [0, 120].
    category_scores = np.clip(category_scores, 0.0, 100.0 * SCORE_CAP)
    category_scores = category_scores.reshape(cells, len(CATEGORIES))
    overall = overall_score(
        category_scores=category_scores,
        category_weights=np.repeat(category_weights, period_count, axis=0),
    )
    by_category = np.lexsort((present_kpi, present_category, cell))
    cell_coverage = coverage(
        cell=cell[by_category],
        effective_weights=kpi_effective_weight[present_kpi][by_category],
        cells=cells,
    )
    has_scorecard = np.bincount(cell, minlength=cells) > 0
    incomplete = has_scorecard & (cell_coverage < COMPLETE_COVERAGE - COVERAGE_TOLERANCE)
    complete = has_scorecard & ~incomplete
    grid = (len(agreement_ids), period_count)
    carried_overall = carried_complete = None
    if closed is not None:
        carried_overall, carried_complete = _carried_months(
            closed=closed,
            agreement_ids=agreement_ids,
            first_month=_first_open_month(closed=closed, periods=periods),
        )
    rolling = rolling_score(
        overall=overall.reshape(grid),
        complete=complete.reshape(grid),
        carried_overall=carried_overall,
        carried_complete=carried_complete,
    )

    scorecards = pd.DataFrame(
        {
            "agreement_id": np.repeat(agreement_ids, period_count),
            "period": _period_column(
                periods=periods, position=np.tile(np.arange(period_count), len(agreement_ids))
            ),
            **{category: category_scores[:, column] for column, category in enumerate(CATEGORIES)},
            "overall": overall,
            "coverage": cell_coverage,
            "has_scorecard": has_scorecard,
            "incomplete": incomplete,
            "complete": complete,
            "rolling": rolling.reshape(-1),
        }
    )
    return kpi_scores, scorecards


def candidate_tier(
    *,
    rolling: pd.Series,
    period: pd.Series,
    eligible: pd.Series,
    policy: str = "percentile",
    strategic_threshold: float = 85.0,
    growth_threshold: float = 70.0,
) -> np.ndarray:
    """Tier code (index into TIERS, −1 = none): top 10 % / next 20 % of R, or R ≥ thresholds."""
    codes = np.full(len(rolling), _NO_TIER, dtype="int64")
    ranked = eligible.to_numpy(dtype=bool) & rolling.notna().to_numpy()
    values = rolling.to_numpy(dtype="float64")[ranked]
    if policy == "percentile":
        months = pd.Series(np.asarray(period, dtype=object)[ranked])
        frame = pd.DataFrame({"period": months, "rolling": values})
        # method="min": ties share the best rank, r = 1 + count strictly higher (exact floats).
        rank = frame.groupby("period")["rolling"].rank(method="min", ascending=False)
        rank = rank.to_numpy(dtype="int64")
        n = frame.groupby("period")["rolling"].transform("size").to_numpy(dtype="int64")
        chosen = np.select([10 * (rank - 1) < n, 10 * (rank - 1) < 3 * n], [0, 1], default=2)
    elif policy == "threshold":
        chosen = np.select(
            [values >= strategic_threshold, values >= growth_threshold], [0, 1], default=2
        )
    else:
        raise ValueError(f"unknown tier policy {policy!r}; expected one of {POLICIES}")
    codes[ranked] = chosen
    return codes


def hysteresis_tier(
    *,
    candidates: np.ndarray,
    hysteresis: int = 2,
    tier: np.ndarray | None = None,
    streak: np.ndarray | None = None,
) -> np.ndarray:
    """Tier per (agreement, month): switch to the candidate after `hysteresis` differing months."""
    tiers, _ = hysteresis_walk(
        candidates=candidates, hysteresis=hysteresis, tier=tier, streak=streak
    )
    return tiers


def hysteresis_walk(
    *,
    candidates: np.ndarray,
    hysteresis: int = 2,
    tier: np.ndarray | None = None,
    streak: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Tier and streak per (agreement, month) at the month's end, walked from (tier, streak).

    `tier` and `streak` are each agreement's state before the first month (tier codes, −1 for
    none); by default no tier and a streak of 0, as in version 1.
    """
    if hysteresis < 1:
        raise ValueError("hysteresis must be at least 1")
    agreements = candidates.shape[0]
    tiers = np.full(candidates.shape, _NO_TIER, dtype="int64")
    streaks = np.zeros(candidates.shape, dtype="int64")
    # Copies: the walk updates them in place.
    if tier is None:
        tier = np.full(agreements, _NO_TIER, dtype="int64")
    else:
        tier = np.array(tier, dtype="int64")
    if streak is None:
        streak = np.zeros(agreements, dtype="int64")
    else:
        streak = np.array(streak, dtype="int64")
    for month in range(candidates.shape[1]):
        candidate = candidates[:, month]
        has_candidate = candidate != _NO_TIER
        first = has_candidate & (tier == _NO_TIER)
        tier[first] = candidate[first]
        differs = has_candidate & ~first & (candidate != tier)
        # No candidate or one equal to the tier breaks the streak: the switch must be sustained.
        streak = np.where(differs, streak + 1, 0)
        switch = streak >= hysteresis
        tier[switch] = candidate[switch]
        streak[switch] = 0
        tiers[:, month] = tier
        streaks[:, month] = streak
    return tiers, streaks


def at_risk(*, low: np.ndarray, carried_low: np.ndarray | None = None) -> np.ndarray:
    """At risk = complete with overall < 50 in this month and in each of the two before it.

    carried_low: (agreements × 2) the two months before the grid's first (frozen closed months,
    version 2); without it those months are not low.
    """
    if carried_low is not None:
        return at_risk(low=np.concatenate([carried_low, low], axis=1))[:, CARRIED_MONTHS:]
    return low & _shift_months(low, lag=1, fill=False) & _shift_months(low, lag=2, fill=False)


def payout(
    *,
    overall: np.ndarray,
    rolling: np.ndarray,
    complete: np.ndarray,
    tier: np.ndarray,
    base_amount: np.ndarray,
    baseline: np.ndarray,
    multipliers: np.ndarray,
) -> np.ndarray:
    """Payout = base × multiplier(tier) × min(overall, 120) / 100 when earned, else 0 or NaN."""
    has_tier = tier != _NO_TIER
    multiplier = np.where(has_tier, multipliers[np.arange(len(tier)), np.maximum(tier, 0)], 0.0)
    earned = complete & has_tier & (rolling >= baseline)
    amount = base_amount * multiplier * np.minimum(overall, PAYOUT_SCORE_CAP) / 100.0
    # Agreements without a plan have NaN base_amount: their payout stays NaN, not 0.
    return np.where(np.isnan(base_amount), np.nan, np.where(earned, amount, 0.0) + 0.0)


def assign_tiers(
    *,
    scorecards: pd.DataFrame,
    stages: pd.DataFrame,
    policy: str = "percentile",
    strategic_threshold: float = 85.0,
    growth_threshold: float = 70.0,
    hysteresis: int = 2,
    incentives: pd.DataFrame | None = None,
    closed: ClosedState | None = None,
) -> pd.DataFrame:
    """Scorecards with candidate_tier, tier, streak (rules 7–8), at_risk (rule 9) and payout.

    `streak` is the walk's streak at the end of the row's month: closing a month freezes it
    with the tier. With `closed` (version 2) the scorecards are of open months only; the walk
    and the at-risk window continue from the frozen closed months.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown tier policy {policy!r}; expected one of {POLICIES}")
    frame = scorecards.astype({"agreement_id": "int64"})
    frame["period"] = frame["period"].astype("str")
    frame = frame.sort_values(["agreement_id", "period"], kind="stable", ignore_index=True)
    if frame.duplicated(["agreement_id", "period"]).any():
        raise ValueError("scorecards: one row per (agreement_id, period) expected")

    agreement_ids = np.unique(frame["agreement_id"].to_numpy())
    row_agreement = np.searchsorted(agreement_ids, frame["agreement_id"].to_numpy())
    months = month_number(periods=frame["period"])
    if closed is None:
        first_month = int(months.min()) if len(months) else 0
    else:
        # The grid starts right after C, so that the carried months sit just before it.
        first_month = _first_open_month(closed=closed, periods=[])
        if len(months) and int(months.min()) < first_month:
            raise ValueError(f"scorecards: a month up to {closed.last_closed} is closed")
    row_month = months - first_month
    # A calendar grid, so that a month missing from the input counts as a month without data.
    grid = (len(agreement_ids), int(row_month.max()) + 1 if len(months) else 0)

    stage = frame["agreement_id"].map(
        stages.astype({"agreement_id": "int64"}).set_index("agreement_id")["stage"]
    )
    complete = frame["complete"].to_numpy(dtype=bool)
    overall = frame["overall"].to_numpy(dtype="float64")
    rolling = frame["rolling"].to_numpy(dtype="float64")
    candidates = candidate_tier(
        rolling=frame["rolling"],
        period=frame["period"],
        eligible=stage.isin(CANDIDATE_STAGES),
        policy=policy,
        strategic_threshold=strategic_threshold,
        growth_threshold=growth_threshold,
    )
    candidate_grid = np.full(grid, _NO_TIER, dtype="int64")
    candidate_grid[row_agreement, row_month] = candidates
    start_tier = start_streak = carried_low = None
    if closed is not None:
        start_tier, start_streak = _carried_walk(closed=closed, agreement_ids=agreement_ids)
        carried_overall, carried_complete = _carried_months(
            closed=closed, agreement_ids=agreement_ids, first_month=first_month
        )
        carried_low = carried_complete & (carried_overall < AT_RISK_BELOW)
    tiers, streaks = hysteresis_walk(
        candidates=candidate_grid, hysteresis=hysteresis, tier=start_tier, streak=start_streak
    )
    tier = tiers[row_agreement, row_month]

    low_grid = np.zeros(grid, dtype=bool)
    low_grid[row_agreement, row_month] = complete & (overall < AT_RISK_BELOW)
    risk = at_risk(low=low_grid, carried_low=carried_low)[row_agreement, row_month]

    base_amount, baseline, multipliers = _incentive_plans(
        incentives=incentives, agreement_id=frame["agreement_id"].to_numpy()
    )
    frame["candidate_tier"] = pd.Series(_TIER_NAMES[candidates], dtype=object)
    frame["tier"] = pd.Series(_TIER_NAMES[tier], dtype=object)
    frame["streak"] = streaks[row_agreement, row_month]
    frame["at_risk"] = risk
    frame["payout"] = payout(
        overall=overall,
        rolling=rolling,
        complete=complete,
        tier=tier,
        base_amount=base_amount,
        baseline=baseline,
        multipliers=multipliers,
    )
    return frame


def period_observations(
    *, observations: pd.DataFrame, agreement_kpis: pd.DataFrame, periods: list[str]
) -> pd.DataFrame:
    """Rule 1 done once: one observation per (agreement, KPI, month) of the KPI's source side,
    its period value, dated the month's first day (columns as score_agreements reads them).

    Scoring these gives the scorecards of the observations they come from, to the bit: the
    sum, mean or last of one value is that value. KPI scores lose only `other_side_actual`.
    """
    _check_periods(periods=periods)
    agreement_ids = np.unique(agreement_kpis["agreement_id"].to_numpy(dtype="int64"))
    kpis = _prepare_agreement_kpis(agreement_kpis=agreement_kpis, agreement_ids=agreement_ids)
    kpi_row, side, position, value = _side_period_values(
        observations=observations, kpis=kpis, periods=periods
    )
    keep = (side == kpis["source"][kpi_row]) & np.isfinite(value)
    kpi_row, position = kpi_row[keep], position[keep]
    first_month = int(month_number(periods=periods[:1])[0]) if periods else 0
    month = (first_month + position - 1970 * 12).astype("datetime64[M]")
    return pd.DataFrame({
        "agreement_id": kpis["agreement_id"][kpi_row],
        "kpi_id": kpis["kpi_id"][kpi_row],
        "side": pd.Series(np.asarray(SIDES, dtype=object)[kpis["source"][kpi_row]],
                          dtype=object),
        "date": pd.Series(month.astype("datetime64[s]")),
        "value": value[keep],
        "recorded_order": np.zeros(int(keep.sum()), dtype="int64"),
    })


def tier_changes(*, tiers: pd.DataFrame) -> int:
    """Count of months whose tier differs from the agreement's previous non-null tier."""
    known = tiers.loc[tiers["tier"].notna(), ["agreement_id", "period", "tier"]]
    known = known.sort_values(["agreement_id", "period"], kind="stable")
    agreement = known["agreement_id"].to_numpy()
    tier = known["tier"].to_numpy(dtype=object)
    return int(((agreement[1:] == agreement[:-1]) & (tier[1:] != tier[:-1])).sum())


def _incentive_plans(
    *, incentives: pd.DataFrame | None, agreement_id: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: base amount (NaN without a plan), baseline and the multipliers in TIERS order."""
    rows = len(agreement_id)
    if incentives is None or incentives.empty:
        return np.full(rows, np.nan), np.full(rows, DEFAULT_BASELINE), np.ones((rows, len(TIERS)))
    plan_ids = incentives["agreement_id"].to_numpy(dtype="int64")
    order = np.argsort(plan_ids, kind="stable")
    plan_ids = plan_ids[order]
    if (plan_ids[1:] == plan_ids[:-1]).any():
        raise ValueError("incentives: one plan per agreement expected")
    plan = np.searchsorted(plan_ids, agreement_id).clip(0, len(plan_ids) - 1)
    has_plan = plan_ids[plan] == agreement_id

    def column(name: str, default: float) -> np.ndarray:
        if name not in incentives:
            return np.full(rows, default)
        values = incentives[name].to_numpy(dtype="float64")[order][plan]
        return np.where(np.isnan(values), default, values)

    base_amount = np.where(has_plan, column("base_amount", np.nan), np.nan)
    multipliers = np.column_stack(
        [column(f"multiplier_{tier}", DEFAULT_MULTIPLIERS[tier]) for tier in TIERS]
    )
    return base_amount, column("baseline", DEFAULT_BASELINE), multipliers


def _agreement_weights(*, agreements: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    agreement_ids = agreements["agreement_id"].to_numpy(dtype="int64")
    order = np.argsort(agreement_ids, kind="stable")
    agreement_ids = agreement_ids[order]
    if (agreement_ids[1:] == agreement_ids[:-1]).any():
        raise ValueError("agreements: agreement_id must be unique")
    columns = [f"weight_{category}" for category in CATEGORIES]
    return agreement_ids, agreements[columns].to_numpy(dtype="float64")[order]


def _prepare_agreement_kpis(
    *, agreement_kpis: pd.DataFrame, agreement_ids: np.ndarray
) -> dict[str, np.ndarray]:
    """The agreement KPIs of the scored agreements as arrays sorted by (agreement_id, kpi_id)."""
    agreement_id = agreement_kpis["agreement_id"].to_numpy(dtype="int64")
    kpi_id = agreement_kpis["kpi_id"].to_numpy(dtype="int64")
    keep = np.isin(agreement_id, agreement_ids)
    order = np.flatnonzero(keep)[np.lexsort((kpi_id[keep], agreement_id[keep]))]
    kpis = {"agreement_id": agreement_id[order], "kpi_id": kpi_id[order]}
    for column in ("target", "floor", "weight"):
        kpis[column] = agreement_kpis[column].to_numpy(dtype="float64")[order]
    for column, allowed in (
        ("category", CATEGORIES),
        ("aggregation", AGGREGATIONS),
        ("source", SIDES),
    ):
        values = agreement_kpis[column].to_numpy(dtype=object)[order]
        kpis[column] = pd.Index(allowed).get_indexer(values).astype("int64")
        if (kpis[column] < 0).any():
            unknown = sorted({str(value) for value in values[kpis[column] < 0]})
            raise ValueError(f"agreement_kpis: unknown {column} {unknown}")
    same_key = (kpis["agreement_id"][1:] == kpis["agreement_id"][:-1]) & (
        kpis["kpi_id"][1:] == kpis["kpi_id"][:-1]
    )
    if same_key.any():
        raise ValueError("agreement_kpis: one row per (agreement_id, kpi_id) expected")
    if (kpis["target"] == kpis["floor"]).any():
        raise ValueError("agreement_kpis: target and floor must differ")
    if not (kpis["weight"] > 0).all():
        raise ValueError("agreement_kpis: weights must be positive")
    return kpis


def _side_period_values(
    *, observations: pd.DataFrame, kpis: dict[str, np.ndarray], periods: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(KPI row, side code, period position, period value) per agreement KPI, side and period."""
    dates = observations["date"]
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        dates = dates.dt.tz_localize(None)
    date = pd.to_datetime(dates).to_numpy()
    first_month = int(month_number(periods=periods[:1])[0]) if periods else 0
    # datetime64[M] counts months from 1970-01 whatever the unit of the input.
    position = date.astype("datetime64[M]").astype("int64") + 1970 * 12 - first_month
    kpi_row = _kpi_rows(
        kpis=kpis,
        agreement_id=observations["agreement_id"].to_numpy(dtype="int64"),
        kpi_id=observations["kpi_id"].to_numpy(dtype="int64"),
    )
    side = pd.Index(SIDES).get_indexer(observations["side"].to_numpy(dtype=object))
    value = observations["value"].to_numpy(dtype="float64")
    recorded_order = observations["recorded_order"].to_numpy(dtype="int64")
    keep = (
        (kpi_row >= 0)
        & (side >= 0)
        & (position >= 0)
        & (position < len(periods))
        # NaN and ±inf are no measurement (imports refuse them; older rows may hold them).
        & np.isfinite(value)
    )
    kpi_row, side, position, value = kpi_row[keep], side[keep], position[keep], value[keep]
    date, recorded_order = date[keep].view("int64"), recorded_order[keep]
    # Every column is a sort key, so rows that tie are identical and the order is canonical;
    # within a group the rows run by date, then recorded order, so the last one is the latest.
    order = np.lexsort((value, recorded_order, date, position, side, kpi_row))
    kpi_row, side, position, value = kpi_row[order], side[order], position[order], value[order]
    group_key = (kpi_row * len(SIDES) + side) * len(periods) + position
    starts = np.append(True, group_key[1:] != group_key[:-1]) if len(group_key) else keep[:0]
    group = np.cumsum(starts) - 1
    period_values = period_value(
        group=group, value=value, aggregation=kpis["aggregation"][kpi_row[starts]]
    )
    # A sum of finite values can overflow (1.7e308 twice): such a period value is no
    # measurement either, so the KPI counts as missing rather than storing ±inf.
    period_values = np.where(np.isfinite(period_values), period_values, np.nan)
    return kpi_row[starts], side[starts], position[starts], period_values


def _kpi_rows(
    *, kpis: dict[str, np.ndarray], agreement_id: np.ndarray, kpi_id: np.ndarray
) -> np.ndarray:
    """Index of each (agreement_id, kpi_id) among the sorted agreement KPIs, −1 when absent."""
    if not len(kpis["kpi_id"]):
        return np.full(len(kpi_id), -1, dtype="int64")
    agreement_ids = np.unique(kpis["agreement_id"])
    kpi_ids = np.unique(kpis["kpi_id"])
    # Small dense codes make one sortable key of the pair without any risk of overflow.
    agreement_code = np.searchsorted(agreement_ids, agreement_id).clip(0, len(agreement_ids) - 1)
    kpi_code = np.searchsorted(kpi_ids, kpi_id).clip(0, len(kpi_ids) - 1)
    key = agreement_code * len(kpi_ids) + kpi_code
    kpi_keys = np.searchsorted(agreement_ids, kpis["agreement_id"]) * len(
        kpi_ids
    ) + np.searchsorted(kpi_ids, kpis["kpi_id"])
    row = np.searchsorted(kpi_keys, key).clip(0, len(kpi_keys) - 1)
    found = (
        (agreement_ids[agreement_code] == agreement_id)
        & (kpi_ids[kpi_code] == kpi_id)
        & (kpi_keys[row] == key)
    )
    return np.where(found, row, -1)


def _period_column(*, periods: list[str], position: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(periods, dtype=object)[position], dtype="str")


def _first_open_month(*, closed: ClosedState, periods: list[str]) -> int:
    """The month number of the first period scored: the first of `periods`, else C + 1."""
    last_closed = int(month_number(periods=[closed.last_closed])[0])
    if not periods:
        return last_closed + 1
    first = int(month_number(periods=periods[:1])[0])
    if first <= last_closed:
        raise ValueError(f"periods: {periods[0]} is closed (last closed {closed.last_closed})")
    return first


def _carried_months(
    *, closed: ClosedState, agreement_ids: np.ndarray, first_month: int
) -> tuple[np.ndarray, np.ndarray]:
    """Frozen (overall, complete) of the two months before `first_month`: (agreements × 2).

    A month that is open (the periods start later than C + 1) or has no frozen row is not
    complete, with overall NaN.
    """
    overall = np.full((len(agreement_ids), CARRIED_MONTHS), np.nan)
    complete = np.zeros((len(agreement_ids), CARRIED_MONTHS), dtype=bool)
    months = closed.months
    month = month_number(periods=months["period"].astype("str"))
    if len(month) and month.max() > month_number(periods=[closed.last_closed])[0]:
        raise ValueError(f"closed months: a frozen month after {closed.last_closed}")
    row, known = _agreement_rows(
        agreement_ids=agreement_ids, agreement_id=months["agreement_id"].to_numpy(dtype="int64")
    )
    # Frozen months are ≤ C < first_month, so a column is at most CARRIED_MONTHS − 1.
    column = month - (first_month - CARRIED_MONTHS)
    keep = known & (column >= 0)
    cell = row[keep] * CARRIED_MONTHS + column[keep]
    if len(np.unique(cell)) < len(cell):
        raise ValueError("closed months: one row per (agreement_id, period) expected")
    overall[row[keep], column[keep]] = months["overall"].to_numpy(dtype="float64")[keep]
    complete[row[keep], column[keep]] = months["complete"].to_numpy(dtype=bool)[keep]
    return overall, complete


def _carried_walk(
    *, closed: ClosedState, agreement_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each agreement's frozen (tier code, streak) at the end of C; (−1, 0) without a row."""
    tier = np.full(len(agreement_ids), _NO_TIER, dtype="int64")
    streak = np.zeros(len(agreement_ids), dtype="int64")
    walk = closed.walk
    names = walk["tier"].to_numpy(dtype=object)
    no_tier = pd.isna(names) | (names == "")
    codes = np.where(no_tier, _NO_TIER, pd.Index(TIERS).get_indexer(names))
    if (codes[~no_tier] == _NO_TIER).any():
        unknown = sorted({str(name) for name in names[~no_tier & (codes == _NO_TIER)]})
        raise ValueError(f"closed walk: unknown tier {unknown}")
    streaks = walk["streak"].to_numpy(dtype="int64")
    if (streaks < 0).any() or (streaks[no_tier] != 0).any():
        raise ValueError("closed walk: a streak is at least 0, and 0 without a tier")
    agreement_id = walk["agreement_id"].to_numpy(dtype="int64")
    if len(np.unique(agreement_id)) < len(agreement_id):
        raise ValueError("closed walk: one row per agreement_id expected")
    row, known = _agreement_rows(agreement_ids=agreement_ids, agreement_id=agreement_id)
    tier[row[known]] = codes[known]
    streak[row[known]] = streaks[known]
    return tier, streak


def _agreement_rows(
    *, agreement_ids: np.ndarray, agreement_id: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Row of each agreement_id in the sorted agreement_ids, and whether it is there at all."""
    if not len(agreement_ids):
        return np.zeros(len(agreement_id), dtype="int64"), np.zeros(len(agreement_id), dtype=bool)
    row = np.searchsorted(agreement_ids, agreement_id).clip(0, len(agreement_ids) - 1)
    return row, agreement_ids[row] == agreement_id


def _check_periods(*, periods: list[str]) -> None:
    months = month_number(periods=list(periods))
    if len(months) and not (np.diff(months) == 1).all():
        raise ValueError("periods must be consecutive months in order")


def _shift_months(grid: np.ndarray, *, lag: int, fill: object) -> np.ndarray:
    """The grid moved `lag` months later along axis 1; the first `lag` months get `fill`."""
    if lag == 0:
        return grid
    shifted = np.full(grid.shape, fill, dtype=grid.dtype)
    shifted[:, lag:] = grid[:, :-lag]
    return shifted
