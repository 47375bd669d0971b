"""Celery tasks: thin wrappers that take ids and call the services. Each is safe to run twice.

A run's tasks may be lost (a killed worker, a restarted broker, a dropped connection): every
task of a run names `scoring_task_ended` as its error callback, which has the supervisor act at
once, and beat runs `scoring_supervise` every SCORING_SUPERVISE_SECONDS for what no callback
reports (a killed worker's main process, messages lost with the broker).
"""

import logging

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from partnerships.mail import MAIL_TASK_RETRY, mail_failures_raised
from partnerships.queue import TaskQueueUnavailable, task_publish

from . import alerts, closing, services, whatif
from .models import ScoringRun

logger = logging.getLogger(__name__)


def _signature(item: services.Requeue):
    """The task of a run's part, with the supervisor as its error callback."""
    if item.task == "chunk":
        return score_chunk.si(item.run_id, item.index).set(
            link_error=scoring_task_ended.si(run_id=item.run_id, index=item.index)
        )
    task = run_scoring if item.task == "run" else publish_run
    return task.si(item.run_id).set(link_error=scoring_task_ended.si(run_id=item.run_id))


def _requeue(requeue: list[services.Requeue], *, again: bool = True) -> None:
    """Queue the tasks named (again, when the supervisor found them lost); what the broker
    refuses waits for the supervisor's next pass."""
    for item in requeue:
        try:
            task_publish(_signature(item))
        except TaskQueueUnavailable:
            logger.error("Could not queue %s: the task queue is unavailable", item)
            return
        if again:
            logger.warning("Queued %s of scoring run %s again", item.task, item.run_id)


def scoring_enqueue(*, trigger: str, user=None, scheduled_for=None, attempt: int = 1) -> ScoringRun:
    """Request a run and queue its task; raise TaskQueueUnavailable, leaving no pending run
    behind, when the broker does not take it."""
    run = services.scoring_run_request(
        trigger=trigger, user=user, scheduled_for=scheduled_for, attempt=attempt
    )
    # Inside the caller's transaction a worker could not see the run yet: queued at its commit.
    # Outside one, on_commit runs at once, so the caller gets TaskQueueUnavailable here.
    transaction.on_commit(lambda: _dispatch(run))
    return run


def _dispatch(run: ScoringRun) -> None:
    try:
        task_publish(_signature(services.Requeue("run", run.id)))
    except TaskQueueUnavailable as unavailable:
        if services.scoring_run_unqueued(run_id=run.id, error=str(unavailable)):
            logger.error("Scoring run %s not queued: the task queue is unavailable", run.id)
            raise
        # The broker took the task after all (the error came after the send): it runs.


@shared_task(acks_late=True, ignore_result=True)
def run_scoring(run_id: int) -> str:
    if not services.scoring_run_claim(run_id=run_id):
        # A duplicate delivery (visibility timeout, second worker): the run is already taken.
        logger.info("Scoring run %s already claimed; duplicate delivery ignored", run_id)
        return "skipped"
    try:
        indexes = services.scoring_run_plan(run_id=run_id)
    except Exception as exc:
        services.scoring_task_error(run_id=run_id, error=f"planning: {type(exc).__name__}: {exc}")
        raise
    _requeue(
        [services.Requeue("chunk", run_id, index) for index in indexes]
        or [services.Requeue("publish", run_id)],
        again=False,
    )
    return f"planned {len(indexes)} chunks"


@shared_task(acks_late=True, ignore_result=True)
def score_chunk(run_id: int, index: int) -> bool:
    try:
        staged = services.scoring_chunk_execute(run_id=run_id, index=index)
    except Exception as exc:
        services.scoring_task_error(
            run_id=run_id, index=index, error=f"{type(exc).__name__}: {exc}"
        )
        raise
    # The chunk is committed: bookkeeping that fails from here on is the supervisor's to redo.
    if staged and services.scoring_run_staged(run_id=run_id):
        _requeue([services.Requeue("publish", run_id)], again=False)
    return staged


@shared_task(acks_late=True, ignore_result=True)
def publish_run(run_id: int) -> str:
    try:
        run = services.scoring_run_publish(run_id=run_id)
    except Exception as exc:
        services.scoring_task_error(run_id=run_id, error=f"publish: {type(exc).__name__}: {exc}")
        raise
    if run:
        # The new results are visible now; removing the old ones need not hold anything up.
        try:
            task_publish(scoring_cleanup.si())
        except TaskQueueUnavailable:
            logger.warning("Old scoring results not removed now: the task queue is unavailable")
    return "published" if run else "skipped"


@shared_task(acks_late=True, ignore_result=True)
def scoring_task_ended(*, run_id: int, index: int | None = None) -> int:
    """Error callback of a run's tasks: recover or fail the run now. Keyword arguments only, so
    that Celery queues it as a task rather than calling it in the worker's main process."""
    requeue = services.scoring_run_supervise(run_id=run_id, task_ended=True, chunk=index)
    _requeue(requeue)
    return len(requeue)


@shared_task(acks_late=True, ignore_result=True)
def scoring_cleanup() -> int:
    return services.scoring_results_cleanup()


def _nightly(*, scheduled_for, attempt: int) -> str:
    try:
        run = scoring_enqueue(
            trigger=ScoringRun.Trigger.SCHEDULE, scheduled_for=scheduled_for, attempt=attempt
        )
    except services.ScoringAlreadyRunning as refused:
        logger.warning("Nightly scoring skipped: %s", refused)
        return "skipped"
    except TaskQueueUnavailable:
        # Recorded as a failed run: the supervisor tries the night again.
        return "queue unavailable"
    return f"queued run {run.id}"


@shared_task(acks_late=True, ignore_result=True)
def scoring_nightly() -> str:
    """The beat entry: one run per night; a second beat or a run in progress is skipped."""
    return _nightly(scheduled_for=timezone.localdate(), attempt=1)


@shared_task(acks_late=True, ignore_result=True)
def months_auto_close() -> str:
    """On beat, daily: close the months MONTH_AUTO_CLOSE_DAYS after they end (when set)."""
    return closing.months_auto_close()


@shared_task(acks_late=True, ignore_result=True)
def scoring_supervise() -> str:
    """On beat: recover or fail runs whose tasks were lost; try a failed night again."""
    requeue = services.scoring_runs_supervise()
    _requeue(requeue)
    retry = services.scoring_nightly_retry_due()
    nightly = _nightly(scheduled_for=retry[0], attempt=retry[1]) if retry else "no retry due"
    return f"queued {len(requeue)} task(s) again; nightly: {nightly}"



# ---- E-mail ------------------------------------------------------------------------------------
# Each message is recorded before it is sent (partnerships.mail): a task that runs twice, or
# beat sending it twice, sends nothing more. A message that failed to go makes the task retry
# with backoff (MAIL_TASK_RETRY), and the retry sends only what did not go.


@shared_task(acks_late=True, ignore_result=True, **MAIL_TASK_RETRY)
def mail_score_alerts(run_id: int, moves: list[dict]) -> int:
    """After a run is published: newly at risk, tier changed (moves read at publication)."""
    with mail_failures_raised():
        return alerts.score_alerts_send(run_id=run_id, moves=moves)


@shared_task(acks_late=True, ignore_result=True, **MAIL_TASK_RETRY)
def mail_review_overdue_alerts() -> int:
    """On beat, daily: reviews that fell overdue lately, told once per agreement and due date."""
    with mail_failures_raised():
        return alerts.review_overdue_alerts_send()


@shared_task(acks_late=True, ignore_result=True, **MAIL_TASK_RETRY)
def mail_weekly_digests() -> int:
    """On beat, weekly: each user's digest of their own agreements, once per ISO week."""
    with mail_failures_raised():
        return alerts.digests_send()


# ---- What-if: the period values a simulation reads, prepared with progress ----------------


@shared_task(acks_late=True, ignore_result=True)
def whatif_prepare(job_id: str) -> None:
    """Read the open months' observations into the what-if's kept period values."""
    whatif.whatif_job_run(job_id=job_id)


@shared_task(ignore_result=True)
def whatif_warm() -> str:
    """Beat: keep the what-if's period values of the observations as they are now."""
    return whatif.whatif_inputs_warm()


def whatif_enqueue() -> str:
    """Queue the preparation of the what-if's period values; return the job's id. When the
    queue is down the job is recorded failed and TaskQueueUnavailable is raised."""
    job_id = whatif.whatif_job_new()
    try:
        task_publish(whatif_prepare.si(job_id))
    except TaskQueueUnavailable as unavailable:
        whatif.whatif_job_failed(job_id=job_id, error=str(unavailable))
        raise
    return job_id


@shared_task(acks_late=True, ignore_result=True)
def whatif_save(job_id: str, token: str, user_id: int) -> None:
    """Save a confirmed what-if through the services (scoring.whatif.whatif_save_job_run); runs
    once per job whatever the deliveries, and only in the state it was confirmed in."""
    whatif.whatif_save_job_run(job_id=job_id, token=token, user_id=user_id)


def whatif_save_enqueue(*, job_id: str, token: str, user) -> None:
    """Queue saving the confirmed what-if of `token` as the job `job_id` (claimed by the
    caller). When the queue is down the claim is released, so the same confirmation may be
    sent again, and TaskQueueUnavailable is raised."""
    try:
        task_publish(whatif_save.si(job_id, token, user.pk))
    except TaskQueueUnavailable:
        whatif.whatif_job_release(job_id=job_id)
        raise
