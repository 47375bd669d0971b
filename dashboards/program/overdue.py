"""Overdue business reviews and action items, for one agreement or thousands at once.

The rules (when a review falls due, when an action is overdue) live in `partnerships.reviews`;
this module reads what they need: the agreements, their last review, their open actions, and
each agreement's tier from the current published scorecard.
"""

import datetime as dt
from collections.abc import Iterable

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from partnerships.access import (
    action_items_for,
    may_update_action_status,
    membership_of,
    reviews_for,
)
from partnerships.models import ActionItem, ActionStatus, Agreement, Review, ReviewStatus
from partnerships.reviews import (
    OPEN_STATUSES,
    UNREVIEWED_STAGES,
    Overdue,
    action_overdue_days,
    review_state,
    review_status,
)
from scoring.models import Scorecard, ScoringRun

from ..cache import program_cached, run_cached, run_label


def current_tiers(*, run: ScoringRun | None) -> dict[int, str]:
    """Every agreement's tier now, by agreement id ('' without one): its tier in the published
    run's last month, which is each agreement's latest, since scoring writes a scorecard for
    every agreement and every month of its run. Read once per run, then from the cache."""
    if run is None or not run.last_period:
        return {}
    return run_cached(run=run, name="current-tiers", compute=lambda: dict(
        Scorecard.objects.of_run(run).filter(period=run.last_period).order_by()
        .values_list("agreement_id", "tier")))


def _review_inputs(*, agreements: QuerySet[Agreement]):
    """(pk, stage, start, cadence, last review) of each agreement: one query."""
    # Only held reviews count: a planned one is not a review yet (partnerships/reviews.py).
    last_review = (Review.objects.filter(agreement_id=OuterRef("pk"), status=ReviewStatus.HELD)
                   .order_by("-held_on").values("held_on")[:1])
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
        result[pk] = review_state(
            stage=stage, start=start, cadence=cadence, tier=tiers.get(pk, ""),
            last_review=last, today=today, open_actions=counts.get("open", 0),
            overdue_actions=counts.get("overdue", 0))
    return result


def overdue_totals(*, agreements: QuerySet[Agreement], today: dt.date | None = None,
                   run: ScoringRun | None = None) -> dict[str, int]:
    """Headline figures of many agreements (an already scoped queryset): overdue reviews,
    overdue and open actions, and the agreements the overdue actions belong to (the rows the
    card's link lists). Two queries however many agreements (besides the run and its
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
        open=Count("pk"), overdue=Count("pk", filter=Q(due_date__lt=today)),
        overdue_agreements=Count("agreement_id", filter=Q(due_date__lt=today), distinct=True))
    return {"overdue_reviews": overdue_reviews, "overdue_actions": counts["overdue"],
            "open_actions": counts["open"],
            "agreements_with_overdue_actions": counts["overdue_agreements"]}


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
    # One query: the reviews planned ahead, and the last one held (only held ones count).
    last_held = (Review.objects.filter(agreement=agreement, status=ReviewStatus.HELD)
                 .order_by("-held_on", "-id").values("pk")[:1])
    reviews = list(Review.objects.filter(agreement=agreement)
                   .filter(Q(status=ReviewStatus.PLANNED) | Q(pk=Subquery(last_held)))
                   .order_by("held_on", "starts_at", "id"))
    last_review = next((review.held_on for review in reviews
                        if review.status == ReviewStatus.HELD), None)
    upcoming = [review for review in reviews if review.status == ReviewStatus.PLANNED]
    # An agreement has few open actions (action_items_for: both sides of what the user sees).
    open_actions = list(action_items_for(user=user)
                        .filter(agreement=agreement, status__in=OPEN_STATUSES)
                        .order_by("due_date", "id"))
    state = review_state(
        stage=agreement.stage, start=agreement.start_date, cadence=agreement.review_cadence,
        tier=tier, last_review=last_review, today=today, open_actions=len(open_actions),
        overdue_actions=sum(1 for action in open_actions if action.due_date < today))
    return {"agreement": agreement, "state": state, "today": today,
            "actions": annotate_actions(open_actions[:limit], user=user, today=today),
            "upcoming": upcoming, "status_choices": ActionStatus.choices}


def portfolio_review_figures(*, agreements: QuerySet[Agreement],
                             run: ScoringRun | None = None) -> dict[str, int]:
    """The portfolio's headline figures: overdue reviews and overdue actions (both sides) of
    the given (already scoped) agreements. Two or three queries however many agreements; for
    the whole program, kept in the cache until today, the published run or the program
    changes (dashboards/cache.py)."""
    if run is None:
        run = ScoringRun.objects.current()
    today = timezone.localdate()
    if agreements.query.where:  # a narrower scope than the whole program
        return overdue_totals(agreements=agreements, today=today, run=run)
    return program_cached(
        name="overdue-totals", parts=(today.isoformat(), run_label(run)),
        compute=lambda: overdue_totals(agreements=agreements, today=today, run=run))


def upcoming_reviews(*, user, limit: int = 5) -> list[Review]:
    """The reviews planned from today on in the agreements the user sees, the soonest first.
    One query."""
    return list(reviews_for(user=user)
                .filter(status=ReviewStatus.PLANNED, held_on__gte=timezone.localdate())
                .select_related("agreement__partner").order_by("held_on", "starts_at", "id")
                [:limit])


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
