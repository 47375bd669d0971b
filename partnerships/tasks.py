"""Celery tasks of metric imports: thin, take ids, safe to run twice (the batch is claimed)."""

import logging

from celery import shared_task

from .models import ImportBatch
from .services import observations_import

logger = logging.getLogger(__name__)


def import_batch_enqueue(*, batch: ImportBatch) -> None:
    """Queue the batch's import once the surrounding transaction commits (never before)."""
    import_batch_run.delay_on_commit(batch.pk)


@shared_task(acks_late=True)
def import_batch_run(batch_id: int) -> str:
    """Run a pending import batch; a duplicate delivery finds it claimed and does nothing."""
    result = observations_import(batch_id=batch_id)
    if result.skipped:
        logger.info("Import batch %s is %s already; duplicate delivery ignored",
                    batch_id, result.status)
        return "skipped"
    return result.status
