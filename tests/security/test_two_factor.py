"""Two-factor authentication (TOTP): required for host staff when TWO_FACTOR_REQUIRED_FOR_HOST
is on, optional for partner users, asked at every log-in once a device is set up."""

import re
from base64 import b32decode
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import SESSION_KEY
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from partnerships.models import AuditAction, AuditEvent

from .conftest import (
    ADDRESS,
    confirmed_device,
    log_in,
    secret_key,
    totp_code,
    wrong_code,
)

pytestmark = pytest.mark.django_db

SETUP = reverse("two_factor_setup")
VERIFY = reverse("two_factor_verify")
HOME = reverse("home")


def page_secret(response) -> bytes:
    match = re.search(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)<', response.content.decode())
    assert match, "the set-up page shows the key as text"
    return secret_key(match.group(1))


def set_up(client, *, next_url: str = "") -> bytes:
    key = page_secret(client.get(SETUP))
    response = client.post(SETUP, {"token": totp_code(key), "next": next_url},
                           REMOTE_ADDR=ADDRESS)
    assert response.status_code == 302, response.content.decode()
    return key


@pytest.fixture
def no_throttle(settings):
    """django-otp delays a device after a wrong code; tests that follow one with the right
    code switch the delay off (the throttling test below keeps it)."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


# ---- Host staff: forced set-up ------------------------------------------------------------


def test_host_manager_is_sent_to_set_up_after_the_password(client, host_manager, two_factor_on):
    response = log_in(client, "manager", "pw-manager")
    assert response.status_code == 302 and response.url == HOME

    home = client.get(HOME)

    assert home.status_code == 302
    assert home.url == SETUP + "?next=%2F"


@pytest.mark.parametrize("url_name", ["home", "scoring_runs", "account_security", "admin:index"])
def test_host_manager_without_a_device_reaches_no_page_but_set_up(
    client, host_manager, two_factor_on, url_name
):
    host_manager.is_staff = True
    host_manager.save()
    client.force_login(host_manager)

    response = client.get(reverse(url_name))

    assert response.status_code == 302
    assert response.url.startswith(SETUP)


def test_pending_user_can_still_log_out_and_load_static_files(client, host_manager,
                                                              two_factor_on):
    client.force_login(host_manager)

    assert client.get("/static/css/app.css").status_code == 200
    response = client.post(reverse("logout"))
    assert response.status_code == 302 and response.url == reverse("login")
    assert SESSION_KEY not in client.session


def test_set_up_page_shows_the_key_as_text_uri_and_inline_svg_qr(client, host_manager,
                                                                  two_factor_on):
    client.force_login(host_manager)

    response = client.get(SETUP)
    html = response.content.decode()

    key = page_secret(response)
    assert len(key) == 20
    uri = re.search(r'id="otpauth-uri">([^<]+)<', html).group(1).replace("&amp;", "&")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path == "/Partnership%20Performance%3Amanager"
    query = parse_qs(parts.query)
    assert b32decode(query["secret"][0]) == key
    assert query["issuer"] == ["Partnership Performance"]
    assert re.search(r'<svg role="img" viewBox="[^"]+" class="qr-code"><title>', html)
    assert "<script" not in html.split("</head>")[1]
    # The same key until it is confirmed (a reload must not invalidate the scanned code).
    assert page_secret(client.get(SETUP)) == key
    assert not TOTPDevice.objects.exists()


def test_set_up_with_the_code_from_the_key_turns_it_on_and_opens_home(
    client, host_manager, two_factor_on
):
    client.force_login(host_manager)
    key_before = client.cookies["sessionid"].value
    key = page_secret(client.get(SETUP))

    response = client.post(SETUP, {"token": totp_code(key), "next": "/scoring/runs/"},
                           REMOTE_ADDR=ADDRESS)

    assert response.status_code == 302 and response.url == "/scoring/runs/"
    device = TOTPDevice.objects.get(user=host_manager)
    assert device.confirmed and device.bin_key == key
    assert client.cookies["sessionid"].value != key_before
    assert client.get(HOME).status_code == 200
    event = AuditEvent.objects.get(action=AuditAction.TWO_FACTOR)
    assert (event.user, event.ip_address, event.detail) == (
        host_manager, ADDRESS, {"event": "device_confirmed"})


def test_set_up_with_the_previous_periods_code_records_no_clock_drift(
    client, host_manager, two_factor_on
):
    # A user who types the code as its 30 seconds run out: accepted, and no reason to believe
    # their clock is behind (a drift of -1 would refuse the next period's code later).
    client.force_login(host_manager)
    key = page_secret(client.get(SETUP))
    assert client.post(SETUP, {"token": totp_code(key, steps_ahead=-1)}).status_code == 302
    assert TOTPDevice.objects.get().drift == 0
    client.post(reverse("logout"))

    log_in(client, "manager", "pw-manager")
    assert client.post(VERIFY, {"token": totp_code(key, steps_ahead=1)}).status_code == 302


def test_set_up_refuses_a_wrong_code(client, host_manager, two_factor_on):
    client.force_login(host_manager)
    key = page_secret(client.get(SETUP))

    response = client.post(SETUP, {"token": wrong_code(key)})

    assert response.status_code == 200
    assert "That code did not match" in response.content.decode()
    assert not TOTPDevice.objects.exists()
    assert client.get(HOME).status_code == 302


@pytest.mark.parametrize("token", ["", "12345", "1234567", "abcdef"])
def test_set_up_refuses_what_is_not_six_digits(client, host_manager, two_factor_on, token):
    client.force_login(host_manager)
    client.get(SETUP)

    response = client.post(SETUP, {"token": token})

    assert response.status_code == 200
    assert not TOTPDevice.objects.exists()


def test_set_up_ignores_a_next_url_on_another_site(client, host_manager, two_factor_on):
    client.force_login(host_manager)
    key = page_secret(client.get(SETUP))

    response = client.post(SETUP, {"token": totp_code(key), "next": "https://evil.example/"})

    assert response.url == HOME


def test_with_the_setting_off_host_manager_is_not_forced(client, host_manager, settings):
    assert settings.TWO_FACTOR_REQUIRED_FOR_HOST is False  # tests import settings with DEBUG on
    log_in(client, "manager", "pw-manager")

    assert client.get(HOME).status_code == 200


# ---- Later log-ins: the code before any page ---------------------------------------------


def test_later_log_in_asks_for_the_code_before_any_page(client, host_manager, two_factor_on):
    confirmed_device(host_manager)
    log_in(client, "manager", "pw-manager")

    for url in (HOME, reverse("scoring_runs"), reverse("account_security")):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(VERIFY)
    # A second device cannot be added before the first one's code is given.
    assert client.get(SETUP).url == VERIFY
    assert client.get(VERIFY).status_code == 200


def test_verify_with_the_right_code_opens_the_site_with_a_new_session_key(
    client, host_manager, two_factor_on
):
    device = confirmed_device(host_manager)
    log_in(client, "manager", "pw-manager")
    key_before = client.cookies["sessionid"].value

    response = client.post(VERIFY, {"token": totp_code(device.bin_key), "next": "/scoring/runs/"})

    assert response.status_code == 302 and response.url == "/scoring/runs/"
    assert client.cookies["sessionid"].value != key_before
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get(HOME).status_code == 200


def test_verify_refuses_a_wrong_code_and_audits_it(client, host_manager, two_factor_on,
                                                   no_throttle):
    device = confirmed_device(host_manager)
    log_in(client, "manager", "pw-manager")

    response = client.post(VERIFY, {"token": wrong_code(device.bin_key)}, REMOTE_ADDR=ADDRESS)

    assert response.status_code == 200
    assert "That code did not match" in response.content.decode()
    assert client.get(HOME).status_code == 302
    event = AuditEvent.objects.get(action=AuditAction.LOGIN_FAILED)
    assert (event.user, event.ip_address) == (host_manager, ADDRESS)
    assert event.detail == {"factor": "totp", "throttled": False}
    # The right code still works afterwards.
    assert client.post(VERIFY, {"token": totp_code(device.bin_key)}).status_code == 302


def test_after_a_wrong_code_the_device_is_throttled_for_a_moment(client, host_manager,
                                                                 two_factor_on):
    device = confirmed_device(host_manager)
    log_in(client, "manager", "pw-manager")
    client.post(VERIFY, {"token": wrong_code(device.bin_key)})

    response = client.post(VERIFY, {"token": totp_code(device.bin_key)})

    assert response.status_code == 200
    assert "Too many wrong codes" in response.content.decode()
    assert client.get(HOME).status_code == 302


def test_a_code_cannot_be_used_twice(client, host_manager, two_factor_on):
    device = confirmed_device(host_manager)
    code = totp_code(device.bin_key)
    log_in(client, "manager", "pw-manager")
    assert client.post(VERIFY, {"token": code}).status_code == 302
    client.post(reverse("logout"))

    log_in(client, "manager", "pw-manager")
    response = client.post(VERIFY, {"token": code})

    assert response.status_code == 200
    assert client.get(HOME).status_code == 302


def test_htmx_request_while_pending_reloads_the_page_on_verify(client, host_manager,
                                                               two_factor_on):
    confirmed_device(host_manager)
    client.force_login(host_manager)

    response = client.get(reverse("scoring_runs"), HTTP_HX_REQUEST="true")

    assert response.headers["HX-Redirect"] == VERIFY


# ---- Partner users: optional -------------------------------------------------------------


def test_partner_viewer_is_not_forced_to_set_up(client, acme_viewer, two_factor_on):
    log_in(client, "acme-viewer", "pw-acme-viewer")

    assert client.get(HOME).status_code == 200


def test_header_links_to_the_security_page(client, acme_viewer):
    client.force_login(acme_viewer)

    assert f'href="{reverse("account_security")}"' in client.get(HOME).content.decode()


def test_partner_viewer_turns_it_on_and_is_then_asked_at_log_in(client, acme_viewer,
                                                                 two_factor_on):
    log_in(client, "acme-viewer", "pw-acme-viewer")
    page = client.get(reverse("account_security")).content.decode()
    assert "Off" in page and f'href="{SETUP}"' in page

    key = set_up(client)
    assert "On" in client.get(reverse("account_security")).content.decode()
    client.post(reverse("logout"))

    log_in(client, "acme-viewer", "pw-acme-viewer")
    assert client.get(HOME).url.startswith(VERIFY)
    assert client.post(VERIFY, {"token": totp_code(key, steps_ahead=1)}).status_code == 302
    assert client.get(HOME).status_code == 200


def test_partner_viewer_turns_it_off_with_a_current_code(client, acme_viewer, two_factor_on):
    client.force_login(acme_viewer)
    key = set_up(client)

    response = client.post(reverse("two_factor_remove"),
                           {"token": totp_code(key, steps_ahead=1)}, REMOTE_ADDR=ADDRESS)

    assert response.status_code == 302
    assert not TOTPDevice.objects.exists()
    events = AuditEvent.objects.filter(action=AuditAction.TWO_FACTOR).order_by("id")
    assert [e.detail["event"] for e in events] == ["device_confirmed", "device_removed"]
    assert events.last().ip_address == ADDRESS
    assert client.get(HOME).status_code == 200


def test_turning_it_off_needs_a_valid_code(client, acme_viewer, two_factor_on):
    client.force_login(acme_viewer)
    key = set_up(client)

    response = client.post(reverse("two_factor_remove"), {"token": wrong_code(key)})

    assert response.status_code == 400
    assert TOTPDevice.objects.count() == 1


def test_host_staff_cannot_turn_off_a_required_second_factor(client, host_manager,
                                                             two_factor_on):
    client.force_login(host_manager)
    key = set_up(client)

    response = client.post(reverse("two_factor_remove"), {"token": totp_code(key, steps_ahead=1)})

    assert response.status_code == 302
    assert TOTPDevice.objects.count() == 1
    assert not AuditEvent.objects.filter(detail__event="device_removed").exists()
