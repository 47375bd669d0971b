"""Sessions: a new key at log-in, an idle time-out renewed by each request, an absolute
time-out after log-in, and cookies that are secure in production."""

import datetime as dt
import time

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from partnerships.middleware import LOGIN_AT_SESSION_KEY
from partnerships.models import AuditAction, AuditEvent

from .conftest import log_in

pytestmark = pytest.mark.django_db


def session_key(client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def test_log_in_gives_a_new_session_key_and_keeps_nothing_of_the_old_key(client, host_manager):
    session = client.session
    session["before_login"] = "anonymous visit"
    session.save()
    anonymous_key = session_key(client)

    response = log_in(client, "manager", "pw-manager")

    assert response.status_code == 302
    assert session_key(client) != anonymous_key
    assert not Session.objects.filter(session_key=anonymous_key).exists()
    assert SESSION_KEY in client.session


def test_log_in_stamps_the_session_with_its_start(client, host_manager):
    before = int(time.time())
    log_in(client, "manager", "pw-manager")

    assert before <= client.session[LOGIN_AT_SESSION_KEY] <= int(time.time())


def test_idle_time_out_defaults_to_thirty_minutes_renewed_by_every_request():
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    assert settings.SESSION_ABSOLUTE_TIMEOUT == 12 * 3600


def test_each_request_pushes_the_idle_expiry_forward(client, host_manager):
    client.force_login(host_manager)
    key = session_key(client)
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() + dt.timedelta(minutes=1))

    assert client.get(reverse("home")).status_code == 200

    expiry = Session.objects.get(session_key=key).expire_date
    assert expiry > timezone.now() + dt.timedelta(minutes=29)


def test_idle_session_ends_and_the_next_page_asks_to_log_in(client, host_manager):
    client.force_login(host_manager)
    Session.objects.filter(session_key=session_key(client)).update(
        expire_date=timezone.now() - dt.timedelta(seconds=1))

    response = client.get(reverse("home"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def age_session(client, seconds: int) -> None:
    session = client.session
    session[LOGIN_AT_SESSION_KEY] = int(time.time()) - seconds
    session.save()


def test_absolute_time_out_logs_out_an_active_user(client, host_manager):
    client.force_login(host_manager)
    age_session(client, 12 * 3600 + 1)

    response = client.get(reverse("scoring_runs"), REMOTE_ADDR="203.0.113.5")

    assert response.status_code == 302
    assert response.url == reverse("login") + "?next=" + reverse("scoring_runs")
    assert SESSION_KEY not in client.session
    event = AuditEvent.objects.filter(action=AuditAction.LOGOUT).get()
    assert (event.username, event.ip_address) == ("manager", "203.0.113.5")
    assert event.detail == {"reason": "absolute_timeout"}
    page = client.get(response.url)
    assert "Your session has expired" in page.content.decode()


def test_session_younger_than_the_absolute_time_out_goes_on(client, host_manager, settings):
    settings.SESSION_ABSOLUTE_TIMEOUT = 60
    client.force_login(host_manager)
    age_session(client, 50)
    assert client.get(reverse("home")).status_code == 200

    age_session(client, 61)
    assert client.get(reverse("home")).status_code == 302


def test_absolute_time_out_of_an_htmx_request_reloads_the_page_on_the_log_in(
    client, host_manager
):
    client.force_login(host_manager)
    age_session(client, 12 * 3600 + 1)

    response = client.get(reverse("scoring_runs"), HTTP_HX_REQUEST="true")

    assert response.headers["HX-Redirect"] == reverse("login")


def test_session_without_a_start_gets_one_rather_than_ending(client, host_manager):
    client.force_login(host_manager)
    session = client.session
    del session[LOGIN_AT_SESSION_KEY]
    session.save()

    assert client.get(reverse("home")).status_code == 200
    assert isinstance(client.session[LOGIN_AT_SESSION_KEY], int)


def test_password_validators_are_on():
    names = {v["NAME"].rsplit(".", 1)[-1] for v in settings.AUTH_PASSWORD_VALIDATORS}
    assert {"MinimumLengthValidator", "CommonPasswordValidator",
            "UserAttributeSimilarityValidator", "NumericPasswordValidator"} <= names
