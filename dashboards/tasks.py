"""Celery tasks of the pages."""

import logging

from celery import shared_task
from django.core.cache import cache

from scoring.models import ScoringRun

from .selectors import RUN_CACHE_SECONDS, run_key
from .warm import run_pages_warm

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def pages_warm() -> str:
    """Beat, every two minutes: keep what the pages show of the published run once it is
    published (dashboards/warm.py), once per run whichever worker gets there first."""
    run = ScoringRun.objects.current()
    if run is None:
        return "no published run"
    marker = run_key(run, "pages-kept")
    if not cache.add(marker, "keeping", RUN_CACHE_SECONDS):
        return "kept already"
    try:
        agreements = run_pages_warm(run=run)
    except Exception:
        cache.delete(marker)  # the next beat tries again
        raise
    logger.info("Kept the pages of run %s: %s agreements", run.pk, agreements)
    return f"kept {agreements} agreements"
