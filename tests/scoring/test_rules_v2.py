"""Scoring rules version 2: open months scored after closed ones (DOMAIN.md § Closing months).

Hand-computed cases of what the closed months carry in (the walk's tier and streak, the frozen
overall and completeness reached by the rolling score and the at-risk flag), and properties
over generated programs: with no closed month version 2 equals version 1 to the bit, and
closing months then scoring the open ones gives version 1's rows for them to the bit.
"""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring import rules

NOV, DEC = "2024-11", "2024-12"
FEB, MAR, APR, MAY, JUN = "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"
S, G, T = "strategic", "growth", "transactional"
# Threshold policy with the default thresholds: these rolling scores give these candidates.
ROLLING_FOR = {S: 90.0, G: 75.0, T: 50.0, None: np.nan}
ONLY_FINANCIAL = {
    "weight_financial": 100.0,
    "weight_strategic": 0.0,
    "weight_operational": 0.0,
    "weight_relationship": 0.0,
}


def closed_through(
    last_closed: str, months: list[tuple] = (), walk: list[tuple] = ()
) -> rules.ClosedState:
    """Months as (agreement_id, period, overall, complete); walk as (agreement_id, tier, streak)."""
    frozen = pd.DataFrame(
        list(months), columns=["agreement_id", "period", "overall", "complete"]
    ).astype({"agreement_id": "int64", "overall": "float64", "complete": bool})
    state = pd.DataFrame(list(walk), columns=["agreement_id", "tier", "streak"]).astype(
        {"agreement_id": "int64", "tier": object, "streak": "int64"}
    )
    return rules.ClosedState(last_closed=last_closed, months=frozen, walk=state)


def make_scorecards(*rows: dict) -> pd.DataFrame:
    defaults = {"overall": 70.0, "rolling": np.nan, "complete": True, "has_scorecard": True}
    frame = pd.DataFrame([{**defaults, **item} for item in rows])
    return frame.astype(
        {"agreement_id": "int64", "overall": "float64", "rolling": "float64", "complete": bool,
         "has_scorecard": bool}
    )


def make_stages(stage_by_agreement: dict[int, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"agreement_id": list(stage_by_agreement), "stage": list(stage_by_agreement.values())}
    )


def one_kpi_program(*values_by_date: tuple[str, float], target: float = 100.0):
    """Agreement 1 with one financial KPI (floor 0): its score is value / target × 100."""
    observations = pd.DataFrame(
        {
            "agreement_id": np.ones(len(values_by_date), dtype="int64"),
            "kpi_id": np.ones(len(values_by_date), dtype="int64"),
            "side": pd.array(["host"] * len(values_by_date), dtype="str"),
            "date": pd.to_datetime([date for date, _ in values_by_date]),
            "value": np.array([value for _, value in values_by_date], dtype="float64"),
            "recorded_order": np.arange(len(values_by_date), dtype="int64"),
        }
    )
    agreement_kpis = pd.DataFrame(
        [{"agreement_id": 1, "kpi_id": 1, "category": "financial", "aggregation": "sum",
          "source": "host", "target": target, "floor": 0.0, "weight": 1.0}]
    )
    agreements = pd.DataFrame([{"agreement_id": 1, **ONLY_FINANCIAL}])
    return observations, agreement_kpis, agreements


def test_a_run_with_closed_months_is_rules_version_two_and_one_without():
    assert rules.rules_version(closed=None) == rules.RULES_VERSION == 1
    assert rules.rules_version(closed=closed_through(MAR)) == 2


# Rule 8: the walk continues from the frozen tier and streak at the end of C = March.


@pytest.mark.parametrize(
    ("frozen", "hysteresis", "candidates", "tiers", "streaks"),
    [
        ((G, 1), 2, [S, S], [S, S], [0, 0]),  # one more differing month switches
        ((G, 0), 2, [S, S], [G, S], [1, 0]),  # a frozen streak of 0: two more months
        ((G, 1), 2, [G, S], [G, G], [0, 1]),  # a candidate equal to the tier resets it
        ((G, 1), 2, [None, S], [G, G], [0, 1]),  # so does a month without a candidate
        ((G, 1), 2, [T, S], [T, T], [0, 1]),  # the streak ends on the last candidate
        ((G, 1), 3, [S, S], [G, S], [2, 0]),  # hysteresis raised after closing
        ((G, 1), 1, [G, S], [G, S], [0, 0]),  # hysteresis 1 follows at once
        ((None, 0), 2, [T, S, S], [T, T, S], [0, 1, 0]),  # no tier at C: as in version 1
        (None, 2, [T, S, S], [T, T, S], [0, 1, 0]),  # no walk row: no tier, streak 0
    ],
)
def test_tier_walk_continues_from_the_frozen_tier_and_streak(
    frozen, hysteresis, candidates, tiers, streaks
):
    open_months = [APR, MAY, JUN][: len(candidates)]
    scorecards = make_scorecards(
        *[
            {"agreement_id": 1, "period": period, "rolling": ROLLING_FOR[candidate]}
            for period, candidate in zip(open_months, candidates, strict=True)
        ]
    )
    walk = [] if frozen is None else [(1, *frozen)]
    result = rules.assign_tiers(
        scorecards=scorecards,
        stages=make_stages({1: "active"}),
        policy="threshold",
        hysteresis=hysteresis,
        closed=closed_through(MAR, walk=walk),
    )
    assert result["candidate_tier"].tolist() == candidates
    assert result["tier"].tolist() == tiers
    assert result["streak"].tolist() == streaks


def test_an_agreement_without_tier_at_the_last_closed_month_walks_as_in_version_one():
    scorecards = make_scorecards(
        *[
            {"agreement_id": 1, "period": period, "rolling": ROLLING_FOR[candidate]}
            for period, candidate in zip([APR, MAY, JUN], [None, G, S], strict=True)
        ]
    )
    options = {"stages": make_stages({1: "active"}), "policy": "threshold"}
    version_1 = rules.assign_tiers(scorecards=scorecards, **options)
    version_2 = rules.assign_tiers(
        scorecards=scorecards, closed=closed_through(MAR, walk=[(1, "", 0)]), **options
    )
    assert version_2["tier"].tolist() == version_1["tier"].tolist() == [None, G, G]
    assert version_2["streak"].tolist() == version_1["streak"].tolist() == [0, 0, 1]


def test_thresholds_changed_after_closing_decide_the_open_months_candidates():
    scorecards = make_scorecards({"agreement_id": 1, "period": APR, "rolling": 80.0})
    result = rules.assign_tiers(
        scorecards=scorecards,
        stages=make_stages({1: "active"}),
        policy="threshold",
        strategic_threshold=80.0,
        hysteresis=1,
        closed=closed_through(MAR, walk=[(1, G, 0)]),
    )
    assert result["candidate_tier"].tolist() == [S]
    assert result["tier"].tolist() == [S]


# Rule 6: the rolling score of April and May reaches the frozen February and March.


@pytest.mark.parametrize(
    ("frozen", "april", "may"),
    [
        (
            [(1, FEB, 50.0, True), (1, MAR, 90.0, True)],
            (50.0 + 90.0 + 80.0) / 3,
            (90.0 + 80.0 + 60.0) / 3,
        ),
        # An incomplete frozen month does not count, whatever its overall.
        ([(1, FEB, 50.0, True), (1, MAR, 90.0, False)], (50.0 + 80.0) / 2, (80.0 + 60.0) / 2),
        # A closed month without a scorecard has no row: not complete.
        ([(1, MAR, 90.0, True)], (90.0 + 80.0) / 2, (90.0 + 80.0 + 60.0) / 3),
        ([(1, FEB, 50.0, True)], (50.0 + 80.0) / 2, (80.0 + 60.0) / 2),
        ([], np.nan, (80.0 + 60.0) / 2),
        # January is closed too, but out of April's window.
        ([(1, "2025-01", 10.0, True), (1, MAR, 90.0, True)], (90.0 + 80.0) / 2,
         (90.0 + 80.0 + 60.0) / 3),
    ],
)
def test_rolling_of_the_first_open_months_uses_the_frozen_overall_and_completeness(
    frozen, april, may
):
    # March's observation would score 10 now: March is frozen, so it is not read at all.
    program = one_kpi_program(("2025-03-15", 10.0), ("2025-04-15", 80.0), ("2025-05-15", 60.0))
    kpi_scores, scorecards = rules.score_agreements(
        observations=program[0],
        agreement_kpis=program[1],
        agreements=program[2],
        periods=[APR, MAY],
        closed=closed_through(MAR, months=frozen),
    )
    assert kpi_scores["period"].tolist() == [APR, MAY]
    assert scorecards["overall"].tolist() == [80.0, 60.0]
    np.testing.assert_array_equal(scorecards["rolling"].to_numpy(), [april, may])


def test_a_target_changed_after_closing_rescores_the_open_months_only():
    program = one_kpi_program(("2025-04-15", 80.0), ("2025-05-15", 60.0), target=200.0)
    _, scorecards = rules.score_agreements(
        observations=program[0],
        agreement_kpis=program[1],
        agreements=program[2],
        periods=[APR, MAY],
        closed=closed_through(MAR, months=[(1, FEB, 50.0, True), (1, MAR, 90.0, True)]),
    )
    assert scorecards["overall"].tolist() == [40.0, 30.0]
    assert scorecards["rolling"].tolist() == [
        (50.0 + 90.0 + 40.0) / 3,
        (90.0 + 40.0 + 30.0) / 3,
    ]


def test_rolling_when_the_open_months_start_after_a_gap_treats_the_gap_as_without_data():
    program = one_kpi_program(("2025-05-15", 80.0), ("2025-06-15", 60.0))
    _, scorecards = rules.score_agreements(
        observations=program[0],
        agreement_kpis=program[1],
        agreements=program[2],
        periods=[MAY, JUN],
        closed=closed_through(MAR, months=[(1, FEB, 50.0, True), (1, MAR, 90.0, True)]),
    )
    # May's window is March (frozen), April (open, no data) and May.
    assert scorecards["rolling"].tolist() == [(90.0 + 80.0) / 2, (80.0 + 60.0) / 2]


# Rule 9: at risk in April, May and June with frozen February and March.


@pytest.mark.parametrize(
    ("frozen", "expected"),
    [
        ([(1, FEB, 40.0, True), (1, MAR, 30.0, True)], [True, True, True]),
        ([(1, FEB, 60.0, True), (1, MAR, 30.0, True)], [False, True, True]),
        ([(1, FEB, 40.0, True), (1, MAR, 30.0, False)], [False, False, True]),
        ([(1, FEB, 40.0, True)], [False, False, True]),  # March closed without a scorecard
        ([], [False, False, True]),
    ],
)
def test_at_risk_of_the_first_open_months_takes_the_frozen_months_as_they_are(frozen, expected):
    scorecards = make_scorecards(
        *[{"agreement_id": 1, "period": period, "overall": 45.0} for period in (APR, MAY, JUN)]
    )
    result = rules.assign_tiers(
        scorecards=scorecards,
        stages=make_stages({1: "ended"}),
        closed=closed_through(MAR, months=frozen),
    )
    assert result["at_risk"].tolist() == expected


# Rule 7: each open month ranks the agreements eligible in it.


def test_percentile_ranking_in_an_open_month_ranks_only_the_eligible_agreements():
    stages = {1: "active", 2: "pilot", 3: "under_review", 4: "prospect", 5: "active", 6: "ended"}
    rolling = {
        APR: {1: 90.0, 2: 80.0, 3: 70.0, 4: 99.0, 5: np.nan, 6: 95.0},
        MAY: {1: np.nan, 2: 80.0, 3: 70.0, 4: 99.0, 5: 60.0, 6: 95.0},
    }
    scorecards = make_scorecards(
        *[
            {"agreement_id": agreement_id, "period": period, "rolling": value}
            for period, by_agreement in rolling.items()
            for agreement_id, value in by_agreement.items()
        ]
    )
    result = rules.assign_tiers(
        scorecards=scorecards,
        stages=make_stages(stages),
        # Frozen tiers of the ineligible agreements change nothing in the ranking.
        closed=closed_through(MAR, walk=[(4, S, 0), (6, S, 1), (1, T, 1)]),
    )
    candidates = result.set_index(["period", "agreement_id"])["candidate_tier"]
    # April: n = 3 (1, 2, 3); r = 1 is the top 10 %, r = 2 and 3 are beyond the next 20 %.
    assert [candidates[(APR, agreement_id)] for agreement_id in range(1, 7)] == [
        S, T, T, None, None, None,
    ]
    # May: n = 3 (2, 3, 5).
    assert [candidates[(MAY, agreement_id)] for agreement_id in range(1, 7)] == [
        None, S, T, None, T, None,
    ]
    tiers = result.set_index(["period", "agreement_id"])["tier"]
    assert tiers[(APR, 1)] == S  # frozen streak 1 + one differing month
    assert tiers[(APR, 4)] == S and tiers[(MAY, 6)] == S  # kept: no candidate


# Refusals.


def test_periods_up_to_the_last_closed_month_are_refused():
    program = one_kpi_program(("2025-03-15", 10.0))
    with pytest.raises(ValueError, match="closed"):
        rules.score_agreements(
            observations=program[0],
            agreement_kpis=program[1],
            agreements=program[2],
            periods=[MAR, APR],
            closed=closed_through(MAR),
        )
    with pytest.raises(ValueError, match="closed"):
        rules.assign_tiers(
            scorecards=make_scorecards({"agreement_id": 1, "period": MAR}),
            stages=make_stages({1: "active"}),
            closed=closed_through(MAR),
        )


@pytest.mark.parametrize(
    ("months", "walk", "message"),
    [
        ([(1, APR, 50.0, True)], [], "after"),
        ([(1, MAR, 50.0, True), (1, MAR, 60.0, True)], [], "one row"),
        ([], [(1, "gold", 0)], "unknown tier"),
        ([], [(1, None, 1)], "streak"),
        ([], [(1, G, -1)], "streak"),
        ([], [(1, G, 0), (1, S, 0)], "one row"),
    ],
)
def test_an_inconsistent_carried_state_is_refused(months, walk, message):
    scorecards = make_scorecards({"agreement_id": 1, "period": APR})
    with pytest.raises(ValueError, match=message):
        rules.assign_tiers(
            scorecards=scorecards,
            stages=make_stages({1: "active"}),
            closed=closed_through(MAR, months=months, walk=walk),
        )


def test_hysteresis_walk_returns_the_streak_at_the_end_of_each_month():
    candidates = np.array([[2, 0, 0, 0], [-1, 1, 0, -1]], dtype="int64")
    tiers, streaks = rules.hysteresis_walk(candidates=candidates, hysteresis=2)
    assert tiers.tolist() == [[2, 2, 0, 0], [-1, 1, 1, 1]]
    assert streaks.tolist() == [[0, 1, 0, 0], [0, 0, 1, 0]]
    started = rules.hysteresis_tier(
        candidates=candidates, hysteresis=2, tier=np.array([0, 1]), streak=np.array([1, 1])
    )
    # Row 1: the frozen streak of 1 and T switch at once; row 2: no candidate resets it.
    assert started.tolist() == [[2, 2, 0, 0], [1, 1, 1, 1]]


# Properties over generated programs.

PERIODS = [f"2025-{month:02d}" for month in range(1, 9)]
AGREEMENT_IDS = [1, 2, 3, 4, 5, 6]
KPI_IDS = [1, 2, 3]
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# A small integer grid makes exact ties (ranks, thresholds, the 50 of at risk) frequent.
grid_value = st.integers(0, 12).map(lambda step: 10.0 * step)
# KPI k mostly measures the k-th category, so that coverage often reaches 0.5.
KPI_CATEGORY = {
    kpi_id: st.sampled_from([rules.CATEGORIES[kpi_id - 1]] * 3 + list(rules.CATEGORIES))
    for kpi_id in KPI_IDS
}


@st.composite
def category_weights(draw) -> dict[str, float]:
    cuts = sorted(draw(st.lists(st.sampled_from([0, 25, 50, 75, 100]), min_size=3, max_size=3)))
    shares = np.diff([0, *cuts, 100])
    return {
        f"weight_{category}": float(share)
        for category, share in zip(rules.CATEGORIES, shares, strict=True)
    }


@st.composite
def programs(draw) -> dict:
    agreement_ids = draw(
        st.lists(st.sampled_from(AGREEMENT_IDS), min_size=2, max_size=6, unique=True)
    )
    agreements = pd.DataFrame(
        [
            {"agreement_id": agreement_id, **draw(category_weights())}
            for agreement_id in agreement_ids
        ]
    )
    kpi_rows = []
    for agreement_id in agreement_ids:
        kpi_ids = draw(st.lists(st.sampled_from(KPI_IDS), min_size=1, max_size=3, unique=True))
        for kpi_id in kpi_ids:
            target = draw(grid_value)
            kpi_rows.append(
                {
                    "agreement_id": agreement_id,
                    "kpi_id": kpi_id,
                    "category": draw(KPI_CATEGORY[kpi_id]),
                    "aggregation": draw(st.sampled_from(rules.AGGREGATIONS)),
                    "source": draw(st.sampled_from(rules.SIDES)),
                    "target": target,
                    "floor": draw(grid_value.filter(lambda value, target=target: value != target)),
                    "weight": float(draw(st.integers(1, 3))),
                }
            )
    # Dense monthly values (some missing) so that rolling scores, tiers and streaks occur, and
    # a few observations anywhere: other side, same month twice, after the periods.
    months = len(PERIODS)
    present_or_missing = st.one_of(grid_value, grid_value, grid_value, st.none())
    monthly = st.lists(present_or_missing, min_size=months, max_size=months)
    rows = []
    for kpi in kpi_rows:
        other_side = rules.SIDES[1 - rules.SIDES.index(kpi["source"])]
        side = draw(st.sampled_from([kpi["source"]] * 4 + [other_side]))
        for month, value in enumerate(draw(monthly)):
            if value is not None:
                day = (pd.Timestamp(PERIODS[month] + "-01") - pd.Timestamp("2025-01-01")).days
                rows.append((kpi["agreement_id"], kpi["kpi_id"], side, day + 14, value))
    observation = st.tuples(
        st.sampled_from(agreement_ids),
        st.sampled_from(KPI_IDS),
        st.sampled_from(rules.SIDES),
        st.integers(0, 8 * 31),  # days from 2025-01-01: the last ones fall after the periods
        grid_value,
    )
    rows += draw(st.lists(observation, max_size=20))
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
    # Half of the agreements or more in a stage that gets a candidate.
    stage = st.sampled_from([*rules.CANDIDATE_STAGES, *rules.STAGES])
    stages = make_stages({agreement_id: draw(stage) for agreement_id in agreement_ids})
    planned = draw(st.lists(st.sampled_from(agreement_ids), unique=True))
    incentives = pd.DataFrame(
        {
            "agreement_id": pd.array(planned, dtype="int64"),
            "base_amount": [float(draw(st.integers(0, 1000))) for _ in planned],
            "baseline": [draw(grid_value) for _ in planned],
        }
    )
    options = {
        "policy": draw(st.sampled_from(rules.POLICIES)),
        "strategic_threshold": draw(grid_value),
        "growth_threshold": draw(grid_value),
        "hysteresis": draw(st.sampled_from([2, 2, 3, 1])),
    }
    return {
        "observations": observations,
        "agreement_kpis": pd.DataFrame(kpi_rows),
        "agreements": agreements,
        "stages": stages,
        "incentives": incentives,
        "options": options,
    }


def scored(program: dict, periods: list[str], closed: rules.ClosedState | None = None):
    kpi_scores, scorecards = rules.score_agreements(
        observations=program["observations"],
        agreement_kpis=program["agreement_kpis"],
        agreements=program["agreements"],
        periods=periods,
        closed=closed,
    )
    tiers = rules.assign_tiers(
        scorecards=scorecards,
        stages=program["stages"],
        incentives=program["incentives"],
        closed=closed,
        **program["options"],
    )
    return kpi_scores, scorecards, tiers


def assert_same_bits(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal frames, every float column equal bit for bit (NaN positions and −0.0 included)."""
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)
    for column in expected.columns:
        if expected[column].dtype == "float64":
            bits = actual[column].to_numpy().view("int64")
            assert np.array_equal(bits, expected[column].to_numpy().view("int64")), column


def rows_after(frame: pd.DataFrame, last_closed: str) -> pd.DataFrame:
    return frame[frame["period"] > last_closed].reset_index(drop=True)


def closed_from(tiers: pd.DataFrame, last_closed: str, keep_no_tier_rows: bool):
    """The state closing months up to last_closed would freeze from version 1's results."""
    closed_months = tiers[(tiers["period"] <= last_closed) & tiers["has_scorecard"]]
    walk = tiers.loc[tiers["period"] == last_closed, ["agreement_id", "tier", "streak"]]
    if not keep_no_tier_rows:
        walk = walk[walk["tier"].notna()]
    return rules.ClosedState(
        last_closed=last_closed,
        months=closed_months[["agreement_id", "period", "overall", "complete"]],
        walk=walk,
    )


@SETTINGS
@given(program=programs(), months_before=st.integers(1, 3))
def test_with_no_closed_month_version_2_equals_version_1_to_the_bit(program, months_before):
    # Nothing closed before the first scored month: an empty carried-in state.
    last_closed = f"2024-{13 - months_before:02d}"
    version_1 = scored(program, PERIODS)
    version_2 = scored(program, PERIODS, closed=rules.ClosedState(last_closed=last_closed))
    for actual, expected in zip(version_2, version_1, strict=True):
        assert_same_bits(actual, expected)


@SETTINGS
@given(program=programs(), keep_no_tier_rows=st.booleans(), data=st.data())
def test_closing_months_and_scoring_the_open_ones_changes_nothing(
    program, keep_no_tier_rows, data
):
    kpi_scores, scorecards, tiers = scored(program, PERIODS)
    # Half of the time close a month at whose end a streak is running, when there is one:
    # what the walk carries besides the tier.
    closable = PERIODS[:-1]
    running = sorted(set(tiers.loc[tiers["streak"] > 0, "period"]) & set(closable))
    last_closed = data.draw(
        st.sampled_from(running if running and data.draw(st.booleans()) else closable)
    )
    closed_count = PERIODS.index(last_closed) + 1
    closed = closed_from(tiers, last_closed, keep_no_tier_rows)
    open_kpi_scores, open_scorecards, open_tiers = scored(
        program, PERIODS[closed_count:], closed=closed
    )
    assert_same_bits(open_kpi_scores, rows_after(kpi_scores, last_closed))
    assert_same_bits(open_scorecards, rows_after(scorecards, last_closed))
    assert_same_bits(open_tiers, rows_after(tiers, last_closed))


@SETTINGS
@given(
    candidates=st.integers(1, 5).flatmap(
        lambda agreements: st.lists(
            st.lists(st.integers(-1, 2), min_size=8, max_size=8),
            min_size=agreements,
            max_size=agreements,
        )
    ),
    hysteresis=st.integers(1, 4),
    closed_count=st.integers(0, 8),
)
def test_a_walk_continued_from_its_state_at_any_month_ends_where_the_whole_walk_does(
    candidates, hysteresis, closed_count
):
    grid = np.array(candidates, dtype="int64")
    tiers, streaks = rules.hysteresis_walk(candidates=grid, hysteresis=hysteresis)
    if closed_count:
        start_tier, start_streak = tiers[:, closed_count - 1], streaks[:, closed_count - 1]
    else:
        start_tier, start_streak = None, None
    rest_tiers, rest_streaks = rules.hysteresis_walk(
        candidates=grid[:, closed_count:],
        hysteresis=hysteresis,
        tier=start_tier,
        streak=start_streak,
    )
    assert np.array_equal(rest_tiers, tiers[:, closed_count:])
    assert np.array_equal(rest_streaks, streaks[:, closed_count:])


@SETTINGS
@given(program=programs(), closed_count=st.integers(1, len(PERIODS) - 1), data=st.data())
def test_observations_dated_in_closed_months_change_no_open_month(program, closed_count, data):
    last_closed = PERIODS[closed_count - 1]
    closed = closed_from(scored(program, PERIODS)[2], last_closed, keep_no_tier_rows=True)
    observations = program["observations"]
    in_closed = (observations["date"] < pd.Timestamp(PERIODS[closed_count] + "-01")).to_numpy()
    count = len(observations)
    replaced = data.draw(st.lists(grid_value, min_size=count, max_size=count))
    changed = observations.assign(
        value=np.where(in_closed, np.array(replaced, dtype="float64"), observations["value"])
    )
    before = scored(program, PERIODS[closed_count:], closed=closed)
    after = scored({**program, "observations": changed}, PERIODS[closed_count:], closed=closed)
    for actual, expected in zip(after, before, strict=True):
        assert_same_bits(actual, expected)
