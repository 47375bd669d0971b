"""The breakdown of an overall score and the path to the next tier (scoring/explain.py), by hand
and against the rules themselves."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from scoring import explain, rules

DEFAULT_WEIGHTS = {"financial": 30.0, "strategic": 25.0, "operational": 25.0, "relationship": 20.0}
MONTHS = ("2026-01", "2026-02", "2026-03")
AGREEMENT = 7


def make_kpis(*rows: tuple) -> pd.DataFrame:
    """Rows of (kpi_id, category, weight, target, floor, actual or None)."""
    return pd.DataFrame(
        [(kpi_id, category, float(weight), float(target), float(floor),
          np.nan if actual is None else float(actual))
         for kpi_id, category, weight, target, floor, actual in rows],
        columns=["kpi_id", "category", "weight", "target", "floor", "actual"],
    )


# Revenue 80 of 100 and pipeline missing (financial), defect rate 5 with target 2 and floor 10
# (lower is better: 62.5), CSAT 6 of 5 (capped at 120); no strategic KPI.
EXAMPLE = make_kpis(
    (1, "financial", 2, 100, 0, 80),
    (2, "financial", 1, 50, 0, None),
    (3, "operational", 1, 2, 10, 5),
    (4, "relationship", 1, 5, 0, 6),
)


def by_id(rows) -> dict:
    return {row.kpi_id: row for row in rows}


def test_breakdown_by_hand():
    breakdown = explain.score_breakdown(kpis=EXAMPLE, category_weights=DEFAULT_WEIGHTS)
    # (30 × 80 + 25 × 62.5 + 20 × 120) / (30 + 25 + 20): strategic has no KPI, so it is missing.
    assert breakdown.overall == pytest.approx(6362.5 / 75)
    assert breakdown.coverage == pytest.approx(0.3 * 2 / 3 + 0.25 + 0.2)
    kpis = by_id(breakdown.kpis)
    assert kpis[1].share == pytest.approx(30 / 75)  # alone with data in its category
    assert kpis[1].contribution == pytest.approx(32.0)
    assert kpis[1].left == pytest.approx(8.0)
    assert kpis[3].score == pytest.approx(62.5)  # lower is better: (5 − 10) / (2 − 10)
    assert kpis[3].contribution == pytest.approx(25 / 75 * 62.5)
    assert kpis[3].left == pytest.approx(25 / 75 * 37.5)
    # Above target: the cap of 120, and a negative amount left (it makes up for others).
    assert kpis[4].score == 120.0
    assert kpis[4].left == pytest.approx(-20 / 75 * 20)
    # Missing: no share, nothing contributed or left; its cost is in the coverage.
    assert (kpis[2].present, kpis[2].share, kpis[2].contribution, kpis[2].left) == (
        False, 0.0, 0.0, 0.0)
    assert kpis[2].coverage_weight == pytest.approx(0.3 / 3)
    categories = {row.category: row for row in breakdown.categories}
    assert categories["strategic"].state == "missing"
    assert categories["strategic"].share == 0.0
    assert categories["financial"].contribution == pytest.approx(32.0)


def test_contributions_add_up_to_the_overall_and_points_left_to_the_rest():
    breakdown = explain.score_breakdown(kpis=EXAMPLE, category_weights=DEFAULT_WEIGHTS)
    assert math.fsum(row.contribution for row in breakdown.kpis) == pytest.approx(
        breakdown.overall, abs=1e-9)
    assert math.fsum(row.left for row in breakdown.kpis) == pytest.approx(
        100 - breakdown.overall, abs=1e-9)
    assert math.fsum(row.share for row in breakdown.kpis) == pytest.approx(1.0)
    assert math.fsum(row.contribution for row in breakdown.categories) == pytest.approx(
        breakdown.overall, abs=1e-9)


def test_a_zero_weight_category_never_counts():
    kpis = make_kpis((1, "financial", 1, 100, 0, 40), (2, "strategic", 1, 100, 0, 100))
    weights = {"financial": 100.0, "strategic": 0.0, "operational": 0.0, "relationship": 0.0}
    breakdown = explain.score_breakdown(kpis=kpis, category_weights=weights)
    assert breakdown.overall == 40.0
    rows = by_id(breakdown.kpis)
    assert rows[2].present is False
    assert rows[2].share == 0.0
    assert rows[2].coverage_weight == 0.0
    assert rows[1].share == 1.0
    assert {row.category: row.state for row in breakdown.categories} == {
        "financial": "scored", "strategic": "unweighted", "operational": "unweighted",
        "relationship": "unweighted"}


def test_no_kpi_with_data_gives_no_overall():
    kpis = make_kpis((1, "financial", 1, 100, 0, None))
    breakdown = explain.score_breakdown(kpis=kpis, category_weights=DEFAULT_WEIGHTS)
    assert breakdown.overall is None
    assert breakdown.coverage == 0.0
    assert all(row.contribution == 0.0 for row in breakdown.kpis)


# ---- Against the rules --------------------------------------------------------------------


def rules_inputs(kpis: pd.DataFrame, weights: dict, actual_by_month: dict) -> dict:
    """score_agreements' inputs for one agreement: one observation a KPI and month, aggregated
    as "last", so its period value is the actual given."""
    agreement_kpis = kpis.assign(agreement_id=AGREEMENT, aggregation="last", source="host")
    rows = []
    for month, actuals in actual_by_month.items():
        for kpi_id, value in actuals.items():
            if value is not None and not np.isnan(value):
                rows.append((AGREEMENT, kpi_id, "host", pd.Timestamp(f"{month}-15"), value,
                             len(rows)))
    observations = pd.DataFrame(
        rows, columns=["agreement_id", "kpi_id", "side", "date", "value", "recorded_order"])
    observations = observations.astype({"agreement_id": "int64", "kpi_id": "int64",
                                        "value": "float64", "recorded_order": "int64"})
    observations["date"] = pd.to_datetime(observations["date"])
    agreements = pd.DataFrame([{"agreement_id": AGREEMENT,
                                **{f"weight_{name}": weight for name, weight in weights.items()}}])
    return {"observations": observations, "agreement_kpis": agreement_kpis,
            "agreements": agreements}


def rescored(kpis: pd.DataFrame, weights: dict, actual_by_month: dict) -> pd.DataFrame:
    months = list(actual_by_month)
    _, scorecards = rules.score_agreements(
        **rules_inputs(kpis, weights, actual_by_month), periods=months)
    return scorecards.set_index("period")


def month_actuals(kpis: pd.DataFrame) -> dict:
    return dict(zip(kpis["kpi_id"], kpis["actual"], strict=True))


category_names = st.sampled_from(rules.CATEGORIES)
weight_values = st.sampled_from([0.0, 10.0, 20.0, 25.0, 30.0, 50.0])


@st.composite
def agreement_months(draw):
    """KPIs of one agreement with actuals in three months, and its category weights."""
    count = draw(st.integers(1, 6))
    rows = []
    for kpi_id in range(1, count + 1):
        target = draw(st.sampled_from([100.0, 2.0, 50000.0, 0.9]))
        lower_is_better = draw(st.booleans())
        floor = target * 5 if lower_is_better else draw(st.sampled_from([0.0, target / 2]))
        rows.append((kpi_id, draw(category_names), draw(st.sampled_from([1.0, 2.0, 0.5])),
                     target, floor))
    months = {}
    for month in MONTHS:
        months[month] = {}
        for kpi_id, _, _, target, floor in rows:
            missing = draw(st.integers(0, 4)) == 0
            fraction = draw(st.floats(-0.2, 1.4, allow_nan=False))
            months[month][kpi_id] = None if missing else floor + fraction * (target - floor)
    weights = {name: draw(weight_values) for name in rules.CATEGORIES}
    assume(sum(weights.values()) > 0)
    return rows, months, weights


def kpis_of(rows: list, actuals: dict) -> pd.DataFrame:
    return make_kpis(*[(kpi_id, category, weight, target, floor, actuals[kpi_id])
                       for kpi_id, category, weight, target, floor in rows])


@settings(max_examples=150, deadline=None)
@given(agreement_months())
def test_breakdown_scores_equal_the_rules_to_the_bit(case):
    rows, months, weights = case
    kpis = kpis_of(rows, months[MONTHS[-1]])
    breakdown = explain.score_breakdown(kpis=kpis, category_weights=weights)
    card = rescored(kpis, weights, {MONTHS[-1]: months[MONTHS[-1]]}).loc[MONTHS[-1]]
    if card["has_scorecard"]:
        assert breakdown.overall == card["overall"]
        assert math.fsum(row.contribution for row in breakdown.kpis) == pytest.approx(
            card["overall"], abs=1e-9)
    else:
        assert breakdown.overall is None
    assert breakdown.coverage == card["coverage"]
    assert breakdown.complete == card["complete"]
    for row in breakdown.categories:
        stored = card[row.category]
        assert (row.score is None and np.isnan(stored)) or row.score == stored


def one_percent_short(value: float, *, lower_is_better: bool) -> float:
    """A value 1 % short of `value`, in the direction that scores less."""
    shortfall = abs(value) * 0.01
    return value + shortfall if lower_is_better else value - shortfall


def best_value(target: float, floor: float) -> float:
    """A value past the KPI's cap, so that the rules clip its score to exactly 120: the best it
    can score (below the target for a lower-is-better KPI, whose target is below its floor)."""
    return floor + 2 * rules.SCORE_CAP * (target - floor)


def check_path(rows: list, months: dict, weights: dict, mark: float) -> explain.TierPath:
    """The path's every suggestion re-scored through rules.score_agreements: the rolling score
    reaches the mark with it, and not with a value 1 % short; every KPI called not reachable
    alone leaves the rolling score below the mark (or undefined) even at its best."""
    scored = rescored(kpis_of(rows, months[MONTHS[-1]]), weights, months)
    earlier = [(card["overall"] if card["has_scorecard"] else None, bool(card["complete"]))
               for _, card in scored.loc[list(MONTHS[:2])].iterrows()]
    path = explain.tier_path(kpis=kpis_of(rows, months[MONTHS[-1]]), category_weights=weights,
                             earlier_months=earlier, mark=mark)
    rolling_now = scored.loc[MONTHS[-1], "rolling"]
    assert (path.rolling is None and np.isnan(rolling_now)) or path.rolling == rolling_now
    kpi_rows = {kpi_id: (category, target, floor)
                for kpi_id, category, _, target, floor in rows}

    def rolling_with(kpi_id: int, value: float) -> float:
        month = {**months, MONTHS[-1]: {**months[MONTHS[-1]], kpi_id: value}}
        return rescored(kpis_of(rows, months[MONTHS[-1]]), weights, month).loc[
            MONTHS[-1], "rolling"]

    for kpi in path.kpis:
        if not kpi.reachable:
            category, target, floor = kpi_rows[kpi.kpi_id]
            at_best = rolling_with(kpi.kpi_id, best_value(target, floor))
            if weights[category] == 0:
                # Its category does not count: no value of it moves the rolling score.
                assert (np.isnan(at_best) and np.isnan(rolling_now)) or at_best == rolling_now
                assert kpi.best_rolling is None
                continue
            assert np.isnan(at_best) or at_best < mark
            assert (kpi.best_rolling is None and np.isnan(at_best)) or (
                kpi.best_rolling == pytest.approx(at_best, rel=1e-12, abs=1e-9))
            continue
        assert rolling_with(kpi.kpi_id, kpi.needed) >= mark
        short = one_percent_short(kpi.needed, lower_is_better=kpi.lower_is_better)
        if kpi.any_value or short == kpi.needed:
            continue
        assert not rolling_with(kpi.kpi_id, short) >= mark
    return path


def test_every_suggested_value_reaches_the_mark_and_one_percent_short_does_not():
    seen = {"reachable": 0, "any value": 0, "not reachable": 0}

    @settings(max_examples=150, deadline=None)
    @given(agreement_months(), st.floats(20.0, 115.0))
    def check(case, mark):
        rows, months, weights = case
        for kpi in check_path(rows, months, weights, mark).kpis:
            outcome = ("any value" if kpi.any_value else "reachable" if kpi.reachable
                       else "not reachable")
            event(outcome)
            seen[outcome] += 1

    check()
    # check_path tests a reachable KPI and an unreachable one differently: examples that drew
    # only one kind would leave the other claim untested.
    assert seen["reachable"] > 0 and seen["not reachable"] > 0, seen


def test_path_by_hand():
    rows = [(1, "financial", 2, 100, 0), (2, "financial", 1, 50, 0), (3, "operational", 1, 2, 10),
            (4, "relationship", 1, 5, 0)]
    months = {MONTHS[0]: {1: 70, 2: 35, 3: 4.4, 4: 3.5},  # all four on their mark: overall 70
              MONTHS[1]: {1: 75, 2: 37.5, 3: 4.0, 4: 3.75},  # 75
              MONTHS[2]: month_actuals(EXAMPLE)}
    assert rescored(kpis_of(rows, months[MONTHS[2]]), DEFAULT_WEIGHTS, months)[
        "overall"].iloc[:2].tolist() == pytest.approx([70.0, 75.0])
    path = check_path(rows, months, DEFAULT_WEIGHTS, mark=80.0)
    assert path.rolling == pytest.approx((70 + 75 + 6362.5 / 75) / 3)
    assert not path.reached
    kpis = by_id(path.kpis)
    # Overall needed 3 × 80 − 145 = 95: revenue alone (30 × s + 3962.5) / 75 = 95.
    assert kpis[1].needed == pytest.approx(105.41666666666667)
    assert kpis[1].relative_change == pytest.approx(25.41666666666667 / 80)
    # Defect rate alone: 25 × s = 7125 − 4800 → s = 93, value 10 − 0.93 × 8 (an upper bound).
    assert kpis[3].needed == pytest.approx(2.56)
    assert kpis[3].lower_is_better
    # Pipeline (missing) would need a score of 156; CSAT is at its cap already.
    assert not kpis[2].reachable
    assert not kpis[4].reachable
    assert kpis[4].best_rolling == pytest.approx(path.rolling)
    # Ordered by the smallest relative change: revenue (+31.8 %) before defects (−48.8 %).
    assert [kpi.kpi_id for kpi in path.kpis][:2] == [1, 3]


def test_a_missing_kpi_that_completes_the_month_reaches_the_mark_with_any_value():
    # March has only the small KPI 2 (coverage 0.2, incomplete): the rolling score is the mean
    # of January and February (90). Reporting KPI 1 at all makes March complete.
    rows = [(1, "financial", 1, 100, 0), (2, "relationship", 1, 100, 0)]
    weights = {"financial": 80.0, "strategic": 0.0, "operational": 0.0, "relationship": 20.0}
    months = {MONTHS[0]: {1: 90, 2: 90}, MONTHS[1]: {1: 90, 2: 90}, MONTHS[2]: {1: None, 2: 100}}
    path = check_path(rows, months, weights, mark=60.0)
    assert path.reached  # 90 already
    path = check_path(rows, months, weights, mark=91.0)
    kpis = by_id(path.kpis)
    assert not kpis[2].reachable  # March stays incomplete whatever KPI 2 is
    # KPI 1: (180 + (80 s + 2000) / 100) / 3 ≥ 91 → s ≥ 91.25.
    assert kpis[1].needed == pytest.approx(91.25)
    assert kpis[1].relative_change is None  # missing: no relative change
    months[MONTHS[0]] = {1: None, 2: None}  # only February is complete: no rolling score
    path = check_path(rows, months, weights, mark=50.0)
    assert path.rolling is None
    # KPI 1 at its floor still makes March complete: (90 + 20) / 2 = 55 ≥ 50.
    assert by_id(path.kpis)[1].any_value
    assert by_id(path.kpis)[1].needed == 0.0  # the floor: any value
    assert not by_id(path.kpis)[2].reachable


def test_not_reachable_without_a_rolling_score_or_in_a_zero_weight_category():
    rows = [(1, "financial", 1, 100, 0), (2, "strategic", 1, 100, 0)]
    weights = {"financial": 100.0, "strategic": 0.0, "operational": 0.0, "relationship": 0.0}
    months = {MONTHS[0]: {1: None, 2: None}, MONTHS[1]: {1: None, 2: None},
              MONTHS[2]: {1: 50, 2: 50}}
    path = check_path(rows, months, weights, mark=10.0)
    assert path.rolling is None
    assert not any(kpi.reachable for kpi in path.kpis)
    assert by_id(path.kpis)[1].best_rolling is None
    months[MONTHS[1]] = {1: 50, 2: 50}
    path = check_path(rows, months, weights, mark=60.0)
    assert by_id(path.kpis)[1].needed == pytest.approx(70.0)
    assert not by_id(path.kpis)[2].reachable  # its category has weight 0


def test_closed_months_are_read_as_frozen():
    """Version 2: p−1 and p−2 closed, their frozen overall differs from what the observations
    give now; the path takes the frozen values, as a run with the closed state does."""
    rows = [(1, "financial", 1, 100, 0)]
    weights = {"financial": 100.0, "strategic": 0.0, "operational": 0.0, "relationship": 0.0}
    kpis = kpis_of(rows, {1: 50.0})
    closed = rules.ClosedState(
        last_closed=MONTHS[1],
        months=pd.DataFrame({"agreement_id": [AGREEMENT, AGREEMENT], "period": list(MONTHS[:2]),
                             "overall": [60.0, 90.0], "complete": [True, True]}),
    )
    inputs = rules_inputs(kpis, weights, {MONTHS[2]: {1: 50.0}})
    _, scorecards = rules.score_agreements(**inputs, periods=[MONTHS[2]], closed=closed)
    path = explain.tier_path(kpis=kpis, category_weights=weights,
                             earlier_months=[(60.0, True), (90.0, True)], mark=75.0)
    assert path.rolling == scorecards["rolling"].iloc[0] == pytest.approx(200 / 3)
    needed = by_id(path.kpis)[1].needed
    assert needed == pytest.approx(75.0)
    inputs = rules_inputs(kpis, weights, {MONTHS[2]: {1: needed}})
    _, scorecards = rules.score_agreements(**inputs, periods=[MONTHS[2]], closed=closed)
    assert scorecards["rolling"].iloc[0] >= 75.0


@pytest.mark.parametrize(("tier_before", "streak_before", "hysteresis", "after"), [
    ("transactional", 0, 2, "transactional"),  # a first month of two
    ("transactional", 1, 2, "growth"),  # the second month in a row
    ("transactional", 0, 1, "growth"),  # at once
    (None, 0, 2, "growth"),  # the first candidate is the tier
    ("growth", 1, 2, "growth"),  # equal to the tier: it stays
])
def test_tier_after_reaching_the_mark_follows_the_hysteresis(tier_before, streak_before,
                                                             hysteresis, after):
    assert explain.tier_after_reaching(wanted="growth", tier_before=tier_before,
                                       streak_before=streak_before,
                                       hysteresis=hysteresis) == after
