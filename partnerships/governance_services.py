"""Services that run the agreements: objectives, incentive plans, business reviews, actions.

Every change of these goes through one function here; pages, the admin, the program file and
the API call them. Each takes the acting `user`, an optional `request` (the audit event's
address), the object (or the agreement a new one belongs to) and the field values as keywords;
it validates with the model's rules, writes in one transaction with its history row, its
`program_changed` audit event and the page notice (`history.change_save` / `change_delete`),
and returns the object. A refused input raises django.core.exceptions.ValidationError with
nothing written; an update that changes nothing records nothing.

An update locks the stored row and applies the given fields to it, so the history compares
with what is stored (not with an object a form already changed in memory) and two people
saving at once do not undo each other's other fields.
"""

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.http import HttpRequest
from django.utils import timezone

from .access import action_items_for, may_update_action_status
from .history import change_delete, change_save, history_snapshot
from .models import ActionItem, Agreement, IncentivePlan, Objective, Review, ReviewStatus
from .reviews import action_completed_at

OBJECTIVE_FIELDS = frozenset({"goal_type", "success_metric", "kpi", "target_value", "set_on",
                              "deadline", "priority"})
INCENTIVE_PLAN_FIELDS = frozenset({"base_amount", "currency", "baseline_score",
                                   "multiplier_transactional", "multiplier_growth",
                                   "multiplier_strategic"})
REVIEW_FIELDS = frozenset({"kind", "held_on", "host_attendees", "partner_attendees", "notes",
                           "decisions", "starts_at", "duration_minutes", "agenda"})
# What a review planned ahead says before it is held (no notes or decisions yet).
PLANNED_REVIEW_FIELDS = frozenset({"kind", "held_on", "starts_at", "duration_minutes", "agenda",
                                   "host_attendees", "partner_attendees"})
ACTION_ITEM_FIELDS = frozenset({"review", "description", "owner_name", "owner_side", "raci",
                                "due_date", "status"})


def _assign(obj: models.Model, fields: dict[str, Any], *, allowed: frozenset[str]) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        # A caller's mistake, not a user's input: fail loudly rather than ignore a value.
        raise TypeError(f"{type(obj).__name__} has no editable field {', '.join(unknown)}")
    for name, value in fields.items():
        setattr(obj, name, value)


def _locked[Model: models.Model](obj: Model) -> Model:
    return type(obj).objects.select_for_update().get(pk=obj.pk)


def _create[Model: models.Model](*, obj: Model, user, request: HttpRequest | None) -> Model:
    change_save(user=user, obj=obj, request=request)
    return obj


def _update[Model: models.Model](*, obj: Model, user, request: HttpRequest | None,
                                 fields: dict[str, Any], allowed: frozenset[str]) -> Model:
    """Apply `fields` to the locked stored row and save it with its history."""
    with transaction.atomic():
        stored = _locked(obj)
        before = history_snapshot(stored)
        _assign(stored, fields, allowed=allowed)
        change_save(user=user, obj=stored, before=before, request=request)
    return stored


# ---- Objectives ------------------------------------------------------------------------------


def objective_create(*, agreement: Agreement, user, request: HttpRequest | None = None,
                     **fields: Any) -> Objective:
    """Add an objective to the agreement."""
    objective = Objective(agreement=agreement)
    _assign(objective, fields, allowed=OBJECTIVE_FIELDS)
    return _create(obj=objective, user=user, request=request)


def objective_update(*, objective: Objective, user, request: HttpRequest | None = None,
                     **fields: Any) -> Objective:
    """Change the given fields of an objective."""
    return _update(obj=objective, user=user, request=request, fields=fields,
                   allowed=OBJECTIVE_FIELDS)


def objective_delete(*, objective: Objective, user, request: HttpRequest | None = None) -> None:
    """Delete an objective; its values stay in the agreement's history."""
    change_delete(user=user, obj=objective, request=request)


# ---- Incentive plans -------------------------------------------------------------------------


def incentive_plan_save(*, agreement: Agreement, user, request: HttpRequest | None = None,
                        **fields: Any) -> IncentivePlan:
    """Create the agreement's incentive plan, or change the given fields of the one it has."""
    with transaction.atomic():
        # Two managers creating the agreement's one plan at once: the second waits here and
        # then updates the plan the first created.
        Agreement.objects.select_for_update().filter(pk=agreement.pk).first()
        plan = IncentivePlan.objects.filter(agreement=agreement).first()
        if plan is not None:
            return _update(obj=plan, user=user, request=request, fields=fields,
                           allowed=INCENTIVE_PLAN_FIELDS)
        plan = IncentivePlan(agreement=agreement)
        _assign(plan, fields, allowed=INCENTIVE_PLAN_FIELDS)
        return _create(obj=plan, user=user, request=request)


def incentive_plan_delete(*, plan: IncentivePlan, user,
                          request: HttpRequest | None = None) -> None:
    """Remove an incentive plan: the next scoring run computes no payouts for its agreement."""
    change_delete(user=user, obj=plan, request=request)


# ---- Business reviews ------------------------------------------------------------------------


def review_create(*, agreement: Agreement, user, request: HttpRequest | None = None,
                  **fields: Any) -> Review:
    """Record a review the two sides held."""
    authenticated = user is not None and user.is_authenticated
    review = Review(agreement=agreement, created_by=user if authenticated else None,
                    status=ReviewStatus.HELD)
    _assign(review, fields, allowed=REVIEW_FIELDS)
    return _create(obj=review, user=user, request=request)


def review_update(*, review: Review, user, request: HttpRequest | None = None,
                  **fields: Any) -> Review:
    """Change the given fields of a review (planned or held; its status stays)."""
    allowed = PLANNED_REVIEW_FIELDS if review.status == ReviewStatus.PLANNED else REVIEW_FIELDS
    with transaction.atomic():
        stored = _locked(review)
        if stored.status == ReviewStatus.PLANNED:
            _refuse_past(fields.get("held_on", stored.held_on), stored=stored)
        return _update(obj=stored, user=user, request=request, fields=fields, allowed=allowed)


def _refuse_past(day, *, stored: Review | None = None) -> None:
    # A planned review keeps the date it had (a meeting that slipped may still be recorded as
    # held); a new date chosen for one is never in the past.
    if day is None or (stored is not None and day == stored.held_on):
        return
    if day < timezone.localdate():
        raise ValidationError({"held_on": "A review is planned for today or a later day; "
                                          "record a past review as held instead."})


def review_schedule(*, agreement: Agreement, user, request: HttpRequest | None = None,
                    **fields: Any) -> Review:
    """Plan a review ahead (date, time, duration, kind, agenda, attendees of both sides); it
    does not count for the due dates until it is recorded as held."""
    _refuse_past(fields.get("held_on"))
    authenticated = user is not None and user.is_authenticated
    review = Review(agreement=agreement, created_by=user if authenticated else None,
                    status=ReviewStatus.PLANNED)
    _assign(review, fields, allowed=PLANNED_REVIEW_FIELDS)
    return _create(obj=review, user=user, request=request)


def review_record_held(*, review: Review, user, request: HttpRequest | None = None,
                       **fields: Any) -> Review:
    """Record a planned review as held, with its notes and decisions (and the date and
    attendees as they turned out); from then on it counts for the due dates."""
    with transaction.atomic():
        stored = _locked(review)
        if stored.status != ReviewStatus.PLANNED:
            raise ValidationError("This review is already recorded as held.")
        before = history_snapshot(stored)
        _assign(stored, fields, allowed=REVIEW_FIELDS)
        stored.status = ReviewStatus.HELD
        change_save(user=user, obj=stored, before=before, request=request)
    return stored


def review_cancel(*, review: Review, user, request: HttpRequest | None = None) -> None:
    """Cancel a planned review: it is deleted, and kept in the agreement's history."""
    with transaction.atomic():
        stored = _locked(review)
        if stored.status != ReviewStatus.PLANNED:
            raise ValidationError("Only a planned review is cancelled; delete a held one.")
        change_delete(user=user, obj=stored, request=request)


def review_delete(*, review: Review, user, request: HttpRequest | None = None) -> None:
    """Delete a review; its action items stay on the agreement, no longer tied to it."""
    change_delete(user=user, obj=review, request=request)


# ---- Action items ----------------------------------------------------------------------------


def action_item_create(*, agreement: Agreement, user, request: HttpRequest | None = None,
                       **fields: Any) -> ActionItem:
    """Add an action item to the agreement (from one of its reviews, or not)."""
    action = ActionItem(agreement=agreement)
    _assign(action, fields, allowed=ACTION_ITEM_FIELDS)
    action.completed_at = action_completed_at(
        status=action.status, previous_status="", completed_at=None, now=timezone.now())
    return _create(obj=action, user=user, request=request)


def _action_save(*, action: ActionItem, user, request: HttpRequest | None,
                 fields: dict[str, Any], status_only: bool = False) -> ActionItem:
    with transaction.atomic():
        stored = _locked(action)
        # Judged on the stored row: its side may have changed since the page was drawn.
        if status_only and not _may_set_status(user=user, action=stored):
            raise PermissionDenied("Only the host updates the host's actions.")
        before, previous_status = history_snapshot(stored), stored.status
        _assign(stored, fields, allowed=ACTION_ITEM_FIELDS)
        stored.completed_at = action_completed_at(
            status=stored.status, previous_status=previous_status,
            completed_at=stored.completed_at, now=timezone.now())
        change_save(user=user, obj=stored, before=before, request=request)
    return stored


def _may_set_status(*, user, action: ActionItem) -> bool:
    # may_update_action_status expects an action the user sees: scope it first.
    visible = action_items_for(user=user).filter(pk=action.pk).exists()
    return visible and may_update_action_status(user=user, action=action)


def action_item_update(*, action: ActionItem, user, request: HttpRequest | None = None,
                       **fields: Any) -> ActionItem:
    """Change the given fields of an action item; done stamps its completion, leaving done
    clears it."""
    return _action_save(action=action, user=user, request=request, fields=fields)


def action_item_status_update(*, action: ActionItem, user, status: str,
                              request: HttpRequest | None = None) -> ActionItem:
    """Set an action's status, as `may_update_action_status` allows the user (partner users:
    their own agreements' partner-side actions only); raises PermissionDenied otherwise."""
    return _action_save(action=action, user=user, request=request, fields={"status": status},
                        status_only=True)


def action_item_delete(*, action: ActionItem, user, request: HttpRequest | None = None) -> None:
    """Delete an action item; its values stay in the agreement's history."""
    change_delete(user=user, obj=action, request=request)
