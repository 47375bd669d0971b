"""The scoring runs page: status, progress polling, starting a run, and who may do what."""

import pytest

from scoring import services
from scoring.models import ScoringRun
from tests.conftest import write_observations

pytestmark = pytest.mark.django_db


@pytest.fixture
def observed(acme_agreement, kpis):
    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-01-10", 50)])


def test_manager_starts_a_run_and_sees_its_result(client, host_manager, observed,
                                                  django_capture_on_commit_callbacks):
    client.force_login(host_manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/scoring/runs/start/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    # The answer comes before the task runs: a panel that polls the new run.
    assert 'id="run-panel"' in response.text and "<html" not in response.text
    assert 'hx-trigger="every 1s"' in response.text
    run = ScoringRun.objects.get()
    assert run.status == "succeeded" and run.triggered_by == host_manager
    body = client.get(f"/scoring/runs/{run.id}/panel/", headers={"HX-Request": "true"}).text
    assert "Succeeded" in body and "1 scorecard for 1 agreement over 1 month" in body
    # A finished run is no longer polled.
    assert "hx-trigger" not in body


def test_active_run_panel_polls_and_shows_progress(client, host_manager, observed):
    run = services.scoring_run_request(trigger="user")
    services.scoring_run_claim(run_id=run.id)
    services.scoring_run_plan(run_id=run.id)
    client.force_login(host_manager)
    response = client.get(f"/scoring/runs/{run.id}/panel/", headers={"HX-Request": "true"})
    assert 'hx-trigger="every 1s"' in response.text
    assert '<progress max="100" value="5"' in response.text
    assert "0 of 1 chunks" in response.text


def test_second_start_while_running_is_refused_with_a_message(client, host_manager, observed):
    active = services.scoring_run_request(trigger="user")
    client.force_login(host_manager)
    response = client.post("/scoring/runs/start/", headers={"HX-Request": "true"})
    assert "already in progress" in response.text
    assert f"Run {active.pk}" in response.text
    assert ScoringRun.objects.count() == 1


def test_failed_run_is_named_on_every_page(client, host_manager, observed):
    services.scoring_run_inline()
    failed = services.scoring_run_request(trigger="user")
    services.scoring_run_fail(run_id=failed.id, error="worker lost")
    client.force_login(host_manager)
    body = client.get("/").text
    assert "The last scoring run failed" in body
    assert "the scores shown are from the run before" in body
    assert "worker lost" in client.get("/scoring/runs/").text


def test_runs_page_is_not_found_for_partner_users(client, acme_viewer, observed):
    client.force_login(acme_viewer)
    assert client.get("/scoring/runs/").status_code == 404
    assert client.post("/scoring/runs/start/").status_code == 404
    assert not ScoringRun.objects.exists()


def test_anonymous_is_sent_to_log_in(client):
    response = client.get("/scoring/runs/")
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_start_needs_csrf_token(host_manager, observed):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(host_manager)
    assert client.post("/scoring/runs/start/").status_code == 403
    assert not ScoringRun.objects.exists()


def test_starting_a_run_is_audited(client, host_manager, observed):
    from partnerships.models import AuditEvent

    client.force_login(host_manager)
    client.post("/scoring/runs/start/", REMOTE_ADDR="203.0.113.9")
    event = AuditEvent.objects.get(action="scoring_run")
    assert (event.user, event.ip_address) == (host_manager, "203.0.113.9")
    assert event.target.startswith("scoring run ")
