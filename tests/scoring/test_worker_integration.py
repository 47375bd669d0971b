"""A real Celery worker process on the real Redis and PostgreSQL: queue, refuse, and finish
within a minute after a killed pool child, a killed worker or dropped database connections."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import F

from scoring import services, tasks
from scoring.models import Scorecard, ScoringChunk, ScoringRun
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
    def __init__(self, tmp_path: Path, *, command: str = "worker", **env: str):
        name = f"{command}-{time.monotonic_ns()}"
        self.log = tmp_path / f"{name}.log"
        environment = {
            **os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL,
            "SCORING_STALE_AFTER_SECONDS": "600", **env,
        }
        arguments = (
            ["--pool", "prefork", "--concurrency", "2", "--without-mingle", "--without-gossip",
             "--hostname", f"test-{os.getpid()}-{time.monotonic_ns()}@%h"]
            # Beat, as in production a process of its own: its schedule file in tmp_path.
            if command == "worker" else ["--schedule", str(tmp_path / f"{name}-schedule")]
        )
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", command, "--loglevel", "INFO",
                 *arguments],
                cwd=PROJECT, env=environment, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def children(self) -> list[int]:
        """The worker's pool processes."""
        listing = subprocess.run(["ps", "--ppid", str(self.process.pid), "-o", "pid="],
                                 capture_output=True, text=True).stdout
        return [int(line) for line in listing.split()]

    def kill_main(self) -> None:
        """SIGKILL the main process only: its pool children are orphaned."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

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
        # Whatever outlived a killed main process (orphaned children, an embedded beat).
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_worker(tmp_path):
    from config.celery import app

    app.conf.task_always_eager = False
    # Nothing queued by an earlier test may reach this worker.
    app.control.purge()
    workers = []

    def start(*, command: str = "worker", **env: str) -> Worker:
        worker = Worker(tmp_path, command=command, **env)
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


def all_chunks_staged(run_id: int) -> bool:
    return ScoringRun.objects.filter(
        pk=run_id, chunks_total__gt=0, chunks_done=F("chunks_total")
    ).exists()


def chunks_staged(run_id: int, count: int) -> bool:
    return ScoringRun.objects.filter(pk=run_id, chunks_done__gte=count).exists()


def ends_within_a_minute(run_id: int, *, fault_at: float, worker: Worker) -> ScoringRun:
    """The run is published within 60 s of the fault."""
    done = wait_for(lambda: finished(run_id), timeout=60, worker=worker, what="the run to end")
    assert done.status == "succeeded", done.error
    assert time.monotonic() - fault_at < 60
    assert ScoringRun.objects.current().pk == run_id
    return done


def next_run_goes_through(done: ScoringRun, *, worker: Worker) -> None:
    rerun = tasks.scoring_enqueue(trigger="user")
    again = wait_for(lambda: finished(rerun.id), timeout=60, worker=worker, what="the next run")
    assert again.status == "succeeded", again.error
    assert again.fingerprint == done.fingerprint


def test_pool_children_killed_after_the_last_chunk_committed_still_publish(
    program, start_worker
):
    previous = services.scoring_run_inline()
    expected = Scorecard.objects.filter(run_id=previous.run_id).count()
    # A pause after each chunk's commit, so that the kill lands between the commit of the
    # last chunk and the publication it would have queued.
    worker = start_worker(SCORING_CHUNK_SIZE="3", SCORING_CHUNK_PAUSE_MS="2000")
    start_worker(command="beat")
    run = tasks.scoring_enqueue(trigger="user")
    wait_for(lambda: all_chunks_staged(run.id), timeout=90, worker=worker, what="every chunk")
    children = worker.children()
    assert children
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    fault_at = time.monotonic()
    # Readers still get the previous run, whole.
    assert ScoringRun.objects.current().pk == previous.run_id
    assert Scorecard.objects.filter(run_id=previous.run_id).count() == expected
    done = ends_within_a_minute(run.id, fault_at=fault_at, worker=worker)
    assert done.chunks_done == done.chunks_total == 8
    assert "WorkerLostError" in worker.output()
    next_run_goes_through(done, worker=worker)


def test_worker_killed_with_its_pool_mid_chunk_is_recovered_by_a_new_worker(
    program, start_worker
):
    # The pause is inside each chunk's transaction: the kill loses chunks half done.
    worker = start_worker(SCORING_CHUNK_SIZE="3", SCORING_CHUNK_WORK_MS="1500")
    beat = start_worker(command="beat")
    run = tasks.scoring_enqueue(trigger="user")
    wait_for(lambda: chunks_staged(run.id, 2), timeout=90, worker=worker, what="two chunks")
    worker.kill()
    fault_at = time.monotonic()
    run.refresh_from_db()
    assert run.status == "running" and run.chunks_done < run.chunks_total
    worker = start_worker(SCORING_CHUNK_SIZE="3", SCORING_CHUNK_WORK_MS="1500")
    done = ends_within_a_minute(run.id, fault_at=fault_at, worker=worker)
    # The chunks the kill interrupted were started twice, the others once.
    attempts = sorted(ScoringChunk.objects.filter(run=done).values_list("attempts", flat=True))
    assert attempts[-1] == 2 and attempts[0] == 1, attempts
    assert "scoring_supervise" in beat.output()
    next_run_goes_through(done, worker=worker)


def terminated_mid_chunk() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND EXISTS ("
            "  SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
            "  AND pid <> pg_backend_pid() AND state = 'idle in transaction')"
        )
        return cursor.fetchone()[0] >= 1


def test_terminated_database_connections_mid_run_are_recovered(program, start_worker):
    worker = start_worker(SCORING_CHUNK_SIZE="3", SCORING_CHUNK_WORK_MS="1500")
    start_worker(command="beat")
    run = tasks.scoring_enqueue(trigger="user")
    wait_for(lambda: chunks_staged(run.id, 2), timeout=90, worker=worker, what="two chunks")
    # Terminate every connection of the worker at a moment when one of them is inside a chunk's
    # transaction (one snapshot of pg_stat_activity decides both), so that the fault hits a
    # chunk at work rather than an idle connection between two chunks.
    wait_for(terminated_mid_chunk, timeout=30, worker=worker, what="a chunk at work")
    fault_at = time.monotonic()
    done = ends_within_a_minute(run.id, fault_at=fault_at, worker=worker)
    assert max(ScoringChunk.objects.filter(run=done).values_list("attempts", flat=True)) == 2
    # The fault hit a chunk at work: PostgreSQL's own words, whichever layer raised them
    # (Django's OperationalError, or psycopg's AdminShutdown from inside a COPY).
    assert "terminating connection due to administrator command" in worker.output()
    next_run_goes_through(done, worker=worker)
