"""The supervisor of scoring runs, without a worker: lost tasks queued again, bounded, or the
run failed with its reason; a failed night tried again; a broker that is down refused fast."""

import datetime as dt
import threading
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone

from scoring import services, tasks
from scoring.models import ScoringChunk, ScoringRun
from scoring.services import Requeue
from tests.conftest import make_agreement, write_observations

pytestmark = pytest.mark.django_db


@pytest.fixture
def program(acme, kpis):
    rows = []
    for n in range(4):
        agreement = make_agreement(acme, f"SUP-{n}", kpis)
        rows += [(agreement, kpis["revenue"], "host", f"2025-0{month}-05", 30 + n)
                 for month in (1, 2)]
    write_observations(rows)


def planned_run(chunk_size: int = 1) -> ScoringRun:
    """A running run planned in chunks whose tasks were queued (as scoring.tasks does)."""
    run = services.scoring_run_request(trigger="user")
    services.scoring_run_claim(run_id=run.id)
    services.scoring_run_plan(run_id=run.id, chunk_size=chunk_size)
    return ScoringRun.objects.get(pk=run.id)


def later(seconds: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(seconds=seconds)


def start_chunk(run: ScoringRun, index: int, *, seconds_ago: float = 10, error: str = "",
                attempts: int = 1) -> None:
    """A chunk whose task recorded its start and then died (its row lock went with it)."""
    ScoringChunk.objects.filter(run=run, index=index).update(
        attempts=attempts, started_at=timezone.now() - dt.timedelta(seconds=seconds_ago),
        sent_at=timezone.now() - dt.timedelta(seconds=seconds_ago + 1), error=error,
    )


def test_started_chunk_that_lost_its_worker_is_queued_again(program):
    run = planned_run()
    start_chunk(run, 1)
    assert services.scoring_run_supervise(run_id=run.id) == [Requeue("chunk", run.id, 1)]
    chunk = ScoringChunk.objects.get(run=run, index=1)
    assert chunk.sends == 2 and chunk.sent_at > chunk.started_at
    # Queued again, it waits for a worker: the next pass leaves it alone.
    assert services.scoring_run_supervise(run_id=run.id) == []


def test_chunk_that_just_started_is_not_taken_for_lost(program):
    run = planned_run()
    start_chunk(run, 0, seconds_ago=0.5)
    assert services.scoring_run_supervise(run_id=run.id) == []


def test_chunk_whose_task_ended_is_queued_again_at_once(program):
    run = planned_run()
    start_chunk(run, 2, seconds_ago=0.1)
    assert services.scoring_run_supervise(run_id=run.id, task_ended=True, chunk=2) == [
        Requeue("chunk", run.id, 2)
    ]


def test_late_report_of_an_earlier_delivery_does_not_queue_the_chunk_twice(program):
    run = planned_run()
    start_chunk(run, 2)
    assert services.scoring_run_supervise(run_id=run.id) == [Requeue("chunk", run.id, 2)]
    # The error callback of the delivery that died arrives after the chunk was queued again.
    assert services.scoring_run_supervise(run_id=run.id, task_ended=True, chunk=2) == []
    assert ScoringChunk.objects.get(run=run, index=2).sends == 2


def test_chunk_started_too_often_fails_the_run_with_its_last_error_and_unblocks(
    program, settings
):
    settings.SCORING_TASK_ATTEMPTS = 3
    run = planned_run()
    start_chunk(run, 3, attempts=3, error="OperationalError: server closed the connection")
    assert services.scoring_run_supervise(run_id=run.id) == []
    run.refresh_from_db()
    assert run.status == "failed" and run.active is None
    assert run.error.startswith("Chunk 4 of 4 did not finish after 3 attempts: "
                                "OperationalError: server closed the connection")
    assert services.scoring_run_request(trigger="user").status == "pending"


def test_waiting_chunks_are_queued_again_only_after_a_quiet_period_and_a_bounded_number_of_times(
    program, settings
):
    settings.SCORING_LOST_AFTER_SECONDS = 20
    settings.SCORING_TASK_ATTEMPTS = 3
    run = planned_run(chunk_size=2)
    # Queued moments ago: they are waiting for a worker.
    assert services.scoring_run_supervise(run_id=run.id) == []
    assert services.scoring_run_supervise(run_id=run.id, now=later(30)) == [
        Requeue("chunk", run.id, 0), Requeue("chunk", run.id, 1)
    ]
    assert services.scoring_run_supervise(run_id=run.id, now=later(40)) == []
    assert len(services.scoring_run_supervise(run_id=run.id, now=later(60))) == 2
    # Sent three times: they wait for a worker, and the stale rule ends the run if none comes.
    assert services.scoring_run_supervise(run_id=run.id, now=later(90)) == []
    run.refresh_from_db()
    assert run.status == "running"


@pytest.mark.django_db(transaction=True)
def test_a_chunk_holding_its_row_lock_is_running_and_holds_back_the_waiting_ones(program):
    run = planned_run()
    start_chunk(run, 0)
    locked, release = threading.Event(), threading.Event()

    def worker() -> None:
        with transaction.atomic():
            ScoringChunk.objects.select_for_update().get(run=run, index=0)
            locked.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert locked.wait(10)
        assert services.scoring_run_supervise(run_id=run.id, now=later(60)) == []
    finally:
        release.set()
        thread.join()
    assert Requeue("chunk", run.id, 0) in services.scoring_run_supervise(
        run_id=run.id, now=later(60)
    )


def test_staged_run_that_was_never_published_is_published(program):
    run = planned_run(chunk_size=2)
    for index in (0, 1):
        assert services.scoring_chunk_execute(run_id=run.id, index=index)
    run.refresh_from_db()
    assert (run.chunks_done, run.progress, run.stage) == (2, 90, "scoring agreements (2/2)")
    assert services.scoring_run_staged(run_id=run.id)
    # The last chunk queues the publication itself; only a quiet run needs the supervisor ...
    assert services.scoring_run_supervise(run_id=run.id) == []
    assert services.scoring_run_supervise(run_id=run.id, now=later(30)) == [
        Requeue("publish", run.id)
    ]
    # ... or a chunk's task that ended after its commit, before it could queue it.
    assert services.scoring_run_supervise(run_id=run.id, task_ended=True, chunk=1) == [
        Requeue("publish", run.id)
    ]
    assert services.scoring_run_publish(run_id=run.id).status == "succeeded"


def test_publication_that_lost_its_worker_is_retried_then_fails_the_run(program, settings):
    settings.SCORING_TASK_ATTEMPTS = 2
    run = planned_run(chunk_size=4)
    services.scoring_chunk_execute(run_id=run.id, index=0)
    ScoringRun.objects.filter(pk=run.id).update(
        stage=services.STAGE_PUBLISHING, publish_attempts=1, error="publish: MemoryError: "
    )
    assert services.scoring_run_supervise(run_id=run.id) == []  # it may still take its lock
    assert services.scoring_run_supervise(run_id=run.id, now=later(5)) == [
        Requeue("publish", run.id)
    ]
    ScoringRun.objects.filter(pk=run.id).update(publish_attempts=2)
    assert services.scoring_run_supervise(run_id=run.id, task_ended=True) == []
    run.refresh_from_db()
    assert run.status == "failed"
    assert "Publishing the run did not finish after 2 attempts: publish: MemoryError" in run.error


def test_planning_that_lost_its_worker_goes_back_to_the_queue(program, settings):
    settings.SCORING_LOST_AFTER_SECONDS = 20
    run = services.scoring_run_request(trigger="user")
    services.scoring_run_claim(run_id=run.id)
    assert services.scoring_run_supervise(run_id=run.id) == []
    assert services.scoring_run_supervise(run_id=run.id, now=later(30)) == [Requeue("run", run.id)]
    run.refresh_from_db()
    assert (run.status, run.stage, run.dispatches) == ("pending", "queued", 2)
    # One delivery claims it again and the run goes through.
    assert services.scoring_run_execute(run_id=run.id).status == "succeeded"


def test_pending_run_queued_often_enough_is_left_to_the_stale_rule(program, settings):
    settings.SCORING_TASK_ATTEMPTS = 2
    run = services.scoring_run_request(trigger="user")
    assert services.scoring_run_supervise(run_id=run.id, now=later(30)) == [Requeue("run", run.id)]
    assert services.scoring_run_supervise(run_id=run.id, now=later(60)) == []
    assert ScoringRun.objects.get(pk=run.id).status == "pending"


def test_supervising_a_finished_run_does_nothing(program):
    summary = services.scoring_run_inline()
    assert services.scoring_run_supervise(run_id=summary.run_id, task_ended=True) == []


def test_supervise_task_recovers_a_lost_chunk_in_process(program):
    run = planned_run()
    for index in (0, 1, 2):
        services.scoring_chunk_execute(run_id=run.id, index=index)
    start_chunk(run, 3)
    # In-process (eager) the chunk queued again runs at once, and publishes the run.
    assert tasks.scoring_supervise.apply().get().startswith("queued 1 task(s) again")
    run.refresh_from_db()
    assert run.status == "succeeded" and run.chunks_done == 4 and run.error == ""


def fail_nightly(night: dt.date, attempt: int, *, minutes_ago: float = 10) -> ScoringRun:
    run = services.scoring_run_request(trigger="schedule", scheduled_for=night, attempt=attempt)
    services.scoring_run_fail(run_id=run.id, error="worker lost")
    ScoringRun.objects.filter(pk=run.id).update(
        finished_at=timezone.now() - dt.timedelta(minutes=minutes_ago)
    )
    return run


def test_failed_nightly_run_is_tried_again_that_night_a_bounded_number_of_times(
    program, settings
):
    settings.SCORING_NIGHTLY_ATTEMPTS = 3
    settings.SCORING_NIGHTLY_RETRY_AFTER_SECONDS = 300
    night = timezone.localdate()
    fail_nightly(night, 1, minutes_ago=1)
    assert services.scoring_nightly_retry_due() is None  # not yet: a moment to recover
    ScoringRun.objects.update(finished_at=timezone.now() - dt.timedelta(minutes=6))
    assert services.scoring_nightly_retry_due() == (night, 2)
    fail_nightly(night, 2)
    assert services.scoring_nightly_retry_due() == (night, 3)
    # The database still refuses a second run of the same night and attempt.
    with pytest.raises(services.ScoringAlreadyRunning):
        services.scoring_run_request(trigger="schedule", scheduled_for=night, attempt=2)
    fail_nightly(night, 3)
    assert services.scoring_nightly_retry_due() is None


def test_failed_nightly_run_is_not_tried_again_after_another_run_or_another_night(program):
    fail_nightly(timezone.localdate() - dt.timedelta(days=3), 1)
    assert services.scoring_nightly_retry_due() is None
    fail_nightly(timezone.localdate(), 1)
    services.scoring_run_inline()
    assert services.scoring_nightly_retry_due() is None


def test_supervise_task_runs_the_next_attempt_of_a_failed_night(
    program, django_capture_on_commit_callbacks
):
    night = timezone.localdate()
    fail_nightly(night, 1)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = tasks.scoring_supervise.apply().get()
    assert outcome.endswith(f"nightly: queued run {ScoringRun.objects.first().pk}")
    retry = ScoringRun.objects.get(scheduled_for=night, attempt=2)
    assert retry.status == "succeeded" and retry.trigger == "schedule"


@pytest.fixture
def broker_down(settings):
    """Celery's broker pointed at a port where nothing listens; tasks no longer in-process."""
    from config.celery import app

    def use(url: str) -> None:
        app._pool = None
        app.amqp._producer_pool = None
        app.conf.broker_url = url

    previous_url, previous_eager = app.conf.broker_url, app.conf.task_always_eager
    app.conf.task_always_eager = False
    use("redis://127.0.0.1:9/0")
    yield
    use(previous_url)
    app.conf.task_always_eager = previous_eager


@pytest.mark.django_db(transaction=True)
def test_start_with_the_broker_down_says_so_fast_and_leaves_no_run(
    client, host_manager, program, broker_down
):
    client.force_login(host_manager)
    started = time.monotonic()
    response = client.post("/scoring/runs/start/", headers={"HX-Request": "true"})
    assert time.monotonic() - started < 5
    assert response.status_code == 200
    assert "The task queue is unavailable; nothing was started." in response.text
    assert not ScoringRun.objects.exists()
    page = client.post("/scoring/runs/start/", follow=True)
    assert "The task queue is unavailable; nothing was started." in page.text
    assert not ScoringRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_nightly_with_the_broker_down_records_a_failed_run_tried_again_later(
    program, broker_down, settings
):
    settings.SCORING_NIGHTLY_RETRY_AFTER_SECONDS = 0
    assert tasks.scoring_nightly.run() == "queue unavailable"
    run = ScoringRun.objects.get()
    assert (run.status, run.active, run.attempt) == ("failed", None, 1)
    assert run.error == "The task queue is unavailable; nothing was started."
    assert services.scoring_nightly_retry_due() == (run.scheduled_for, 2)


def test_runs_page_names_the_attempt_of_a_night_tried_again(client, host_manager, program):
    fail_nightly(timezone.localdate(), 1)
    fail_nightly(timezone.localdate(), 2)
    client.force_login(host_manager)
    body = client.get("/scoring/runs/").text
    assert "Nightly schedule · attempt 2" in body
    assert "Nightly schedule · attempt 1" not in body
