"""Sending once, honouring preferences, the unsubscribe headers, and the action alerts."""

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from partnerships.alerts import action_alerts_send
from partnerships.mail import mail_send_once, mail_send_once_each
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
