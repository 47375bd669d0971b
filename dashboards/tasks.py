"""Celery tasks of the pages: thin wrappers that take ids. Each is safe to run twice."""

import logging

from celery import shared_task

from scoring.models import ScoringRun

from .warm import run_pages_warm

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def pages_warm(run_id: int) -> str:
    run = ScoringRun.objects.current()
    if run is None or run.pk != run_id:
        return "skipped: not the published run"  # a newer one was published meanwhile
    agreements = run_pages_warm(run=run)
    logger.info("Kept the portfolio of run %s: %s agreements", run_id, agreements)
    return f"kept {agreements} agreements"


def on_run_published(*, run: ScoringRun, **_signal) -> None:
    """Receiver of scoring's run_published (connected in apps.py): a task, so that scoring
    never waits for the pages."""
    pages_warm.delay(run.pk)
