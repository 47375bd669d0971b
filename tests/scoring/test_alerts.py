"""E-mail alerts and the weekly digest: what each role reads, scoped as the pages are, once."""

import datetime as dt

import pytest
from django.core import mail

from partnerships.mail_preferences import mail_preferences_save
from partnerships.models import (
    ActionItem,
    Dispute,
    MailPreference,
    ProgramSettings,
    Review,
    Role,
    SentMessage,
)
from scoring import alerts, services, tasks
from scoring.models import ScoringRun
from tests.conftest import make_user, write_observations

pytestmark = pytest.mark.django_db

SITE = "https://pp.example.org"


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = SITE


def with_address(user, address: str | None = None):
    user.email = address or f"{user.username}@example.com"
    user.save()
    return user


def mail_cast(host_manager, acme_viewer, globex_viewer, django_user_model, acme) -> dict:
    """The cast with addresses, and a second Acme user (an editor)."""
    return {
        "manager": with_address(host_manager),
        "acme": with_address(acme_viewer),
        "acme_editor": with_address(
            make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)),
        "globex": with_address(globex_viewer),
    }


def month_rows(agreement, kpis, month: str, *, revenue: float, defect: float) -> list[tuple]:
    return [(agreement, kpis["revenue"], "host", f"{month}-10", revenue),
            (agreement, kpis["defect_rate"], "partner", f"{month}-10", defect)]


def moves_program(acme_agreement, globex_agreement, kpis, capture) -> dict:
    """Thresholds, hysteresis 1. Acme scores 27.5 every month (at risk from the third);
    Globex 100, 100, then 10: strategic, then growth (rolling exactly 70) in March."""
    ProgramSettings.objects.update_or_create(
        id=1, defaults={"tier_policy": "threshold", "hysteresis": 1})
    rows = []
    for month in ("2025-01", "2025-02"):
        rows += month_rows(acme_agreement, kpis, month, revenue=30, defect=8)
        rows += month_rows(globex_agreement, kpis, month, revenue=100, defect=2)
    write_observations(rows)
    with capture(execute=True):
        first = services.scoring_run_inline()
    write_observations(month_rows(acme_agreement, kpis, "2025-03", revenue=30, defect=8)
                       + month_rows(globex_agreement, kpis, "2025-03", revenue=20, defect=10))
    with capture(execute=True) as callbacks:
        second = services.scoring_run_inline()
    return {"first": first, "second": second, "callbacks": callbacks}


def sent_to(user) -> list:
    return [message for message in mail.outbox if message.to == [user.email]]


def html_of(message) -> str:
    return next(body for body, kind in message.alternatives if kind == "text/html")


@pytest.fixture
def people(host_manager, acme_viewer, globex_viewer, django_user_model, acme):
    return mail_cast(host_manager, acme_viewer, globex_viewer, django_user_model, acme)


# ---- After a run is published ------------------------------------------------------------------


def test_first_run_tells_nothing_and_the_next_tells_new_at_risk_and_tier_moves(
        people, acme_agreement, globex_agreement, kpis, django_capture_on_commit_callbacks):
    moves = moves_program(acme_agreement, globex_agreement, kpis,
                          django_capture_on_commit_callbacks)
    assert moves["second"].status == "succeeded"
    kinds = sorted((m.subject, m.to[0]) for m in mail.outbox)
    assert kinds == sorted([
        ("ACME-CM-2025 is at risk", "manager@example.com"),
        ("GLOBEX-REF-2025: tier changed", "manager@example.com"),
        ("ACME-CM-2025 is at risk", "acme-viewer@example.com"),
        ("ACME-CM-2025 is at risk", "acme-editor@example.com"),
        ("GLOBEX-REF-2025: tier changed", "globex-viewer@example.com"),
    ])
    tier = next(m for m in sent_to(people["manager"]) if "tier" in m.subject)
    assert "GLOBEX-REF-2025 (Globex): strategic -> growth (overall 10.0)" in tier.body
    assert f"{SITE}/agreements/GLOBEX-REF-2025/" in tier.body
    assert f'href="{SITE}/agreements/GLOBEX-REF-2025/"' in html_of(tier)
    at_risk = sent_to(people["acme"])[0]
    assert "ACME-CM-2025 (Acme Corp): overall 27.5 in 2025-03" in at_risk.body
    assert "three months in a row" in at_risk.body


def test_a_partner_user_never_reads_another_partners_name(
        people, acme_agreement, globex_agreement, kpis, django_capture_on_commit_callbacks):
    moves_program(acme_agreement, globex_agreement, kpis, django_capture_on_commit_callbacks)
    acme_mail = sent_to(people["acme"]) + sent_to(people["acme_editor"])
    assert acme_mail
    for message in acme_mail:
        text = message.subject + message.body + html_of(message)
        assert "Globex" not in text and "GLOBEX" not in text
    for message in sent_to(people["globex"]):
        assert "Acme" not in message.body + html_of(message)


def test_alerts_of_a_run_sent_twice_send_nothing_more(
        people, acme_agreement, globex_agreement, kpis, django_capture_on_commit_callbacks):
    moves = moves_program(acme_agreement, globex_agreement, kpis,
                          django_capture_on_commit_callbacks)
    sent = len(mail.outbox)
    run = moves["second"]
    # As a second delivery of the task would: the same run, the same moves.
    moves_list = [{"agreement": acme_agreement.pk, "kind": "at_risk", "period": "2025-03",
                   "overall": 27.5}]
    assert tasks.mail_score_alerts(run.run_id, moves_list) == 0
    assert len(mail.outbox) == sent
    assert SentMessage.objects.filter(kind="at_risk", key=f"run:{run.run_id}").count() == 3


def test_a_user_who_turned_an_alert_off_gets_none_of_it(
        people, acme_agreement, globex_agreement, kpis, django_capture_on_commit_callbacks):
    mail_preferences_save(user=people["manager"], alert_tier=False)
    moves_program(acme_agreement, globex_agreement, kpis, django_capture_on_commit_callbacks)
    assert [m.subject for m in sent_to(people["manager"])] == ["ACME-CM-2025 is at risk"]


def test_an_owned_agreement_is_told_to_its_owner_only(
        people, acme_agreement, globex_agreement, kpis, django_user_model,
        django_capture_on_commit_callbacks):
    owner = with_address(make_user(django_user_model, "owner", Role.HOST_MANAGER))
    globex_agreement.owner = owner
    globex_agreement.save()
    moves_program(acme_agreement, globex_agreement, kpis, django_capture_on_commit_callbacks)
    # Acme's agreement has no owner: every host manager hears of it, the owner too.
    assert sorted(m.subject for m in sent_to(owner)) == [
        "ACME-CM-2025 is at risk", "GLOBEX-REF-2025: tier changed"]
    assert [m.subject for m in sent_to(people["manager"])] == ["ACME-CM-2025 is at risk"]


def test_score_moves_compare_each_runs_last_month(acme_agreement, globex_agreement, kpis):
    assert alerts.score_moves(previous=None, run=ScoringRun(last_period="2025-03")) == []


# ---- Reviews overdue ---------------------------------------------------------------------------


def test_review_overdue_alert_once_per_due_date_in_its_first_week(people, acme_agreement,
                                                                  globex_agreement):
    # Quarterly cadence, no tier: due 92 days after the last held review.
    Review.objects.create(agreement=acme_agreement, kind="monthly_results",
                          held_on=dt.date(2026, 1, 1))
    Review.objects.create(agreement=acme_agreement, kind="monthly_results", status="planned",
                          held_on=dt.date(2026, 4, 20))  # planned: does not count
    Review.objects.create(agreement=globex_agreement, kind="monthly_results",
                          held_on=dt.date(2025, 6, 1))  # overdue for months: in the digest
    today = dt.date(2026, 4, 5)  # 2026-01-01 + 92 days = 2026-04-03: two days overdue
    assert alerts.review_overdue_alerts_send(today=today) == 3  # manager, Acme's two users
    message = sent_to(people["acme"])[0]
    assert message.subject == "Review overdue: ACME-CM-2025"
    assert "due 2026-04-03, 2 days overdue" in message.body
    assert f"{SITE}/agreements/ACME-CM-2025/reviews/" in message.body
    assert sent_to(people["globex"]) == []
    assert alerts.review_overdue_alerts_send(today=today + dt.timedelta(days=1)) == 0
    assert len(mail.outbox) == 3


# ---- The weekly digest -------------------------------------------------------------------------


@pytest.fixture
def digest_program(people, acme_agreement, globex_agreement, kpis,
                   django_capture_on_commit_callbacks):
    moves_program(acme_agreement, globex_agreement, kpis, django_capture_on_commit_callbacks)
    mail.outbox.clear()
    today = dt.date(2026, 5, 4)
    for agreement, side, description, due in (
            (acme_agreement, "partner", "Send the co-marketing plan", dt.date(2026, 5, 1)),
            (acme_agreement, "host", "Approve the campaign budget", dt.date(2026, 5, 8)),
            (acme_agreement, "partner", "Far away", dt.date(2026, 9, 1)),
            (globex_agreement, "partner", "Globex's own homework", dt.date(2026, 5, 5))):
        ActionItem.objects.create(agreement=agreement, description=description,
                                  owner_name="Someone", owner_side=side, due_date=due)
    for agreement in (acme_agreement, globex_agreement):
        Review.objects.create(agreement=agreement, kind="quarterly_strategy", status="planned",
                              held_on=dt.date(2026, 5, 12), starts_at=dt.time(14, 0))
        Review.objects.create(agreement=agreement, kind="monthly_results",
                              held_on=dt.date(2026, 4, 1))
    Dispute.objects.create(agreement=globex_agreement, kpi=kpis["revenue"], month="2025-03",
                           opened_side="partner", reason="Our books say 25")
    return today


def test_digest_of_a_partner_user_has_their_side_and_their_agreements_only(people,
                                                                         digest_program):
    assert alerts.digests_send(today=digest_program) == 4
    (message,) = sent_to(people["acme"])
    assert message.subject == "Your partnerships this week (2026-W19)"
    body = message.body
    assert "NEWLY AT RISK\n- ACME-CM-2025 (Acme Corp): overall 27.5" in body
    assert "Send the co-marketing plan - Someone, due 2026-05-01 (OVERDUE)" in body
    assert "Approve the campaign budget" not in body  # the host's action
    assert "Far away" not in body  # due in four months
    assert "- ACME-CM-2025 (Acme Corp): Quarterly strategy review planned on 2026-05-12 at " \
           "14:00" in body
    text = message.subject + body + html_of(message)
    assert "Globex" not in text and "GLOBEX" not in text
    assert "Unsubscribe from the weekly digest: " + SITE + "/email/unsubscribe/" in body
    assert message.extra_headers["List-Unsubscribe"].startswith(f"<{SITE}/email/unsubscribe/")
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_digest_of_the_host_has_every_unowned_agreement_and_the_hosts_actions(
        people, digest_program):
    alerts.digests_send(today=digest_program)
    (message,) = sent_to(people["manager"])
    body = message.body
    assert "- GLOBEX-REF-2025 (Globex): overall 100.0 -> 10.0 (-90.0); tier strategic -> " \
           "growth" in body
    assert "Approve the campaign budget - Someone, due 2026-05-08" in body
    assert "Send the co-marketing plan" not in body  # the partner's action
    assert "OPEN DISPUTES\n- GLOBEX-REF-2025 (Globex): Partner-sourced revenue, 2025-03, " \
           "opened by the partner side" in body
    (globex,) = sent_to(people["globex"])
    assert "Globex's own homework" in globex.body and "Acme" not in globex.body


def test_digest_once_a_week_and_not_when_turned_off_or_nothing_to_say(
        people, digest_program, acme_agreement, globex_agreement):
    MailPreference.objects.create(user=people["acme_editor"], digest=False)
    assert alerts.digests_send(today=digest_program) == 3
    mail.outbox.clear()
    assert alerts.digests_send(today=digest_program + dt.timedelta(days=2)) == 0  # same week
    assert mail.outbox == []
    # Nothing to say: no digest at all.
    ActionItem.objects.all().delete()
    Review.objects.filter(status="planned").delete()
    Dispute.objects.all().delete()
    ScoringRun.objects.all().delete()
    assert alerts.digests_send(today=digest_program + dt.timedelta(days=7)) == 0
