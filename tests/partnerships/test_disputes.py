"""Disputes (issue 14): who may open, answer, withdraw and resolve; one open dispute per
agreement, KPI and month; a taken or corrected value written through the observations' write
path with its history; closed months refused; every step recorded; the other side told by
e-mail through a real SMTP server."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from partnerships.disputes import (
    DisputeMonthClosed,
    dispute_comment,
    dispute_open,
    dispute_resolve,
    dispute_withdraw,
    month_value,
)
from partnerships.models import (
    AuditEvent,
    Dispute,
    DisputeEvent,
    ImportBatch,
    MailPreference,
    MetricObservation,
    MonthEvent,
    ObservationChange,
    ProgramMonth,
    Role,
)
from scoring.disputes import dispute_resolve_reopening
from tests.conftest import make_user, write_observations

pytestmark = pytest.mark.django_db

MONTH = "2025-03"


@pytest.fixture
def host_admin(django_user_model):
    return make_user(django_user_model, "admin", Role.HOST_ADMIN)


@pytest.fixture
def acme_editor(django_user_model, acme):
    return make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)


@pytest.fixture
def reported(acme_agreement, globex_agreement, kpis):
    """March 2025: revenue (host, sum) 40 + 60 by the host, 90 by the partner; defect rate
    (partner, mean) 4 by the partner, 6 by the host."""
    revenue, defect = kpis["revenue"], kpis["defect_rate"]
    write_observations([
        (acme_agreement, revenue, "host", "2025-03-05", 40),
        (acme_agreement, revenue, "host", "2025-03-20", 60),
        (acme_agreement, revenue, "partner", "2025-03-20", 90),
        (acme_agreement, defect, "partner", "2025-03-10", 4),
        (acme_agreement, defect, "host", "2025-03-10", 6),
        (globex_agreement, revenue, "host", "2025-03-10", 70),
    ])
    return acme_agreement


def opened(user, agreement, kpi, **extra) -> Dispute:
    return dispute_open(user=user, agreement=agreement, kpi=kpi, month=MONTH,
                        reason=extra.pop("reason", "Our CRM says 90"), **extra)


def test_a_partner_user_opens_a_dispute_recorded_with_who_side_and_when(
        reported, kpis, acme_viewer):
    dispute = opened(acme_viewer, reported, kpis["revenue"], proposed_value="90")
    assert (dispute.status, dispute.opened_side, dispute.opened_by) == (
        "open", "partner", acme_viewer)
    assert dispute.proposed_value == 90.0
    event = dispute.events.get()
    assert (event.kind, event.side, event.user, event.text) == (
        "opened", "partner", acme_viewer, "Our CRM says 90")
    assert event.at is not None
    audit = AuditEvent.objects.get(action="dispute")
    assert audit.user == acme_viewer and audit.partner == reported.partner
    assert audit.detail["step"] == "opened"
    assert audit.detail["source_value"] == 100.0 and audit.detail["other_value"] == 90.0


def test_the_host_opens_a_dispute_too(reported, kpis, host_manager):
    dispute = opened(host_manager, reported, kpis["defect_rate"])
    assert dispute.opened_side == "host"


def test_another_partners_user_may_not_open_a_dispute(reported, kpis, globex_viewer):
    with pytest.raises(PermissionDenied):
        opened(globex_viewer, reported, kpis["revenue"])
    assert not Dispute.objects.exists()


def test_one_open_dispute_per_agreement_kpi_and_month(reported, kpis, acme_viewer,
                                                     host_manager):
    first = opened(acme_viewer, reported, kpis["revenue"])
    with pytest.raises(ValidationError, match="open already"):
        opened(host_manager, reported, kpis["revenue"])
    # Another KPI, or another month, is another dispute.
    opened(host_manager, reported, kpis["defect_rate"])
    dispute_open(user=host_manager, agreement=reported, kpi=kpis["revenue"], month="2025-02",
                 reason="Missing")
    dispute_withdraw(user=acme_viewer, dispute=first)
    assert opened(host_manager, reported, kpis["revenue"]).status == "open"


@pytest.mark.parametrize(("month", "message"), [
    ("2025-3", "YYYY-MM"), ("2099-01", "has not begun"), ("2024-06", "did not run"),
])
def test_the_month_must_be_one_the_agreement_ran_in(reported, kpis, acme_viewer, month,
                                                    message):
    with pytest.raises(ValidationError, match=message):
        dispute_open(user=acme_viewer, agreement=reported, kpi=kpis["revenue"], month=month,
                     reason="Wrong")


def test_the_kpi_must_be_one_of_the_agreement(reported, acme_viewer):
    from partnerships.models import KPIDefinition

    other = KPIDefinition.objects.create(code="nps", name="NPS", category="relationship",
                                         aggregation="last", source="partner")
    with pytest.raises(ValidationError, match="not a KPI of"):
        opened(acme_viewer, reported, other)


def test_a_reason_is_required(reported, kpis, acme_viewer):
    with pytest.raises(ValidationError, match="reason is required"):
        opened(acme_viewer, reported, kpis["revenue"], reason="  ")


@pytest.mark.parametrize("value", ["150", "abc", "nan", "1e20"])
def test_the_proposed_value_is_checked_as_an_observation_of_the_kpi(reported, kpis,
                                                                    acme_viewer, value):
    kpis["defect_rate"].minimum, kpis["defect_rate"].maximum = 0, 100
    kpis["defect_rate"].value_type = "percentage"
    kpis["defect_rate"].save()
    with pytest.raises(ValidationError) as refused:
        opened(acme_viewer, reported, kpis["defect_rate"], proposed_value=value)
    assert "proposed_value" in refused.value.error_dict
    assert not Dispute.objects.exists()


def test_both_sides_comment_while_it_is_open(reported, kpis, acme_viewer, host_manager,
                                             globex_viewer):
    dispute = opened(acme_viewer, reported, kpis["revenue"])
    dispute_comment(user=host_manager, dispute=dispute, text="Which deals?")
    dispute_comment(user=acme_viewer, dispute=dispute, text="The two of March 18")
    with pytest.raises(PermissionDenied):
        dispute_comment(user=globex_viewer, dispute=dispute, text="Me too")
    assert list(dispute.events.values_list("kind", "side")) == [
        ("opened", "partner"), ("comment", "host"), ("comment", "partner")]
    dispute_withdraw(user=acme_viewer, dispute=dispute)
    with pytest.raises(ValidationError, match="withdrawn already"):
        dispute_comment(user=host_manager, dispute=dispute, text="Too late")


def test_only_the_opening_side_withdraws(reported, kpis, acme_viewer, acme_editor,
                                         host_manager):
    dispute = opened(acme_viewer, reported, kpis["revenue"])
    with pytest.raises(PermissionDenied):
        dispute_withdraw(user=host_manager, dispute=dispute)
    # Any user of the opening side: the opener's colleague too.
    withdrawn = dispute_withdraw(user=acme_editor, dispute=dispute, text="Found it")
    assert (withdrawn.status, withdrawn.closed_by) == ("withdrawn", acme_editor)
    assert withdrawn.events.last().kind == "withdrawn"


def test_only_host_managers_and_admins_resolve(reported, kpis, acme_editor, host_admin):
    dispute = opened(acme_editor, reported, kpis["revenue"])
    with pytest.raises(PermissionDenied):
        dispute_resolve(user=acme_editor, dispute=dispute, resolution="kept")
    resolved = dispute_resolve(user=host_admin, dispute=dispute, resolution="kept",
                               text="Our CRM is right")
    assert (resolved.status, resolved.resolution, resolved.resolved_value) == (
        "resolved", "kept", 100.0)
    assert resolved.correction_batch is None
    assert not ImportBatch.objects.filter(source="correction").exists()
    with pytest.raises(ValidationError, match="resolved already"):
        dispute_resolve(user=host_admin, dispute=dispute, resolution="kept")


def test_a_corrected_value_is_written_through_the_write_path_with_its_history(
        reported, kpis, acme_viewer, host_manager):
    revenue = kpis["revenue"]
    dispute = opened(acme_viewer, reported, revenue, proposed_value=130)
    resolved = dispute_resolve(user=host_manager, dispute=dispute, resolution="corrected",
                               value="130")
    # The month's sum is now 130: the latest host observation carries the difference.
    assert month_value(agreement=reported, kpi=revenue, side="host", month=MONTH) == 130.0
    latest = MetricObservation.objects.get(agreement=reported, kpi=revenue, side="host",
                                           date="2025-03-20")
    assert latest.value == 90.0
    batch = resolved.correction_batch
    assert (batch.source, batch.status, batch.side, batch.user, batch.updated) == (
        "correction", "succeeded", "host", host_manager, 1)
    assert latest.batch == batch and latest.recorded_by == host_manager
    change = ObservationChange.objects.get(batch=batch)
    assert (change.old_value, change.new_value, change.changed_by) == (60.0, 90.0,
                                                                       host_manager)
    assert resolved.resolved_value == 130.0
    assert AuditEvent.objects.filter(action="import", detail__step="correction").exists()
    assert resolved.events.last().detail["before"] == 100.0


def test_taking_the_other_sides_value_writes_it_as_the_source_sides(reported, kpis,
                                                                     host_manager):
    defect = kpis["defect_rate"]  # the partner's count; the host reported 6
    dispute = opened(host_manager, reported, defect)
    resolved = dispute_resolve(user=host_manager, dispute=dispute, resolution="other_side")
    assert month_value(agreement=reported, kpi=defect, side="partner", month=MONTH) == 6.0
    assert resolved.resolved_value == 6.0
    assert resolved.correction_batch.side == "partner"


def test_a_month_without_a_source_value_gets_one_on_its_last_day(reported, kpis,
                                                                 host_manager):
    revenue = kpis["revenue"]
    dispute = dispute_open(user=host_manager, agreement=reported, kpi=revenue,
                           month="2025-04", reason="Not imported")
    dispute_resolve(user=host_manager, dispute=dispute, resolution="corrected", value=55)
    written = MetricObservation.objects.get(agreement=reported, kpi=revenue, side="host",
                                            date__month=4)
    assert (str(written.date), written.value) == ("2025-04-30", 55.0)


def test_a_correction_into_a_closed_month_is_refused_and_writes_nothing(
        reported, kpis, acme_viewer, host_manager):
    dispute = opened(acme_viewer, reported, kpis["revenue"])
    ProgramMonth.objects.create(month=MONTH, closed=True, closed_at=timezone.now())
    batches = ImportBatch.objects.count()
    with pytest.raises(DisputeMonthClosed, match="reopens 2025-03 first"):
        dispute_resolve(user=host_manager, dispute=dispute, resolution="corrected", value=1)
    dispute.refresh_from_db()
    assert dispute.status == "open"
    assert ImportBatch.objects.count() == batches
    assert month_value(agreement=reported, kpi=kpis["revenue"], side="host",
                       month=MONTH) == 100.0
    # Keeping the value writes nothing: allowed in a closed month.
    assert dispute_resolve(user=host_manager, dispute=dispute,
                           resolution="kept").status == "resolved"


def test_a_host_admin_reopens_the_month_with_the_dispute_as_reason_and_corrects(
        reported, kpis, acme_viewer, host_manager, host_admin):
    dispute = opened(acme_viewer, reported, kpis["revenue"])
    ProgramMonth.objects.create(month=MONTH, closed=True, closed_at=timezone.now())
    with pytest.raises(PermissionDenied):
        dispute_resolve_reopening(user=host_manager, dispute=dispute, resolution="corrected",
                                  value=130)
    assert ProgramMonth.objects.get(month=MONTH).closed
    resolved, reopened = dispute_resolve_reopening(
        user=host_admin, dispute=dispute, resolution="corrected", value=130)
    assert reopened == [MONTH] and not ProgramMonth.objects.get(month=MONTH).closed
    event = MonthEvent.objects.get(month=MONTH, action="reopened")
    assert f"Dispute {dispute.pk}" in event.reason and event.user == host_admin
    assert resolved.status == "resolved"
    assert month_value(agreement=reported, kpi=kpis["revenue"], side="host",
                       month=MONTH) == 130.0


def test_a_corrected_value_the_kpi_cannot_have_is_refused(reported, kpis, host_manager):
    kpis["revenue"].value_type = "count"
    kpis["revenue"].save()
    dispute = opened(host_manager, reported, kpis["revenue"])
    # 30 as the month's sum would need -30 on March 20 (40 on March 5 stays).
    with pytest.raises(ValidationError, match="whole number"):
        dispute_resolve(user=host_manager, dispute=dispute, resolution="corrected", value=10)
    assert Dispute.objects.get().status == "open"


# ---- E-mail to the other side -----------------------------------------------------------------


@pytest.fixture
def addresses(host_manager, host_admin, acme_viewer, acme_editor, globex_viewer):
    for user in (host_manager, host_admin, acme_viewer, acme_editor, globex_viewer):
        user.email = f"{user.username}@example.com"
        user.save()


def test_a_partners_dispute_is_mailed_to_the_hosts_managers_and_admins(
        reported, kpis, acme_viewer, host_manager, host_admin, addresses, smtp_server,
        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        dispute = opened(acme_viewer, reported, kpis["revenue"], proposed_value=90)
    assert sorted(rcpt for message in smtp_server.messages
                  for rcpt in message.envelope_to) == [
        "admin@example.com", "manager@example.com"]
    message = smtp_server.to("manager@example.com")[0]
    assert f"Dispute {dispute.pk} opened by the partner" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Acme Corp" in text and "Our CRM says 90" in text
    assert f"/disputes/{dispute.pk}/" in text and f"/disputes/{dispute.pk}/" in html
    # The dispute switch of the e-mail settings, one click away.
    assert "Unsubscribe from dispute e-mail" in text
    assert message["List-Unsubscribe"].startswith("<http")
    # Sent once: the same step again sends nothing.
    from partnerships.disputes import dispute_mail_send

    assert dispute_mail_send(event_id=dispute.events.get().pk) == 0
    assert len(smtp_server.messages) == 2


def test_the_hosts_answer_is_mailed_to_that_partners_users_only(
        reported, kpis, acme_viewer, acme_editor, host_manager, globex_viewer, addresses,
        smtp_server, django_capture_on_commit_callbacks):
    dispute = opened(acme_viewer, reported, kpis["revenue"])
    MailPreference.objects.create(user=acme_editor, alert_dispute=False)
    with django_capture_on_commit_callbacks(execute=True):
        dispute_comment(user=host_manager, dispute=dispute, text="Which deals?")
    assert [message.envelope_to for message in smtp_server.messages] == [
        ["acme-viewer@example.com"]]
    message = smtp_server.messages[0]
    assert "answered by the host" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert "Which deals?" in text and reported.code in text
    # A partner's message names no partner (not even its own); Globex never hears of it.
    assert "Globex" not in text and "Acme Corp" not in text
    with django_capture_on_commit_callbacks(execute=True):
        dispute_resolve(user=host_manager, dispute=dispute, resolution="corrected", value=95)
    resolved = smtp_server.to("acme-viewer@example.com")[-1]
    assert "resolved by the host" in resolved["Subject"]
    assert "Corrected value entered, 95" in resolved.get_body(("plain",)).get_content()
    assert not smtp_server.to("globex-viewer@example.com")
    assert DisputeEvent.objects.filter(dispute=dispute).count() == 3
