"""Log-in throttling (django-axes): the pair user name + address is locked after 5 failures,
nobody learns from the answers whether a user name exists, and every attempt is audited."""

import datetime as dt
import re

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.urls import reverse
from django.utils import timezone

from partnerships.models import AuditAction, AuditEvent

from .conftest import ADDRESS, OTHER_ADDRESS, log_in

LOCKED = "Too many failed log-in attempts. Please try again later."
WRONG = "Please enter a correct username and password."

pytestmark = pytest.mark.django_db


def fail(client, username: str, times: int, address: str = ADDRESS) -> list:
    return [log_in(client, username, "wrong-password", address) for _ in range(times)]


def logged_in(client) -> bool:
    return SESSION_KEY in client.session


def normalised(response, username: str) -> tuple[int, str]:
    """Status and page with the per-response secrets (CSRF token, CSP nonce) and the typed user
    name blanked out: what is left must not depend on whether the user exists."""
    html = response.content.decode()
    html = re.sub(r'nonce="[^"]*"', 'nonce=""', html)
    html = re.sub(r"[A-Za-z0-9]{64}", "TOKEN", html)
    return response.status_code, html.replace(username, "USERNAME")


def test_settings_lock_the_pair_of_user_name_and_address_after_five_failures():
    assert settings.AUTHENTICATION_BACKENDS[0].startswith("axes.backends.")
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"


def test_four_failures_answer_wrong_password_and_the_fifth_locks(client, host_manager):
    responses = fail(client, "manager", 5)

    assert [r.status_code for r in responses] == [200, 200, 200, 200, 429]
    assert all(WRONG in r.content.decode() for r in responses[:4])
    assert LOCKED in responses[4].content.decode()


def test_locked_pair_is_refused_even_with_the_right_password(client, host_manager):
    fail(client, "manager", 5)

    response = log_in(client, "manager", "pw-manager")

    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert not logged_in(client)


def test_same_user_from_another_address_still_logs_in(client, host_manager):
    fail(client, "manager", 5, address=ADDRESS)

    response = log_in(client, "manager", "pw-manager", address=OTHER_ADDRESS)

    assert response.status_code == 302
    assert response.url == reverse("home")
    assert logged_in(client)


def test_a_forged_forwarded_for_header_does_not_unlock(client, host_manager):
    fail(client, "manager", 5)

    response = log_in(client, "manager", "pw-manager", HTTP_X_FORWARDED_FOR=OTHER_ADDRESS)

    assert response.status_code == 429
    assert not logged_in(client)


def test_forged_forwarded_for_headers_do_not_spread_failures_over_addresses(client, host_manager):
    for n in range(5):
        log_in(client, "manager", "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")

    assert log_in(client, "manager", "pw-manager").status_code == 429


def test_unknown_user_name_gets_the_identical_answers(client, host_manager):
    known = [normalised(r, "manager") for r in fail(client, "manager", 6)]
    unknown = [normalised(r, "nobody-here") for r in fail(client, "nobody-here", 6)]

    assert known == unknown
    assert [status for status, _ in unknown] == [200, 200, 200, 200, 429, 429]


def test_locked_answer_is_the_same_for_right_and_wrong_password(client, host_manager):
    fail(client, "manager", 5)

    right = normalised(log_in(client, "manager", "pw-manager"), "manager")
    wrong = normalised(log_in(client, "manager", "still-wrong"), "manager")

    assert right == wrong


def test_success_before_the_limit_resets_the_count(client, host_manager):
    fail(client, "manager", 4)
    assert log_in(client, "manager", "pw-manager").status_code == 302
    client.post(reverse("logout"))

    assert [r.status_code for r in fail(client, "manager", 4)] == [200] * 4


def test_failures_and_lock_out_are_audited_with_name_as_typed_and_address(client, host_manager):
    fail(client, "Manager ", 1)
    fail(client, "manager", 5)
    log_in(client, "manager", "pw-manager")

    failed = AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).order_by("id")
    locked = AuditEvent.objects.filter(action=AuditAction.LOCKED_OUT).order_by("id")
    assert [e.username for e in failed] == ["Manager"] + ["manager"] * 6
    assert {e.ip_address for e in failed} == {ADDRESS}
    assert all(e.user is None for e in failed)
    # The fifth failure locks; the attempt with the right password while locked is refused.
    assert [(e.username, e.ip_address) for e in locked] == [("manager", ADDRESS)] * 2
    assert not AuditEvent.objects.filter(action=AuditAction.LOGIN).exists()


def test_login_and_logout_are_audited_with_address(client, host_manager):
    log_in(client, "manager", "pw-manager")
    client.post(reverse("logout"), REMOTE_ADDR=ADDRESS)

    events = list(AuditEvent.objects.order_by("id").values_list(
        "action", "user__username", "username", "ip_address"))
    assert events == [
        (AuditAction.LOGIN, "manager", "manager", ADDRESS),
        (AuditAction.LOGOUT, "manager", "manager", ADDRESS),
    ]
    assert AuditEvent.objects.get(action=AuditAction.LOGOUT).detail == {"reason": "user"}


def test_trusted_proxy_supplies_the_client_address(client, host_manager, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    # From the proxy: the right-most address it did not add itself is the client; what the
    # client wrote further left (a forged entry) is not used.
    log_in(client, "manager", "wrong", address="10.0.0.2",
           HTTP_X_FORWARDED_FOR=f"192.0.2.66, {OTHER_ADDRESS}, 10.0.0.9")
    # Not from the proxy: the header is ignored.
    log_in(client, "manager", "wrong", address=ADDRESS, HTTP_X_FORWARDED_FOR="192.0.2.77")

    addresses = list(AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED)
                     .order_by("id").values_list("ip_address", flat=True))
    assert addresses == [OTHER_ADDRESS, ADDRESS]


def test_lock_out_after_the_cool_off_is_lifted(client, host_manager, settings):
    fail(client, "manager", 5)
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - dt.timedelta(seconds=1))

    assert log_in(client, "manager", "pw-manager").status_code == 302
