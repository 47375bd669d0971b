"""Forgotten passwords: a one-time link by e-mail (read from a real SMTP server), the same
answer whether the address has an account or not, and a throttle on repeated requests."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from partnerships.models import AuditAction, AuditEvent, Role
from tests.conftest import make_user

pytestmark = pytest.mark.django_db
URL = "/account/password-reset/"


@pytest.fixture
def member(django_user_model):
    user = make_user(django_user_model, "dana", Role.HOST_MANAGER)
    user.email = "dana@example.com"
    user.save()
    return user


@pytest.fixture
def ask(django_capture_on_commit_callbacks):
    """Post the form as a browser would; the e-mail task queued at commit runs."""

    def post(email: str, address: str = "203.0.113.5"):
        with django_capture_on_commit_callbacks(execute=True):
            return Client().post(URL, {"email": email}, REMOTE_ADDR=address)

    return post


def link_in(message) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    return re.search(r"https?://\S+/account/password-reset/\S+/\S+/", text).group(0)


def test_the_log_in_page_links_to_the_forgotten_password_page():
    page = Client().get(reverse("login")).text
    assert f'href="{URL}"' in page
    assert Client().get(URL).status_code == 200


def test_a_known_address_gets_a_link_that_sets_a_new_password_once(
        member, smtp_server, ask):
    response = ask("Dana@Example.com")

    assert response.status_code == 302 and response["Location"] == "/account/password-reset/sent/"
    [message] = smtp_server.to("dana@example.com")
    assert "new password" in message["Subject"]
    html = message.get_body(preferencelist=("html",)).get_content()
    link = link_in(message)
    assert link.startswith("http://testserver/")
    assert link in html  # the HTML part carries the same link
    path = link.removeprefix("http://testserver")

    client = Client()
    form = client.get(path, follow=True)
    assert "Choose a new password" in form.text
    done = client.post(form.redirect_chain[-1][0], {"new_password1": "a-Long-new-pass-42",
                                                    "new_password2": "a-Long-new-pass-42"})
    assert done.status_code == 302 and done["Location"] == "/account/password-reset/done/"
    member.refresh_from_db()
    assert member.check_password("a-Long-new-pass-42")
    assert AuditEvent.objects.filter(action=AuditAction.PASSWORD_RESET, user=member).exists()
    # The link worked once.
    again = Client().get(path, follow=True)
    assert "This link no longer works" in again.text


def test_an_unknown_address_gets_the_same_answer_and_no_mail(member, smtp_server, ask):
    known, unknown = ask("dana@example.com"), ask("nobody@example.com")

    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    sent = Client().get(known["Location"]).text
    assert "If the address you entered belongs to an account" in sent
    assert smtp_server.to("nobody@example.com") == []
    assert len(smtp_server.messages) == 1
    assert AuditEvent.objects.filter(action=AuditAction.PASSWORD_RESET_REQUESTED).count() == 2


def test_repeated_requests_are_throttled_with_the_same_answer(
        member, smtp_server, ask, settings):
    settings.PASSWORD_RESET_PER_EMAIL_PER_HOUR = 2
    answers = [ask("dana@example.com", address=f"198.51.100.{n}") for n in range(4)]

    assert {(a.status_code, a["Location"]) for a in answers} == {
        (302, "/account/password-reset/sent/")}
    assert len(smtp_server.to("dana@example.com")) == 2
    throttled = AuditEvent.objects.filter(action=AuditAction.PASSWORD_RESET_REQUESTED,
                                          detail__throttled=True)
    assert throttled.count() == 2


def test_one_client_asking_for_many_addresses_is_throttled(
        member, smtp_server, ask, settings):
    settings.PASSWORD_RESET_PER_CLIENT_PER_HOUR = 3
    for n in range(5):
        ask(f"someone{n}@example.com")
    ask("dana@example.com")

    assert smtp_server.to("dana@example.com") == []  # the client had used up its requests


def test_an_inactive_account_gets_no_link(member, smtp_server, ask):
    member.is_active = False
    member.save()
    ask("dana@example.com")
    assert smtp_server.messages == []
