"""Celery tasks of metric imports: thin, take ids, safe to run twice (the batch is claimed).

Requests queue tasks with `import_batch_read_start` and `import_batch_start`: they publish at
once through `partnerships.queue.task_publish`, which raises `TaskQueueUnavailable` within
seconds instead of hanging or failing the request when the broker is down.
"""

import logging

from celery import shared_task

from .alerts import action_alerts_send
from .audit import audit_record
from .mail import MAIL_TASK_RETRY, mail_failures_raised
from .models import AuditAction, ImportBatch
from .queue import task_publish
from .services import import_batch_read, import_batches_tidy, observations_import

logger = logging.getLogger(__name__)


def import_batch_read_start(*, batch: ImportBatch) -> None:
    """Queue the reading of a stored upload; raises TaskQueueUnavailable (the maintenance task
    queues it again once the broker is back)."""
    task_publish(import_batch_read_run.si(batch.pk))


def import_batch_start(*, batch: ImportBatch) -> None:
    """Queue a confirmed import now; call it after the confirmation is committed."""
    task_publish(import_batch_run.si(batch.pk))


def import_batch_enqueue(*, batch: ImportBatch) -> None:
    """Queue the batch's import once the surrounding transaction commits (never before)."""
    import_batch_run.delay_on_commit(batch.pk)


@shared_task(acks_late=True)
def import_batch_read_run(batch_id: int) -> str:
    """Read an uploaded file once and store its preview; a batch read already is skipped."""
    preview = import_batch_read(batch_id=batch_id)
    if preview is None:
        return "skipped"
    return "read" if preview.ok else "failed"


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
    whose task was lost and uploads never read, remove uploads never confirmed and the files
    of imports that failed long ago (see import_batches_tidy)."""
    result = import_batches_tidy()
    for batch_id in result.lost_workers:
        logger.warning("Import batch %s lost its worker; marked failed", batch_id)
    for batch_id in result.lost_tasks:
        logger.warning("Import batch %s was confirmed but never started; queued again", batch_id)
        import_batch_run.delay(batch_id)
    for batch_id in result.lost_reads:
        logger.warning("Import batch %s was uploaded but never read; queued again", batch_id)
        import_batch_read_run.delay(batch_id)
    return {"lost_workers": len(result.lost_workers), "requeued": len(result.lost_tasks),
            "reread": len(result.lost_reads),
            "unconfirmed_removed": result.unconfirmed_removed,
            "files_removed": result.files_removed}


@shared_task(ignore_result=True)
def password_reset_mail(email: str, domain: str, use_https: bool) -> int:
    """The e-mail of a password reset request, sent away from the request (its timing says
    nothing of whether the address has an account)."""
    from .password_reset import password_reset_mail_send

    return password_reset_mail_send(email=email, domain=domain, use_https=use_https)


@shared_task(acks_late=True, ignore_result=True, **MAIL_TASK_RETRY)
def dispute_mail_run(event_id: int) -> int:
    """Tell the other side's users of one step of a dispute (each message sent once; one that
    failed to go is retried with backoff)."""
    from .disputes import dispute_mail_send

    with mail_failures_raised():
        return dispute_mail_send(event_id=event_id)


@shared_task(acks_late=True, ignore_result=True, **MAIL_TASK_RETRY)
def mail_action_alerts() -> int:
    """On beat: tell each side of the actions newly assigned to it (once per action and side;
    one that failed to go is retried with backoff)."""
    with mail_failures_raised():
        return action_alerts_send()
