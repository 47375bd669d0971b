"""Celery tasks of the pages."""

import logging

from celery import shared_task
from django.core.cache import cache

from partnerships.models import Agreement
from scoring.models import ScoringRun

from .cache import RUN_CACHE_SECONDS, run_key
from .program.overdue import portfolio_review_figures
from .qbr import qbr_archive_build
from .warm import run_pages_warm

logger = logging.getLogger(__name__)

# Longer than keeping a program's pages takes; a worker lost meanwhile frees it by then.
KEEPING_SECONDS = 15 * 60


@shared_task(ignore_result=True)
def pages_warm() -> str:
    """Beat, every two minutes: keep what the pages show of the published run once it is
    published (dashboards/warm.py), once per run whichever worker gets there first, and the
    portfolio's overdue counts whenever they are not kept."""
    run = ScoringRun.objects.current()
    if run is None:
        return "no published run"
    # The portfolio's overdue counts change with the day and every edit: recounted on each
    # turn when they were not kept any more (one read otherwise).
    portfolio_review_figures(agreements=Agreement.objects.all(), run=run)
    done, keeping = run_key(run, "pages-kept"), run_key(run, "pages-keeping")
    if cache.get(done):
        return "kept already"
    if not cache.add(keeping, True, KEEPING_SECONDS):
        return "being kept by another worker"
    try:
        agreements = run_pages_warm(run=run)
        cache.set(done, True, RUN_CACHE_SECONDS)
    finally:
        cache.delete(keeping)
    logger.info("Kept the pages of run %s: %s agreements", run.pk, agreements)
    return f"kept {agreements} agreements"


@shared_task(ignore_result=True, acks_late=True)
def qbr_archive(job_id: str) -> str:
    """Render the QBR packs of a job into one ZIP archive (dashboards/qbr.py); safe to run
    twice: a job done, or being built with a fresh heartbeat, is left alone."""
    return qbr_archive_build(job_id=job_id)
