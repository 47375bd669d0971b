"""Concurrent imports touching the same keys, on PostgreSQL with separate connections."""

import datetime as dt
import os
import threading

import pytest
from django.db import connection

from partnerships.models import ImportBatch, MetricObservation, ObservationChange
from partnerships.services import import_batch_create, observations_import

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def postgresql_only(media_root):
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("CI must run the concurrency tests on PostgreSQL")
        pytest.skip("needs PostgreSQL (set DATABASE_URL=postgres://...)")


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def write_csv(path, keys, value_of) -> None:
    lines = ["agreement,kpi,side,date,value"]
    lines += [f"{code},{kpi},{side},{day},{value_of(index)!r}"
              for index, (code, kpi, side, day) in enumerate(keys)]
    path.write_text("\n".join(lines) + "\n")


def run_in_threads(*jobs):
    """Run the jobs at the same moment, each in its own thread and database connection."""
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)
    failures: list = []

    def work(position, job):
        try:
            barrier.wait()
            results[position] = job()
        except Exception as error:  # reported below, in the test's thread
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(position, job))
               for position, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    return results


def file_import(path):
    def job():
        batch = import_batch_create(user=None, path=path, file_name=path.name,
                                    source="command")
        return observations_import(batch_id=batch.pk)
    return job


def test_concurrent_imports_of_the_same_keys_end_consistent(
    acme_agreement, globex_agreement, tmp_path
):
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=offset) for offset in range(300)]
    keys = [(agreement.code, kpi, side, day.isoformat())
            for agreement in (acme_agreement, globex_agreement)
            for kpi in ("revenue", "defect_rate") for side in ("host", "partner")
            for day in days]
    base, first_file, second_file = (tmp_path / f"{name}.csv" for name in ("base", "a", "b"))
    write_csv(base, keys, lambda index: -1.0)
    write_csv(first_file, keys, lambda index: float(index))
    write_csv(second_file, keys, lambda index: index + (0.5 if index % 2 else 0.0))
    base_result = file_import(base)()
    assert base_result.inserted == len(keys)

    results = run_in_threads(file_import(first_file), file_import(second_file))

    assert all(result.ok for result in results), [result.errors for result in results]
    # The advisory lock serialises the writes: the first to take it changes every key, the
    # second only the keys where the two files differ (the odd ones).
    earlier, later = sorted(
        results, key=lambda result: ImportBatch.objects.get(pk=result.batch_id).finished_at
    )
    assert (earlier.updated, earlier.unchanged) == (len(keys), 0)
    assert (later.updated, later.unchanged) == (len(keys) // 2, len(keys) // 2)
    later_file = first_file if later.batch_id == results[0].batch_id else second_file
    later_values = [float(line.rsplit(",", 1)[1])
                    for line in later_file.read_text().splitlines()[1:]]

    observations = {
        (agreement, kpi, side, day.isoformat()): (value, batch)
        for agreement, kpi, side, day, value, batch in MetricObservation.objects.values_list(
            "agreement__code", "kpi__code", "side", "date", "value", "batch_id"
        )
    }
    assert len(observations) == len(keys)
    assert [observations[key][0] for key in keys] == later_values

    # No lost audit: every replaced value is in the history exactly once, in order.
    history = {}
    for change in ObservationChange.objects.order_by("changed_at", "id"):
        history.setdefault((change.observation_id, change.date), []).append(change)
    assert ObservationChange.objects.filter(batch_id=base_result.batch_id).count() == 0
    assert ObservationChange.objects.filter(batch_id=earlier.batch_id).count() == len(keys)
    assert ObservationChange.objects.filter(batch_id=later.batch_id).count() == len(keys) // 2
    for changes in history.values():
        assert changes[0].old_value == -1.0 and changes[0].old_batch_id == base_result.batch_id
        for previous, change in zip(changes, changes[1:], strict=False):
            assert change.old_value == previous.new_value
            assert change.old_batch_id == previous.batch_id
    for index, key in enumerate(keys):
        # Keys the two files agree on keep the batch that wrote them first.
        assert observations[key][1] == (later.batch_id if index % 2 else earlier.batch_id)


def test_a_batch_run_twice_at_once_is_imported_once(acme_agreement, tmp_path):
    path = tmp_path / "one.csv"
    write_csv(path, [("ACME-CM-2025", "revenue", "host", "2025-01-15")], lambda index: 1.0)
    batch = import_batch_create(user=None, path=path, file_name="one.csv", source="upload")

    results = run_in_threads(*[lambda: observations_import(batch_id=batch.pk)] * 2)

    assert sorted(result.skipped for result in results) == [False, True]
    assert MetricObservation.objects.count() == 1
    assert ImportBatch.objects.get(pk=batch.pk).inserted == 1


def test_progress_is_visible_to_other_connections_while_rows_are_written(
    acme_agreement, tmp_path
):
    path = tmp_path / "rows.csv"
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=offset) for offset in range(200)]
    write_csv(path, [("ACME-CM-2025", "revenue", "host", day.isoformat()) for day in days],
              float)
    batch = import_batch_create(user=None, path=path, file_name="rows.csv", source="upload")
    seen: list[tuple[int, int]] = []

    def peek(percent: int) -> None:
        if 40 < percent < 100 and not seen:  # inside the write transaction
            seen.append((percent, run_in_threads(
                lambda: ImportBatch.objects.get(pk=batch.pk).progress
            )[0]))

    assert observations_import(batch_id=batch.pk, progress=peek).ok
    assert seen and seen[0][0] == seen[0][1]
    assert ImportBatch.objects.get(pk=batch.pk).progress == 100
