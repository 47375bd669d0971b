"""Request-level hardening, before any view runs: the client's address behind a trusted proxy,
and the absolute lifetime of a session after log-in.

Two-factor enforcement is `partnerships.two_factor.TwoFactorMiddleware`.
"""

import functools
import ipaddress
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

# Stamped on the session at log-in (partnerships.security.on_user_logged_in).
LOGIN_AT_SESSION_KEY = "login_at"


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


# ---- Session lifetime -----------------------------------------------------------------------


class SessionLifetimeMiddleware:
    """Logs a user out SESSION_ABSOLUTE_TIMEOUT seconds after log-in, however active they are.
    (The idle time-out is Django's own: SESSION_COOKIE_AGE with SESSION_SAVE_EVERY_REQUEST.)
    Must come after the messages middleware (they say why a session ended) and django-htmx's."""

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
                if request.htmx:
                    # The browser loads the log-in page, rather than swap it into a panel.
                    return HttpResponseClientRedirect(resolve_url(settings.LOGIN_URL))
                return redirect_to_login(request.get_full_path() if request.method == "GET"
                                         else reverse("home"))
        return self.get_response(request)
