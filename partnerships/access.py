"""Who may see and do what: the one place that turns a user into querysets and decisions.

Every view gets its objects through these functions, never through `Model.objects` directly.
Querysets are built from the user as loaded for *this* request, so a changed role, a deleted
membership or a deactivated account takes effect on the next request.

Decisions (`may_*`, `is_*`) are plain functions of the user (and object), so views, templates
and services ask the same question the same way. The decorators built on them answer the way
the pages promise: anonymous visitors are sent to log in,
partner users get 404 for host pages (they do not learn those pages exist), and a host user
whose role may not act gets 403.
"""

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse

from .models import (
    ActionItem,
    Agreement,
    AuditEvent,
    Dispute,
    ImportBatch,
    Invitation,
    Membership,
    MetricObservation,
    ObservationChange,
    Partner,
    PartnerAssessment,
    Review,
    Role,
    Side,
)
from .services import ImportNotAllowed, import_uploader

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


def membership_of_any(user) -> Membership | None:
    """The membership of a user as an admin sees it, whether or not the account is active."""
    return Membership.objects.select_related("partner").filter(user=user).first()


# ---- What the user may do -------------------------------------------------------------------


def is_host(user) -> bool:
    """Host staff, whatever their role: they see every partner and the host pages."""
    membership = membership_of(user)
    return membership is not None and membership.is_host


def may_manage(user) -> bool:
    """Host managers and admins: they change the program and start scoring runs."""
    membership = membership_of(user)
    return membership is not None and membership.is_host and membership.can_manage


def is_host_admin(user) -> bool:
    """Host admins: they manage users and access and read the audit log."""
    membership = membership_of(user)
    return membership is not None and membership.role == Role.HOST_ADMIN


def may_see_imports(user) -> bool:
    """Members of the host or of a partner (viewers included) see their side's imports."""
    return membership_of(user) is not None


def may_upload(user) -> bool:
    """Users who may import metrics (host managers and admins, partner editors)."""
    if membership_of(user) is None:
        return False
    try:
        import_uploader(user=user)
    except ImportNotAllowed:
        return False
    return True


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
    """Import batches the user may see: all for the host; for partner users their partner's
    own and every other (the host's) that wrote values of their agreements, whether still
    current or replaced since (what such a batch shows them is limited to those values)."""
    membership = membership_of(user)
    if membership is None:
        return ImportBatch.objects.none()
    if membership.is_host:
        return ImportBatch.objects.all()
    partner_id = membership.partner_id
    current = MetricObservation.objects.filter(agreement__partner_id=partner_id).order_by()
    changes = ObservationChange.objects.filter(agreement__partner_id=partner_id).order_by()
    return ImportBatch.objects.filter(
        Q(partner_id=partner_id)
        | Q(pk__in=current.values("batch_id").distinct())
        | Q(pk__in=changes.values("batch_id").distinct())
        | Q(pk__in=changes.values("old_batch_id").distinct())
    )


def import_batch_is_limited(*, user, batch: ImportBatch) -> bool:
    """Whether the user sees only part of the batch: a partner user and another side's batch
    (the host's, which may hold other partners' rows)."""
    membership = membership_of(user)
    return membership is not None and not membership.is_host and (
        batch.partner_id != membership.partner_id)


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


def disputes_for(*, user) -> QuerySet[Dispute]:
    """Disputes the user may see: all for host staff, their own agreements' for partner users."""
    membership = membership_of(user)
    if membership is None:
        return Dispute.objects.none()
    if membership.is_host:
        return Dispute.objects.all()
    return Dispute.objects.filter(agreement__partner_id=membership.partner_id)


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


def _host_side_required(view: View, *, may_act: Callable[..., bool], refusal: str) -> View:
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        if not is_host(request.user):
            # Partner users (and accounts without a side) do not learn host pages exist.
            raise Http404
        if not may_act(request.user):
            raise PermissionDenied(refusal)
        return view(request, *args, **kwargs)

    return wrapped


def host_required(view: View) -> View:
    """Host staff only: login redirect for anonymous visitors, 404 for partner users."""
    return _host_side_required(view, may_act=is_host, refusal="")


def manager_required(view: View) -> View:
    """Host managers and admins: 404 for partner users, 403 for a host user who may not act."""
    return _host_side_required(
        view, may_act=may_manage, refusal="Only host managers and admins may do this.",
    )


def admin_required(view: View, refusal: str = "Only host admins may do this.") -> View:
    """Host admins only: 404 for partner users, 403 (saying `refusal`) for other host users."""
    return _host_side_required(view, may_act=is_host_admin, refusal=refusal)


def users_admin_required(view: View) -> View:
    """`admin_required` for the pages of users, access and the audit log."""
    return admin_required(view, "Only host admins manage users and read the audit log.")
