"""A real Celery worker process on the real Redis and PostgreSQL: queue, refuse, survive a kill."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from scoring import services, tasks
from scoring.models import Scorecard, ScoringRun
from tests.conftest import make_agreement, write_observations

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def real_services():
    reasons = []
    if not settings.REDIS_URL:
        reasons.append("REDIS_URL is not set")
    if connection.vendor != "postgresql":
        reasons.append("DATABASE_URL is not PostgreSQL")
    if reasons:
        if os.environ.get("CI"):
            pytest.fail("integration tests need real services in CI: " + ", ".join(reasons))
        pytest.skip(", ".join(reasons))


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    def __init__(self, tmp_path: Path, **env: str):
        self.log = tmp_path / f"worker-{time.monotonic_ns()}.log"
        environment = {
            **os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL,
            "SCORING_STALE_AFTER_SECONDS": "600", **env,
        }
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork",
                 "--concurrency", "2", "--loglevel", "INFO", "--without-mingle",
                 "--without-gossip", "--hostname", f"test-{os.getpid()}-{time.monotonic_ns()}@%h"],
                cwd=PROJECT, env=environment, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_worker(tmp_path):
    from config.celery import app

    app.conf.task_always_eager = False
    # Nothing queued by an earlier test may reach this worker.
    app.control.purge()
    workers = []

    def start(**env: str) -> Worker:
        worker = Worker(tmp_path, **env)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def program(acme, kpis):
    rows = []
    for n in range(24):
        agreement = make_agreement(acme, f"INT-{n:02d}", kpis)
        for month in range(1, 7):
            rows.append((agreement, kpis["revenue"], "host", f"2025-{month:02d}-05", 20 + 3 * n))
            rows.append((agreement, kpis["defect_rate"], "partner", f"2025-{month:02d}-07", 4))
    write_observations(rows)


def wait_for(predicate, *, timeout: float, worker: Worker, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{worker.output()[-4000:]}")


def finished(run_id: int) -> ScoringRun | None:
    run = ScoringRun.objects.get(pk=run_id)
    return run if run.status in ("succeeded", "failed") else None


def test_worker_runs_a_queued_run_and_refuses_a_second(program, start_worker):
    worker = start_worker(SCORING_CHUNK_SIZE="5")
    run = tasks.scoring_enqueue(trigger="user")
    with pytest.raises(services.ScoringAlreadyRunning):
        tasks.scoring_enqueue(trigger="user")
    # A duplicate delivery of the same run is claimed once only.
    tasks.run_scoring.delay(run.id)
    done = wait_for(lambda: finished(run.id), timeout=90, worker=worker, what="the run")
    assert done.status == "succeeded", done.error
    assert (done.chunks_total, done.chunks_done) == (5, 5)
    assert Scorecard.objects.filter(run=done, has_scorecard=True).count() == 24 * 6
    assert ScoringRun.objects.count() == 1
    wait_for(lambda: "duplicate delivery ignored" in worker.output(), timeout=30, worker=worker,
             what="the duplicate to be ignored")


def test_worker_killed_mid_run_leaves_previous_results(program, start_worker, settings):
    previous = services.scoring_run_inline()
    expected = Scorecard.objects.filter(run_id=previous.run_id).count()

    # One agreement per chunk and a slow chunk so the kill lands mid-run.
    worker = start_worker(SCORING_CHUNK_SIZE="1", SCORING_CHUNK_PAUSE_MS="300")
    run = tasks.scoring_enqueue(trigger="user")
    wait_for(
        lambda: ScoringRun.objects.filter(pk=run.id, chunks_done__gte=2).exists(),
        timeout=90, worker=worker, what="two chunks",
    )
    worker.kill()
    run.refresh_from_db()
    assert run.status == "running" and run.chunks_done < run.chunks_total
    # Readers still get the previous run, whole.
    assert ScoringRun.objects.current().pk == previous.run_id
    assert Scorecard.objects.filter(run_id=previous.run_id).count() == expected

    settings.SCORING_STALE_AFTER_SECONDS = 1
    time.sleep(1.5)
    assert services.scoring_runs_expire_stale() == 1
    run.refresh_from_db()
    assert run.status == "failed" and "Stopped reporting progress" in run.error

    # The next run goes through on a new worker and replaces the old results.
    worker = start_worker(SCORING_CHUNK_SIZE="8")
    rerun = tasks.scoring_enqueue(trigger="user")
    done = wait_for(lambda: finished(rerun.id), timeout=90, worker=worker, what="the re-run")
    assert done.status == "succeeded", done.error
    assert done.fingerprint == previous.fingerprint
    assert ScoringRun.objects.current().pk == rerun.id
