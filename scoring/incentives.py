"""The payout of an incentive plan for one month (DOMAIN.md § Incentives), worked by hand.

The scoring run computes payouts for every agreement and month with `rules.payout`; the plan's
page works examples through the very same function, so the two never disagree. The scores are
passed in: nothing here reads the database.
"""

from decimal import Decimal

import numpy as np

from partnerships.models import IncentivePlan, Tier

from . import rules

# The overall score the page's worked example assumes.
EXAMPLE_OVERALL = 90.0


def plan_multipliers(plan: IncentivePlan) -> dict[str, Decimal]:
    """The plan's multiplier of each tier."""
    return {
        Tier.TRANSACTIONAL: plan.multiplier_transactional, Tier.GROWTH: plan.multiplier_growth,
        Tier.STRATEGIC: plan.multiplier_strategic,
    }


def incentive_payout(*, plan: IncentivePlan, overall: float | None, rolling: float | None,
                     tier: str, complete: bool) -> float:
    """The payout of one month under `plan`, by the scoring rules' own `payout`:
    `base × multiplier(tier) × min(overall, 120) / 100` when the scorecard is complete, the
    agreement has a tier and the rolling score is at least the baseline B; else 0."""
    if overall is None or rolling is None:
        return 0.0
    multipliers = plan_multipliers(plan)
    amount = rules.payout(
        overall=np.array([overall], dtype=float), rolling=np.array([rolling], dtype=float),
        complete=np.array([bool(complete)]),
        tier=np.array([rules.TIERS.index(tier) if tier in rules.TIERS else -1]),
        base_amount=np.array([float(plan.base_amount)]),
        baseline=np.array([float(plan.baseline_score)]),
        multipliers=np.array([[float(multipliers[name]) for name in rules.TIERS]]),
    )
    return float(amount[0])


def example_rolling(plan: IncentivePlan) -> float:
    """A rolling score that earns a payout under the plan: its baseline, at least 75."""
    return max(plan.baseline_score, 75.0)


def example_payouts(plan: IncentivePlan) -> list[tuple[str, Decimal, float]]:
    """(tier, multiplier, payout) for each tier, from transactional up, of a complete month
    with overall EXAMPLE_OVERALL and rolling `example_rolling(plan)`."""
    rolling = example_rolling(plan)
    multipliers = plan_multipliers(plan)
    return [
        (tier, multipliers[tier],
         incentive_payout(plan=plan, overall=EXAMPLE_OVERALL, rolling=rolling, tier=tier,
                          complete=True))
        for tier in (Tier.TRANSACTIONAL, Tier.GROWTH, Tier.STRATEGIC)
    ]


# Why a month earns nothing: codes of `no_payout_reasons`, worded by the page.
INCOMPLETE, NO_TIER, NO_ROLLING, BELOW_BASELINE = (
    "incomplete", "no_tier", "no_rolling", "below_baseline")


def no_payout_reasons(*, plan: IncentivePlan, rolling: float | None, tier: str,
                      incomplete: bool) -> list[str]:
    """Why a month earns nothing under the plan (INCOMPLETE, NO_TIER, NO_ROLLING,
    BELOW_BASELINE, in that order); empty when it earns its payout."""
    reasons = []
    if incomplete:
        reasons.append(INCOMPLETE)
    if not tier:
        reasons.append(NO_TIER)
    if rolling is None:
        reasons.append(NO_ROLLING)
    elif rolling < plan.baseline_score:
        reasons.append(BELOW_BASELINE)
    return reasons
