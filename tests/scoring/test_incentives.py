"""The payout of an incentive plan worked by hand: the scoring rules' own formula, no database."""

from decimal import Decimal

import pytest

from partnerships.models import IncentivePlan
from scoring.incentives import (
    BELOW_BASELINE,
    INCOMPLETE,
    NO_ROLLING,
    NO_TIER,
    example_payouts,
    example_rolling,
    incentive_payout,
    no_payout_reasons,
)

PLAN = IncentivePlan(base_amount=Decimal("1000"), baseline_score=60,
                     multiplier_growth=Decimal("1.25"))


@pytest.mark.parametrize(("overall", "rolling", "tier", "complete", "payout"), [
    (90, 75, "growth", True, 1125),  # 1000 × 1.25 × 90 / 100
    (130, 75, "growth", True, 1500),  # the overall score is capped at 120
    (90, 60, "growth", True, 1125),  # the baseline itself earns
    (90, 59.9, "growth", True, 0),
    (90, 75, "", True, 0),  # no tier yet
    (90, 75, "growth", False, 0),  # incomplete scorecard
    (90, None, "growth", True, 0),  # rolling score not defined
    (None, 75, "growth", True, 0),
])
def test_payout_formula(overall, rolling, tier, complete, payout):
    assert incentive_payout(plan=PLAN, overall=overall, rolling=rolling, tier=tier,
                            complete=complete) == pytest.approx(payout)


def test_the_example_works_each_tier_at_overall_90_and_a_rolling_score_that_earns():
    assert example_rolling(PLAN) == 75.0
    assert example_rolling(IncentivePlan(base_amount=Decimal("1"), baseline_score=80)) == 80.0
    assert [(tier, float(multiplier), payout) for tier, multiplier, payout
            in example_payouts(PLAN)] == [
        ("transactional", 1.0, pytest.approx(900)), ("growth", 1.25, pytest.approx(1125)),
        ("strategic", 1.5, pytest.approx(1350))]


@pytest.mark.parametrize(("rolling", "tier", "incomplete", "reasons"), [
    (75.0, "growth", False, []),
    (75.0, "growth", True, [INCOMPLETE]),
    (None, "", False, [NO_TIER, NO_ROLLING]),
    (59.9, "strategic", True, [INCOMPLETE, BELOW_BASELINE]),
])
def test_no_payout_reasons_name_each_condition_missed(rolling, tier, incomplete, reasons):
    assert no_payout_reasons(plan=PLAN, rolling=rolling, tier=tier,
                             incomplete=incomplete) == reasons
