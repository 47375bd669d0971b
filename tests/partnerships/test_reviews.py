"""When reviews fall due and actions are overdue: the rules on values passed in, no database."""

import datetime as dt

import pytest

from partnerships.models import ActionItem
from partnerships.reviews import (
    action_completed_at,
    action_is_overdue,
    action_overdue_days,
    review_interval_days,
    review_state,
    review_status,
)

TODAY = dt.date(2026, 6, 15)
START = dt.date(2025, 1, 1)
NOW = dt.datetime(2026, 6, 15, 9, 30, tzinfo=dt.UTC)
EARLIER = dt.datetime(2026, 6, 1, 9, 30, tzinfo=dt.UTC)


def test_a_cadence_tighter_than_the_tier_wins():
    assert review_interval_days(cadence="biweekly", tier="transactional") == 14
    assert review_interval_days(cadence="semiannual", tier="transactional") == 92
    assert review_interval_days(cadence="semiannual", tier="") == 183
    assert review_interval_days(cadence="annual", tier="growth") == 31


@pytest.mark.parametrize(("status", "due", "overdue_days"), [
    ("open", TODAY - dt.timedelta(days=1), 1),
    ("in_progress", TODAY - dt.timedelta(days=5), 5),
    ("open", TODAY, 0),  # due today is not overdue yet
    ("done", TODAY - dt.timedelta(days=30), 0),
    ("cancelled", TODAY - dt.timedelta(days=30), 0),
])
def test_an_open_action_past_its_due_date_is_overdue(status, due, overdue_days):
    action = ActionItem(status=status, due_date=due)
    assert action_is_overdue(action, today=TODAY) is (overdue_days > 0)
    assert action_overdue_days(action, today=TODAY) == overdue_days


@pytest.mark.parametrize(("stage", "last_review", "expected"), [
    ("active", TODAY - dt.timedelta(days=32), (TODAY - dt.timedelta(days=1), 1)),
    ("active", TODAY - dt.timedelta(days=31), (TODAY, 0)),
    ("pilot", None, (START + dt.timedelta(days=31), 499)),  # never reviewed: from the start
    ("exiting", None, (None, 0)),
    ("exiting", TODAY - dt.timedelta(days=40), (TODAY - dt.timedelta(days=9), 9)),
    ("prospect", TODAY - dt.timedelta(days=400), (None, 0)),
    ("ended", TODAY - dt.timedelta(days=400), (None, 0)),
])
def test_review_status_by_stage_and_last_review(stage, last_review, expected):
    assert review_status(stage=stage, start=START, cadence="monthly", tier="",
                         last_review=last_review, today=TODAY) == expected


def test_review_state_carries_the_interval_only_when_a_review_is_due():
    due = review_state(stage="active", start=START, cadence="annual", tier="strategic",
                       last_review=TODAY - dt.timedelta(days=100), today=TODAY,
                       open_actions=2, overdue_actions=1)
    assert (due.interval_days, due.review_overdue_days, due.review_overdue) == (92, 8, True)
    never = review_state(stage="prospect", start=START, cadence="annual", tier="",
                         last_review=None, today=TODAY, open_actions=0, overdue_actions=0)
    assert (never.review_due, never.interval_days, never.review_overdue) == (None, None, False)


@pytest.mark.parametrize(("status", "previous", "completed_at", "expected"), [
    ("done", "open", None, NOW),  # done stamps the time
    ("done", "done", EARLIER, EARLIER),  # staying done keeps it
    ("open", "done", EARLIER, None),  # reopening clears it
    ("cancelled", "done", EARLIER, None),
    ("in_progress", "open", None, None),
])
def test_done_stamps_completion_and_leaving_done_clears_it(status, previous, completed_at,
                                                           expected):
    assert action_completed_at(status=status, previous_status=previous,
                               completed_at=completed_at, now=NOW) == expected
