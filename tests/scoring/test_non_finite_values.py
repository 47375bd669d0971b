"""No non-finite number comes out of the rules: an overflowing month or a stored ±inf/NaN is no
measurement (imports refuse such values; rows written before they did may hold them)."""

import math

import numpy as np
import pytest

from tests.scoring.test_rules import (
    JAN,
    ONLY_FINANCIAL,
    make_agreement_kpis,
    make_agreements,
    make_observations,
    row,
    score,
)


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
def test_a_month_whose_sum_overflows_is_missing_not_infinite(aggregation):
    observations = make_observations(
        (1, 1, "host", "2025-01-05", 1.7e308),
        (1, 1, "host", "2025-01-06", 1.7e308),
        (1, 1, "partner", "2025-01-06", -1.7e308),
        (1, 1, "partner", "2025-01-07", -1.7e308),
    )
    kpis = make_agreement_kpis({"agreement_id": 1, "kpi_id": 1, "aggregation": aggregation})
    kpi_scores, scorecards = score(observations, kpis, make_agreements({1: ONLY_FINANCIAL}))
    jan = row(kpi_scores, 1, JAN, 1)
    assert math.isnan(jan["actual"]) and math.isnan(jan["other_side_actual"])
    assert math.isnan(jan["score"])
    assert not row(scorecards, 1, JAN)["has_scorecard"]


@pytest.mark.parametrize("stored", [math.inf, -math.inf, math.nan])
def test_a_stored_non_finite_observation_is_left_out(stored):
    observations = make_observations(
        (1, 1, "host", "2025-01-05", 40.0),
        (1, 1, "host", "2025-01-06", stored),
    )
    kpis = make_agreement_kpis({"agreement_id": 1, "kpi_id": 1, "aggregation": "sum"})
    kpi_scores, scorecards = score(observations, kpis, make_agreements({1: ONLY_FINANCIAL}))
    assert row(kpi_scores, 1, JAN, 1)["actual"] == 40.0
    assert row(scorecards, 1, JAN)["overall"] == 40.0
    numbers = kpi_scores.select_dtypes("number").to_numpy(dtype=float)
    assert not np.isinf(numbers).any()


def test_an_absurd_but_finite_value_is_scored_as_it_is():
    observations = make_observations((1, 1, "host", "2025-01-05", -1.9e255))
    kpis = make_agreement_kpis({"agreement_id": 1, "kpi_id": 1})
    kpi_scores, _ = score(observations, kpis, make_agreements({1: ONLY_FINANCIAL}))
    jan = row(kpi_scores, 1, JAN, 1)
    assert (jan["actual"], jan["score"]) == (-1.9e255, 0.0)
