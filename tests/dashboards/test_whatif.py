"""The what-if page (host managers and admins): the simulation's matrix, payout difference and
agreements; its progress while the observations are read; the CSV; Save after a confirmation,
through the services, once per confirmation and only in the state confirmed, with the
simulation's summary in the history. Partner users never see it."""

import csv
import html
import io
import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from partnerships.models import AgreementKPI, AuditAction, AuditEvent, ProgramChange, Role
from scoring.whatif import whatif_job_new
from tests.conftest import make_user
from tests.scoring.test_whatif import score_six_months

pytestmark = pytest.mark.django_db

LOWER_TARGET = {"scope": "ACME-CM-2025", "kpi": "revenue", "target": "80", "month": "2025-04"}
TEN_PERCENT_MORE = {"kpi": "revenue", "target": "+10%", "month": "2025-04"}


def confirmed_post(client, changes: dict) -> dict:
    """The fields the confirmation page sends with Save: the changes, confirm=yes and the
    state it was asked in."""
    page = client.post(reverse("whatif_save"), changes).content.decode()
    state = re.search(r'name="state" value="([^"]+)"', page)
    assert state, "the confirmation carries its state"
    return {**changes, "state": html.unescape(state.group(1)), "confirm": "yes"}


def revenue_targets() -> list[float]:
    return sorted(AgreementKPI.objects.filter(kpi__code="revenue")
                  .values_list("target", flat=True))


@pytest.fixture
def six_months(acme_agreement, globex_agreement, kpis):
    """Acme and Globex over 2025-01 to 2025-06, scored (tests/scoring/test_whatif.py)."""
    return score_six_months(acme_agreement, globex_agreement, kpis)


@pytest.fixture
def manager_client(client, host_manager):
    client.force_login(host_manager)
    return client


def test_a_lower_target_shows_the_tier_move_and_the_agreement(manager_client, six_months):
    response = manager_client.get(reverse("whatif"), LOWER_TARGET)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Months up to" not in page  # nothing closed: every month is simulated
    # One agreement moves growth → strategic in 2025-04.
    assert "<strong>1</strong> of 2 agreements change tier in 2025-04" in page
    assert 'class="num whatif-matrix__moved">1</td>' in page
    assert "ACME-CM-2025" in page
    # Acme 2025-04: overall 100 → 110; payouts now 6,375.00.
    assert "100.0 → 110.0" in page
    assert "6,375.00 →" in page


def test_htmx_gets_the_result_panel_only(manager_client, six_months):
    response = manager_client.get(reverse("whatif"), LOWER_TARGET, headers={"HX-Request": "true"})
    page = response.content.decode()
    assert page.lstrip().startswith('<section id="whatif-result"')
    assert "<form method=\"get\"" not in page


def test_a_refused_change_is_told_beside_nothing_simulated(manager_client, six_months):
    page = manager_client.get(reverse("whatif"), {
        "weight_financial": "50", "weight_strategic": "0", "weight_operational": "40",
        "weight_relationship": "0"}).content.decode()
    assert "Nothing was simulated" in page
    assert "add up to 90" in page
    page = manager_client.get(reverse("whatif"), {"target": "120"}).content.decode()
    assert "For every KPI at once give a change in percent" in page


def test_progress_is_shown_while_the_observations_are_read(manager_client, six_months):
    job = whatif_job_new()  # queued, not run
    page = manager_client.get(reverse("whatif"), {**LOWER_TARGET, "job": job}).content.decode()
    assert "<progress" in page
    assert 'hx-trigger="every 1s"' in page
    assert f"job={job}" in page


def test_the_comparison_as_csv(manager_client, six_months):
    response = manager_client.get(reverse("whatif_csv"), LOWER_TARGET)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 12  # 2 agreements × 6 months
    acme = [row for row in rows if row["agreement"] == "ACME-CM-2025"]
    assert [row["period"] for row in acme] == [f"2025-0{month}" for month in range(1, 7)]
    assert acme[0]["overall_now"] == "70.0000"
    assert acme[0]["overall_simulated"] == "75.0000"
    assert acme[3]["tier_now"] == "growth"
    assert acme[3]["tier_simulated"] == "strategic"
    # 2025-04: growth 1,250 → strategic 1000 × 1.5 × 1.1 = 1,650.
    assert (acme[3]["payout_now"], acme[3]["payout_simulated"],
            acme[3]["payout_difference"]) == ("1250.00", "1650.00", "400.00")
    globex = [row for row in rows if row["agreement"] == "GLOBEX-REF-2025"]
    assert globex[0]["payout_now"] == "" and globex[0]["payout_difference"] == ""
    assert AuditEvent.objects.filter(action=AuditAction.EXPORT,
                                     target="what-if comparison").exists()


def test_the_csv_refuses_a_form_with_errors(manager_client, six_months):
    assert manager_client.get(reverse("whatif_csv"), {"target": "x"}).status_code == 400
    assert manager_client.get(reverse("whatif_csv")).status_code == 400


def test_save_asks_first_then_saves_through_the_services(manager_client, six_months,
                                                         host_manager):
    acme, _ = six_months
    asked = manager_client.post(reverse("whatif_save"), LOWER_TARGET)
    assert asked.status_code == 200
    page = asked.content.decode()
    assert "Save these changes?" in page
    assert "1 tier move(s) in 2025-04" in page
    revenue = AgreementKPI.objects.get(agreement=acme, kpi__code="revenue")
    assert revenue.target == 100
    assert not ProgramChange.objects.exists()

    saved = manager_client.post(reverse("whatif_save"), confirmed_post(manager_client,
                                                                       LOWER_TARGET))
    assert saved.status_code == 302
    revenue.refresh_from_db()
    assert revenue.target == 80
    change = ProgramChange.objects.get()
    assert change.user == host_manager and change.object_type == "agreement KPI"
    event = AuditEvent.objects.get(target="What-if saved for ACME-CM-2025")
    assert event.detail["summary"]["tier_moves"] == 1
    assert event.detail["summary"]["payout_difference"] == pytest.approx(
        event.detail["summary"]["payout_simulated"] - event.detail["summary"]["payout_now"])


def test_partner_users_never_see_it(client, django_user_model, six_months, acme):
    viewer = make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)
    client.force_login(viewer)
    assert client.get(reverse("whatif"), LOWER_TARGET).status_code == 404
    assert client.get(reverse("whatif_csv"), LOWER_TARGET).status_code == 404
    assert client.post(reverse("whatif_save"), {**LOWER_TARGET, "confirm": "yes"}
                       ).status_code == 404
    assert AgreementKPI.objects.get(agreement__code="ACME-CM-2025",
                                    kpi__code="revenue").target == 100


def test_host_admins_may_use_it_and_anonymous_visitors_log_in(client, django_user_model,
                                                               six_months):
    assert client.get(reverse("whatif")).status_code == 302
    client.force_login(make_user(django_user_model, "admin", Role.HOST_ADMIN))
    assert client.get(reverse("whatif"), LOWER_TARGET).status_code == 200


def test_many_objects_are_saved_by_a_task_whose_progress_is_polled(manager_client, six_months,
                                                                    monkeypatch):
    import dashboards.whatif_views

    monkeypatch.setattr(dashboards.whatif_views, "SAVE_IN_REQUEST", 1)
    changes = confirmed_post(manager_client, {"target": "-20%", "kpi": "revenue",
                                              "month": "2025-04"})
    queued = manager_client.post(reverse("whatif_save"), changes)
    assert queued.status_code == 302
    assert queued["Location"].startswith(reverse("whatif_save") + "?job=")
    # The task ran in-process (tests run tasks eagerly): the poll finds it done.
    done = manager_client.get(queued["Location"])
    assert done.status_code == 302 and done["Location"] == reverse("scoring_runs")
    assert sorted(AgreementKPI.objects.filter(kpi__code="revenue")
                  .values_list("target", flat=True)) == [80, 80]
    assert ProgramChange.objects.count() == 2
    assert AuditEvent.objects.filter(target="What-if saved for the whole program").count() == 1


def test_a_save_in_progress_is_shown_and_an_unknown_one_is_not_found(manager_client, six_months):
    job = whatif_job_new()
    page = manager_client.get(reverse("whatif_save"), {"job": job}).content.decode()
    assert "<progress" in page and f"?job={job}" in page
    assert manager_client.get(reverse("whatif_save"), {"job": "0" * 32}).status_code == 404
    assert manager_client.get(reverse("whatif_save")).status_code == 404


def test_save_without_the_confirmations_state_asks_again(manager_client, six_months):
    asked = manager_client.post(reverse("whatif_save"), {**LOWER_TARGET, "confirm": "yes"})
    assert asked.status_code == 200 and "Save these changes?" in asked.content.decode()
    forged = manager_client.post(reverse("whatif_save"),
                                 {**LOWER_TARGET, "confirm": "yes", "state": "forged"})
    assert forged.status_code == 200 and "Save these changes?" in forged.content.decode()
    assert revenue_targets() == [100, 100]
    assert not ProgramChange.objects.exists()


def test_a_confirmation_posted_twice_applies_a_change_in_percent_once(manager_client,
                                                                      six_months):
    confirmation = confirmed_post(manager_client, TEN_PERCENT_MORE)
    first = manager_client.post(reverse("whatif_save"), confirmation)
    assert first.status_code == 302 and first["Location"] == reverse("scoring_runs")
    again = manager_client.post(reverse("whatif_save"), confirmation)
    assert again.status_code == 302 and again["Location"].startswith(
        reverse("whatif_save") + "?job=")
    assert "nothing more was applied" in " ".join(
        str(message) for message in get_messages(again.wsgi_request))
    assert revenue_targets() == [pytest.approx(110), pytest.approx(110)]  # not 121
    assert ProgramChange.objects.count() == 2
    assert AuditEvent.objects.filter(target__startswith="What-if saved").count() == 1


def test_a_confirmation_posted_twice_to_the_task_applies_a_change_in_percent_once(
        manager_client, six_months, monkeypatch):
    import dashboards.whatif_views

    monkeypatch.setattr(dashboards.whatif_views, "SAVE_IN_REQUEST", 1)
    confirmation = confirmed_post(manager_client, TEN_PERCENT_MORE)
    first = manager_client.post(reverse("whatif_save"), confirmation)
    again = manager_client.post(reverse("whatif_save"), confirmation)
    assert first["Location"] == again["Location"]  # the same job
    assert manager_client.get(first["Location"])["Location"] == reverse("scoring_runs")
    assert revenue_targets() == [pytest.approx(110), pytest.approx(110)]  # not 121
    assert ProgramChange.objects.count() == 2
    assert AuditEvent.objects.filter(target__startswith="What-if saved").count() == 1


@pytest.mark.parametrize("in_a_task", [False, True])
def test_a_program_changed_between_confirmation_and_save_is_refused(
        manager_client, six_months, host_manager, monkeypatch, in_a_task):
    import dashboards.whatif_views
    from partnerships.program_services import agreement_kpi_update

    if in_a_task:
        monkeypatch.setattr(dashboards.whatif_views, "SAVE_IN_REQUEST", 1)
    acme, _ = six_months
    confirmation = confirmed_post(manager_client, TEN_PERCENT_MORE)
    agreement_kpi_update(user=host_manager, target=120,
                         agreement_kpi=AgreementKPI.objects.get(agreement=acme,
                                                                kpi__code="revenue"))
    refused = manager_client.post(reverse("whatif_save"), confirmation)
    assert refused.status_code == 302 and refused["Location"].startswith(reverse("whatif") + "?")
    assert ("Nothing was saved: The program changed since you confirmed: simulate again."
            in [str(message) for message in get_messages(refused.wsgi_request)])
    assert revenue_targets() == [100, 120]
    assert not AuditEvent.objects.filter(target__startswith="What-if saved").exists()


def test_the_history_says_a_change_came_from_a_what_if(manager_client, six_months):
    acme, _ = six_months
    manager_client.post(reverse("whatif_save"), confirmed_post(manager_client, LOWER_TARGET))
    change = ProgramChange.objects.get()
    reason = "What-if: 1 tier move in 2025-04, payout over the open months +887.50 USD"
    assert change.reason == reason
    page = manager_client.get(reverse("agreement_history", args=[acme.code])).content.decode()
    assert reason in page


def test_the_admin_shows_the_reason_of_a_change(client, manager_client, django_user_model,
                                                six_months):
    manager_client.post(reverse("whatif_save"), confirmed_post(manager_client, LOWER_TARGET))
    change = ProgramChange.objects.get()
    admin = make_user(django_user_model, "site-admin", Role.HOST_ADMIN)
    django_user_model.objects.filter(pk=admin.pk).update(is_staff=True, is_superuser=True)
    client.force_login(django_user_model.objects.get(pk=admin.pk))
    page = client.get(reverse("admin:partnerships_programchange_change",
                                    args=[change.pk])).content.decode()
    assert change.reason in page
