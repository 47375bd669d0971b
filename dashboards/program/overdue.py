"""Overdue business reviews and action items, for one agreement or thousands at once.

An action is overdue when its due date has passed (due before today) and it is neither done nor
cancelled. A review is overdue when the agreement's last review (of any kind) is older than its
review interval: the shorter of its review cadence (REVIEW_CADENCE_DAYS) and its tier's service
level (TIER_REVIEW_DAYS, tier from the current published scorecard); or when an agreement in
pilot, active or under review has had no review at all for longer than that interval since its
start. Prospects and ended agreements are never overdue.
"""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from partnerships.access import action_items_for, may_update_action_status, membership_of
from partnerships.changes import program_version
from partnerships.models import (
    REVIEW_CADENCE_DAYS,
    TIER_REVIEW_DAYS,
    ActionItem,
    ActionStatus,
    Agreement,
    Review,
    ReviewCadence,
    Stage,
)
from scoring.models import Scorecard, ScoringRun

from ..cache import run_cached

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
    return action.status in OPEN_STATUSES and action.due_date < today


def action_overdue_days(action: ActionItem, *, today: dt.date) -> int:
    return (today - action.due_date).days if action_is_overdue(action, today=today) else 0


def current_tiers(*, run: ScoringRun | None) -> dict[int, str]:
    """Every agreement's tier now, by agreement id ('' without one): its tier in the published
    run's last month, which is each agreement's latest, since scoring writes a scorecard for
    every agreement and every month of its run. Read once per run, then from the cache."""
    if run is None or not run.last_period:
        return {}
    return run_cached(run=run, name="current-tiers", compute=lambda: dict(
        Scorecard.objects.filter(run=run, period=run.last_period).order_by()
        .values_list("agreement_id", "tier")))


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


def _review_inputs(*, agreements: QuerySet[Agreement]):
    """(pk, stage, start, cadence, last review) of each agreement: one query."""
    last_review = (Review.objects.filter(agreement_id=OuterRef("pk")).order_by("-held_on")
                   .values("held_on")[:1])
    return (agreements.order_by().annotate(last_review=Subquery(last_review))
            .values_list("pk", "stage", "start_date", "review_cadence", "last_review"))


def _open_actions(*, agreements: QuerySet[Agreement]) -> QuerySet[ActionItem]:
    actions = ActionItem.objects.filter(status__in=OPEN_STATUSES)
    if agreements.query.where or agreements.query.is_sliced:
        # Host staff see every agreement: then no semi-join is needed.
        actions = actions.filter(agreement__in=agreements.order_by().values("pk"))
    return actions


def overdue_for(*, agreement_ids: Iterable[int] | QuerySet, today: dt.date | None = None,
                run: ScoringRun | None = None) -> dict[int, Overdue]:
    """Overdue reviews and actions of many agreements: two queries however many there are,
    besides the published run and its tiers (`current_tiers`, kept per run).

    `agreement_ids` may be a list of ids or a queryset of ids (`.values("pk")`), which is then
    used as a subquery."""
    today = today or timezone.localdate()
    if not isinstance(agreement_ids, QuerySet):
        agreement_ids = list(agreement_ids)
        if not agreement_ids:
            return {}
    if run is None:
        run = ScoringRun.objects.current()
    agreements = Agreement.objects.filter(pk__in=agreement_ids)
    rows = list(_review_inputs(agreements=agreements))
    tiers = current_tiers(run=run)
    if not rows:
        return {}
    action_counts = {
        row["agreement_id"]: row for row in
        _open_actions(agreements=agreements).order_by().values("agreement_id")
        .annotate(open=Count("id"), overdue=Count("id", filter=Q(due_date__lt=today)))
    }
    result = {}
    for pk, stage, start, cadence, last in rows:
        counts = action_counts.get(pk, {})
        result[pk] = _state(stage=stage, start=start, cadence=cadence, tier=tiers.get(pk, ""),
                            last_review=last, today=today, open_actions=counts.get("open", 0),
                            overdue_actions=counts.get("overdue", 0))
    return result


def _state(*, stage: str, start: dt.date, cadence: str, tier: str,
           last_review: dt.date | None, today: dt.date, open_actions: int,
           overdue_actions: int) -> Overdue:
    due, days = review_status(stage=stage, start=start, cadence=cadence, tier=tier,
                              last_review=last_review, today=today)
    return Overdue(
        review_due=due, review_overdue_days=days, overdue_actions=overdue_actions,
        open_actions=open_actions, last_review=last_review,
        interval_days=None if due is None else review_interval_days(cadence=cadence, tier=tier),
        tier=tier,
    )


def overdue_totals(*, agreements: QuerySet[Agreement], today: dt.date | None = None,
                   run: ScoringRun | None = None) -> dict[str, int]:
    """Headline figures of many agreements (an already scoped queryset): overdue reviews,
    overdue and open actions. Two queries however many agreements (besides the run and its
    tiers, as for `overdue_for`); the same rule, without building a state for each agreement."""
    today = today or timezone.localdate()
    if run is None:
        run = ScoringRun.objects.current()
    tiers = current_tiers(run=run)
    overdue_reviews = 0
    for pk, stage, start, cadence, last in _review_inputs(
            agreements=agreements.exclude(stage__in=UNREVIEWED_STAGES)):
        if review_status(stage=stage, start=start, cadence=cadence, tier=tiers.get(pk, ""),
                         last_review=last, today=today)[1]:
            overdue_reviews += 1
    counts = _open_actions(agreements=agreements).aggregate(
        open=Count("pk"), overdue=Count("pk", filter=Q(due_date__lt=today)))
    return {"overdue_reviews": overdue_reviews, "overdue_actions": counts["overdue"],
            "open_actions": counts["open"]}


def overdue_actions_of(*, actions: QuerySet[ActionItem], today: dt.date | None = None,
                       limit: int = 10) -> tuple[list[ActionItem], int]:
    """The first `limit` overdue actions of a scoped queryset, oldest due first, and their
    number: two queries."""
    today = today or timezone.localdate()
    overdue = actions.filter(status__in=OPEN_STATUSES, due_date__lt=today)
    shown = list(overdue.select_related("agreement", "agreement__partner")
                 .order_by("due_date", "id")[:limit])
    for action in shown:
        action.overdue_days = (today - action.due_date).days
    total = len(shown) if len(shown) < limit else overdue.count()
    return shown, total


# ---- What the dashboards of both sides show (one context entry each) ------------------------


def annotate_actions(actions: Iterable[ActionItem], *, user, today: dt.date) -> list[ActionItem]:
    """Each action with `overdue_days` and `can_update` (may this user change its status)."""
    annotated = list(actions)
    for action in annotated:
        action.overdue_days = action_overdue_days(action, today=today)
        action.can_update = may_update_action_status(user=user, action=action)
    return annotated


def agreement_review_panel(*, agreement: Agreement, user, limit: int = 5,
                           run: ScoringRun | None = None) -> dict:
    """The agreement dashboard's section: the review due, overdue and open actions (both
    sides). Two queries (the last review, the open actions) when the page passes the
    published `run`, once the run's tiers are kept."""
    today = timezone.localdate()
    if run is None:
        run = ScoringRun.objects.current()
    tier = current_tiers(run=run).get(agreement.pk, "")
    last_review = (Review.objects.filter(agreement=agreement).order_by("-held_on")
                   .values_list("held_on", flat=True).first())
    # An agreement has few open actions (action_items_for: both sides of what the user sees).
    open_actions = list(action_items_for(user=user)
                        .filter(agreement=agreement, status__in=OPEN_STATUSES)
                        .order_by("due_date", "id"))
    state = _state(stage=agreement.stage, start=agreement.start_date,
                   cadence=agreement.review_cadence, tier=tier, last_review=last_review,
                   today=today, open_actions=len(open_actions),
                   overdue_actions=sum(1 for action in open_actions if action.due_date < today))
    return {"agreement": agreement, "state": state, "today": today,
            "actions": annotate_actions(open_actions[:limit], user=user, today=today),
            "status_choices": ActionStatus.choices}


# How long the portfolio keeps its overdue counts at most: writers that bypass the change
# counter (partnerships/changes.py) show within this time.
OVERDUE_TOTALS_SECONDS = 300


def portfolio_review_figures(*, agreements: QuerySet[Agreement],
                             run: ScoringRun | None = None) -> dict[str, int]:
    """The portfolio's headline figures: overdue reviews and overdue actions (both sides) of
    the given (already scoped) agreements. Two or three queries however many agreements; for
    the whole program, kept in the cache until today, the published run or any agreement,
    review or action item changes."""
    if run is None:
        run = ScoringRun.objects.current()
    today = timezone.localdate()
    if agreements.query.where:  # a narrower scope than the whole program
        return overdue_totals(agreements=agreements, today=today, run=run)
    published = f"{run.pk}-{run.published_at.isoformat()}" if run and run.published_at else ""
    key = f"overdue-totals:{today.isoformat()}:{published}:{program_version()}"
    return cache.get_or_set(
        key, lambda: overdue_totals(agreements=agreements, today=today, run=run),
        OVERDUE_TOTALS_SECONDS)


def home_overdue_actions(*, user, limit: int = 10) -> dict:
    """The overdue actions the user's own side owns (partner users: their partner's; host
    staff: the host's), across the agreements they see. Three queries."""
    membership = membership_of(user)
    if membership is None:
        return {"actions": [], "total": 0, "side": ""}
    actions, total = overdue_actions_of(
        actions=action_items_for(user=user).filter(owner_side=membership.side), limit=limit)
    for action in actions:
        action.can_update = may_update_action_status(user=user, action=action)
    return {"actions": actions, "total": total, "side": membership.side,
            "status_choices": ActionStatus.choices}
