"""Two-factor authentication (TOTP): who needs it, the middleware that holds a user at the
second factor until they pass it, and the pages to set it up, verify a code and remove it.

The flow: a user logs in with a password; a host user, or anyone who has switched two-factor
on, must then enter a six-digit code before any other page — or, for host staff without a
device while TWO_FACTOR_REQUIRED_FOR_HOST is on, set one up first.
"""

import re
import time
from base64 import b32encode
from urllib.parse import urlencode

import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME, get_user_model
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_otp import DEVICE_ID_SESSION_KEY, devices_for_user, user_has_device, verify_token
from django_otp import login as otp_login
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.util import random_hex

from .access import is_host
from .audit import audit_record
from .models import AuditAction

SETUP_KEY_SESSION_KEY = "two_factor_setup_key"


# ---- Who must pass a second factor ---------------------------------------------------------


def two_factor_required(user) -> bool:
    """Host staff (and anyone with admin rights) must use a second factor when the setting is
    on; partner users may choose to."""
    if not settings.TWO_FACTOR_REQUIRED_FOR_HOST:
        return False
    return is_host(user) or user.is_staff or user.is_superuser


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
    redirects there. Must come after django_otp's OTPMiddleware and django-htmx's middleware."""

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
            if request.htmx:
                # The browser loads the page, rather than swapping it into a panel.
                return HttpResponseClientRedirect(url)
            if request.method == "GET":
                url += "?" + urlencode({REDIRECT_FIELD_NAME: request.get_full_path()})
            return HttpResponseRedirect(url)
        return self.get_response(request)


# ---- Pages: security settings, TOTP set-up, verification, removal ------------------------


class TwoFactorCodeForm(forms.Form):
    # A numeric keypad on phones and the one-time-code autofill of the browser.
    token = forms.CharField(label="Six-digit code", max_length=12, widget=forms.TextInput(attrs={
        "class": "input-code", "inputmode": "numeric", "autocomplete": "one-time-code",
        "spellcheck": "false"}))

    def clean_token(self) -> str:
        token = re.sub(r"\s", "", self.cleaned_data["token"])
        if not re.fullmatch(r"[0-9]{6}", token):
            raise forms.ValidationError("Enter the six digits your authenticator app shows.")
        return token


class TwoFactorVerifyForm(TwoFactorCodeForm):
    # The code is all the log-in step asks for: the cursor starts in it.
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["token"].widget.attrs["autofocus"] = True


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
    return _render_security(request, TwoFactorCodeForm())


def _render_security(request: HttpRequest, remove_form: TwoFactorCodeForm, status: int = 200):
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

    form = TwoFactorCodeForm(request.POST or None)
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

    form = TwoFactorVerifyForm(request.POST or None)
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

    form = TwoFactorCodeForm(request.POST)
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
