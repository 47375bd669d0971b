"""The scoring rules name tiers, categories, stages… as plain strings (they import no Django):
each of their vocabularies must be the models' choices, in the same order."""

import pytest

from partnerships.models import Aggregation, Category, Side, Stage, Tier, TierPolicy
from scoring import rules


@pytest.mark.parametrize(("words", "choices"), [
    (rules.CATEGORIES, Category),
    (rules.AGGREGATIONS, Aggregation),
    (rules.SIDES, Side),
    (rules.STAGES, Stage),
    (rules.TIERS, Tier),
    (rules.POLICIES, TierPolicy),
], ids=["categories", "aggregations", "sides", "stages", "tiers", "tier policies"])
def test_a_vocabulary_of_the_rules_is_the_models_choices_in_order(words, choices):
    assert list(words) == choices.values


def test_ranked_stages_are_stages_in_lifecycle_order():
    assert list(rules.CANDIDATE_STAGES) == [stage for stage in Stage.values
                                            if stage in rules.CANDIDATE_STAGES]
    assert list(rules.CANDIDATE_STAGES) == [Stage.PILOT, Stage.ACTIVE, Stage.UNDER_REVIEW]


def test_incentive_multipliers_name_every_tier():
    assert set(rules.DEFAULT_MULTIPLIERS) == set(Tier.values)
