"""An Idempotency-Key retried while its first request still runs: 409 with Retry-After,
never a 422 that would tell the client its observations were rejected."""

import hashlib
import json
import os
import threading

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from partnerships.models import ImportBatch, ImportSource, ImportStatus, MetricObservation
from tests.dashboards.test_api import GOOD, URL, post, token_for

KEY = "5f0c6a4e-1d3b-4c2a-9e8f-7a6b5c4d3e2f"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def digest_of(records: list[dict]) -> str:
    payload = json.dumps(records, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                         default=str).encode()
    return hashlib.sha256(payload).hexdigest()


@pytest.mark.django_db
def test_a_retry_while_the_first_request_runs_answers_409_with_retry_after(
        host_manager, acme_agreement):
    key = token_for(host_manager)
    first = ImportBatch.objects.create(
        source=ImportSource.API, status=ImportStatus.RUNNING, side="host", user=host_manager,
        file_name="records.json", sha256=digest_of(GOOD), idempotency_key=KEY,
        confirmed_at=timezone.now(), heartbeat_at=timezone.now(),
    )

    response = post({"observations": GOOD}, key, idempotency_key=KEY)

    assert response.status_code == 409
    assert response.json()["error"] == "in_progress"
    assert response.json()["batch"] == first.pk
    assert int(response["Retry-After"]) >= 1
    assert MetricObservation.objects.count() == 0
    assert ImportBatch.objects.count() == 1


@pytest.mark.django_db
def test_once_the_first_request_finished_the_retry_gets_its_result(host_manager, acme_agreement):
    key = token_for(host_manager)
    assert post({"observations": GOOD}, key, idempotency_key=KEY).status_code == 201
    replay = post({"observations": GOOD}, key, idempotency_key=KEY)
    assert replay.status_code == 200 and replay.json()["replayed"] is True


@pytest.mark.django_db(transaction=True)
def test_ten_parallel_requests_with_one_key_import_once_and_none_is_rejected(
        host_manager, acme_agreement, kpis):
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("CI must run the concurrency tests on PostgreSQL")
        pytest.skip("needs PostgreSQL (set DATABASE_URL=postgres://...)")
    key = token_for(host_manager)
    # Enough observations that the first request is still importing when the others arrive.
    records = [{"agreement": "ACME-CM-2025", "kpi": "revenue",
                "date": f"2025-{month:02d}-{day:02d}", "value": month * 100 + day}
               for month in range(1, 13) for day in range(1, 29)] * 1
    records += [{"agreement": "ACME-CM-2025", "kpi": "defect_rate", "side": "partner",
                 "date": f"2025-{month:02d}-{day:02d}", "value": 3 + day / 100}
                for month in range(1, 13) for day in range(1, 29)]
    body = json.dumps({"observations": records})
    barrier = threading.Barrier(10)
    answers: list = []

    def send():
        try:
            barrier.wait()
            response = Client().post(URL, body, content_type="application/json",
                                     headers={"Authorization": f"Bearer {key}",
                                              "Idempotency-Key": KEY})
            answers.append((response.status_code, response.json().get("error"),
                            response.get("Retry-After")))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    codes = sorted(code for code, _, _ in answers)
    assert len(answers) == 10
    assert codes.count(201) == 1, answers
    assert set(codes) <= {200, 201, 409}, answers
    assert all(error == "in_progress" and retry for code, error, retry in answers
               if code == 409), answers
    assert MetricObservation.objects.count() == len(records)
    assert ImportBatch.objects.count() == 1
