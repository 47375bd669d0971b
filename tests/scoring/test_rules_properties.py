"""Properties of the scoring rules over generated programs (hypothesis)."""

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring import rules

PERIODS = ["2025-01", "2025-02", "2025-03", "2025-04"]
AGREEMENT_IDS = [1, 2, 3, 4]
KPI_IDS = [1, 2, 3, 4, 5]
SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def category_weights(draw) -> dict[str, float]:
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=3, max_size=3)))
    shares = np.diff([0, *cuts, 100])
    return {
        f"weight_{category}": float(share)
        for category, share in zip(rules.CATEGORIES, shares, strict=True)
    }


@st.composite
def agreement_kpi(draw, agreement_id: int, kpi_id: int) -> dict:
    target = draw(finite)
    floor = draw(finite.filter(lambda value: value != target))
    return {
        "agreement_id": agreement_id,
        "kpi_id": kpi_id,
        "category": draw(st.sampled_from(rules.CATEGORIES)),
        "aggregation": draw(st.sampled_from(rules.AGGREGATIONS)),
        "source": draw(st.sampled_from(rules.SIDES)),
        "target": target,
        "floor": floor,
        "weight": draw(st.floats(min_value=0.01, max_value=10.0)),
    }


@st.composite
def programs(draw) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    agreement_ids = draw(
        st.lists(st.sampled_from(AGREEMENT_IDS), min_size=1, max_size=4, unique=True)
    )
    agreements = pd.DataFrame(
        [
            {"agreement_id": agreement_id, **draw(category_weights())}
            for agreement_id in agreement_ids
        ]
    )
    kpi_rows = []
    for agreement_id in agreement_ids:
        kpi_ids = draw(st.lists(st.sampled_from(KPI_IDS), min_size=1, max_size=4, unique=True))
        kpi_rows += [draw(agreement_kpi(agreement_id, kpi_id)) for kpi_id in kpi_ids]
    observation = st.tuples(
        st.sampled_from([*AGREEMENT_IDS, 9]),  # 9 is never an agreement
        st.sampled_from(KPI_IDS),
        st.sampled_from(rules.SIDES),
        st.integers(-5, 130),  # days from 2025-01-01: some fall outside the periods
        st.floats(min_value=-1e4, max_value=1e4, allow_nan=False),
    )
    rows = draw(st.lists(observation, max_size=40))
    observations = pd.DataFrame(
        {
            "agreement_id": pd.array([item[0] for item in rows], dtype="int64"),
            "kpi_id": pd.array([item[1] for item in rows], dtype="int64"),
            "side": pd.array([item[2] for item in rows], dtype="str"),
            "date": pd.Timestamp("2025-01-01")
            + pd.to_timedelta(np.array([item[3] for item in rows], dtype="int64"), unit="D"),
            "value": np.array([item[4] for item in rows], dtype="float64"),
            "recorded_order": np.arange(len(rows), dtype="int64"),
        }
    )
    return observations, pd.DataFrame(kpi_rows), agreements


def score(observations, agreement_kpis, agreements):
    return rules.score_agreements(
        observations=observations,
        agreement_kpis=agreement_kpis,
        agreements=agreements,
        periods=PERIODS,
    )


def in_range_or_nan(values: pd.Series, low: float, high: float) -> bool:
    return bool((values.isna() | values.between(low, high)).all())


@SETTINGS
@given(program=programs())
def test_scores_stay_within_zero_and_120_and_coverage_within_zero_and_one(program):
    kpi_scores, scorecards = score(*program)
    assert in_range_or_nan(kpi_scores["score"], 0.0, 120.0)
    for column in (*rules.CATEGORIES, "overall", "rolling"):
        assert in_range_or_nan(scorecards[column], 0.0, 120.0)
    assert scorecards["coverage"].between(0.0, 1.0).all()
    assert (scorecards["overall"].notna() == scorecards["has_scorecard"]).all()
    assert len(scorecards) == len(program[2]) * len(PERIODS)


@SETTINGS
@given(program=programs(), data=st.data())
def test_permuting_input_rows_changes_nothing(program, data):
    observations, agreement_kpis, agreements = program
    expected = score(observations, agreement_kpis, agreements)

    def shuffled(frame: pd.DataFrame) -> pd.DataFrame:
        order = data.draw(st.permutations(range(len(frame))))
        return frame.iloc[list(order)].reset_index(drop=True)

    result = score(shuffled(observations), shuffled(agreement_kpis), shuffled(agreements))
    pd.testing.assert_frame_equal(result[0], expected[0], check_exact=True)
    pd.testing.assert_frame_equal(result[1], expected[1], check_exact=True)


@SETTINGS
@given(
    program=programs(),
    extra=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 110), finite), max_size=15),
)
def test_observations_of_the_other_side_change_no_score(program, extra):
    observations, agreement_kpis, agreements = program
    expected_kpi_scores, expected_scorecards = score(observations, agreement_kpis, agreements)
    other = agreement_kpis.iloc[[kpi % len(agreement_kpis) for kpi, _, _ in extra]]
    added = pd.DataFrame(
        {
            "agreement_id": other["agreement_id"].to_numpy(dtype="int64"),
            "kpi_id": other["kpi_id"].to_numpy(dtype="int64"),
            "side": pd.array(np.where(other["source"] == "host", "partner", "host"), dtype="str"),
            "date": pd.Timestamp("2025-01-01")
            + pd.to_timedelta(np.array([day for _, day, _ in extra], dtype="int64"), unit="D"),
            "value": np.array([value for _, _, value in extra], dtype="float64"),
            "recorded_order": np.arange(len(extra), dtype="int64") + len(observations),
        }
    )
    kpi_scores, scorecards = score(
        pd.concat([observations, added], ignore_index=True), agreement_kpis, agreements
    )

    pd.testing.assert_frame_equal(scorecards, expected_scorecards, check_exact=True)
    scored = kpi_scores[kpi_scores["actual"].notna()].reset_index(drop=True)
    expected_scored = expected_kpi_scores[expected_kpi_scores["actual"].notna()]
    columns = ["agreement_id", "kpi_id", "period", "actual", "target", "floor", "score"]
    pd.testing.assert_frame_equal(
        scored[columns], expected_scored[columns].reset_index(drop=True), check_exact=True
    )
    assert kpi_scores.loc[kpi_scores["actual"].isna(), "score"].isna().all()


@SETTINGS
@given(program=programs(), data=st.data())
def test_scoring_agreements_in_chunks_changes_nothing(program, data):
    observations, agreement_kpis, agreements = program
    kpi_scores, scorecards = score(observations, agreement_kpis, agreements)
    in_first = np.array(
        data.draw(st.lists(st.booleans(), min_size=len(agreements), max_size=len(agreements)))
    )
    parts = [
        score(observations, agreement_kpis, agreements[mask]) for mask in (in_first, ~in_first)
    ]
    chunked_kpi_scores = pd.concat([part[0] for part in parts]).sort_values(
        ["agreement_id", "kpi_id", "period"], ignore_index=True
    )
    chunked_scorecards = pd.concat([part[1] for part in parts], ignore_index=True)
    pd.testing.assert_frame_equal(chunked_kpi_scores, kpi_scores, check_exact=True)

    stages = pd.DataFrame(
        {"agreement_id": AGREEMENT_IDS, "stage": ["active", "pilot", "prospect", "under_review"]}
    )
    incentives = pd.DataFrame({"agreement_id": [1, 3], "base_amount": [1000.0, 10.0]})
    policy = data.draw(st.sampled_from(rules.POLICIES))
    whole = rules.assign_tiers(
        scorecards=scorecards, stages=stages, policy=policy, incentives=incentives
    )
    chunked = rules.assign_tiers(
        scorecards=chunked_scorecards, stages=stages, policy=policy, incentives=incentives
    )
    pd.testing.assert_frame_equal(chunked, whole, check_exact=True)
