"""User administration by host admins: a user's role, deactivation, reactivation, sessions.

Each change is audited with the values before and after it, and takes effect on the user's
next request (every request loads the user and membership afresh).
"""

from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from .access import membership_of_any
from .audit import audit_record
from .models import AuditAction, Membership, Partner, Role


class AccessChangeRefused(Exception):
    """A change an admin may not make (to their own account, or one that breaks a rule)."""


def _refuse_self(*, actor, target) -> None:
    # An admin who demotes or deactivates themselves can lock the host out of user management.
    if actor.pk == target.pk:
        raise AccessChangeRefused("You cannot change your own access. Ask another host admin.")


def user_sessions_end(*, user) -> int:
    """Delete every stored session of the user, so they are logged out at once; the count.

    Works with the database-backed session engines (db, cached_db), whose sessions can be
    listed. Whatever the engine, ModelBackend refuses an inactive user on the next request."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store_class, "get_model_class"):
        return 0
    user_id = str(user.pk)
    ended = 0
    live = store_class.get_model_class().objects.filter(expire_date__gt=timezone.now())
    # A session holds the user id only inside its encoded data: decode the live ones.
    for session in live.iterator():
        if str(session.get_decoded().get(SESSION_KEY)) == user_id:
            # Through the store, so a cached_db engine forgets its cached copy as well.
            store_class(session_key=session.session_key).delete()
            ended += 1
    return ended


def _access_of(membership: Membership | None) -> dict:
    if membership is None:
        return {"role": None, "partner": None}
    partner = membership.partner.slug if membership.partner else None
    return {"role": membership.role, "partner": partner}


@transaction.atomic
def user_role_change(
    *, actor, user, role: str, partner: Partner | None, request: HttpRequest | None = None
) -> Membership:
    """Give the user a role on the host (partner None) or on one partner; audited from → to."""
    _refuse_self(actor=actor, target=user)
    if role not in Role.values:
        raise AccessChangeRefused(f"Unknown role {role!r}.")
    if role in (Role.PARTNER_EDITOR, Role.PARTNER_VIEWER):
        if partner is None:
            raise AccessChangeRefused("A partner role needs a partner.")
    else:
        partner = None
    # Lock the membership row only: PostgreSQL cannot lock the nullable side of the join.
    membership = (
        Membership.objects.select_for_update(of=("self",)).select_related("partner")
        .filter(user=user).first()
    )
    before = _access_of(membership)
    previous_partner = membership.partner if membership else None
    if membership is None:
        membership = Membership(user=user)
    membership.role, membership.partner = role, partner
    after = _access_of(membership)
    if before == after:
        return membership
    membership.save()
    audit_record(
        action=AuditAction.ROLE_CHANGED, request=request, user=actor,
        partner=partner or previous_partner,
        target=f"user {user.get_username()}", detail={"from": before, "to": after},
    )
    return membership


def _active_set(*, user, active: bool) -> bool:
    """Set the account's active flag under a row lock; whether it was active before."""
    was_active = (
        get_user_model().objects.select_for_update().filter(pk=user.pk)
        .values_list("is_active", flat=True).get()
    )
    get_user_model().objects.filter(pk=user.pk).update(is_active=active)
    user.is_active = active
    return was_active


@transaction.atomic
def user_deactivate(*, actor, user, request: HttpRequest | None = None) -> int:
    """Refuse the user's log-ins and end their sessions at once; audited. Sessions ended."""
    _refuse_self(actor=actor, target=user)
    was_active = _active_set(user=user, active=False)
    ended = user_sessions_end(user=user)
    membership = membership_of_any(user)
    audit_record(
        action=AuditAction.USER_DEACTIVATED, request=request, user=actor,
        partner=membership.partner if membership else None,
        target=f"user {user.get_username()}",
        detail={"from": {"active": was_active}, "to": {"active": False},
                "sessions_ended": ended},
    )
    return ended


@transaction.atomic
def user_reactivate(*, actor, user, request: HttpRequest | None = None) -> None:
    """Let a deactivated user log in again (with their old password and role); audited."""
    _refuse_self(actor=actor, target=user)
    was_active = _active_set(user=user, active=True)
    membership = membership_of_any(user)
    audit_record(
        action=AuditAction.USER_REACTIVATED, request=request, user=actor,
        partner=membership.partner if membership else None,
        target=f"user {user.get_username()}",
        detail={"from": {"active": was_active}, "to": {"active": True}},
    )
