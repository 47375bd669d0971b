"""Access management for host admins (who has access to each partner, invitations, roles,
deactivation) and the audit log; plus the public page where an invitation is accepted.

Every form works without JavaScript (post, then redirect back with a message); with htmx the
same endpoints answer with the one row or panel that changed.
"""

import datetime as dt
from collections import defaultdict

from django import forms
from django.contrib import messages
from django.contrib.auth.forms import UserCreationForm
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from partnerships.access import (
    audit_events_for,
    invitations_for,
    membership_of_any,
    partners_for,
    users_admin_required,
    users_for,
)
from partnerships.audit import audit_record
from partnerships.invitations import (
    InvitationRefused,
    InvitationUnusable,
    invitation_accept,
    invitation_for_token,
    invitation_max_age,
    invitation_send,
    invitation_withdraw,
)
from partnerships.models import (
    HOST_ROLES,
    PARTNER_ROLES,
    AuditAction,
    Role,
)
from partnerships.users import (
    AccessChangeRefused,
    user_deactivate,
    user_reactivate,
    user_role_change,
)

from .confirm import Confirmation, confirmation_page, confirmed
from .http import HtmxHttpRequest, redirect_after_change

AUDIT_PAGE_SIZE = 50
INVITATIONS_SHOWN = 50
USER_EVENTS_SHOWN = 20


# ---- Forms ----------------------------------------------------------------------------------


class AccessForm(forms.Form):
    """A role, and the partner for partner roles: the access a user has or is invited to."""

    role = forms.ChoiceField(label="Role", choices=Role.choices)
    partner = forms.ModelChoiceField(
        label="Partner", queryset=None, to_field_name="slug", required=False,
        empty_label="— none: a host role —",
        help_text="Partner editors and viewers see this partner's partnerships and no others.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["partner"].queryset = partners_for(user=user).order_by("name")

    def clean(self):
        cleaned = super().clean()
        role, partner = cleaned.get("role"), cleaned.get("partner")
        if role in PARTNER_ROLES and partner is None and "partner" not in self.errors:
            self.add_error("partner", "Choose the partner this person works for.")
        if role in HOST_ROLES and partner is not None:
            self.add_error("partner", "Host roles belong to no partner: choose “none”.")
        return cleaned


class InviteForm(AccessForm):
    email = forms.EmailField(label="E-mail address", max_length=254)
    field_order = ["email", "role", "partner"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].widget.attrs.update(autocomplete="off", spellcheck="false")
        self.fields["role"].initial = Role.PARTNER_VIEWER


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(
        label="Action", required=False, choices=[("", "Any action"), *AuditAction.choices]
    )
    user = forms.CharField(label="User name", required=False, max_length=150)
    partner = forms.ModelChoiceField(
        label="Partner", queryset=None, to_field_name="slug", required=False,
        empty_label="Any partner",
    )
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["partner"].queryset = partners_for(user=user).order_by("name")

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end of the range is before its start.")
        return cleaned


class AcceptInvitationForm(UserCreationForm):
    """User name and password (checked by the project's password validators)."""

    def __init__(self, *args, email: str, **kwargs):
        super().__init__(*args, **kwargs)
        # The validators compare the password with the e-mail address too.
        self.instance.email = email
        self.fields["username"].help_text = (
            "Letters, digits and @ . + - _ only; this is what you will log in with."
        )
        for field in self.fields.values():
            field.template_name = "forms/field_rich_help.html"


# ---- Helpers --------------------------------------------------------------------------------


def _back(request: HtmxHttpRequest, default: str) -> HttpResponse:
    """Redirect to the `next` field if it is a local URL, else to `default` (a URL name)."""
    target = request.POST.get("next", "")
    if not (target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )):
        target = reverse(default)
    return redirect_after_change(request, target)


def _role_choices_for(membership) -> list[tuple[str, str]]:
    """The roles of the user's own side: the quick change on a row never moves a user
    between the host and a partner (that is done on the user's page, deliberately)."""
    roles = HOST_ROLES if membership.is_host else PARTNER_ROLES
    return [(role.value, role.label) for role in roles]


def _row_context(member, notice: str = "", error: str = "") -> dict:
    member.access = membership_of_any(member)
    member.role_choices = _role_choices_for(member.access) if member.access else []
    return {"member": member, "row_notice": notice, "row_error": error}


def _respond_after_change(
    request: HtmxHttpRequest, member, *, notice: str = "", error: str = ""
) -> HttpResponse:
    # The row answers only a request aimed at the row (the users page); from anywhere else
    # (a user's own page) htmx loads the next page whole.
    if request.htmx and request.htmx.target == f"user-{member.pk}":
        return render(
            request, "dashboards/access/users.html#user-row",
            _row_context(member, notice=notice, error=error),
        )
    if error:
        messages.error(request, error)
    elif notice:
        messages.success(request, notice)
    return _back(request, "access_users")


# ---- Users and access -----------------------------------------------------------------------


@vary_on_headers("HX-Request")
@users_admin_required
def users(request: HtmxHttpRequest) -> HttpResponse:
    partners = partners_for(user=request.user).order_by("name")
    only = None
    if request.GET.get("partner"):
        only = get_object_or_404(partners, slug=request.GET["partner"])
    accounts = users_for(user=request.user).order_by("username")
    host_team, unassigned, by_partner = [], [], defaultdict(list)
    for account in accounts:
        access = getattr(account, "membership", None)
        account.access = access
        account.role_choices = _role_choices_for(access) if access else []
        if access is None:
            unassigned.append(account)
        elif access.is_host:
            host_team.append(account)
        else:
            by_partner[access.partner_id].append(account)
    groups = [
        {"partner": partner, "members": by_partner.get(partner.pk, [])}
        for partner in partners
        if only is None or partner.pk == only.pk
    ]
    now = timezone.now()
    invitations = list(
        invitations_for(user=request.user)
        .filter(accepted_at__isnull=True, revoked_at__isnull=True)
        .order_by("-created_at")[:INVITATIONS_SHOWN]
    )
    for invitation in invitations:
        invitation.current_state = invitation.state(now=now)
    everyone = [*host_team, *unassigned, *(m for group in by_partner.values() for m in group)]
    context = {
        "only": only,
        "partners": partners,
        "host_team": host_team,
        "unassigned": unassigned,
        "groups": [group for group in groups if group["members"]],
        "partners_without_access": [group["partner"] for group in groups if not group["members"]],
        "invitations": invitations,
        "figures": {
            "host": len(host_team),
            "partner_users": sum(len(group) for group in by_partner.values()),
            "partners_with_access": len(by_partner),
            "partners_without_access": sum(1 for group in groups if not group["members"]),
            "deactivated": sum(1 for account in everyone if not account.is_active),
            "pending": sum(1 for i in invitations if i.current_state == "pending"),
        },
    }
    return render(request, "dashboards/access/users.html", context)


@users_admin_required
def user_detail(request: HtmxHttpRequest, user_id: int) -> HttpResponse:
    member = get_object_or_404(users_for(user=request.user), pk=user_id)
    access = membership_of_any(member)
    form = AccessForm(
        user=request.user,
        initial={"role": access.role if access else "",
                 "partner": access.partner.slug if access and access.partner else None},
    )
    return _user_page(request, member, form)


def _user_page(request: HtmxHttpRequest, member, form: AccessForm, status: int = 200):
    events = (
        audit_events_for(user=request.user)
        .filter(Q(user=member) | Q(target=f"user {member.get_username()}"))[:USER_EVENTS_SHOWN]
    )
    context = _row_context(member) | {"form": form, "events": list(events)}
    return render(request, "dashboards/access/user.html", context, status=status)


@users_admin_required
@require_POST
def user_role(request: HtmxHttpRequest, user_id: int) -> HttpResponse:
    member = get_object_or_404(users_for(user=request.user), pk=user_id)
    form = AccessForm(request.POST, user=request.user)
    if not form.is_valid():
        if request.htmx or request.POST.get("next"):
            error = " ".join(message for errors in form.errors.values() for message in errors)
            return _respond_after_change(request, member, error=error)
        return _user_page(request, member, form, status=200)
    try:
        access = user_role_change(
            actor=request.user, user=member, role=form.cleaned_data["role"],
            partner=form.cleaned_data["partner"], request=request,
        )
    except AccessChangeRefused as refused:
        return _respond_after_change(request, member, error=str(refused))
    where = f" for {access.partner.name}" if access.partner else ""
    notice = f"{member.get_username()} is now {access.get_role_display().lower()}{where}."
    return _respond_after_change(request, member, notice=notice)


@users_admin_required
@require_POST
def user_deactivate_view(request: HtmxHttpRequest, user_id: int) -> HttpResponse:
    member = get_object_or_404(users_for(user=request.user), pk=user_id)
    # Nothing to ask when the answer is a refusal (oneself) or changes nothing (inactive).
    if member.is_active and member.pk != request.user.pk and not confirmed(request):
        return confirmation_page(request, Confirmation(
            question=f"Deactivate {member.get_username()}?",
            consequence="They are logged out at once and can no longer log in. Their data and "
                        "role are kept: you can reactivate them later.",
            action="Deactivate", cancel_url=reverse("access_user", args=[member.pk])))
    try:
        user_deactivate(actor=request.user, user=member, request=request)
    except AccessChangeRefused as refused:
        return _respond_after_change(request, member, error=str(refused))
    notice = f"{member.get_username()} is deactivated and was logged out everywhere."
    return _respond_after_change(request, member, notice=notice)


@users_admin_required
@require_POST
def user_reactivate_view(request: HtmxHttpRequest, user_id: int) -> HttpResponse:
    member = get_object_or_404(users_for(user=request.user), pk=user_id)
    try:
        user_reactivate(actor=request.user, user=member, request=request)
    except AccessChangeRefused as refused:
        return _respond_after_change(request, member, error=str(refused))
    notice = f"{member.get_username()} can log in again."
    return _respond_after_change(request, member, notice=notice)


# ---- Invitations ----------------------------------------------------------------------------


@vary_on_headers("HX-Request")
@users_admin_required
def invite(request: HtmxHttpRequest) -> HttpResponse:
    initial = {}
    if request.GET.get("partner"):
        partner = get_object_or_404(partners_for(user=request.user), slug=request.GET["partner"])
        initial = {"partner": partner.slug, "role": Role.PARTNER_VIEWER}
    form = InviteForm(request.POST or None, user=request.user, initial=initial)
    notice = ""
    if request.method == "POST" and form.is_valid():
        try:
            sent = invitation_send(
                actor=request.user, email=form.cleaned_data["email"],
                role=form.cleaned_data["role"], partner=form.cleaned_data["partner"],
                link_for=lambda token: request.build_absolute_uri(
                    reverse("invitation_accept", args=[token])
                ),
                request=request,
            )
        except InvitationRefused as refused:
            form.add_error(None, str(refused))
        else:
            expires = timezone.localtime(sent.invitation.expires_at)
            notice = (
                f"Invitation sent to {sent.invitation.email}. The link works once, "
                f"until {expires:%Y-%m-%d %H:%M}."
            )
            if not request.htmx:
                messages.success(request, notice)
                return redirect(reverse("access_users") + "#invitations")
            form = InviteForm(user=request.user)
    template = "dashboards/access/invite.html"
    if request.htmx:
        template += "#invite-panel"
    context = {"form": form, "notice": notice,
               "max_age_hours": int(invitation_max_age().total_seconds() // 3600)}
    return render(request, template, context)


@users_admin_required
@require_POST
def invitation_withdraw_view(request: HtmxHttpRequest, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(invitations_for(user=request.user), pk=invitation_id)
    back = reverse("access_users") + "#invitations"
    if invitation.state(now=timezone.now()) == "pending" and not confirmed(request):
        return confirmation_page(request, Confirmation(
            question=f"Withdraw the invitation to {invitation.email}?",
            consequence="Its link stops working at once. You can send a new invitation later.",
            action="Withdraw", cancel_url=back))
    if invitation_withdraw(invitation=invitation):
        audit_record(action=AuditAction.INVITATION_WITHDRAWN, request=request,
                     partner=invitation.partner, target=invitation.email,
                     detail={"role": invitation.role})
        messages.success(request, f"The invitation to {invitation.email} no longer works.")
    else:
        messages.info(request, f"The invitation to {invitation.email} had already been used, "
                               "withdrawn or had expired.")
    return redirect_after_change(request, back)


UNUSABLE_MESSAGES = {
    "unknown": ("This invitation link is not valid",
                "Check that you opened the whole link from the e-mail, or ask for a new one."),
    "accepted": ("This invitation has already been used",
                 "Each link works once. If you created your account, log in; otherwise ask "
                 "the person who invited you for a new invitation."),
    "withdrawn": ("This invitation was withdrawn",
                  "It was replaced or cancelled. Ask the person who invited you for a new one."),
    "expired": ("This invitation has expired",
                "Invitation links work for a limited time. Ask the person who invited you to "
                "send a new one."),
}


@never_cache
def invitation_accept_view(request: HtmxHttpRequest, token: str) -> HttpResponse:
    """Public: whoever holds the link may create the account, once, before it expires."""
    template = "dashboards/access/accept.html"
    if request.user.is_authenticated:
        # Accepting would create a second account while signed in to the first.
        return render(request, template, {"signed_in": True})
    try:
        invitation = invitation_for_token(token=token)
    except InvitationUnusable as unusable:
        title, advice = UNUSABLE_MESSAGES[unusable.state]
        status = 404 if unusable.state == "unknown" else 410
        return render(request, template, {"title": title, "advice": advice}, status=status)
    form = AcceptInvitationForm(request.POST or None, email=invitation.email)
    if request.method == "POST" and form.is_valid():
        try:
            user = invitation_accept(token=token, user=form.save(commit=False), request=request)
        except InvitationUnusable as unusable:
            title, advice = UNUSABLE_MESSAGES[unusable.state]
            return render(request, template, {"title": title, "advice": advice}, status=410)
        messages.success(request, f"Your account {user.get_username()} is ready. Log in to "
                                  "see your partnerships.")
        return redirect("login")
    return render(request, template, {"invitation": invitation, "form": form})


# ---- Audit log ------------------------------------------------------------------------------


def _access_text(side: dict) -> str:
    if not side.get("role"):
        return "no role"
    role = side["role"]
    label = Role(role).label.lower() if role in Role.values else role
    return f"{label} ({side['partner']})" if side.get("partner") else label


def _value_text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _change_text(action: str, before: dict, after: dict) -> str:
    """An audited change as "old → new": a role change as one access, else field by field."""
    if action == AuditAction.ROLE_CHANGED:
        return f"{_access_text(before)} → {_access_text(after)}"
    return ", ".join(f"{key}: {_value_text(before.get(key))} → {_value_text(value)}"
                     for key, value in after.items())


def _detail_text(event) -> str:
    detail = dict(event.detail or {})
    parts = []
    if isinstance(detail.get("from"), dict) and isinstance(detail.get("to"), dict):
        parts.append(_change_text(event.action, detail.pop("from"), detail.pop("to")))
    parts += [f"{key}: {value}" for key, value in detail.items()]
    return ", ".join(parts)


@vary_on_headers("HX-Request")
@users_admin_required
def audit_log(request: HtmxHttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None, user=request.user)
    events = audit_events_for(user=request.user)
    form.is_valid()
    filters = getattr(form, "cleaned_data", {})
    if filters.get("action"):
        events = events.filter(action=filters["action"])
    if filters.get("user"):
        events = events.filter(username__icontains=filters["user"].strip())
    if filters.get("partner"):
        events = events.filter(partner=filters["partner"])
    if filters.get("date_from"):
        events = events.filter(at__gte=_start_of(filters["date_from"]))
    if filters.get("date_to") and "date_to" not in form.errors:
        events = events.filter(at__lt=_start_of(filters["date_to"] + dt.timedelta(days=1)))
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    for event in page.object_list:
        event.detail_text = _detail_text(event)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form, "page": page, "query": query.urlencode(),
        "filtered": any(filters.get(name) for name in form.fields),
    }
    template = "dashboards/access/audit.html"
    if request.htmx:
        template += "#audit-results"
    return render(request, template, context)


def _start_of(day: dt.date) -> dt.datetime:
    """Midnight at the start of `day` in the site's time zone."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))
