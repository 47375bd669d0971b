"""When business reviews fall due and action items are overdue: rules on the program's data.

An action is overdue when its due date has passed (due before today) and it is neither done nor
cancelled. A review is overdue when the agreement's last held review (of any kind; a review
planned ahead counts only once it is recorded as held) is older than its
review interval: the shorter of its review cadence (REVIEW_CADENCE_DAYS) and its tier's service
level (TIER_REVIEW_DAYS); or when an agreement in pilot, active or under review has had no
review at all for longer than that interval since its start. Prospects and ended agreements are
never overdue.

The tier comes from the published scores: callers pass it in ('' without one), so these rules
read nothing from the database.
"""

import datetime as dt
from dataclasses import dataclass

from .models import (
    REVIEW_CADENCE_DAYS,
    TIER_REVIEW_DAYS,
    ActionItem,
    ActionStatus,
    ReviewCadence,
    Stage,
)

OPEN_STATUSES = (ActionStatus.OPEN, ActionStatus.IN_PROGRESS)
# Stages whose review falls due even before a first review was held.
REVIEWED_STAGES = (Stage.PILOT, Stage.ACTIVE, Stage.UNDER_REVIEW)
# Stages that never have a review due.
UNREVIEWED_STAGES = (Stage.PROSPECT, Stage.ENDED)


@dataclass(frozen=True)
class Overdue:
    """Where an agreement stands with its reviews and actions on a given day."""

    review_due: dt.date | None  # when the next review is due; None when none is due
    review_overdue_days: int  # days past review_due; 0 when not overdue
    overdue_actions: int  # open or in progress, due before today
    open_actions: int  # open or in progress, overdue or not
    last_review: dt.date | None = None
    interval_days: int | None = None  # the shorter of the cadence's and the tier's
    tier: str = ""

    @property
    def review_overdue(self) -> bool:
        return self.review_overdue_days > 0


def review_interval_days(*, cadence: str, tier: str = "") -> int:
    """Days allowed between reviews: min(cadence days, tier's required days)."""
    days = REVIEW_CADENCE_DAYS.get(cadence, REVIEW_CADENCE_DAYS[ReviewCadence.QUARTERLY])
    if tier in TIER_REVIEW_DAYS:
        days = min(days, TIER_REVIEW_DAYS[tier])
    return days


def action_is_overdue(action: ActionItem, *, today: dt.date) -> bool:
    """Open or in progress and due before today."""
    return action.status in OPEN_STATUSES and action.due_date < today


def action_overdue_days(action: ActionItem, *, today: dt.date) -> int:
    """Days since an overdue action's due date; 0 when it is not overdue."""
    return (today - action.due_date).days if action_is_overdue(action, today=today) else 0


def review_status(*, stage: str, start: dt.date, cadence: str, tier: str,
                  last_review: dt.date | None, today: dt.date) -> tuple[dt.date | None, int]:
    """(the date the next review is due, days it is overdue) for one agreement."""
    if stage in UNREVIEWED_STAGES:
        return None, 0
    interval = dt.timedelta(days=review_interval_days(cadence=cadence, tier=tier))
    if last_review is not None:
        due = last_review + interval
    elif stage in REVIEWED_STAGES:
        due = start + interval
    else:
        # An exiting agreement that was never reviewed: nothing left to fall due.
        return None, 0
    return due, max((today - due).days, 0)


def review_state(*, stage: str, start: dt.date, cadence: str, tier: str,
                 last_review: dt.date | None, today: dt.date, open_actions: int,
                 overdue_actions: int) -> Overdue:
    """One agreement's review due, days overdue and action counts, as an `Overdue`."""
    due, days = review_status(stage=stage, start=start, cadence=cadence, tier=tier,
                              last_review=last_review, today=today)
    return Overdue(
        review_due=due, review_overdue_days=days, overdue_actions=overdue_actions,
        open_actions=open_actions, last_review=last_review,
        interval_days=None if due is None else review_interval_days(cadence=cadence, tier=tier),
        tier=tier,
    )


def action_completed_at(*, status: str, previous_status: str,
                        completed_at: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    """When an action was completed: done stamps `now` (once), leaving done clears it."""
    if status != ActionStatus.DONE:
        return None
    if previous_status != ActionStatus.DONE or completed_at is None:
        return now
    return completed_at
