"""Integration: the alert and digest tasks hand their messages to a real SMTP server
(aiosmtpd, tests/conftest.py), and what arrived is read back: both parts, the links, the
unsubscribe headers, and the one-click unsubscribe the link leads to."""

import re
from urllib.parse import urlsplit

import pytest
from django.test import Client

from partnerships.models import MailPreference
from scoring import tasks
from tests.scoring.test_alerts import SITE, mail_cast, moves_program

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = SITE
    settings.DEFAULT_FROM_EMAIL = "Partnerships <partnerships@pp.example.org>"


@pytest.fixture
def people(host_manager, acme_viewer, globex_viewer, django_user_model, acme):
    return mail_cast(host_manager, acme_viewer, globex_viewer, django_user_model, acme)


def parts(message) -> tuple[str, str]:
    return (message.get_body(preferencelist=("plain",)).get_content(),
            message.get_body(preferencelist=("html",)).get_content())


def test_alerts_and_digest_arrive_by_smtp_with_both_parts_and_site_links(
        smtp_server, people, acme_agreement, globex_agreement, kpis,
        django_capture_on_commit_callbacks):
    # The second run's publication queues the alerts task (in-process here) after commit.
    moves_program(acme_agreement, globex_agreement, kpis, django_capture_on_commit_callbacks)
    arrived = smtp_server.to("acme-viewer@example.com")
    assert [message["Subject"] for message in arrived] == ["ACME-CM-2025 is at risk"]
    message = arrived[0]
    assert message["From"] == "Partnerships <partnerships@pp.example.org>"
    text, html = parts(message)
    assert "ACME-CM-2025 (Acme Corp): overall 27.5 in 2025-03" in text
    assert f'<a href="{SITE}/agreements/ACME-CM-2025/"' in html
    assert "Globex" not in text + html

    # The weekly task itself, as beat starts it.
    sent = tasks.mail_weekly_digests()
    assert sent == 4  # the host manager, Acme's two users, Globex's viewer
    (digest,) = [m for m in smtp_server.to("acme-viewer@example.com")
                 if m["Subject"].startswith("Your partnerships this week")]
    text, html = parts(digest)
    assert "NEWLY AT RISK" in text and "Newly at risk" in html
    links = set(re.findall(r'href="([^"]+)"', html))
    assert links and all(link.startswith(SITE + "/") for link in links)
    assert "Globex" not in text + html
    unsubscribe = digest["List-Unsubscribe"].strip("<>")
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe in text and unsubscribe in links

    # A mail program's one-click unsubscribe (RFC 8058): no session, no CSRF token.
    response = Client(enforce_csrf_checks=True).post(
        urlsplit(unsubscribe).path, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert MailPreference.objects.get(user=people["acme"]).digest is False
    # Run twice (a second beat, a redelivery): nothing more arrives.
    before = len(smtp_server.messages)
    assert tasks.mail_weekly_digests() == 0
    assert len(smtp_server.messages) == before
