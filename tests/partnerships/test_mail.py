"""Sending once, honouring preferences, the unsubscribe headers, and the action alerts."""

import datetime as dt
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.utils import timezone

from partnerships.alerts import action_alerts_send
from partnerships.mail import MAIL_CLAIM_STALE, MailNotSent, mail_send_once, mail_send_once_each
from partnerships.mail_preferences import (
    UnsubscribeRefused,
    mail_preferences_save,
    mail_unsubscribe,
    unsubscribe_read,
    unsubscribe_token,
)
from partnerships.models import ActionItem, MailPreference, Role, SentMessage
from partnerships.tasks import mail_action_alerts
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = "https://pp.example.org"


def addressed(user):
    user.email = f"{user.username}@example.com"
    user.save()
    return user


def send(user, *, kind="digest", key="2026-W19"):
    return mail_send_once(kind=kind, key=key, user=user, subject="Your week",
                          template="mail/digest", context={"week": "2026-W19", "moves": []})


def test_a_message_goes_once_per_kind_key_and_user(acme_viewer):
    addressed(acme_viewer)
    assert send(acme_viewer).sent
    assert send(acme_viewer).reason == "already sent"
    assert send(acme_viewer, key="2026-W20").sent
    assert len(mail.outbox) == 2
    assert SentMessage.objects.filter(user=acme_viewer, sent_at__isnull=False).count() == 2


def test_nothing_goes_to_a_user_who_turned_it_off_an_inactive_one_or_one_without_address(
        acme_viewer, globex_viewer, django_user_model, acme):
    addressed(acme_viewer)
    mail_preferences_save(user=acme_viewer, digest=False)
    assert send(acme_viewer).reason == "turned off"
    assert send(acme_viewer, kind="at_risk").sent  # only the digest is off
    assert send(globex_viewer).reason == "no address"
    gone = addressed(make_user(django_user_model, "gone", Role.PARTNER_VIEWER, acme))
    gone.is_active = False
    gone.save()
    assert send(gone).reason == "inactive"
    assert not SentMessage.objects.filter(kind="digest").exists()


def test_every_message_carries_its_one_click_unsubscribe(acme_viewer):
    addressed(acme_viewer)
    send(acme_viewer, kind="dispute_opened")
    (message,) = mail.outbox
    link = message.extra_headers["List-Unsubscribe"].strip("<>")
    assert link.startswith("https://pp.example.org/email/unsubscribe/")
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"Unsubscribe from dispute e-mail: {link}" in message.body
    html = message.alternatives[0][0]
    assert f'href="{link}"' in html
    # The dispute messages all share one switch.
    mail_unsubscribe(token=link.rstrip("/").rsplit("/", 1)[1])
    assert MailPreference.objects.get(user=acme_viewer).alert_dispute is False
    assert send(acme_viewer, kind="dispute_resolved").reason == "turned off"


def test_unsubscribe_tokens_name_one_user_and_one_switch(acme_viewer, settings):
    token = unsubscribe_token(user=acme_viewer, kind="review_overdue")
    read = unsubscribe_read(token=token)
    assert (read.user, read.field, read.name) == (
        acme_viewer, "alert_review_overdue", "overdue review alerts")
    settings.MAIL_UNSUBSCRIBE_MAX_AGE_DAYS = 0
    with pytest.raises(UnsubscribeRefused) as refused:
        unsubscribe_read(token=token)
    assert refused.value.state == "expired"
    acme_viewer.delete()
    settings.MAIL_UNSUBSCRIBE_MAX_AGE_DAYS = 60
    with pytest.raises(UnsubscribeRefused) as refused:
        unsubscribe_read(token=token)
    assert refused.value.state == "invalid"


def test_send_once_each_tells_only_what_was_not_told(acme_viewer):
    addressed(acme_viewer)

    def context(keys):
        return {"rows": [], "keys": keys}

    told = []
    outcome = mail_send_once_each(
        kind="review_overdue", keys=["1:2026-04-03", "2:2026-04-04"], user=acme_viewer,
        template="mail/review_overdue", subject=lambda keys: told.append(keys) or "Overdue",
        context=context)
    assert outcome.sent
    again = mail_send_once_each(
        kind="review_overdue", keys=["2:2026-04-04", "3:2026-04-05"], user=acme_viewer,
        template="mail/review_overdue", subject=lambda keys: told.append(keys) or "Overdue",
        context=context)
    assert again.sent and told == [["1:2026-04-03", "2:2026-04-04"], ["3:2026-04-05"]]
    assert mail_send_once_each(
        kind="review_overdue", keys=["1:2026-04-03"], user=acme_viewer,
        template="mail/review_overdue", subject=lambda keys: "Overdue",
        context=context).reason == "already sent"
    assert SentMessage.objects.filter(subject="Overdue").count() == 3


# ---- A hand-over that failed: sent by a later call, still once -------------------------------


@contextmanager
def mail_refused(settings) -> Iterator[None]:
    """Within: the default mailer points at a port where nothing listens, so every hand-over
    is refused; after: the mailer as it was (the SMTP server of the test)."""
    working = settings.MAILERS
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # bound but never listening: connections are refused
        settings.MAILERS = {"default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": bound.getsockname()[1], "timeout": 5},
        }}
        try:
            yield
        finally:
            settings.MAILERS = working


def test_a_refused_message_is_recorded_then_sent_by_the_next_call_once(
        smtp_server, settings, acme_viewer):
    addressed(acme_viewer)
    with mail_refused(settings):
        refused = send(acme_viewer)
    assert not refused.sent and refused.reason
    row = SentMessage.objects.get(user=acme_viewer, kind="digest")
    assert row.sent_at is None and row.error == refused.reason
    assert smtp_server.messages == []
    # The server takes mail again: the next call takes the row over and sends it.
    assert send(acme_viewer).sent
    (arrived,) = smtp_server.to("acme-viewer@example.com")
    assert arrived["Subject"] == "Your week"
    row.refresh_from_db()
    assert row.sent_at is not None and row.error == ""
    # Sent once: a third call sends nothing.
    assert send(acme_viewer).reason == "already sent"
    assert len(smtp_server.messages) == 1


def test_send_once_each_sends_what_failed_with_what_is_new(smtp_server, settings, acme_viewer):
    addressed(acme_viewer)

    def each(keys):
        return mail_send_once_each(
            kind="review_overdue", keys=keys, user=acme_viewer, template="mail/review_overdue",
            subject=lambda taken: " ".join(taken), context=lambda taken: {"rows": []})

    with mail_refused(settings):
        assert not each(["1:2026-04-03"]).sent
    assert each(["1:2026-04-03", "2:2026-04-04"]).sent
    assert each(["1:2026-04-03", "2:2026-04-04"]).reason == "already sent"
    assert [m["Subject"] for m in smtp_server.messages] == ["1:2026-04-03 2:2026-04-04"]


def test_a_message_being_sent_is_left_to_its_sender_until_it_is_stale(acme_viewer):
    addressed(acme_viewer)
    # Claimed by a sender that has neither sent it nor failed yet: it may be sending now.
    claimed = SentMessage.objects.create(kind="digest", key="2026-W19", user=acme_viewer,
                                         email=acme_viewer.email)
    assert send(acme_viewer).reason == "already sent"
    # Left that way for longer than any hand-over takes: its sender died; taken over.
    SentMessage.objects.filter(pk=claimed.pk).update(
        created_at=timezone.now() - MAIL_CLAIM_STALE - dt.timedelta(seconds=1))
    assert send(acme_viewer).sent
    assert len(mail.outbox) == 1
    assert send(acme_viewer).reason == "already sent"


class SecondCallerDuringSend(EmailBackend):
    """Locmem mail, but while it hands a message over another caller tries the same one."""

    outcomes: list = []

    def send_messages(self, messages):
        user = SentMessage.objects.get(kind="digest").user
        self.outcomes.append(send(user))
        return super().send_messages(messages)


def test_a_failed_message_is_taken_over_by_one_caller_only(settings, acme_viewer):
    addressed(acme_viewer)
    SentMessage.objects.create(kind="digest", key="2026-W19", user=acme_viewer,
                               email=acme_viewer.email, error="Connection refused")
    settings.MAILERS = {"default": {"BACKEND": f"{__name__}.SecondCallerDuringSend"}}
    SecondCallerDuringSend.outcomes = []
    assert send(acme_viewer).sent
    # The second caller came while the first was sending the message it took over.
    assert [outcome.reason for outcome in SecondCallerDuringSend.outcomes] == ["already sent"]
    assert len(mail.outbox) == 1


class Refusing(EmailBackend):
    """Locmem mail whose first `refusals` hand-overs are refused (a mail server restarting)."""

    refusals = 0
    attempts = 0

    def send_messages(self, messages):
        type(self).attempts += 1
        if type(self).attempts <= self.refusals:
            raise ConnectionRefusedError(111, "Connection refused")
        return super().send_messages(messages)


@pytest.fixture
def refusing(settings):
    """The Refusing mailer, and tasks that run their retries in-process at once (an eager task
    retries only when its errors are not raised to its caller straight away)."""
    from config.celery import app

    previous = app.conf.task_eager_propagates
    app.conf.task_eager_propagates = False
    settings.MAILERS = {"default": {"BACKEND": f"{__name__}.Refusing"}}
    Refusing.attempts = 0
    yield Refusing
    app.conf.task_eager_propagates = previous


def test_an_alert_task_retries_what_failed_and_sends_nothing_twice(
        refusing, acme_viewer, host_manager, acme_agreement):
    addressed(acme_viewer)
    addressed(host_manager)
    for side in ("partner", "host"):
        ActionItem.objects.create(agreement=acme_agreement, description=f"For the {side}",
                                  owner_name="Sam", owner_side=side, due_date=dt.date(2026, 6, 1))
    refusing.refusals = 1
    # As beat runs it: the first message is refused, the other sent; the retry sends the first.
    assert mail_action_alerts.delay().get() == 1
    assert refusing.attempts == 3
    assert sorted(m.to[0] for m in mail.outbox) == ["acme-viewer@example.com",
                                                    "manager@example.com"]
    assert not SentMessage.objects.filter(sent_at__isnull=True).exists()
    assert mail_action_alerts.delay().get() == 0
    assert len(mail.outbox) == 2


def test_an_alert_task_gives_up_after_a_few_retries_and_the_next_scan_sends(
        refusing, acme_viewer, acme_agreement):
    addressed(acme_viewer)
    ActionItem.objects.create(agreement=acme_agreement, description="Homework",
                              owner_name="Sam", owner_side="partner",
                              due_date=dt.date(2026, 6, 1))
    refusing.refusals = 100
    with pytest.raises(MailNotSent):
        mail_action_alerts.delay().get()
    assert refusing.attempts == 1 + mail_action_alerts.max_retries
    row = SentMessage.objects.get(kind="action")
    assert row.sent_at is None and row.error
    refusing.refusals = 0
    assert mail_action_alerts.delay().get() == 1
    assert len(mail.outbox) == 1


# ---- Actions assigned to a side ----------------------------------------------------------------


@pytest.fixture
def action_people(host_manager, acme_viewer, globex_viewer, django_user_model, acme):
    return {"manager": addressed(host_manager), "acme": addressed(acme_viewer),
            "globex": addressed(globex_viewer)}


def test_an_action_is_told_to_its_sides_users_of_that_agreement_once(
        action_people, acme_agreement, globex_agreement):
    for description, side in (("Send the logo files", "partner"), ("Pay the invoice", "host")):
        ActionItem.objects.create(agreement=acme_agreement, description=description,
                                  owner_name="Sam", owner_side=side, due_date=dt.date(2026, 6, 1))
    ActionItem.objects.create(agreement=globex_agreement, description="Globex homework",
                              owner_name="Kim", owner_side="partner",
                              due_date=dt.date(2026, 6, 1))
    assert mail_action_alerts.delay().get() == 3  # as beat runs it
    (acme,) = [m for m in mail.outbox if m.to == ["acme-viewer@example.com"]]
    assert acme.subject == "New action for your side: ACME-CM-2025, due 2026-06-01"
    assert "- Send the logo files - Sam (responsible), due 2026-06-01" in acme.body
    assert "Pay the invoice" not in acme.body and "Globex" not in acme.body
    assert "https://pp.example.org/agreements/ACME-CM-2025/reviews/" in acme.body
    (host,) = [m for m in mail.outbox if m.to == ["manager@example.com"]]
    assert "Pay the invoice" in host.body and "Send the logo files" not in host.body
    (globex,) = [m for m in mail.outbox if m.to == ["globex-viewer@example.com"]]
    assert "Globex homework" in globex.body and "Acme" not in globex.body
    # The scan runs again: nothing new to tell.
    assert action_alerts_send() == 0
    assert len(mail.outbox) == 3
    # Reassigned to the other side: that side hears of it.
    action = ActionItem.objects.get(description="Pay the invoice")
    action.owner_side = "partner"
    action.save()
    assert action_alerts_send() == 1
    assert mail.outbox[-1].to == ["acme-viewer@example.com"]


def test_old_done_and_unwanted_actions_are_not_told(action_people, acme_agreement):
    ActionItem.objects.create(agreement=acme_agreement, description="Finished",
                              owner_name="Sam", owner_side="partner", status="done",
                              due_date=dt.date(2026, 6, 1))
    old = ActionItem.objects.create(agreement=acme_agreement, description="Old one",
                                    owner_name="Sam", owner_side="partner",
                                    due_date=dt.date(2026, 6, 1))
    ActionItem.objects.filter(pk=old.pk).update(
        updated_at=timezone.now() - dt.timedelta(days=3))
    assert action_alerts_send() == 0
    ActionItem.objects.create(agreement=acme_agreement, description="New one",
                              owner_name="Sam", owner_side="partner",
                              due_date=dt.date(2026, 6, 1))
    mail_preferences_save(user=action_people["acme"], alert_action=False)
    assert action_alerts_send() == 0
