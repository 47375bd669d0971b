"""Celery tasks of metric imports: thin, take ids, safe to run twice (the batch is claimed)."""

import logging

from celery import shared_task

from .audit import audit_record
from .models import AuditAction, ImportBatch
from .services import import_batches_tidy, observations_import

logger = logging.getLogger(__name__)


def import_batch_enqueue(*, batch: ImportBatch) -> None:
    """Queue the batch's import once the surrounding transaction commits (never before)."""
    import_batch_run.delay_on_commit(batch.pk)


@shared_task(acks_late=True)
def import_batch_run(batch_id: int) -> str:
    """Run a pending import batch; a duplicate delivery finds it claimed and does nothing.
    The outcome goes to the audit log, as the command and the API record theirs."""
    result = observations_import(batch_id=batch_id)
    if result.skipped:
        logger.info("Import batch %s is %s already; duplicate delivery ignored",
                    batch_id, result.status)
        return "skipped"
    batch = ImportBatch.objects.select_related("user", "partner").get(pk=batch_id)
    audit_record(
        action=AuditAction.IMPORT, user=batch.user, partner=batch.partner,
        target=f"import batch {batch.pk}",
        detail={"step": "finished", "file": batch.file_name, "status": result.status,
                "rows": result.rows_total, "inserted": result.inserted,
                "updated": result.updated, "unchanged": result.unchanged,
                "errors": result.error_count},
    )
    return result.status


@shared_task
def import_batches_maintain() -> dict[str, int]:
    """Every few minutes: fail imports whose worker was lost, queue again confirmed imports
    whose task was lost, and remove uploads never confirmed (see import_batches_tidy)."""
    result = import_batches_tidy()
    for batch_id in result.lost_workers:
        logger.warning("Import batch %s lost its worker; marked failed", batch_id)
    for batch_id in result.lost_tasks:
        logger.warning("Import batch %s was confirmed but never started; queued again", batch_id)
        import_batch_run.delay(batch_id)
    return {"lost_workers": len(result.lost_workers), "requeued": len(result.lost_tasks),
            "unconfirmed_removed": result.unconfirmed_removed}
