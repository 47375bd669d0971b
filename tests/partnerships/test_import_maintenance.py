"""Imports never hang: lost workers are failed, lost tasks queued again, abandoned uploads
removed with their files."""

import datetime as dt

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from partnerships.models import ImportBatch
from partnerships.services import import_batches_tidy
from partnerships.tasks import import_batches_maintain

pytestmark = pytest.mark.django_db
NOW = timezone.now()


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.IMPORT_STALE_AFTER_SECONDS = 600
    settings.IMPORT_UNCONFIRMED_MAX_AGE_HOURS = 24


def batch(*, status="pending", age=dt.timedelta(0), confirmed=None, heartbeat=None,
          with_file=False) -> ImportBatch:
    made = ImportBatch.objects.create(source="upload", side="host", status=status,
                                      file_name="m.csv", confirmed_at=confirmed,
                                      heartbeat_at=heartbeat)
    if with_file:
        made.file.save("m.csv", ContentFile(b"agreement,kpi,date,value\n"))
    ImportBatch.objects.filter(pk=made.pk).update(created_at=NOW - age)
    made.refresh_from_db()
    return made


def test_a_silent_running_import_is_failed_and_a_live_one_left_alone():
    lost = batch(status="running", age=dt.timedelta(hours=1),
                 heartbeat=NOW - dt.timedelta(minutes=11))
    alive = batch(status="running", age=dt.timedelta(hours=1),
                  heartbeat=NOW - dt.timedelta(minutes=2))
    result = import_batches_tidy(now=NOW)
    assert result.lost_workers == [lost.pk]
    lost.refresh_from_db(), alive.refresh_from_db()
    assert lost.status == "failed" and "worker was lost" in lost.errors[0]["message"]
    assert alive.status == "running"


def test_a_confirmed_import_never_started_is_returned_to_be_queued_again():
    lost_task = batch(confirmed=NOW - dt.timedelta(minutes=30), age=dt.timedelta(minutes=31))
    just_confirmed = batch(confirmed=NOW - dt.timedelta(minutes=1))
    assert import_batches_tidy(now=NOW).lost_tasks == [lost_task.pk]
    assert ImportBatch.objects.filter(pk=just_confirmed.pk, status="pending").exists()


def test_an_upload_never_confirmed_is_removed_with_its_file_after_a_day(
        django_capture_on_commit_callbacks):
    old = batch(age=dt.timedelta(hours=25), with_file=True)
    recent = batch(age=dt.timedelta(hours=23), with_file=True)
    storage, name = old.file.storage, old.file.name
    with django_capture_on_commit_callbacks(execute=True):
        assert import_batches_tidy(now=NOW).unconfirmed_removed == 1
    assert not ImportBatch.objects.filter(pk=old.pk).exists()
    assert not storage.exists(name)
    assert ImportBatch.objects.filter(pk=recent.pk).exists()


def test_the_task_runs_a_requeued_import(acme_agreement, host_manager, tmp_path,
                                         django_capture_on_commit_callbacks):
    from partnerships.services import import_batch_create

    path = tmp_path / "m.csv"
    path.write_text("agreement,kpi,date,value\nACME-CM-2025,revenue,2025-01-15,40\n")
    queued = import_batch_create(user=host_manager, path=path, file_name="m.csv",
                                 source="upload")
    ImportBatch.objects.filter(pk=queued.pk).update(
        confirmed_at=timezone.now() - dt.timedelta(hours=1))
    counts = import_batches_maintain()  # Celery is eager in these tests: the import runs.
    queued.refresh_from_db()
    assert counts["requeued"] == 1 and queued.status == "succeeded" and queued.inserted == 1


def test_a_failed_imports_file_is_deleted_after_the_retention_and_the_batch_kept(
        settings, django_capture_on_commit_callbacks):
    settings.IMPORT_REFUSED_FILE_RETENTION_DAYS = 30
    old = batch(status="failed", age=dt.timedelta(days=31), with_file=True)
    ImportBatch.objects.filter(pk=old.pk).update(finished_at=NOW - dt.timedelta(days=31),
                                                 errors=[{"row": 2, "message": "bad"}],
                                                 error_count=1)
    recent = batch(status="failed", age=dt.timedelta(days=29), with_file=True)
    kept = batch(status="succeeded", age=dt.timedelta(days=90), with_file=True)
    storage, name = old.file.storage, old.file.name
    with django_capture_on_commit_callbacks(execute=True):
        assert import_batches_tidy(now=NOW).files_removed == 1
    old.refresh_from_db()
    assert not old.file and not storage.exists(name)
    assert old.errors == [{"row": 2, "message": "bad"}]  # the record and its errors stay
    assert "The stored file was deleted" in old.notes[-1] and "30 days" in old.notes[-1]
    for other in (recent, kept):
        other.refresh_from_db()
        assert other.file and storage.exists(other.file.name)
    with django_capture_on_commit_callbacks(execute=True):
        assert import_batches_tidy(now=NOW).files_removed == 0  # once


def test_refused_api_requests_keep_their_bodies_only_for_the_retention(
        acme_agreement, host_manager, django_capture_on_commit_callbacks):
    from partnerships.services import observations_import_records

    refused = [observations_import_records(records=[{"agreement": "NOPE"}], user=host_manager)
               for _ in range(3)]
    assert all(made.status == "failed" and made.file for made in refused)
    later = NOW + dt.timedelta(days=31)
    with django_capture_on_commit_callbacks(execute=True):
        assert import_batches_tidy(now=later).files_removed == 3
    assert not ImportBatch.objects.exclude(file="").exists()
    assert ImportBatch.objects.filter(status="failed").count() == 3


def test_an_upload_never_read_is_read_again(acme_agreement, host_manager, tmp_path):
    from partnerships.services import import_batch_create

    path = tmp_path / "m.csv"
    path.write_text("agreement,kpi,date,value\nACME-CM-2025,revenue,2025-01-15,40\n")
    unread = import_batch_create(user=host_manager, path=path, file_name="m.csv",
                                 source="upload")
    fresh = import_batch_create(user=host_manager, path=path, file_name="m.csv",
                                source="upload")
    ImportBatch.objects.filter(pk=unread.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=11))
    counts = import_batches_maintain()  # eager: the read runs
    unread.refresh_from_db(), fresh.refresh_from_db()
    assert counts["reread"] == 1 and unread.preview["total_rows"] == 1
    assert fresh.preview is None


def test_an_upload_whose_reading_fell_silent_is_failed_not_read_again():
    # Its reader was lost, perhaps to the file itself: reading it again on every pass would
    # lose a worker each time.
    silent = batch(age=dt.timedelta(hours=1), heartbeat=NOW - dt.timedelta(minutes=11),
                   with_file=True)
    reading = batch(age=dt.timedelta(hours=1), heartbeat=NOW - dt.timedelta(minutes=1),
                    with_file=True)
    result = import_batches_tidy(now=NOW)
    assert result.lost_reads == []
    assert result.lost_workers == [silent.pk]
    silent.refresh_from_db(), reading.refresh_from_db()
    assert silent.status == "failed" and "reading the file stopped" in silent.errors[0]["message"]
    assert reading.status == "pending"
