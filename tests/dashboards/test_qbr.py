"""The QBR pack: the quarter's scorecards, KPIs of both sides, objectives, decisions, every open
action of both sides, disputes and statements, as a page and as a PDF rendered on the server;
scoped like the dashboards; and the archive of many packs built by a task, with its progress,
its download, a second delivery of the task and a worker that stopped."""

import datetime as dt
import io
import re
import time
import zipfile
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.urls import reverse
from pypdf import PdfReader

from dashboards import qbr as packs
from dashboards.selectors.qbr import Quarter, quarter_of_month, quarter_parse
from dashboards.tasks import qbr_archive
from partnerships.models import (
    ActionItem,
    Dispute,
    IncentivePlan,
    Objective,
    Review,
    Role,
)
from scoring.closing import months_close
from scoring.models import StatementLine
from scoring.services import scoring_run_inline
from tests.conftest import make_user, write_observations

pytestmark = pytest.mark.django_db

Q3 = "2025-Q3"


def pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))


@pytest.fixture
def quarter_program(acme_agreement, globex_agreement, kpis, host_manager):
    """Acme scored in Q3 2025 with known numbers (revenue target 100 floor 0, defect rate
    target 2 floor 10, weights 50/50): July 80 and 4 % → 80, 75 → 77.5; August 120 and 6 % →
    120, 50 → 85.0; September 50 and 2 % → 50, 100 → 75.0. The partner reported revenue too
    (88 in July). Globex has its own, marked, rows."""
    revenue, defects = kpis["revenue"], kpis["defect_rate"]
    rows = []
    for agreement in (acme_agreement, globex_agreement):
        for day, value in (("2025-07-10", 80), ("2025-08-10", 120), ("2025-09-10", 50)):
            rows.append((agreement, revenue, "host", day, value))
    write_observations(rows)
    write_observations([(acme_agreement, revenue, "partner", "2025-07-11", 88)]
                       + [(agreement, defects, "partner", day, value)
                          for agreement in (acme_agreement, globex_agreement)
                          for day, value in (("2025-07-12", 4), ("2025-08-12", 6),
                                             ("2025-09-12", 2))], side="partner")
    IncentivePlan.objects.create(agreement=acme_agreement, base_amount=Decimal("1000"),
                                 currency="EUR")
    scoring_run_inline()
    months_close(through="2025-08", user=None)
    Dispute.objects.create(agreement=acme_agreement, kpi=defects, month="2025-08",
                           opened_side="host", reason="Defects double counted in August")
    Dispute.objects.create(agreement=globex_agreement, kpi=defects, month="2025-08",
                           opened_side="host", reason="Globex secret dispute")
    review = Review.objects.create(agreement=acme_agreement, kind="quarterly_strategy",
                                   held_on=dt.date(2025, 8, 20),
                                   decisions="Extend the pilot to EMEA")
    Review.objects.create(agreement=globex_agreement, kind="quarterly_strategy",
                          held_on=dt.date(2025, 8, 20), decisions="Globex secret decision")
    for number in range(7):  # more than the dashboard's five: the pack lists all
        ActionItem.objects.create(agreement=acme_agreement, review=review,
                                  description=f"Host commitment {number}", owner_name="Jo",
                                  owner_side="host", due_date=dt.date(2025, 10, 1 + number))
    ActionItem.objects.create(agreement=acme_agreement, description="Send the lead list",
                              owner_name="Ann", owner_side="partner",
                              due_date=dt.date(2025, 9, 30))
    ActionItem.objects.create(agreement=acme_agreement, description="Closed one",
                              owner_name="Ann", owner_side="partner", status="done",
                              due_date=dt.date(2025, 9, 1))
    ActionItem.objects.create(agreement=globex_agreement, description="Globex secret action",
                              owner_name="Gus", owner_side="partner",
                              due_date=dt.date(2025, 9, 30))
    Objective.objects.create(agreement=acme_agreement, goal_type="revenue_growth",
                             success_metric="Revenue of 100 a month", kpi=revenue,
                             target_value=100, set_on=dt.date(2025, 1, 1),
                             deadline=dt.date(2025, 12, 31), priority="high")
    return acme_agreement


# ---- Quarters --------------------------------------------------------------------------------


def test_quarters_parse_and_name_their_months():
    quarter = quarter_parse("2026-Q3")
    assert quarter == Quarter(2026, 3) and quarter.months == ["2026-07", "2026-08", "2026-09"]
    assert quarter.first_day == dt.date(2026, 7, 1) and quarter.last_day == dt.date(2026, 9, 30)
    assert quarter_parse("2026-Q5") is None and quarter_parse("2026-3") is None
    assert quarter_of_month("2026-12") == Quarter(2026, 4)
    assert Quarter(2026, 1).shifted(-1) == Quarter(2025, 4)


# ---- The pack --------------------------------------------------------------------------------


def test_pack_page_shows_the_quarter_for_the_partner_without_another_partners_rows(
        client, acme_viewer, quarter_program):
    client.force_login(acme_viewer)
    response = client.get(reverse("qbr_pack", args=[quarter_program.code]),
                          {"quarter": Q3})
    assert response.status_code == 200
    text = response.text
    for figure in ("77.5", "85.0", "75.0"):
        assert figure in text
    assert "Extend the pilot to EMEA" in text
    assert "Defects double counted in August" in text
    assert all(f"Host commitment {number}" in text for number in range(7))
    assert "Send the lead list" in text and "Closed one" not in text
    assert "1,275.00" in text  # August's statement: 1000 × 1.5 (strategic) × 85 / 100
    assert "Revenue of 100 a month" in text
    assert "88" in text  # the partner's revenue beside the host's
    assert "<script" not in text and "style=" not in text
    assert "Globex" not in text and "secret" not in text


def test_pack_pdf_opens_and_holds_the_agreements_figures(client, acme_viewer, quarter_program):
    client.force_login(acme_viewer)
    response = client.get(reverse("qbr_pack_pdf", args=[quarter_program.code]),
                          {"quarter": Q3})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert 'filename="QBR-2025-Q3-ACME-CM-2025.pdf"' in response["Content-Disposition"]
    assert response.content.startswith(b"%PDF-")
    text = pdf_text(response.content)
    assert "ACME-CM-2025" in text and "2025-Q3" in text
    for figure in ("77.5", "85.0", "75.0", "1,275.00"):
        assert figure in text, figure
    assert "Extend the pilot to EMEA" in text and "Host commitment 6" in text
    assert "Defects double counted in August" in text
    assert "Globex" not in text


def test_another_partners_pack_answers_as_a_missing_one(client, globex_viewer, quarter_program):
    client.force_login(globex_viewer)
    for name in ("qbr_pack", "qbr_pack_pdf"):
        other = client.get(reverse(name, args=[quarter_program.code]), {"quarter": Q3})
        missing = client.get(reverse(name, args=["NO-SUCH-CODE"]), {"quarter": Q3})
        assert other.status_code == missing.status_code == 404


def test_the_pack_takes_the_dashboards_month_and_ignores_a_malformed_quarter(
        client, host_manager, quarter_program):
    client.force_login(host_manager)
    url = reverse("qbr_pack", args=[quarter_program.code])
    assert "business review 2025-Q3" in client.get(url, {"month": "2025-08"}).text
    # The published run's last month (September) by default.
    assert "business review 2025-Q3" in client.get(url, {"quarter": "2025-Q9"}).text
    empty = client.get(url, {"quarter": "2024-Q1"}).text
    assert "No metrics imported for 2024-Q1" in empty


# ---- Many packs at once ----------------------------------------------------------------------


def test_manager_renders_many_packs_into_one_archive(client, host_manager, quarter_program,
                                                     globex_agreement, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(host_manager)
    form = client.get(reverse("qbr_archives"))
    assert form.status_code == 200 and "ACME-CM-2025" in form.text
    response = client.post(reverse("qbr_archives"), {
        "quarter": Q3, "agreements": [quarter_program.pk, globex_agreement.pk]})
    assert response.status_code == 302
    job_url = response["Location"]
    page = client.get(job_url)
    assert "All 2 packs rendered" in page.text and 'hx-trigger="every 1s"' not in page.text
    job_id = job_url.rstrip("/").rsplit("/", 1)[-1]
    download = client.get(reverse("qbr_archive_download", args=[job_id]))
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert sorted(archive.namelist()) == ["QBR-2025-Q3-ACME-CM-2025.pdf",
                                          "QBR-2025-Q3-GLOBEX-REF-2025.pdf"]
    assert "85.0" in pdf_text(archive.read("QBR-2025-Q3-ACME-CM-2025.pdf"))
    # Delivered a second time (acks_late after a lost worker): nothing is rendered again.
    assert qbr_archive(job_id) == "already done"


def test_archive_by_stage_and_owner_and_refusals(client, host_manager, quarter_program,
                                                 settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    quarter_program.owner = host_manager
    quarter_program.save()
    client.force_login(host_manager)
    response = client.post(reverse("qbr_archives"), {"quarter": Q3, "stages": ["active"],
                                                     "owner": "mine"})
    job = packs.qbr_job_for(job_id=response["Location"].rstrip("/").rsplit("/", 1)[-1],
                            user=host_manager)
    assert job["agreement_ids"] == [quarter_program.pk] and job["status"] == "done"
    refused = client.post(reverse("qbr_archives"), {"quarter": Q3, "stages": ["ended"]})
    assert refused.status_code == 200 and "No agreement matches" in refused.text
    assert client.post(reverse("qbr_archives"), {"quarter": "2031-Q1"}).status_code == 200


def test_a_job_whose_worker_stopped_says_so_and_starts_again(client, host_manager,
                                                              quarter_program, settings,
                                                              tmp_path):
    settings.MEDIA_ROOT = tmp_path
    job = packs.qbr_job_create(user=host_manager, agreement_ids=[quarter_program.pk],
                               quarter=Quarter(2025, 3))
    # A worker took it, rendered nothing more and vanished three minutes ago.
    job.update(status="running", done=0, heartbeat=time.time() - packs.JOB_STALE_SECONDS - 5)
    cache.set(f"qbr-job:{job['id']}", job, 60)
    client.force_login(host_manager)
    page = client.get(reverse("qbr_archive_job", args=[job["id"]]))
    assert "stopped answering" in page.text and 'hx-trigger="every 1s"' not in page.text
    again = client.post(reverse("qbr_archive_again", args=[job["id"]]))
    assert again.status_code == 302
    assert "All 1 pack rendered" in client.get(again["Location"]).text


def test_a_running_job_polls_and_a_second_delivery_leaves_it_alone(client, host_manager,
                                                                    quarter_program):
    job = packs.qbr_job_create(user=host_manager, agreement_ids=[quarter_program.pk],
                               quarter=Quarter(2025, 3))
    job.update(status="running", done=0)
    cache.set(f"qbr-job:{job['id']}", job, 60)
    cache.add(f"qbr-job:{job['id']}:worker", True, 60)  # another worker is on it
    assert qbr_archive(job["id"]) == "being built by another worker"
    client.force_login(host_manager)
    page = client.get(reverse("qbr_archive_job", args=[job["id"]]), HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 1s"' in page.text and "<html" not in page.text


def test_archive_pages_are_for_host_managers_only(client, django_user_model, acme,
                                                  acme_viewer, host_manager, quarter_program):
    job = packs.qbr_job_create(user=host_manager, agreement_ids=[quarter_program.pk],
                               quarter=Quarter(2025, 3))
    editor = make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)
    for user in (acme_viewer, editor):
        client.force_login(user)
        assert client.get(reverse("qbr_archives")).status_code in (403, 404)
        assert client.get(reverse("qbr_archive_job", args=[job["id"]])).status_code in (403,
                                                                                        404)
    client.force_login(host_manager)
    assert client.get(reverse("qbr_archive_job", args=["0" * 32])).status_code == 404
    assert client.get(reverse("qbr_archive_job", args=["not-a-job"])).status_code == 404
    assert StatementLine.objects.filter(agreement=quarter_program).exists()
