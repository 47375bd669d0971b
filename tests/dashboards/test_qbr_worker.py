"""The QBR archive job on a real Celery worker, the real Redis (broker and cache) and PostgreSQL:
queued from the page, built by the worker into one ZIP of PDFs; a worker killed halfway leaves a
job that says it stopped, and starting it again on a new worker finishes it."""

import io
import re
import time
import zipfile

import pytest
from django.urls import reverse
from pypdf import PdfReader

from dashboards import qbr as packs
from scoring.services import scoring_run_inline
from tests.conftest import make_agreement, write_observations
from tests.scoring.test_worker_integration import (  # noqa: F401 (fixtures)
    Worker,
    real_services,
    start_worker,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUARTER = "2025-Q2"


@pytest.fixture
def shared_with_the_worker(settings, tmp_path):
    """The worker is another process: it reads the cache under the project's key prefix and
    writes the archive under MEDIA_ROOT; the test reads both the same way."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": "pp"}}
    settings.MEDIA_ROOT = str(tmp_path / "media")
    created: list[str] = []
    yield {"MEDIA_ROOT": settings.MEDIA_ROOT}, created
    from django.core.cache import cache

    for job_id in created:
        cache.delete(f"qbr-job:{job_id}")


@pytest.fixture
def scored(acme, kpis):
    agreements = []
    for number in range(6):
        agreement = make_agreement(acme, f"QBR-{number:02d}", kpis)
        agreements.append(agreement)
        write_observations([(agreement, kpis["revenue"], "host", f"2025-{month:02d}-05",
                             40 + 10 * number) for month in (4, 5, 6)])
    scoring_run_inline()
    return agreements


def _job_id(response) -> str:
    return response["Location"].rstrip("/").rsplit("/", 1)[-1]


def _wait(predicate, *, timeout: float, worker: Worker, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{worker.output()[-4000:]}")


def test_worker_builds_the_archive_and_a_killed_worker_leaves_a_job_that_says_so(
        client, host_manager, scored, start_worker, shared_with_the_worker,  # noqa: F811
        monkeypatch):
    env, created = shared_with_the_worker
    client.force_login(host_manager)
    worker = start_worker(**env)
    ids = [agreement.pk for agreement in scored]

    response = client.post(reverse("qbr_archives"), {"quarter": QUARTER, "agreements": ids})
    assert response.status_code == 302
    job_id = _job_id(response)
    created.append(job_id)
    # Halfway: the page polls and says how far it got.
    _wait(lambda: (packs.qbr_job_for(job_id=job_id, user=host_manager) or {}).get("done"),
          timeout=120, worker=worker, what="the first pack")
    page = client.get(reverse("qbr_archive_job", args=[job_id]), HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 1s"' in page.text or "All 6 packs rendered" in page.text

    # Killed while it works (or just after): a job not done stops answering and says so.
    worker.kill()
    job = packs.qbr_job_for(job_id=job_id, user=host_manager)
    if job["status"] != "done":
        monkeypatch.setattr(packs, "JOB_STALE_SECONDS", 1)
        time.sleep(1.5)
        page = client.get(reverse("qbr_archive_job", args=[job_id]))
        assert "stopped answering" in page.text and 'hx-trigger="every 1s"' not in page.text
        monkeypatch.undo()
        again = client.post(reverse("qbr_archive_again", args=[job_id]))
        job_id = _job_id(again)
        created.append(job_id)

    worker = start_worker(**env)
    done = _wait(lambda: (lambda job: job if job and job["status"] == "done" else None)(
        packs.qbr_job_for(job_id=job_id, user=host_manager)),
        timeout=180, worker=worker, what="the archive")
    assert done["done"] == done["total"] == 6
    download = client.get(reverse("qbr_archive_download", args=[job_id]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    names = sorted(archive.namelist())
    assert names == [f"QBR-{QUARTER}-QBR-{number:02d}.pdf" for number in range(6)]
    text = " ".join(page.extract_text() for page in
                    PdfReader(io.BytesIO(archive.read(names[5]))).pages)
    assert "QBR-05" in re.sub(r"\s+", " ", text)
