"""Hand-computed examples of every scoring and incentive rule (DOMAIN.md, rules version 1)."""

import math

import numpy as np
import pandas as pd
import pytest

from scoring import rules

JAN, FEB, MAR, APR, MAY, JUN = "2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"
DEFAULT_WEIGHTS = {"financial": 30.0, "strategic": 25.0, "operational": 25.0, "relationship": 20.0}
ONLY_FINANCIAL = {"financial": 100.0, "strategic": 0.0, "operational": 0.0, "relationship": 0.0}


def make_observations(*rows: tuple) -> pd.DataFrame:
    """Rows of (agreement_id, kpi_id, side, "YYYY-MM-DD", value[, recorded_order])."""
    records = [
        {
            "agreement_id": row[0],
            "kpi_id": row[1],
            "side": row[2],
            "date": row[3],
            "value": float(row[4]),
            "recorded_order": row[5] if len(row) > 5 else number,
        }
        for number, row in enumerate(rows)
    ]
    frame = pd.DataFrame(
        records, columns=["agreement_id", "kpi_id", "side", "date", "value", "recorded_order"]
    )
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.astype(
        {"agreement_id": "int64", "kpi_id": "int64", "value": "float64", "recorded_order": "int64"}
    )


def make_agreement_kpis(*rows: dict) -> pd.DataFrame:
    defaults = {
        "category": "financial",
        "aggregation": "sum",
        "source": "host",
        "target": 100.0,
        "floor": 0.0,
        "weight": 1.0,
    }
    columns = ["agreement_id", "kpi_id", *defaults]
    return pd.DataFrame([{**defaults, **row} for row in rows], columns=columns)


def make_agreements(weights_by_agreement: dict[int, dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "agreement_id": agreement_id,
                **{f"weight_{category}": weight for category, weight in weights.items()},
            }
            for agreement_id, weights in weights_by_agreement.items()
        ]
    )


def score(observations, agreement_kpis, agreements, periods=(JAN,)):
    return rules.score_agreements(
        observations=observations,
        agreement_kpis=agreement_kpis,
        agreements=agreements,
        periods=list(periods),
    )


def row(frame: pd.DataFrame, agreement_id: int, period: str, kpi_id: int | None = None):
    match = (frame["agreement_id"] == agreement_id) & (frame["period"] == period)
    if kpi_id is not None:
        match &= frame["kpi_id"] == kpi_id
    assert match.sum() == 1
    return frame[match].iloc[0]


def make_scorecards(*rows: dict) -> pd.DataFrame:
    """Hand-written scorecards for assign_tiers: complete and has_scorecard default to True."""
    defaults = {"overall": 70.0, "rolling": np.nan, "complete": True, "has_scorecard": True}
    frame = pd.DataFrame([{**defaults, **item} for item in rows])
    return frame.astype(
        {
            "agreement_id": "int64",
            "overall": "float64",
            "rolling": "float64",
            "complete": bool,
            "has_scorecard": bool,
        }
    )


def make_stages(stage_by_agreement: dict[int, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"agreement_id": list(stage_by_agreement), "stage": list(stage_by_agreement.values())}
    )


def tiers_for(scorecards: pd.DataFrame, stage: str = "active", **options) -> pd.DataFrame:
    stages = make_stages(dict.fromkeys(scorecards["agreement_id"].unique().tolist(), stage))
    return rules.assign_tiers(scorecards=scorecards, stages=stages, **options)


def test_rules_version_is_one():
    assert rules.RULES_VERSION == 1


# Rule 2: KPI score.


@pytest.mark.parametrize(
    ("actual", "target", "floor", "expected"),
    [
        (30.0, 40.0, 0.0, 75.0),  # 30 / 40 = 0.75
        (40.0, 40.0, 0.0, 100.0),  # on target
        (100.0, 40.0, 0.0, 120.0),  # 2.5 capped at 1.2
        (-5.0, 40.0, 0.0, 0.0),  # below the floor clipped at 0
        (4.0, 2.0, 10.0, 75.0),  # lower is better: (4 − 10) / (2 − 10) = 0.75
        (0.0, 2.0, 10.0, 120.0),  # lower is better, (0 − 10) / −8 = 1.25 capped
        (12.0, 2.0, 10.0, 0.0),  # lower is better, worse than the floor
        (np.nan, 40.0, 0.0, np.nan),  # missing stays missing
    ],
)
def test_kpi_score_is_clamped_ratio_of_distance_from_floor(actual, target, floor, expected):
    result = rules.kpi_score(
        actual=np.array([actual]), target=np.array([target]), floor=np.array([floor])
    )[0]
    assert result == expected or (math.isnan(expected) and math.isnan(result))


def test_lower_is_better_kpi_exactly_on_floor_scores_positive_zero():
    # (10 − 10) / (2 − 10) = −0.0, which must not be exported as "-0.0000".
    result = rules.kpi_score(
        actual=np.array([10.0]), target=np.array([2.0]), floor=np.array([10.0])
    )[0]
    assert result == 0.0 and math.copysign(1.0, result) == 1.0


def test_lower_is_better_kpi_scored_end_to_end():
    observations = make_observations((1, 7, "partner", "2025-01-10", 4.0))
    kpis = make_agreement_kpis(
        {
            "agreement_id": 1,
            "kpi_id": 7,
            "category": "operational",
            "aggregation": "mean",
            "source": "partner",
            "target": 2.0,
            "floor": 10.0,
        }
    )
    kpi_scores, scorecards = score(observations, kpis, make_agreements({1: DEFAULT_WEIGHTS}))
    # (4 − 10) / (2 − 10) = 0.75 → 75; the only present category gives the overall.
    assert row(kpi_scores, 1, JAN, 7)["score"] == 75.0
    assert row(scorecards, 1, JAN)["operational"] == 75.0
    assert row(scorecards, 1, JAN)["overall"] == 75.0


# Rule 1: period value.


@pytest.mark.parametrize(
    ("aggregation", "expected_actual"),
    [
        ("sum", 90.0),  # 10 + 60 + 20
        ("mean", 30.0),  # 90 / 3
        ("last", 20.0),  # dated 2025-01-20, the latest date, though not the last row
    ],
)
def test_period_value_follows_the_kpi_aggregation(aggregation, expected_actual):
    observations = make_observations(
        (1, 1, "host", "2025-01-05", 10.0),
        (1, 1, "host", "2025-01-20", 20.0),
        (1, 1, "host", "2025-01-10", 60.0),
        (1, 1, "host", "2025-02-01", 1000.0),  # another month
    )
    kpis = make_agreement_kpis(
        {"agreement_id": 1, "kpi_id": 1, "aggregation": aggregation, "target": 200.0}
    )
    kpi_scores, _ = score(observations, kpis, make_agreements({1: ONLY_FINANCIAL}), [JAN, FEB])
    jan = row(kpi_scores, 1, JAN, 1)
    assert jan["actual"] == expected_actual
    assert jan["score"] == 100.0 * expected_actual / 200.0


def test_last_on_the_same_date_takes_the_latest_recorded():
    observations = make_observations(
        (1, 1, "host", "2025-01-31", 30.0, 7),
        (1, 1, "host", "2025-01-31", 80.0, 3),
        (1, 1, "host", "2025-01-02", 99.0, 9),  # recorded last, but dated earlier
    )
    kpis = make_agreement_kpis({"agreement_id": 1, "kpi_id": 1, "aggregation": "last"})
    kpi_scores, _ = score(observations, kpis, make_agreements({1: ONLY_FINANCIAL}))
    assert row(kpi_scores, 1, JAN, 1)["actual"] == 30.0


def test_other_side_is_reported_for_reconciliation_but_never_scored():
    observations = make_observations(
        (1, 1, "host", "2025-01-05", 30.0),
        (1, 1, "partner", "2025-01-06", 90.0),
        (1, 1, "partner", "2025-01-07", 10.0),
    )
    kpis = make_agreement_kpis({"agreement_id": 1, "kpi_id": 1, "target": 40.0})
    kpi_scores, scorecards = score(observations, kpis, make_agreements({1: ONLY_FINANCIAL}))
    jan = row(kpi_scores, 1, JAN, 1)
    assert jan["actual"] == 30.0
    assert jan["other_side_actual"] == 100.0  # 90 + 10, same aggregation (sum)
    assert jan["score"] == 75.0  # 30 / 40, the partner's 100 ignored
    assert row(scorecards, 1, JAN)["overall"] == 75.0


def test_kpi_reported_only_by_the_other_side_is_missing():
    observations = make_observations((1, 1, "partner", "2025-01-06", 90.0))
    kpis = make_agreement_kpis({"agreement_id": 1, "kpi_id": 1})
    kpi_scores, scorecards = score(observations, kpis, make_agreements({1: ONLY_FINANCIAL}))
    jan = row(kpi_scores, 1, JAN, 1)
    assert math.isnan(jan["actual"]) and math.isnan(jan["score"])
    assert jan["other_side_actual"] == 90.0
    assert not row(scorecards, 1, JAN)["has_scorecard"]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_dates_of_any_unit_fall_in_their_calendar_month(unit):
    observations = make_observations(
        (1, 1, "host", "2025-01-31 23:59:59", 10.0),
        (1, 1, "host", "2025-02-01 00:00:00", 20.0),
    )
    observations["date"] = observations["date"].astype(f"datetime64[{unit}]")
    kpis = make_agreement_kpis({"agreement_id": 1, "kpi_id": 1})
    kpi_scores, _ = score(observations, kpis, make_agreements({1: ONLY_FINANCIAL}), [JAN, FEB])
    assert kpi_scores[["period", "actual"]].values.tolist() == [[JAN, 10.0], [FEB, 20.0]]


def test_periods_must_be_consecutive_months():
    with pytest.raises(ValueError, match="consecutive"):
        score(
            make_observations(),
            make_agreement_kpis(),
            make_agreements({1: ONLY_FINANCIAL}),
            [JAN, MAR],
        )


def test_observations_of_unknown_kpis_and_outside_the_periods_are_ignored():
    observations = make_observations(
        (1, 1, "host", "2025-01-05", 30.0),
        (1, 2, "host", "2025-01-05", 50.0),  # KPI 2 is not an agreement KPI of agreement 1
        (9, 1, "host", "2025-01-05", 50.0),  # agreement 9 is not scored
        (1, 1, "host", "2024-12-31", 50.0),  # before the first period
        (1, 1, "host", "2025-02-01", 50.0),  # after the last period
    )
    kpis = make_agreement_kpis({"agreement_id": 1, "kpi_id": 1})
    kpi_scores, scorecards = score(observations, kpis, make_agreements({1: ONLY_FINANCIAL}))
    assert kpi_scores[["agreement_id", "kpi_id", "period", "actual"]].values.tolist() == [
        [1, 1, JAN, 30.0]
    ]
    assert scorecards["agreement_id"].tolist() == [1]


# Rules 3 and 4: category and overall scores.


def test_category_score_is_weighted_mean_of_present_kpis_only():
    observations = make_observations(
        (1, 1, "host", "2025-01-05", 80.0),
        (1, 2, "host", "2025-02-05", 40.0),
        (1, 1, "host", "2025-02-05", 80.0),
    )
    kpis = make_agreement_kpis(
        {"agreement_id": 1, "kpi_id": 1, "weight": 1.0},
        {"agreement_id": 1, "kpi_id": 2, "weight": 3.0},
    )
    _, scorecards = score(observations, kpis, make_agreements({1: ONLY_FINANCIAL}), [JAN, FEB])
    assert row(scorecards, 1, JAN)["financial"] == 80.0  # KPI 2 missing: 80 alone
    assert row(scorecards, 1, FEB)["financial"] == 50.0  # (1 × 80 + 3 × 40) / 4
    assert row(scorecards, 1, JAN)["coverage"] == 0.25  # 100 × 1/4 / 100


def test_overall_is_weighted_mean_of_present_categories_only():
    observations = make_observations(
        (1, 1, "host", "2025-01-05", 80.0),
        (1, 2, "host", "2025-01-05", 60.0),
    )
    kpis = make_agreement_kpis(
        {"agreement_id": 1, "kpi_id": 1, "category": "financial"},
        {"agreement_id": 1, "kpi_id": 2, "category": "strategic"},
        {"agreement_id": 1, "kpi_id": 3, "category": "operational"},  # never observed
    )
    _, scorecards = score(observations, kpis, make_agreements({1: DEFAULT_WEIGHTS}))
    jan = row(scorecards, 1, JAN)
    assert math.isnan(jan["operational"]) and math.isnan(jan["relationship"])
    assert jan["overall"] == pytest.approx((30 * 80 + 25 * 60) / 55)  # 70.909…
    assert jan["coverage"] == pytest.approx(0.55)  # 0.30 + 0.25
    assert jan["complete"]


def test_zero_weight_category_is_ignored_altogether():
    weights = {"financial": 50.0, "strategic": 0.0, "operational": 50.0, "relationship": 0.0}
    observations = make_observations(
        (1, 1, "host", "2025-01-05", 80.0),
        (1, 2, "host", "2025-01-05", 100.0),
        (2, 2, "host", "2025-01-05", 100.0),
    )
    kpis = make_agreement_kpis(
        {"agreement_id": 1, "kpi_id": 1, "category": "financial"},
        {"agreement_id": 1, "kpi_id": 2, "category": "strategic"},
        {"agreement_id": 2, "kpi_id": 2, "category": "strategic"},
    )
    kpi_scores, scorecards = score(observations, kpis, make_agreements({1: weights, 2: weights}))
    first = row(scorecards, 1, JAN)
    assert math.isnan(first["strategic"])
    assert first["overall"] == 80.0  # the strategic 100 does not count
    assert first["coverage"] == 0.5  # financial only: 50 / 100
    assert first["complete"]
    # Agreement 2 only observed a zero-weight KPI: the KPI is scored, the agreement is not.
    assert row(kpi_scores, 2, JAN, 2)["score"] == 100.0
    second = row(scorecards, 2, JAN)
    assert not second["has_scorecard"] and math.isnan(second["overall"])
    assert second["coverage"] == 0.0


# Rule 5: coverage and incomplete scorecards.


@pytest.mark.parametrize(
    ("observed_kpis", "expected_coverage", "incomplete"),
    [
        ({1, 2, 3}, 0.55, False),  # 0.30 + 0.25
        ({2, 3}, 0.45, True),  # 30 × 2/3 / 100 + 0.25
        ({1}, 0.10, True),  # 30 × 1/3 / 100
        ({4}, 0.20, True),  # relationship only
        ({1, 2, 3, 4}, 0.75, False),  # operational has no KPI: counts as missing data
    ],
)
def test_coverage_sums_effective_weights_of_present_kpis(
    observed_kpis, expected_coverage, incomplete
):
    kpis = make_agreement_kpis(
        {"agreement_id": 1, "kpi_id": 1, "category": "financial", "weight": 1.0},
        {"agreement_id": 1, "kpi_id": 2, "category": "financial", "weight": 2.0},
        {"agreement_id": 1, "kpi_id": 3, "category": "strategic", "weight": 5.0},
        {"agreement_id": 1, "kpi_id": 4, "category": "relationship", "weight": 1.0},
    )
    observations = make_observations(
        *[(1, kpi_id, "host", "2025-01-05", 50.0) for kpi_id in sorted(observed_kpis)]
    )
    _, scorecards = score(observations, kpis, make_agreements({1: DEFAULT_WEIGHTS}))
    jan = row(scorecards, 1, JAN)
    assert jan["coverage"] == pytest.approx(expected_coverage)
    assert jan["incomplete"] == incomplete
    assert jan["complete"] == (not incomplete)
    assert jan["has_scorecard"]


def test_coverage_of_one_half_short_by_rounding_is_complete():
    weights = {"financial": 30.0, "strategic": 20.0, "operational": 25.0, "relationship": 25.0}
    # Financial KPIs of weights 1, 5, 7 and one strategic KPI: 30/100 + 20/100 = 0.5 exactly,
    # but 30×1/13/100 + 30×5/13/100 + 30×7/13/100 + 0.2 sums to 0.49999999999999994.
    kpis = make_agreement_kpis(
        {"agreement_id": 1, "kpi_id": 1, "category": "financial", "weight": 1.0},
        {"agreement_id": 1, "kpi_id": 2, "category": "financial", "weight": 5.0},
        {"agreement_id": 1, "kpi_id": 3, "category": "financial", "weight": 7.0},
        {"agreement_id": 1, "kpi_id": 4, "category": "strategic", "weight": 1.0},
        {"agreement_id": 1, "kpi_id": 5, "category": "operational", "weight": 1.0},
    )
    observations = make_observations(
        *[(1, kpi_id, "host", "2025-01-05", 50.0) for kpi_id in (1, 2, 3, 4)]
    )
    _, scorecards = score(observations, kpis, make_agreements({1: weights}))
    jan = row(scorecards, 1, JAN)
    assert jan["coverage"] == 0.49999999999999994
    assert not jan["incomplete"]
    assert jan["complete"]


def test_agreement_with_nothing_present_has_no_scorecard_but_a_grid_row():
    observations = make_observations((1, 1, "host", "2025-02-05", 50.0))
    kpis = make_agreement_kpis({"agreement_id": 1, "kpi_id": 1}, {"agreement_id": 2, "kpi_id": 1})
    agreements = make_agreements({1: ONLY_FINANCIAL, 2: ONLY_FINANCIAL})
    _, scorecards = score(observations, kpis, agreements, [JAN, FEB])
    assert scorecards[["agreement_id", "period"]].values.tolist() == [
        [1, JAN],
        [1, FEB],
        [2, JAN],
        [2, FEB],
    ]
    for agreement_id, period in [(1, JAN), (2, JAN), (2, FEB)]:
        empty = row(scorecards, agreement_id, period)
        assert not empty["has_scorecard"]
        assert not empty["incomplete"] and not empty["complete"]
        assert math.isnan(empty["overall"])
        assert empty["coverage"] == 0.0
    assert row(scorecards, 1, FEB)["has_scorecard"]


def test_no_periods_give_empty_frames_with_the_columns():
    kpi_scores, scorecards = score(
        make_observations(), make_agreement_kpis(), make_agreements({1: ONLY_FINANCIAL}), []
    )
    assert list(kpi_scores.columns) == list(rules.KPI_SCORE_COLUMNS)
    assert list(scorecards.columns) == list(rules.SCORECARD_COLUMNS)
    assert kpi_scores.empty and scorecards.empty


# Rule 6: rolling score.


def test_rolling_score_averages_complete_months_of_a_three_month_window():
    # One financial-only KPI, target 100: overall = the observed value when present.
    values = {JAN: 60.0, FEB: 90.0, APR: 30.0, MAY: 40.0, JUN: 50.0}  # nothing in March
    observations = make_observations(
        *[(1, 1, "host", f"{period}-15", value) for period, value in values.items()]
    )
    kpis = make_agreement_kpis({"agreement_id": 1, "kpi_id": 1})
    _, scorecards = score(
        observations, kpis, make_agreements({1: ONLY_FINANCIAL}), [JAN, FEB, MAR, APR, MAY, JUN]
    )
    rolling = scorecards.set_index("period")["rolling"]
    assert math.isnan(rolling[JAN])  # 1 complete month
    assert rolling[FEB] == 75.0  # (60 + 90) / 2
    assert rolling[MAR] == 75.0  # no scorecard in March, Jan and Feb are complete
    assert not row(scorecards, 1, MAR)["has_scorecard"]
    assert rolling[APR] == 60.0  # (90 + 30) / 2, March missing
    assert rolling[MAY] == 35.0  # (30 + 40) / 2
    assert rolling[JUN] == 40.0  # (30 + 40 + 50) / 3


def test_rolling_score_skips_incomplete_scorecards_and_is_shown_on_them():
    weights = {"financial": 40.0, "strategic": 60.0, "operational": 0.0, "relationship": 0.0}
    kpis = make_agreement_kpis(
        {"agreement_id": 1, "kpi_id": 1, "category": "financial"},
        {"agreement_id": 1, "kpi_id": 2, "category": "strategic"},
    )
    observations = make_observations(
        (1, 1, "host", "2025-01-15", 50.0),
        (1, 2, "host", "2025-01-15", 50.0),  # overall 50
        (1, 1, "host", "2025-02-15", 80.0),
        (1, 2, "host", "2025-02-15", 80.0),  # overall 80
        (1, 1, "host", "2025-03-15", 10.0),  # financial only: coverage 0.4, incomplete
        (1, 1, "host", "2025-04-15", 20.0),
        (1, 2, "host", "2025-04-15", 20.0),  # overall 20
    )
    _, scorecards = score(observations, kpis, make_agreements({1: weights}), [JAN, FEB, MAR, APR])
    march = row(scorecards, 1, MAR)
    assert march["incomplete"] and march["overall"] == 10.0
    assert march["rolling"] == 65.0  # (50 + 80) / 2, the incomplete 10 left out
    assert row(scorecards, 1, APR)["rolling"] == 50.0  # (80 + 20) / 2


@pytest.mark.parametrize(
    ("overall", "complete", "expected"),
    [
        ([70.0, 80.0, 90.0], [True, True, True], [np.nan, 75.0, 80.0]),
        ([70.0, 80.0, 90.0], [True, False, True], [np.nan, np.nan, 80.0]),
        ([70.0, 80.0, 90.0], [False, False, True], [np.nan, np.nan, np.nan]),
        ([70.0, np.nan, np.nan, 10.0], [True, False, False, True], [np.nan] * 4),
    ],
)
def test_rolling_score_needs_two_complete_months_of_three(overall, complete, expected):
    result = rules.rolling_score(overall=np.array([overall]), complete=np.array([complete]))
    np.testing.assert_array_equal(result[0], np.array(expected))


# Rule 7: candidate tiers.


def ranked_candidates(rolling_by_agreement: dict[int, float]) -> list[str | None]:
    scorecards = make_scorecards(
        *[
            {"agreement_id": agreement_id, "period": JAN, "rolling": rolling}
            for agreement_id, rolling in rolling_by_agreement.items()
        ]
    )
    return tiers_for(scorecards)["candidate_tier"].tolist()


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        # r = 1 only: 10 × 0 < 1.
        (1, ["strategic"]),
        # r = 2: 10 < 2 no, 10 < 6 no.
        (2, ["strategic", "transactional"]),
        # r = 2, 3: 10, 20 < 30; r = 4: 30 < 30 no.
        (10, ["strategic"] + ["growth"] * 2 + ["transactional"] * 7),
        # n = 11: r = 2 is 10 < 11 strategic; r = 3, 4: 20, 30 < 33; r = 5: 40 ≥ 33.
        (11, ["strategic"] * 2 + ["growth"] * 2 + ["transactional"] * 7),
    ],
)
def test_percentile_candidates_top_ten_then_next_twenty_percent(count, expected):
    # Agreement 1 has the highest rolling score, agreement `count` the lowest.
    assert ranked_candidates({number: 100.0 - number for number in range(1, count + 1)}) == (
        expected
    )


def test_percentile_ties_share_the_best_rank():
    # n = 10: three tied at the top share r = 1; three tied next share r = 4 (30 < 30 no).
    rolling = [90.0, 90.0, 90.0, 80.0, 80.0, 80.0, 70.0, 60.0, 50.0, 40.0]
    assert ranked_candidates(dict(enumerate(rolling, start=1))) == (
        ["strategic"] * 3 + ["transactional"] * 7
    )
    # n = 10: one leader, then four tied at r = 2 (10 < 30): all growth, none pushed down.
    rolling = [90.0, 80.0, 80.0, 80.0, 80.0, 70.0, 60.0, 50.0, 40.0, 30.0]
    assert ranked_candidates(dict(enumerate(rolling, start=1))) == (
        ["strategic"] + ["growth"] * 4 + ["transactional"] * 5
    )


def test_percentile_ranks_each_period_separately():
    scorecards = make_scorecards(
        {"agreement_id": 1, "period": JAN, "rolling": 90.0},
        {"agreement_id": 2, "period": JAN, "rolling": 80.0},
        {"agreement_id": 1, "period": FEB, "rolling": 70.0},
        {"agreement_id": 2, "period": FEB, "rolling": 75.0},
    )
    assert tiers_for(scorecards, hysteresis=1)["candidate_tier"].tolist() == [
        "strategic",
        "transactional",
        "transactional",
        "strategic",
    ]


@pytest.mark.parametrize(
    ("rolling", "options", "expected"),
    [
        (85.0, {}, "strategic"),
        (84.99, {}, "growth"),
        (70.0, {}, "growth"),
        (69.99, {}, "transactional"),
        (np.nan, {}, None),
        (85.0, {"strategic_threshold": 90.0, "growth_threshold": 60.0}, "growth"),
        (60.0, {"strategic_threshold": 90.0, "growth_threshold": 60.0}, "growth"),
        (59.0, {"strategic_threshold": 90.0, "growth_threshold": 60.0}, "transactional"),
    ],
)
def test_threshold_policy_compares_rolling_score(rolling, options, expected):
    scorecards = make_scorecards({"agreement_id": 1, "period": JAN, "rolling": rolling})
    result = tiers_for(scorecards, policy="threshold", **options)
    assert result["candidate_tier"].tolist() == [expected]
    assert result["tier"].tolist() == [expected]


@pytest.mark.parametrize("stage", ["prospect", "exiting", "ended"])
def test_stages_without_candidates_are_scored_but_not_ranked(stage):
    scorecards = make_scorecards(
        {"agreement_id": 1, "period": JAN, "rolling": 100.0},
        {"agreement_id": 2, "period": JAN, "rolling": 90.0},
        {"agreement_id": 3, "period": JAN, "rolling": 80.0},
    )
    stages = make_stages({1: stage, 2: "active", 3: "pilot"})
    result = rules.assign_tiers(scorecards=scorecards, stages=stages)
    # n = 2 without agreement 1: r = 1 strategic, r = 2 transactional (10 < 2, 10 < 6 no).
    assert result["candidate_tier"].tolist() == [None, "strategic", "transactional"]
    assert result["tier"].tolist() == [None, "strategic", "transactional"]


def test_under_review_is_ranked_and_unknown_stage_is_not():
    scorecards = make_scorecards(
        {"agreement_id": 1, "period": JAN, "rolling": 90.0},
        {"agreement_id": 2, "period": JAN, "rolling": 95.0},
    )
    result = rules.assign_tiers(scorecards=scorecards, stages=make_stages({1: "under_review"}))
    assert result["candidate_tier"].tolist() == ["strategic", None]


def test_unknown_policy_is_rejected():
    scorecards = make_scorecards({"agreement_id": 1, "period": JAN, "rolling": 90.0})
    with pytest.raises(ValueError, match="policy"):
        tiers_for(scorecards, policy="best")


# Rule 8: tier with hysteresis (threshold policy: S = 90, G = 75, T = 50, None = undefined).

ROLLING_FOR = {"strategic": 90.0, "growth": 75.0, "transactional": 50.0, None: np.nan}
S, G, T = "strategic", "growth", "transactional"


@pytest.mark.parametrize(
    ("candidates", "hysteresis", "expected"),
    [
        ([T, S, S, S], 2, [T, T, S, S]),  # up after two months
        ([S, T, T], 2, [S, S, T]),  # down after two months
        ([T, S, T, S, S], 2, [T, T, T, T, S]),  # interrupted streak starts over
        ([T, S, None, S, S], 2, [T, T, T, T, S]),  # month without candidate resets the streak
        ([T, S, G], 1, [T, S, G]),  # hysteresis 1 follows at once
        ([T, S, G], 2, [T, T, G]),  # a streak of differing candidates ends on the last one
        ([None, None, G, S], 2, [None, None, G, G]),  # no tier before the first candidate
        ([T, S, S, S], 3, [T, T, T, S]),
        ([G, G, None, None], 2, [G, G, G, G]),  # no candidate leaves the tier unchanged
    ],
)
def test_tier_changes_only_after_sustained_candidates(candidates, hysteresis, expected):
    periods = [JAN, FEB, MAR, APR, MAY][: len(candidates)]
    scorecards = make_scorecards(
        *[
            {"agreement_id": 1, "period": period, "rolling": ROLLING_FOR[candidate]}
            for period, candidate in zip(periods, candidates, strict=True)
        ]
    )
    result = tiers_for(scorecards, policy="threshold", hysteresis=hysteresis)
    assert result["candidate_tier"].tolist() == candidates
    assert result["tier"].tolist() == expected


def test_month_without_scorecard_can_change_the_tier():
    scorecards = make_scorecards(
        {"agreement_id": 1, "period": JAN, "rolling": 50.0},
        {"agreement_id": 1, "period": FEB, "rolling": 90.0},
        # No scorecard in March, but Jan–Feb keep R defined: the candidate still counts.
        {
            "agreement_id": 1,
            "period": MAR,
            "rolling": 90.0,
            "overall": np.nan,
            "complete": False,
            "has_scorecard": False,
        },
    )
    result = tiers_for(scorecards, policy="threshold")
    assert result["tier"].tolist() == [T, T, S]


def test_hysteresis_below_one_is_rejected():
    with pytest.raises(ValueError, match="hysteresis"):
        rules.hysteresis_tier(candidates=np.zeros((1, 1), dtype="int64"), hysteresis=0)


def test_tier_changes_counts_changes_after_the_first_assignment():
    scorecards = make_scorecards(
        *[
            {"agreement_id": 1, "period": period, "rolling": ROLLING_FOR[candidate]}
            for period, candidate in zip([JAN, FEB, MAR, APR], [None, T, S, G], strict=True)
        ],
        *[
            {"agreement_id": 2, "period": period, "rolling": ROLLING_FOR[candidate]}
            for period, candidate in zip([JAN, FEB, MAR, APR], [S, S, None, S], strict=True)
        ],
    )
    tiers = tiers_for(scorecards, policy="threshold", hysteresis=1)
    # Agreement 1: None → T (first, not counted) → S → G: 2; agreement 2 stays S: 0.
    assert rules.tier_changes(tiers=tiers) == 2


# Rule 9: at risk.


@pytest.mark.parametrize(
    ("months", "expected"),
    [
        # (overall, complete) per month from January.
        ([(40, True), (45, True), (30, True), (49, True)], [False, False, True, True]),
        ([(40, True), (40, False), (40, True), (40, True)], [False] * 4),  # incomplete breaks
        ([(40, True), (50, True), (40, True), (40, True)], [False] * 4),  # 50 is not below 50
        ([(40, True), (40, True)], [False, False]),  # first months: nothing before them
    ],
)
def test_at_risk_needs_three_consecutive_complete_months_below_fifty(months, expected):
    periods = [JAN, FEB, MAR, APR][: len(months)]
    scorecards = make_scorecards(
        *[
            {"agreement_id": 1, "period": period, "overall": float(overall), "complete": complete}
            for period, (overall, complete) in zip(periods, months, strict=True)
        ]
    )
    assert tiers_for(scorecards, stage="prospect")["at_risk"].tolist() == expected


def test_at_risk_counts_calendar_months_not_rows():
    scorecards = make_scorecards(
        *[{"agreement_id": 1, "period": period, "overall": 30.0} for period in (JAN, FEB, APR)]
    )
    # March is absent: April's window (Feb, Mar, Apr) is not all complete.
    assert tiers_for(scorecards)["at_risk"].tolist() == [False, False, False]


# Incentives.


def payouts_for(scorecards: pd.DataFrame, plan: dict) -> list[float]:
    incentives = pd.DataFrame([{"agreement_id": 1, "base_amount": 1000.0, **plan}])
    return tiers_for(scorecards, policy="threshold", incentives=incentives)["payout"].tolist()


@pytest.mark.parametrize(
    ("scorecard", "plan", "expected"),
    [
        ({"overall": 80.0, "rolling": 90.0}, {}, 1200.0),  # 1000 × 1.5 × 0.8
        ({"overall": 80.0, "rolling": 75.0}, {}, 1000.0),  # 1000 × 1.25 × 0.8
        ({"overall": 80.0, "rolling": 65.0}, {}, 800.0),  # 1000 × 1.0 × 0.8
        ({"overall": 80.0, "rolling": 59.0}, {}, 0.0),  # below the default baseline 60
        ({"overall": 80.0, "rolling": 59.0}, {"baseline": 55.0}, 800.0),
        ({"overall": 80.0, "rolling": 60.0}, {}, 800.0),  # R = B earns
        ({"overall": 80.0, "rolling": np.nan}, {}, 0.0),  # no tier, no rolling
        ({"overall": 80.0, "rolling": 90.0, "complete": False}, {}, 0.0),  # incomplete
        ({"overall": 130.0, "rolling": 90.0}, {}, 1800.0),  # 1000 × 1.5 × 120 / 100
        ({"overall": 80.0, "rolling": 90.0}, {"multiplier_strategic": 2.0}, 1600.0),
        ({"overall": 80.0, "rolling": 75.0}, {"multiplier_growth": 1.5}, 1200.0),
        ({"overall": 80.0, "rolling": 65.0}, {"multiplier_transactional": 0.5}, 400.0),
    ],
)
def test_payout_is_base_times_multiplier_times_capped_overall(scorecard, plan, expected):
    scorecards = make_scorecards({"agreement_id": 1, "period": JAN, **scorecard})
    assert payouts_for(scorecards, plan) == [expected]


def test_payout_needs_a_tier_even_when_rolling_meets_the_baseline():
    scorecards = make_scorecards({"agreement_id": 1, "period": JAN, "rolling": 90.0})
    incentives = pd.DataFrame([{"agreement_id": 1, "base_amount": 1000.0}])
    result = tiers_for(scorecards, stage="exiting", incentives=incentives)
    assert result["tier"].tolist() == [None]
    assert result["payout"].tolist() == [0.0]


def test_agreement_without_plan_has_no_payout():
    scorecards = make_scorecards(
        {"agreement_id": 1, "period": JAN, "rolling": 90.0},
        {"agreement_id": 2, "period": JAN, "rolling": 90.0},
    )
    incentives = pd.DataFrame([{"agreement_id": 2, "base_amount": 1000.0}])
    payouts = tiers_for(scorecards, incentives=incentives)["payout"].tolist()
    assert math.isnan(payouts[0]) and payouts[1] == 1050.0  # n = 2, r = 1: 1000 × 1.5 × 0.7
    assert all(math.isnan(payout) for payout in tiers_for(scorecards)["payout"])


# Reproducibility: chunks of agreements give the same bits as one run.


def make_program(*, seed: int, agreements: int, months: int = 6):
    rng = np.random.default_rng(seed)
    periods = [f"2025-{month:02d}" for month in range(1, months + 1)]
    kpi_rows = []
    for agreement_id in range(1, agreements + 1):
        for kpi_id in rng.choice(np.arange(1, 9), size=rng.integers(1, 6), replace=False):
            target, floor = rng.uniform(10, 100, size=2)
            kpi_rows.append(
                {
                    "agreement_id": agreement_id,
                    "kpi_id": int(kpi_id),
                    "category": rules.CATEGORIES[kpi_id % 4],
                    "aggregation": rules.AGGREGATIONS[kpi_id % 3],
                    "source": rules.SIDES[kpi_id % 2],
                    "target": target,
                    "floor": floor if floor != target else floor + 1,
                    "weight": float(rng.integers(1, 5)),
                }
            )
    kpis = pd.DataFrame(kpi_rows)
    weight_rows = {}
    for agreement_id in range(1, agreements + 1):
        cuts = np.sort(rng.integers(0, 101, size=3))
        shares = np.diff(np.concatenate([[0], cuts, [100]])).astype(float)
        weight_rows[agreement_id] = dict(zip(rules.CATEGORIES, shares, strict=True))
    chosen = kpis.sample(n=len(kpis) * 8, replace=True, random_state=seed)
    days = rng.integers(0, 31 * months + 20, size=len(chosen))
    observations = pd.DataFrame(
        {
            "agreement_id": chosen["agreement_id"].to_numpy(),
            "kpi_id": chosen["kpi_id"].to_numpy(),
            "side": rng.choice(rules.SIDES, size=len(chosen)),
            "date": pd.Timestamp("2025-01-01") + pd.to_timedelta(days, unit="D"),
            "value": rng.normal(60, 40, size=len(chosen)),
            "recorded_order": rng.permutation(len(chosen)),
        }
    )
    return observations, kpis, make_agreements(weight_rows), periods


def test_chunked_runs_are_bit_identical_to_one_run():
    observations, kpis, agreements, periods = make_program(seed=7, agreements=30)
    kpi_scores, scorecards = score(observations, kpis, agreements, periods)
    stages = make_stages(
        {
            agreement_id: rules.STAGES[agreement_id % 6]
            for agreement_id in agreements["agreement_id"]
        }
    )
    incentives = pd.DataFrame(
        {
            "agreement_id": [1, 2, 3, 4, 5, 6],
            "base_amount": [1000.0, 500.0, 250.0, 100.0, 10.0, 1.0],
        }
    )

    chunks = [
        agreements[agreements["agreement_id"] % 2 == 0],
        agreements[agreements["agreement_id"] % 2 == 1],
    ]
    parts = [score(observations, kpis, chunk, periods) for chunk in chunks]
    chunked_kpi_scores = pd.concat([part[0] for part in parts]).sort_values(
        ["agreement_id", "kpi_id", "period"], ignore_index=True
    )
    # Reversed concat order: assign_tiers must sort on its own.
    chunked_scorecards = pd.concat([part[1] for part in reversed(parts)], ignore_index=True)

    pd.testing.assert_frame_equal(chunked_kpi_scores, kpi_scores, check_exact=True)
    pd.testing.assert_frame_equal(
        chunked_scorecards.sort_values(["agreement_id", "period"], ignore_index=True),
        scorecards,
        check_exact=True,
    )
    whole = rules.assign_tiers(scorecards=scorecards, stages=stages, incentives=incentives)
    chunked = rules.assign_tiers(
        scorecards=chunked_scorecards, stages=stages, incentives=incentives
    )
    pd.testing.assert_frame_equal(chunked, whole, check_exact=True)
    assert whole["tier"].notna().any() and whole["complete"].any()


def test_output_dtypes_are_stable():
    observations, kpis, agreements, periods = make_program(seed=3, agreements=5)
    kpi_scores, scorecards = score(observations, kpis, agreements, periods)
    tiers = tiers_for(scorecards)
    assert kpi_scores["agreement_id"].dtype == "int64"
    assert kpi_scores["period"].dtype == "str" and scorecards["period"].dtype == "str"
    assert scorecards["complete"].dtype == bool and tiers["at_risk"].dtype == bool
    assert tiers["tier"].dtype == object and tiers["candidate_tier"].dtype == object
    assert set(tiers["tier"]) <= {None, *rules.TIERS}
    assert tiers["payout"].dtype == "float64"
