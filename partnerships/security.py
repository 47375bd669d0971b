"""Sign-in audit and the host-only admin site.

Receivers of django.contrib.auth's and django-axes' signals record log-ins, failures, log-outs
and lock-outs (connected in PartnershipsConfig.ready()); `lockout_response` is the answer to a
locked-out pair; `HostAdminSite` admits host staff only, behind the second factor. The second
factor itself is `partnerships.two_factor`; the session lifetime and the client address behind
a proxy are `partnerships.middleware`.
"""

import functools
import time

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME, get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from .access import is_host
from .audit import audit_record
from .middleware import LOGIN_AT_SESSION_KEY
from .models import AuditAction
from .two_factor import two_factor_pending

LOCKED_OUT_MESSAGE = "Too many failed log-in attempts. Please try again later."


# ---- Audit receivers (django.contrib.auth and django-axes signals) -----------------------


def on_user_logged_in(sender, request, user, **kwargs) -> None:
    """Record the log-in and stamp the session with its start, for the absolute time-out."""
    if request is None:
        return
    if hasattr(request, "session"):
        request.session[LOGIN_AT_SESSION_KEY] = int(time.time())
    audit_record(action=AuditAction.LOGIN, request=request, user=user)


def on_user_login_failed(sender, credentials, request=None, **kwargs) -> None:
    """Record a refused password, with the user name as typed (the user may not exist)."""
    username = str(credentials.get(get_user_model().USERNAME_FIELD) or "")
    if request is not None and not hasattr(request, "user"):
        request = None  # authenticate() called outside a view: there is no address to record
    audit_record(action=AuditAction.LOGIN_FAILED, request=request, user=None,
                 username=username)


def on_user_logged_out(sender, request, user, **kwargs) -> None:
    if request is None or user is None:
        return
    reason = getattr(request, "logout_reason", "user")
    audit_record(action=AuditAction.LOGOUT, request=request, user=user,
                 detail={"reason": reason})


def on_user_locked_out(sender, request, username, ip_address, **kwargs) -> None:
    """django-axes refused this user name from this address (failure limit reached)."""
    audit_record(action=AuditAction.LOCKED_OUT, request=request, user=None,
                 username=str(username or ""),
                 detail={"failure_limit": settings.AXES_FAILURE_LIMIT})


def lockout_response(request: HttpRequest, original_response=None, credentials=None):
    """The answer to a locked-out pair (AXES_LOCKOUT_CALLABLE): the log-in page with one fixed
    message. It names neither the user nor whether the account exists, so an unknown user name
    gets the very same page after as many failures."""
    context = {
        "form": AuthenticationForm(request),
        "locked_out": True,
        "locked_out_message": LOCKED_OUT_MESSAGE,
        REDIRECT_FIELD_NAME: request.POST.get(REDIRECT_FIELD_NAME, ""),
    }
    return render(request, "registration/login.html", context,
                  status=settings.AXES_HTTP_RESPONSE_CODE)


# ---- The admin: host staff only, behind the same second factor ---------------------------


def _audit_admin_changes(request: HttpRequest, *, since) -> None:
    """Copy the admin's own log entries of this request (additions, changes, deletions, also
    bulk ones) into the audit log, with the address the request came from."""
    from django.contrib.admin.models import LogEntry

    entries = LogEntry.objects.filter(user=request.user, action_time__gte=since).select_related(
        "content_type"
    )
    for entry in entries:
        audit_record(
            action=AuditAction.ADMIN_CHANGE,
            request=request,
            target=f"{entry.content_type.name if entry.content_type else ''}: "
            f"{entry.object_repr}"[:200],
            detail={
                "action": {1: "added", 2: "changed", 3: "deleted"}.get(entry.action_flag, "?"),
                "change": entry.get_change_message(),
                "object_id": entry.object_id,
            },
        )


class HostAdminSite(admin.AdminSite):
    """The Django admin for host staff: is_staff AND a host membership AND the second factor
    when it is required. A signed-in user who fails that gets a 404 (partner users do not learn
    the admin exists); an anonymous visitor is sent to the one log-in page (throttled, 2FA)."""

    site_header = "Partnership Performance administration"
    site_title = "Partnership Performance admin"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return (
            user.is_active
            and user.is_staff
            and is_host(user)
            and two_factor_pending(user) is None
        )

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        @functools.wraps(inner)
        def host_staff_only(request, *args, **kwargs):
            if request.user.is_authenticated and not self.has_permission(request):
                raise Http404
            started = timezone.now()
            response = inner(request, *args, **kwargs)
            if request.method == "POST" and request.user.is_authenticated:
                _audit_admin_changes(request, since=started)
            return response

        return host_staff_only

    def login(self, request, extra_context=None):
        # One log-in page for the whole site, so throttling and 2FA cannot be side-stepped.
        next_url = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index",
                                                                   current_app=self.name)
        return redirect_to_login(next_url)
