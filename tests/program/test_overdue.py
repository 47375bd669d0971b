"""Overdue actions and overdue reviews: by due date, by review cadence and by tier."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboards.program.overdue import (
    agreement_review_panel,
    home_overdue_actions,
    overdue_for,
    overdue_totals,
)
from partnerships.models import ActionItem, Review
from partnerships.reviews import review_interval_days
from scoring.models import Scorecard, ScoringRun
from tests.conftest import make_agreement

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 6, 15)


def action(agreement, *, due: dt.date, status: str = "open", side: str = "partner"):
    return ActionItem.objects.create(
        agreement=agreement, description="Send the joint pipeline", owner_name="Ann",
        owner_side=side, due_date=due, status=status,
    )


def review(agreement, *, held_on: dt.date, kind: str = "monthly_results"):
    return Review.objects.create(agreement=agreement, kind=kind, held_on=held_on)


def publish_tiers(tiers: dict, *, period: str = "2026-05"):
    """A published run whose scorecards give each agreement its tier in `period`."""
    run = ScoringRun.objects.create(
        trigger="command", status="succeeded", active=None, rules_version=1,
        first_period="2026-04", last_period=period, published_at=timezone.now(),
    )
    for agreement, tier in tiers.items():
        # An earlier month with another tier: only the latest month counts.
        Scorecard.objects.create(run=run, agreement=agreement, period="2026-04",
                                 coverage=1, tier="transactional")
        Scorecard.objects.create(run=run, agreement=agreement, period=period, coverage=1,
                                 tier=tier)
    return run


# ---- Actions ------------------------------------------------------------------------------------


def test_an_action_due_yesterday_is_overdue_one_due_today_is_not(acme_agreement):
    action(acme_agreement, due=TODAY - dt.timedelta(days=1))
    action(acme_agreement, due=TODAY)
    action(acme_agreement, due=TODAY + dt.timedelta(days=3), status="in_progress")
    state = overdue_for(agreement_ids=[acme_agreement.pk], today=TODAY)[acme_agreement.pk]
    assert (state.overdue_actions, state.open_actions) == (1, 3)


@pytest.mark.parametrize("status", ["done", "cancelled"])
def test_done_and_cancelled_actions_are_never_overdue_nor_open(acme_agreement, status):
    action(acme_agreement, due=TODAY - dt.timedelta(days=30), status=status)
    state = overdue_for(agreement_ids=[acme_agreement.pk], today=TODAY)[acme_agreement.pk]
    assert (state.overdue_actions, state.open_actions) == (0, 0)


def test_an_in_progress_action_past_its_due_date_is_overdue(acme_agreement):
    action(acme_agreement, due=TODAY - dt.timedelta(days=5), status="in_progress")
    state = overdue_for(agreement_ids=[acme_agreement.pk], today=TODAY)[acme_agreement.pk]
    assert state.overdue_actions == 1


# ---- Reviews by cadence --------------------------------------------------------------------------


@pytest.mark.parametrize(("cadence", "days_ago", "overdue_days"), [
    ("monthly", 31, 0),      # exactly the interval: due today, not overdue
    ("monthly", 32, 1),
    ("quarterly", 60, 0),
    ("quarterly", 100, 8),
    ("biweekly", 15, 1),
    ("annual", 300, 0),
])
def test_a_review_is_overdue_when_the_last_one_is_older_than_the_cadence(
        acme_agreement, cadence, days_ago, overdue_days):
    acme_agreement.review_cadence = cadence
    acme_agreement.save()
    review(acme_agreement, held_on=TODAY - dt.timedelta(days=days_ago))
    state = overdue_for(agreement_ids=[acme_agreement.pk], today=TODAY)[acme_agreement.pk]
    assert state.review_overdue_days == overdue_days
    assert state.review_overdue is (overdue_days > 0)


def test_the_last_review_of_any_kind_counts(acme_agreement):
    acme_agreement.review_cadence = "monthly"
    acme_agreement.save()
    review(acme_agreement, held_on=TODAY - dt.timedelta(days=200), kind="quarterly_strategy")
    review(acme_agreement, held_on=TODAY - dt.timedelta(days=10), kind="tactical_sync")
    state = overdue_for(agreement_ids=[acme_agreement.pk], today=TODAY)[acme_agreement.pk]
    assert state.last_review == TODAY - dt.timedelta(days=10)
    assert state.review_due == TODAY + dt.timedelta(days=21)
    assert not state.review_overdue


# ---- Reviews by tier ----------------------------------------------------------------------------


def test_a_strategic_tier_is_tighter_than_a_yearly_cadence(acme_agreement, globex_agreement):
    for agreement in (acme_agreement, globex_agreement):
        agreement.review_cadence = "annual"
        agreement.save()
        review(agreement, held_on=TODAY - dt.timedelta(days=100))
    publish_tiers({acme_agreement: "strategic"})
    states = overdue_for(agreement_ids=[acme_agreement.pk, globex_agreement.pk], today=TODAY)
    # Strategic partners get quarterly executive reviews: 92 days, not 366.
    assert states[acme_agreement.pk].interval_days == 92
    assert states[acme_agreement.pk].review_overdue_days == 8
    # Without a tier the yearly cadence alone applies.
    assert states[globex_agreement.pk].interval_days == 366
    assert not states[globex_agreement.pk].review_overdue


def test_a_growth_tier_needs_a_monthly_check_in(acme_agreement):
    review(acme_agreement, held_on=TODAY - dt.timedelta(days=40))  # quarterly cadence: fine
    assert not overdue_for(agreement_ids=[acme_agreement.pk], today=TODAY)[
        acme_agreement.pk].review_overdue
    publish_tiers({acme_agreement: "growth"})
    state = overdue_for(agreement_ids=[acme_agreement.pk], today=TODAY)[acme_agreement.pk]
    assert (state.tier, state.interval_days, state.review_overdue_days) == ("growth", 31, 9)


# ---- Agreements without reviews, prospects and ended agreements -----------------------------


@pytest.mark.parametrize(("stage", "overdue"), [
    ("active", True), ("pilot", True), ("under_review", True),
    ("prospect", False), ("ended", False), ("exiting", False),
])
def test_an_agreement_without_any_review_is_overdue_once_older_than_its_interval(
        acme, kpis, stage, overdue):
    agreement = make_agreement(acme, f"ACME-{stage}", kpis, stage=stage)  # started 2025-01-01
    state = overdue_for(agreement_ids=[agreement.pk], today=TODAY)[agreement.pk]
    assert state.review_overdue is overdue
    if overdue:
        assert state.review_due == dt.date(2025, 1, 1) + dt.timedelta(days=92)


def test_a_young_agreement_without_a_review_is_not_overdue_yet(acme, kpis):
    agreement = make_agreement(acme, "ACME-NEW", kpis)
    agreement.start_date = TODAY - dt.timedelta(days=30)
    agreement.save()
    state = overdue_for(agreement_ids=[agreement.pk], today=TODAY)[agreement.pk]
    assert not state.review_overdue
    assert state.review_due == TODAY + dt.timedelta(days=62)


@pytest.mark.parametrize("stage", ["prospect", "ended"])
def test_prospects_and_ended_agreements_are_never_overdue_even_with_an_old_review(
        acme, kpis, stage):
    agreement = make_agreement(acme, f"ACME-OLD-{stage}", kpis, stage=stage)
    review(agreement, held_on=TODAY - dt.timedelta(days=400))
    publish_tiers({agreement: "strategic"})
    state = overdue_for(agreement_ids=[agreement.pk], today=TODAY)[agreement.pk]
    assert (state.review_due, state.review_overdue_days) == (None, 0)


# ---- Many agreements at once -----------------------------------------------------------------


def _portfolio(acme, kpis, count: int):
    agreements = [make_agreement(acme, f"ACME-{index:03d}", kpis) for index in range(count)]
    for agreement in agreements:
        review(agreement, held_on=TODAY - dt.timedelta(days=120))
        action(agreement, due=TODAY - dt.timedelta(days=2))
        action(agreement, due=TODAY + dt.timedelta(days=2))
    publish_tiers({agreement: "growth" for agreement in agreements[::2]})
    return agreements


def test_overdue_for_many_agreements_takes_a_fixed_number_of_queries(acme, kpis, settings):
    from tests.conftest import cache_start_over

    ids = [agreement.pk for agreement in _portfolio(acme, kpis, 30)]
    counts = {}
    for size in (3, 30):
        cache_start_over(settings)  # each reads the run's tiers once
        with CaptureQueriesContext(connection) as queries:
            states = overdue_for(agreement_ids=ids[:size], today=TODAY)
        counts[size] = len(queries)
        assert len(states) == size
        assert all(state.overdue_actions == 1 and state.open_actions == 2
                   for state in states.values())
        assert all(state.review_overdue for state in states.values())
        assert [states[pk].tier for pk in ids[:3]] == ["growth", "", "growth"]
    assert counts[3] == counts[30] <= 5


def test_overdue_totals_count_a_queryset_of_agreements(acme, kpis):
    from partnerships.models import Agreement

    _portfolio(acme, kpis, 4)
    totals = overdue_totals(agreements=Agreement.objects.all(), today=TODAY)
    assert totals == {"overdue_reviews": 4, "overdue_actions": 4, "open_actions": 8,
                      "agreements_with_overdue_actions": 4}


def test_overdue_totals_in_sql_agree_with_each_agreements_state(acme, globex, kpis):
    """Every stage, cadence, tier and review history: the database's counts equal the sums of
    the per-agreement states, for all agreements and for one partner's."""
    from partnerships.models import REVIEW_CADENCE_DAYS, Agreement, Stage

    stages = list(Stage.values)
    cadences = list(REVIEW_CADENCE_DAYS)
    tiers = ["strategic", "growth", "transactional", "", None]
    agreements, tier_of = [], {}
    for index in range(60):
        partner = acme if index % 3 else globex
        agreement = make_agreement(partner, f"MIX-{index:03d}", kpis,
                                   stage=stages[index % len(stages)])
        agreement.review_cadence = cadences[index % len(cadences)]
        # Started between 10 and 400 days ago; some reviewed, some never.
        agreement.start_date = TODAY - dt.timedelta(days=10 + (index * 37) % 390)
        agreement.save()
        if index % 4 == 1:  # on the last day allowed, or the first day late
            interval = review_interval_days(cadence=agreement.review_cadence,
                                            tier=tiers[index % len(tiers)] or "")
            review(agreement, held_on=TODAY - dt.timedelta(days=interval + index % 2))
        elif index % 4:
            review(agreement, held_on=TODAY - dt.timedelta(days=(index * 13) % 200))
        if index % 5 == 0:
            action(agreement, due=TODAY - dt.timedelta(days=index % 7))
        if index % 7 == 0:
            action(agreement, due=TODAY - dt.timedelta(days=3), status="done")
        tier = tiers[index % len(tiers)]
        if tier is not None:
            tier_of[agreement] = tier
        agreements.append(agreement)
    run = publish_tiers(tier_of)
    for scope in (Agreement.objects.all(), Agreement.objects.filter(partner=acme)):
        states = overdue_for(agreement_ids=list(scope.values_list("pk", flat=True)),
                             today=TODAY, run=run).values()
        expected = {
            "overdue_reviews": sum(1 for state in states if state.review_overdue),
            "overdue_actions": sum(state.overdue_actions for state in states),
            "open_actions": sum(state.open_actions for state in states),
            "agreements_with_overdue_actions": sum(1 for state in states
                                                   if state.overdue_actions),
        }
        assert expected["overdue_reviews"] > 5  # the mix holds both outcomes
        assert expected["overdue_reviews"] < len(states)
        assert overdue_totals(agreements=scope, today=TODAY, run=run) == expected


def test_the_agreement_panel_lists_open_actions_of_both_sides(acme_agreement, acme_viewer):
    today = timezone.localdate()
    action(acme_agreement, due=today - dt.timedelta(days=3), side="host")
    action(acme_agreement, due=today + dt.timedelta(days=3), side="partner")
    action(acme_agreement, due=today - dt.timedelta(days=9), status="done")
    panel = agreement_review_panel(agreement=acme_agreement, user=acme_viewer)
    assert [(item.owner_side, item.overdue_days, item.can_update)
            for item in panel["actions"]] == [("host", 3, False), ("partner", 0, True)]
    assert (panel["state"].overdue_actions, panel["state"].open_actions) == (1, 2)


def test_home_lists_only_the_users_own_sides_overdue_actions(
        acme_agreement, globex_agreement, acme_viewer, host_manager):
    today = timezone.localdate()
    mine = action(acme_agreement, due=today - dt.timedelta(days=4), side="partner")
    hosts = action(acme_agreement, due=today - dt.timedelta(days=4), side="host")
    action(acme_agreement, due=today + dt.timedelta(days=4), side="partner")  # not overdue
    action(globex_agreement, due=today - dt.timedelta(days=4), side="partner")  # not theirs
    partner_view = home_overdue_actions(user=acme_viewer)
    assert ([item.pk for item in partner_view["actions"]], partner_view["total"]) == (
        [mine.pk], 1)
    host_view = home_overdue_actions(user=host_manager)
    assert [item.pk for item in host_view["actions"]] == [hosts.pk]
