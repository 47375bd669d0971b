"""Celery tasks: thin wrappers that take ids and call the services. Each is safe to run twice."""

import logging

from celery import chord, shared_task
from django.db import transaction
from django.utils import timezone

from . import services
from .models import ScoringRun

logger = logging.getLogger(__name__)


def scoring_enqueue(*, trigger: str, user=None, scheduled_for=None) -> ScoringRun:
    """Request a run and queue it once the surrounding transaction commits."""
    run = services.scoring_run_request(trigger=trigger, user=user, scheduled_for=scheduled_for)
    transaction.on_commit(lambda: run_scoring.delay(run.id))
    return run


@shared_task(acks_late=True)
def run_scoring(run_id: int) -> str:
    if not services.scoring_run_claim(run_id=run_id):
        # A duplicate delivery (visibility timeout, second worker): the run is already taken.
        logger.info("Scoring run %s already claimed; duplicate delivery ignored", run_id)
        return "skipped"
    try:
        indexes = services.scoring_run_plan(run_id=run_id)
    except Exception as exc:
        services.scoring_run_fail(run_id=run_id, error=f"{type(exc).__name__}: {exc}")
        raise
    chord([score_chunk.si(run_id, index) for index in indexes])(publish_run.si(run_id))
    return f"planned {len(indexes)} chunks"


@shared_task(acks_late=True)
def score_chunk(run_id: int, index: int) -> bool:
    try:
        return services.scoring_chunk_execute(run_id=run_id, index=index)
    except Exception as exc:
        services.scoring_run_fail(
            run_id=run_id, error=f"chunk {index}: {type(exc).__name__}: {exc}"
        )
        raise


@shared_task(acks_late=True)
def publish_run(run_id: int) -> str:
    try:
        run = services.scoring_run_publish(run_id=run_id)
    except Exception as exc:
        services.scoring_run_fail(run_id=run_id, error=f"publish: {type(exc).__name__}: {exc}")
        raise
    # The new results are visible now; removing the old ones need not hold anything up.
    scoring_cleanup.delay()
    return "published" if run else "skipped"


@shared_task(acks_late=True)
def scoring_cleanup() -> int:
    return services.scoring_results_cleanup()


@shared_task(acks_late=True)
def scoring_nightly() -> str:
    """The beat entry: one run per night; a second beat or a run in progress is skipped."""
    try:
        run = scoring_enqueue(
            trigger=ScoringRun.Trigger.SCHEDULE, scheduled_for=timezone.localdate()
        )
    except services.ScoringAlreadyRunning as refused:
        logger.warning("Nightly scoring skipped: %s", refused)
        return "skipped"
    return f"queued run {run.id}"


@shared_task(acks_late=True)
def scoring_expire_stale() -> int:
    return services.scoring_runs_expire_stale()
