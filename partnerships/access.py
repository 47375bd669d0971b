"""Who may see and do what: the one place that turns a user into querysets and permissions.

Every view gets its objects through these functions, never through `Model.objects` directly.
Querysets are built from the user as loaded for *this* request, so a changed role, a deleted
membership or a deactivated account takes effect on the next request.

The decorators answer the way the pages promise: anonymous visitors are sent to log in,
partner users get 404 for host pages (they do not learn those pages exist), and a host user
whose role may not act gets 403.
"""

from collections.abc import Callable
from functools import wraps
from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone

from .audit import audit_record
from .models import (
    ActionItem,
    Agreement,
    AuditAction,
    AuditEvent,
    ImportBatch,
    Invitation,
    Membership,
    MetricObservation,
    Partner,
    PartnerAssessment,
    Review,
    Role,
    Side,
)

View = Callable[..., HttpResponse]


# ---- Who the user is ------------------------------------------------------------------------


def membership_of(user) -> Membership | None:
    """The user's side and role; None for anonymous or inactive users and users without one."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    try:
        return user.membership
    except Membership.DoesNotExist:
        return None


def is_host_admin(user) -> bool:
    membership = membership_of(user)
    return membership is not None and membership.role == Role.HOST_ADMIN


# ---- What the user may see ------------------------------------------------------------------


def agreements_for(*, user) -> QuerySet[Agreement]:
    """Agreements the user may see: all for host staff, their partner's for partner users."""
    if membership_of(user) is None:
        return Agreement.objects.none()
    return Agreement.objects.visible_to(user)


def partners_for(*, user) -> QuerySet[Partner]:
    """Partners the user may see: all for host staff, only their own for partner users."""
    membership = membership_of(user)
    if membership is None:
        return Partner.objects.none()
    if membership.is_host:
        return Partner.objects.all()
    return Partner.objects.filter(pk=membership.partner_id)


def import_batches_for(*, user) -> QuerySet[ImportBatch]:
    """Import batches the user may see: all for the host, their partner's own for partners."""
    membership = membership_of(user)
    if membership is None:
        return ImportBatch.objects.none()
    if membership.is_host:
        return ImportBatch.objects.all()
    return ImportBatch.objects.filter(partner_id=membership.partner_id)


def observations_for(*, user) -> QuerySet[MetricObservation]:
    """Observations (of both sides) of the agreements the user may see."""
    membership = membership_of(user)
    if membership is None:
        return MetricObservation.objects.none()
    if membership.is_host:
        return MetricObservation.objects.all()
    return MetricObservation.objects.filter(agreement__partner_id=membership.partner_id)


def partner_members_for(*, user, partner: Partner) -> QuerySet[Membership]:
    """The partner-side users of one partner, as its contacts: host staff only."""
    membership = membership_of(user)
    if membership is None or not membership.is_host:
        return Membership.objects.none()
    return Membership.objects.filter(partner=partner).select_related("user")


def host_managers_for(*, user) -> QuerySet:
    """Active host managers, who may own agreements: listed for host staff only."""
    membership = membership_of(user)
    if membership is None or not membership.is_host:
        return get_user_model().objects.none()
    return get_user_model().objects.filter(
        is_active=True, membership__role=Role.HOST_MANAGER).order_by("username")


def assessments_for(*, user) -> QuerySet[PartnerAssessment]:
    """Partner assessments: the host's own judgement of its partners, never shown to them."""
    membership = membership_of(user)
    if membership is None or not membership.is_host:
        return PartnerAssessment.objects.none()
    return PartnerAssessment.objects.select_related("assessed_by")


def reviews_for(*, user) -> QuerySet[Review]:
    """Business reviews of the agreements the user may see."""
    membership = membership_of(user)
    if membership is None:
        return Review.objects.none()
    if membership.is_host:
        return Review.objects.all()
    return Review.objects.filter(agreement__partner_id=membership.partner_id)


def action_items_for(*, user) -> QuerySet[ActionItem]:
    """Action items (of both sides) of the agreements the user may see."""
    membership = membership_of(user)
    if membership is None:
        return ActionItem.objects.none()
    if membership.is_host:
        return ActionItem.objects.all()
    return ActionItem.objects.filter(agreement__partner_id=membership.partner_id)


def may_update_action_status(*, user, action: ActionItem) -> bool:
    """Host managers set any action's status; partner users (editors and viewers) only of the
    actions their side owns. The caller has already scoped `action` with action_items_for."""
    membership = membership_of(user)
    if membership is None:
        return False
    if membership.is_host:
        return membership.can_manage
    return action.owner_side == Side.PARTNER


def memberships_for(*, user) -> QuerySet[Membership]:
    """Memberships the user may manage: all of them for host admins, none for anyone else."""
    if not is_host_admin(user):
        return Membership.objects.none()
    return Membership.objects.select_related("user", "partner")


def users_for(*, user) -> QuerySet:
    """User accounts the user may manage: all for host admins, none for anyone else."""
    if not is_host_admin(user):
        return get_user_model().objects.none()
    return get_user_model().objects.select_related("membership", "membership__partner")


def invitations_for(*, user) -> QuerySet[Invitation]:
    """Invitations: host admins manage all of them, nobody else sees any."""
    if not is_host_admin(user):
        return Invitation.objects.none()
    return Invitation.objects.select_related("partner", "invited_by")


def audit_events_for(*, user) -> QuerySet[AuditEvent]:
    """The audit log: host admins read all of it, nobody else reads any of it."""
    if not is_host_admin(user):
        return AuditEvent.objects.none()
    return AuditEvent.objects.select_related("partner")


# ---- View decorators ------------------------------------------------------------------------


def _host_side_required(
    view: View, *, may_act: Callable[[Membership], bool], refusal: str
) -> View:
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        membership = membership_of(request.user)
        if membership is None or not membership.is_host:
            # Partner users (and accounts without a side) do not learn host pages exist.
            raise Http404
        if not may_act(membership):
            raise PermissionDenied(refusal)
        return view(request, *args, **kwargs)

    return wrapped


def host_required(view: View) -> View:
    """Host staff only: login redirect for anonymous visitors, 404 for partner users."""
    return _host_side_required(view, may_act=lambda membership: True, refusal="")


def manager_required(view: View) -> View:
    """Host managers and admins: 404 for partner users, 403 for a host user who may not act."""
    return _host_side_required(
        view, may_act=lambda membership: membership.can_manage,
        refusal="Only host managers and admins may do this.",
    )


def admin_required(view: View) -> View:
    """Host admins only: 404 for partner users, 403 for other host users."""
    return _host_side_required(
        view, may_act=lambda membership: membership.role == Role.HOST_ADMIN,
        refusal="Only host admins manage users and read the audit log.",
    )


# ---- Changing who has access ----------------------------------------------------------------


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
    """Give the user a role on the host (partner None) or on one partner; audited.

    Takes effect on the user's next request: every request loads the membership afresh."""
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


@transaction.atomic
def user_deactivate(*, actor, user, request: HttpRequest | None = None) -> int:
    """Refuse the user's log-ins and end their sessions at once; audited. Sessions ended."""
    _refuse_self(actor=actor, target=user)
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    user.is_active = False
    ended = user_sessions_end(user=user)
    membership = membership_of_any(user)
    audit_record(
        action=AuditAction.USER_DEACTIVATED, request=request, user=actor,
        partner=membership.partner if membership else None,
        target=f"user {user.get_username()}", detail={"sessions_ended": ended},
    )
    return ended


@transaction.atomic
def user_reactivate(*, actor, user, request: HttpRequest | None = None) -> None:
    """Let a deactivated user log in again (with their old password and role); audited."""
    _refuse_self(actor=actor, target=user)
    type(user).objects.filter(pk=user.pk).update(is_active=True)
    user.is_active = True
    membership = membership_of_any(user)
    audit_record(
        action=AuditAction.USER_REACTIVATED, request=request, user=actor,
        partner=membership.partner if membership else None,
        target=f"user {user.get_username()}",
    )


def membership_of_any(user) -> Membership | None:
    """The membership of a user as an admin sees it, whether or not the account is active."""
    return Membership.objects.select_related("partner").filter(user=user).first()
