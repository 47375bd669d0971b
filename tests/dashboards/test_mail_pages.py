"""The e-mail settings page and the one-click unsubscribe link (valid, expired, tampered)."""

import time

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse

from partnerships.mail_preferences import UNSUBSCRIBE_SALT, unsubscribe_token
from partnerships.models import AuditEvent, MailPreference

pytestmark = pytest.mark.django_db


def preference(user) -> MailPreference:
    return MailPreference.objects.get(user=user)


def test_account_page_shows_every_switch_on_by_default_and_saves_with_an_audit_event(
        client, acme_viewer):
    acme_viewer.email = "viewer@acme.example"
    acme_viewer.save()
    client.force_login(acme_viewer)
    page = client.get(reverse("account_mail")).text
    assert "Messages go to <strong>viewer@acme.example</strong>" in page
    for name in ("digest", "alert_at_risk", "alert_tier", "alert_action",
                 "alert_review_overdue", "alert_dispute"):
        assert f'name="{name}"' in page
    assert page.count("checked") == 6
    # Unchecked boxes are not sent: everything but the digest and tier alerts is turned off.
    response = client.post(reverse("account_mail"), {"digest": "on", "alert_tier": "on"})
    assert response.status_code == 302
    saved = preference(acme_viewer)
    assert (saved.digest, saved.alert_tier, saved.alert_at_risk, saved.alert_dispute) == (
        True, True, False, False)
    event = AuditEvent.objects.get(action="mail_preferences")
    assert event.user == acme_viewer
    assert event.detail["changes"]["alert_at_risk"] == [True, False]
    assert "Your e-mail settings are saved." in client.get(reverse("account_mail")).text
    # Saving the same again changes nothing and records nothing.
    client.post(reverse("account_mail"), {"digest": "on", "alert_tier": "on"})
    assert AuditEvent.objects.filter(action="mail_preferences").count() == 1


def test_security_page_links_to_the_email_settings(client, acme_viewer):
    client.force_login(acme_viewer)
    assert reverse("account_mail") in client.get(reverse("account_security")).text


def test_account_page_needs_signing_in(client):
    response = client.get(reverse("account_mail"))
    assert response.status_code == 302 and "/login/" in response.headers["Location"]


def test_unsubscribe_link_asks_then_turns_off_that_kind_only_without_signing_in(acme_viewer):
    client = Client(enforce_csrf_checks=True)
    url = reverse("mail_unsubscribe", args=[unsubscribe_token(user=acme_viewer, kind="digest")])
    page = client.get(url)
    assert page.status_code == 200
    assert "Stop receiving the weekly digest?" in page.text
    assert not MailPreference.objects.filter(user=acme_viewer).exists()
    done = client.post(url)
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    saved = preference(acme_viewer)
    assert saved.digest is False and saved.alert_at_risk is True
    event = AuditEvent.objects.get(action="mail_preferences")
    assert (event.user, event.detail["via"]) == (acme_viewer, "unsubscribe link")
    # A second click is harmless.
    assert client.post(url).status_code == 200
    assert AuditEvent.objects.filter(action="mail_preferences").count() == 1


def test_one_click_unsubscribe_of_rfc_8058(acme_viewer):
    client = Client(enforce_csrf_checks=True)
    url = reverse("mail_unsubscribe", args=[unsubscribe_token(user=acme_viewer, kind="tier")])
    response = client.post(url, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert preference(acme_viewer).alert_tier is False
    event = AuditEvent.objects.get(action="mail_preferences")
    assert event.detail["via"] == "one-click unsubscribe"


def test_expired_unsubscribe_link_is_refused_with_a_clear_page(acme_viewer, settings):
    settings.MAIL_UNSUBSCRIBE_MAX_AGE_DAYS = 60
    signer = signing.TimestampSigner(salt=UNSUBSCRIBE_SALT)
    sixty_one_days_ago = time.time() - 61 * 86400
    signer.timestamp = lambda: signing.b62_encode(int(sixty_one_days_ago))
    token = signer.sign_object({"u": acme_viewer.pk, "f": "digest"}, compress=True)
    client = Client()
    url = reverse("mail_unsubscribe", args=[token])
    for response in (client.get(url), client.post(url, {"List-Unsubscribe": "One-Click"})):
        assert response.status_code == 410
        assert "This link has expired" in response.text
    assert not MailPreference.objects.filter(user=acme_viewer).exists()


@pytest.mark.parametrize("tamper", [
    lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
    lambda token: token.replace(token.split(":")[0], signing.b64_encode(
        b'{"u":1,"f":"digest"}').decode()),
    lambda token: "not-a-token",
])
def test_tampered_unsubscribe_link_changes_nothing(acme_viewer, globex_viewer, tamper):
    token = tamper(unsubscribe_token(user=acme_viewer, kind="digest"))
    response = Client().post(reverse("mail_unsubscribe", args=[token]))
    assert response.status_code == 400
    assert "This link does not work" in response.text
    assert not MailPreference.objects.exists()
    assert not AuditEvent.objects.filter(action="mail_preferences").exists()
