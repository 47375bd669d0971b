"""Log-in hardening: audit of sign-ins, lock-out answers, session time-outs, two-factor
authentication (TOTP) and the host-only admin site.

The flow: a user logs in with a password (django-axes throttles the pair user name + address);
a host user, or anyone who has switched two-factor on, must then enter a six-digit code before
any other page — or, for host staff without a device while TWO_FACTOR_REQUIRED_FOR_HOST is on,
set one up first. Receivers here are connected in PartnershipsConfig.ready().
"""

import functools
import ipaddress
import re
import time
from base64 import b32encode
from urllib.parse import urlencode

import segno
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import REDIRECT_FIELD_NAME, get_user_model, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from django_otp import DEVICE_ID_SESSION_KEY, devices_for_user, user_has_device, verify_token
from django_otp import login as otp_login
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.util import random_hex

from .audit import audit_record
from .models import AuditAction

LOGIN_AT_SESSION_KEY = "login_at"
SETUP_KEY_SESSION_KEY = "two_factor_setup_key"
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


# ---- Client address behind a proxy ------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _is_trusted(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class TrustedProxyMiddleware:
    """Sets REMOTE_ADDR to the client's address from X-Forwarded-For, but only for requests
    that arrive from a proxy listed in TRUSTED_PROXIES (addresses or networks).

    Everything downstream (django-axes, the audit log) reads REMOTE_ADDR alone. With no trusted
    proxy configured (the default) the header is ignored, so a client cannot forge its address.
    Behind a proxy, list it: the header is read right to left, skipping trusted hops, and the
    first untrusted address is the client; what a client wrote further left is never used.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        networks = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ())))
        remote = request.META.get("REMOTE_ADDR", "")
        if networks and _is_trusted(remote, networks):
            client = remote
            forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
            for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
                try:
                    ipaddress.ip_address(hop)
                except ValueError:
                    break
                client = hop
                if not _is_trusted(hop, networks):
                    break
            request.META["REMOTE_ADDR"] = client
        return self.get_response(request)


# ---- Session time-outs and two-factor enforcement -----------------------------------------


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _client_redirect(url: str) -> HttpResponse:
    """For HTMX requests: make the browser load the page, rather than swap it into a panel."""
    response = HttpResponse(status=200)
    response["HX-Redirect"] = url
    return response


class SessionLifetimeMiddleware:
    """Logs a user out SESSION_ABSOLUTE_TIMEOUT seconds after log-in, however active they are.
    (The idle time-out is Django's own: SESSION_COOKIE_AGE with SESSION_SAVE_EVERY_REQUEST.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = int(time.time())
            login_at = request.session.get(LOGIN_AT_SESSION_KEY)
            if not isinstance(login_at, int):
                # A session from before this middleware: its lifetime starts now.
                request.session[LOGIN_AT_SESSION_KEY] = login_at = now
            if now - login_at > settings.SESSION_ABSOLUTE_TIMEOUT:
                request.logout_reason = "absolute_timeout"
                logout(request)
                messages.info(request, "Your session has expired. Please log in again.")
                if _is_htmx(request):
                    return _client_redirect(resolve_url(settings.LOGIN_URL))
                return redirect_to_login(request.get_full_path() if request.method == "GET"
                                         else reverse("home"))
        return self.get_response(request)


def is_host_user(user) -> bool:
    membership = getattr(user, "membership", None)
    return membership is not None and membership.is_host


def two_factor_required(user) -> bool:
    """Host staff (and anyone with admin rights) must use a second factor when the setting is
    on; partner users may choose to."""
    if not settings.TWO_FACTOR_REQUIRED_FOR_HOST:
        return False
    return is_host_user(user) or user.is_staff or user.is_superuser


def _is_verified(user) -> bool:
    return bool(getattr(user, "is_verified", lambda: False)())


def two_factor_pending(user) -> str | None:
    """The page this signed-in user must pass before any other: 'two_factor_verify' when they
    have a device (whoever switched it on, it is asked for), 'two_factor_setup' when they must
    have one and do not; None when nothing is pending."""
    if not user.is_authenticated or _is_verified(user):
        return None
    if user_has_device(user, confirmed=True):
        return "two_factor_verify"
    if two_factor_required(user):
        return "two_factor_setup"
    return None


class TwoFactorMiddleware:
    """Until a user has passed the second factor they need, only log-in, log-out, the two-factor
    set-up and verify pages and static files answer; every other URL (the admin included)
    redirects there. Must come after django_otp's OTPMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def _exempt(self, request: HttpRequest) -> bool:
        if request.path.startswith(settings.STATIC_URL):
            return True
        open_paths = {reverse(name) for name in (
            "login", "logout", "two_factor_setup", "two_factor_verify")}
        return request.path in open_paths

    def __call__(self, request: HttpRequest) -> HttpResponse:
        pending = two_factor_pending(request.user)
        if pending and not self._exempt(request):
            url = reverse(pending)
            if _is_htmx(request):
                return _client_redirect(url)
            if request.method == "GET":
                url += "?" + urlencode({REDIRECT_FIELD_NAME: request.get_full_path()})
            return HttpResponseRedirect(url)
        return self.get_response(request)


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
            and is_host_user(user)
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


# ---- Pages: security settings, TOTP set-up, verification, removal ------------------------


class TokenForm(forms.Form):
    # Rendered by registration/_token_field.html (numeric keypad, one-time-code autofill).
    token = forms.CharField(label="Six-digit code", max_length=12)

    def clean_token(self) -> str:
        token = re.sub(r"\s", "", self.cleaned_data["token"])
        if not re.fullmatch(r"[0-9]{6}", token):
            raise forms.ValidationError("Enter the six digits your authenticator app shows.")
        return token


WRONG_CODE = ("That code did not match. Enter the newest code from your authenticator app "
              "(and check that your phone's clock is right).")
THROTTLED = "Too many wrong codes. Wait a few seconds, then enter the newest code."


def _next_url(request: HttpRequest) -> str | None:
    candidate = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME)
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return None


def _grouped(secret: str) -> str:
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def _totp_matches(device: TOTPDevice, token: str) -> bool:
    """Check a code against a device not yet saved (so without django-otp's throttling, which
    needs a row); on success the device remembers the step, so the code cannot be replayed.
    The drift stays 0: one slow typist is no clock skew (later verifications adjust it)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    if totp.verify(int(token), device.tolerance):
        device.last_t = totp.t()
        return True
    return False


def _confirmed_device(user):
    return next(iter(devices_for_user(user, confirmed=True)), None)


@login_required
def account_security(request: HttpRequest) -> HttpResponse:
    return _render_security(request, TokenForm())


def _render_security(request: HttpRequest, remove_form: TokenForm, status: int = 200):
    user = request.user
    return render(request, "registration/security.html", {
        "device": _confirmed_device(user),
        "required": two_factor_required(user),
        "remove_form": remove_form,
    }, status=status)


@login_required
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    user = request.user
    if user_has_device(user, confirmed=True):
        # One device per user; replacing it means removing it first, from a verified session.
        return redirect("account_security" if _is_verified(user) else "two_factor_verify")

    # The key lives in this session until confirmed: a device row is written only then, so a
    # key shown to someone else (who had the password) is never the one that gets confirmed.
    key = request.session.get(SETUP_KEY_SESSION_KEY) or random_hex(20)
    request.session[SETUP_KEY_SESSION_KEY] = key
    device = TOTPDevice(user=user, name="Authenticator app", key=key, confirmed=True)

    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if _totp_matches(device, form.cleaned_data["token"]):
            with transaction.atomic():
                get_user_model().objects.select_for_update().filter(pk=user.pk).exists()
                if user_has_device(user, confirmed=True):
                    return redirect("account_security")
                device.save()
            del request.session[SETUP_KEY_SESSION_KEY]
            otp_login(request, device)
            request.session.cycle_key()
            audit_record(action=AuditAction.TWO_FACTOR, request=request, user=user,
                         target=device.name, detail={"event": "device_confirmed"})
            messages.success(request, "Two-factor authentication is on. From now on you will "
                                      "be asked for a code from your app when you log in.")
            return redirect(_next_url(request) or "home")
        form.add_error("token", WRONG_CODE)

    secret = b32encode(device.bin_key).decode()
    uri = device.config_url
    qr_svg = segno.make(uri, error="m").svg_inline(
        scale=1, border=4, omitsize=True, svgclass="qr-code", light="#fff",
        title="QR code of the authenticator app set-up link",
    ).replace("<svg ", '<svg role="img" ', 1)
    return render(request, "registration/two_factor_setup.html", {
        "form": form,
        "secret": _grouped(secret),
        "otpauth_uri": uri,
        # segno writes only <svg>, <title> and <path> from the URI it encodes itself.
        "qr_svg": mark_safe(qr_svg),
        "required": two_factor_required(user),
        "two_factor_pending": two_factor_pending(user) is not None,
        "next": _next_url(request) or "",
    })


@login_required
def two_factor_verify(request: HttpRequest) -> HttpResponse:
    user = request.user
    if _is_verified(user):
        return redirect(_next_url(request) or "home")
    device = _confirmed_device(user)
    if device is None:
        return redirect("two_factor_setup" if two_factor_required(user) else "home")

    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        allowed, _ = device.verify_is_allowed()
        verified = allowed and verify_token(user, device.persistent_id,
                                            form.cleaned_data["token"])
        if verified:
            otp_login(request, verified)
            # A new session key with the new privilege, as at password log-in.
            request.session.cycle_key()
            return redirect(_next_url(request) or "home")
        audit_record(action=AuditAction.LOGIN_FAILED, request=request, user=user,
                     detail={"factor": "totp", "throttled": not allowed})
        form.add_error("token", WRONG_CODE if allowed else THROTTLED)

    return render(request, "registration/two_factor_verify.html", {
        "form": form,
        "two_factor_pending": True,
        "next": _next_url(request) or "",
    })


@login_required
@require_POST
def two_factor_remove(request: HttpRequest) -> HttpResponse:
    user = request.user
    if two_factor_required(user):
        messages.error(request, "Host staff must keep two-factor authentication on. To move to "
                                "a new phone, ask a host admin to remove your device.")
        return redirect("account_security")
    device = _confirmed_device(user)
    if device is None:
        return redirect("account_security")

    form = TokenForm(request.POST)
    if form.is_valid():
        allowed, _ = device.verify_is_allowed()
        if allowed and verify_token(user, device.persistent_id, form.cleaned_data["token"]):
            for each in devices_for_user(user, confirmed=None):
                each.delete()
            request.session.pop(DEVICE_ID_SESSION_KEY, None)
            audit_record(action=AuditAction.TWO_FACTOR, request=request, user=user,
                         target=device.name, detail={"event": "device_removed"})
            messages.success(request, "Two-factor authentication is off.")
            return redirect("account_security")
        form.add_error("token", WRONG_CODE if allowed else THROTTLED)
    return _render_security(request, form, status=400)
