"""Services that write partnership data. Callers pass validated values; every write is atomic.

Metric imports (issue 4), for the upload page, the `import_metrics` command and the API:

- `metric_file_preview(path=, file_name=, max_rows=10) -> MetricFilePreview`: format, delimiter,
  encoding, sheet, columns, first rows, row count, notes, or the file's problems. Reads only.
- `import_batch_create(user=, file_name=, source=, side=None, uploaded_file= | path=)
  -> ImportBatch`: checks the user may import, stores the file (sha256), status pending.
- `metric_file_check(path=, file_name=, uploader=, default_side=) -> MetricFilePreview`: the
  preview plus what the import would do: every row error of the import's own validation, and
  per KPI the values new, changed and unchanged and those of the side that is not its source.
- `import_batch_read(batch_id=) -> MetricFilePreview | None`: checks a pending upload's file
  once (`metric_file_check`, bounded: see `partnerships.importers`) and stores its preview on
  the batch, or fails the batch with every error before anything can be confirmed. Queue it with
  `partnerships.tasks.import_batch_read_start(batch=)`.
- `import_batch_preview(batch=) -> MetricFilePreview | None`: the stored preview; never reads.
- `import_batch_confirm(batch=, user=, request=None, side=None) -> ImportConfirmation`: the
  uploader confirms a previewed upload (choosing, for a file without a side column, the side
  of its rows); its import is queued once the confirmation is committed.
- `import_batch_cancel(batch=, user=, request=None) -> bool`: deletes an upload not confirmed
  yet, and its file. Both record their audit event; the page decides who may (`access`).
- `observations_import(batch_id=, progress=None) -> ImportResult`: reads, validates and writes
  a pending batch, all rows or none; safe to run twice. Queue it, once the confirmation is
  committed, with `partnerships.tasks.import_batch_start(batch=)`.
- `observations_import_records(records=, user=, idempotency_key=None) -> ImportBatch`: the API
  path, synchronous, same rules; row = index of the record.
- `import_errors_csv(errors=) -> str`: the error report (`batch.errors` or `result.errors`).

A row dated in a closed month (`partnerships.months`) is an error of its row ("2026-03 is
closed"): shown by the preview, found by validation, and checked again by `observations_write`
under the observation write lock, which closing takes too, so a month closed meanwhile fails
the batch with the same errors and nothing is written.

`ImportBatch.errors` holds at most 1,000 errors as dicts {row, column, value, message}
(`error_count` is the full count); row None means the whole file. Refusals raise
`ImportNotAllowed` (a PermissionDenied: 403) or `IdempotencyConflict` (a ValueError).
"""

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from .audit import audit_record
from .importers import (
    MetricFilePreview,
    MetricFileRejected,
    RowError,
    Uploader,
    ValidatedRows,
    closed_month_errors,
    import_errors_csv,
    metric_file_preview,
    metric_file_read,
    metric_records_table,
    metric_rows_validate,
    metric_table_preview,
)
from .models import (
    AuditAction,
    ImportBatch,
    ImportSource,
    ImportStatus,
    KPIDefinition,
    MetricObservation,
    ObservationChange,
    Role,
    Side,
)
from .queue import TaskQueueUnavailable

__all__ = [
    "ClosedMonthWrite", "IdempotencyConflict", "ImportNotAllowed", "ImportResult",
    "MetricFilePreview", "RowError",
    "ImportConfirmation", "WriteCounts", "import_batch_cancel", "import_batch_confirm",
    "import_batch_create", "import_batch_preview", "import_errors_csv",
    "import_uploader", "lock_observation_writes",
    "metric_file_check", "metric_file_preview", "observations_compare", "observations_import",
    "observations_import_records", "observations_write",
]

OBSERVATION_KEY = ["agreement_id", "kpi_id", "side", "date"]
# One number for every writer of observations: imports touching the same keys queue up here
# instead of racing between reading the old values and writing the new ones.
OBSERVATION_WRITE_LOCK = 7_240_001


@dataclass(frozen=True)
class WriteCounts:
    inserted: int
    updated: int
    unchanged: int


def lock_observation_writes() -> None:
    """Hold the observation write lock until the transaction ends (call it inside one).

    Every writer of observations takes it, and so does the closing of months: an import
    cannot write into a month while it closes, and checks the closed months after taking it.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [OBSERVATION_WRITE_LOCK])
    # SQLite: transactions start IMMEDIATE (settings), so writers are already serialised.


_lock_observation_writes = lock_observation_writes


class ClosedMonthWrite(MetricFileRejected):
    """Rows dated in a month that closed after they were validated; nothing was written."""


def _refuse_closed_months(rows: pd.DataFrame, row_numbers: np.ndarray | None) -> None:
    numbers = np.arange(len(rows)) if row_numbers is None else row_numbers
    errors, count = closed_month_errors(days=rows["date"].to_numpy(), rows=numbers)
    if count:
        raise ClosedMonthWrite(errors, error_count=count)


def _existing_observations(rows: pd.DataFrame) -> pd.DataFrame:
    columns = ["id", *OBSERVATION_KEY, "old_value", "old_note", "old_batch_id"]
    existing = MetricObservation.objects.filter(
        agreement_id__in=rows["agreement_id"].unique().tolist(),
        kpi_id__in=rows["kpi_id"].unique().tolist(),
        date__gte=rows["date"].min(),
        date__lte=rows["date"].max(),
    ).values_list("id", *OBSERVATION_KEY, "value", "note", "batch_id")
    frame = pd.DataFrame.from_records(list(existing), columns=columns)
    return frame.astype({"agreement_id": "int64", "kpi_id": "int64", "side": object})


def observations_write(*, rows: pd.DataFrame, batch: ImportBatch, user=None,
                       progress: Callable[[float], None] | None = None,
                       row_numbers: np.ndarray | None = None) -> WriteCounts:
    """Upsert validated observations by (agreement, KPI, side, date); record replaced values.

    `rows` holds agreement_id, kpi_id, side, date (datetime.date or datetime64), value (float)
    and note, with no duplicate keys. A key whose value and note are unchanged is left alone.
    PostgreSQL: COPY into a temporary table, then set-based SQL; `progress` gets 0..1.
    A row dated in a closed month raises ClosedMonthWrite (its errors numbered by
    `row_numbers`, default the 0-based positions) and nothing is written.
    """
    if rows.empty:
        return WriteCounts(0, 0, 0)
    rows = rows.astype({"agreement_id": "int64", "kpi_id": "int64", "side": object}).copy()
    if "note" not in rows:
        rows["note"] = ""
    rows["note"] = rows["note"].fillna("").astype(object)
    with transaction.atomic():
        lock_observation_writes()
        # Under the lock, which closing takes too: a month may have closed since validation.
        _refuse_closed_months(rows, row_numbers)
        # After the lock: a writer that waited for another must stamp its changes later.
        now = timezone.now()
        if connection.vendor == "postgresql":
            counts = _write_postgresql(rows, batch=batch, user=user, now=now, progress=progress)
        else:
            counts = _write_bulk(rows, batch=batch, user=user, now=now)
    if progress is not None:
        progress(1.0)
    return counts


def _write_bulk(rows: pd.DataFrame, *, batch: ImportBatch, user, now) -> WriteCounts:
    if pd.api.types.is_datetime64_any_dtype(rows["date"]):
        rows["date"] = rows["date"].dt.date
    existing = _existing_observations(rows)
    merged = rows.merge(existing, on=OBSERVATION_KEY, how="left")
    is_new = merged["id"].isna()
    is_same = ~is_new & (merged["value"] == merged["old_value"]) & (
        merged["note"] == merged["old_note"]
    )
    changed = merged[~is_new & ~is_same]
    to_write = merged[is_new | ~is_same]
    ObservationChange.objects.bulk_create(
        (
            ObservationChange(
                observation_id=int(row.id),
                agreement_id=row.agreement_id,
                kpi_id=row.kpi_id,
                side=row.side,
                date=row.date,
                old_value=row.old_value,
                new_value=row.value,
                old_batch_id=int(row.old_batch_id),
                batch=batch,
                changed_by=user,
                changed_at=now,
            )
            for row in changed.itertuples(index=False)
        ),
        batch_size=5000,
    )
    MetricObservation.objects.bulk_create(
        (
            MetricObservation(
                agreement_id=row.agreement_id,
                kpi_id=row.kpi_id,
                side=row.side,
                date=row.date,
                value=float(row.value),
                note=row.note,
                batch=batch,
                recorded_by=user,
                recorded_at=now,
            )
            for row in to_write.itertuples(index=False)
        ),
        batch_size=5000,
        update_conflicts=True,
        unique_fields=["agreement", "kpi", "side", "date"],
        update_fields=["value", "note", "batch", "recorded_by", "recorded_at"],
    )
    return WriteCounts(
        inserted=int(is_new.sum()), updated=len(changed), unchanged=int(is_same.sum())
    )


# PostgreSQL fast path: binary COPY of the rows into a temporary table, then four set-based
# statements under the observation write lock. Binary COPY moves each float8 bit for bit.
STAGING_TABLE = "pp_observation_import"
COPY_CHUNK_ROWS = 100_000
PG_EPOCH_DAYS = int(np.datetime64("2000-01-01", "D").astype(np.int64))
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
# One row: field count, then (length, value) for agreement_id, kpi_id, is_partner, date, value,
# and the length of the note, whose UTF-8 bytes follow.
_COPY_ROW = np.dtype([
    ("fields", ">i2"),
    ("agreement_length", ">i4"), ("agreement_id", ">i8"),
    ("kpi_length", ">i4"), ("kpi_id", ">i8"),
    ("side_length", ">i4"), ("is_partner", "u1"),
    ("date_length", ">i4"), ("date", ">i4"),
    ("value_length", ">i4"), ("value", ">f8"),
    ("note_length", ">i4"),
])


def _stage_rows(cursor, rows: pd.DataFrame,
                progress: Callable[[float], None] | None = None) -> None:
    """COPY the rows into the transaction's staging table (emptied first); `progress` 0..0.5."""
    total = len(rows)
    # One staging table per transaction, emptied for each write: a table created and
    # dropped per write would hold its locks until the commit, and a transaction writing
    # many batches (the demo generator) would run out of PostgreSQL's lock table.
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING_TABLE} ("
        " agreement_id bigint NOT NULL, kpi_id bigint NOT NULL,"
        " is_partner boolean NOT NULL, date date NOT NULL,"
        " value double precision NOT NULL, note varchar(500) NOT NULL,"
        " side varchar(8) GENERATED ALWAYS AS"
        "  (CASE WHEN is_partner THEN 'partner' ELSE 'host' END) STORED"
        ") ON COMMIT DROP"
    )
    cursor.execute(f"TRUNCATE {STAGING_TABLE}")
    columns = "agreement_id, kpi_id, is_partner, date, value, note"
    with cursor.cursor.copy(
        f"COPY {STAGING_TABLE} ({columns}) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.write(_COPY_HEADER)
        for start in range(0, total, COPY_CHUNK_ROWS):
            copy.write(_copy_rows(rows.iloc[start:start + COPY_CHUNK_ROWS]))
            if progress is not None:
                progress(0.5 * min(start + COPY_CHUNK_ROWS, total) / total)
        copy.write(_COPY_TRAILER)
    cursor.execute(f"ANALYZE {STAGING_TABLE}")


_SAME_KEY = (
    "o.agreement_id = i.agreement_id AND o.kpi_id = i.kpi_id"
    " AND o.side = i.side AND o.date = i.date"
)


def _write_postgresql(rows: pd.DataFrame, *, batch: ImportBatch, user, now,
                      progress: Callable[[float], None] | None) -> WriteCounts:
    observations = MetricObservation._meta.db_table
    changes = ObservationChange._meta.db_table
    total = len(rows)
    with connection.cursor() as cursor:
        _stage_rows(cursor, rows, progress)
        same_key = _SAME_KEY
        # Unchanged rows are dropped first: no write, no row lock, no WAL for a re-import.
        cursor.execute(
            f"DELETE FROM {STAGING_TABLE} i USING {observations} o"
            f" WHERE {same_key} AND o.value = i.value AND o.note = i.note"
        )
        unchanged = cursor.rowcount
        if progress is not None:
            progress(0.6)
        # Every staged row still matching an observation changes it: keep the old value.
        cursor.execute(
            f"INSERT INTO {changes} (observation_id, agreement_id, kpi_id, side, date,"
            " old_value, new_value, old_batch_id, batch_id, changed_by_id, changed_at)"
            " SELECT o.id, o.agreement_id, o.kpi_id, o.side, o.date, o.value, i.value,"
            "  o.batch_id, %s, %s, %s"
            f" FROM {STAGING_TABLE} i JOIN {observations} o ON {same_key}",
            [batch.pk, getattr(user, "pk", None), now],
        )
        updated = cursor.rowcount
        if progress is not None:
            progress(0.7)
        if updated:
            cursor.execute(
                f"UPDATE {observations} o SET value = i.value, note = i.note,"
                "  batch_id = %s, recorded_by_id = %s, recorded_at = %s"
                f" FROM {STAGING_TABLE} i WHERE {same_key}",
                [batch.pk, getattr(user, "pk", None), now],
            )
            if cursor.rowcount != updated:
                raise _ConcurrentWrite(cursor.rowcount, updated)
            cursor.execute(f"DELETE FROM {STAGING_TABLE} i USING {observations} o WHERE {same_key}")
        if progress is not None:
            progress(0.8)
        # What is left is new. A plain INSERT (no ON CONFLICT): under the write lock no other
        # writer can have added these keys, and if one bypassed it the unique key refuses the row.
        cursor.execute(
            f"INSERT INTO {observations} (agreement_id, kpi_id, side, date, value, note,"
            "  batch_id, recorded_by_id, recorded_at)"
            " SELECT agreement_id, kpi_id, side, date, value, note, %s, %s, %s"
            f" FROM {STAGING_TABLE} ORDER BY agreement_id, kpi_id, side, date",
            [batch.pk, getattr(user, "pk", None), now],
        )
        inserted = cursor.rowcount
        cursor.execute(f"TRUNCATE {STAGING_TABLE}")
    if inserted + updated != total - unchanged:
        raise _ConcurrentWrite(inserted + updated, total - unchanged)
    return WriteCounts(inserted=inserted, updated=updated, unchanged=unchanged)


class _ConcurrentWrite(RuntimeError):
    """Only a writer that bypasses the write lock can cause this; the import rolls back."""

    def __init__(self, written: int, expected: int):
        super().__init__(
            f"observations changed during the import ({written} written, {expected} expected);"
            " nothing was imported"
        )


def _copy_rows(rows: pd.DataFrame) -> bytes:
    """Rows in PostgreSQL's binary COPY format, built with numpy (no per-row Python)."""
    count = len(rows)
    fixed = np.zeros(count, dtype=_COPY_ROW)
    fixed["fields"] = 6
    fixed["agreement_length"], fixed["kpi_length"] = 8, 8
    fixed["side_length"], fixed["date_length"], fixed["value_length"] = 1, 4, 8
    fixed["agreement_id"] = rows["agreement_id"].to_numpy(dtype=np.int64)
    fixed["kpi_id"] = rows["kpi_id"].to_numpy(dtype=np.int64)
    fixed["is_partner"] = (rows["side"].to_numpy() == Side.PARTNER.value)
    days = pd.to_datetime(rows["date"]).to_numpy().astype("datetime64[D]").astype(np.int64)
    fixed["date"] = days - PG_EPOCH_DAYS
    fixed["value"] = rows["value"].to_numpy(dtype=np.float64)
    notes = rows["note"]
    has_note = (notes != "").to_numpy()
    if not has_note.any():
        return fixed.tobytes()
    encoded = notes.str.encode("utf-8")
    lengths = encoded.str.len().to_numpy(dtype=np.int64)
    fixed["note_length"] = lengths
    width = _COPY_ROW.itemsize
    out = np.empty(count * width + int(lengths.sum()), dtype=np.uint8)
    starts = np.arange(count, dtype=np.int64) * width + np.concatenate(
        ([0], np.cumsum(lengths)[:-1])
    )
    fixed_positions = starts[:, None] + np.arange(width)
    out[fixed_positions] = fixed.view(np.uint8).reshape(count, width)
    note_bytes = np.ones(len(out), dtype=bool)
    note_bytes[fixed_positions] = False
    out[note_bytes] = np.frombuffer(b"".join(encoded[has_note]), dtype=np.uint8)
    return out.tobytes()


def observations_compare(*, rows: pd.DataFrame) -> dict[tuple[int, str], WriteCounts]:
    """Per (KPI id, side): how many of these validated rows `observations_write` would insert,
    update or leave unchanged now. Reads only (PostgreSQL: the write's staging table, in a
    transaction rolled back; one GROUP BY)."""
    if rows.empty:
        return {}
    rows = rows.astype({"agreement_id": "int64", "kpi_id": "int64", "side": object}).copy()
    if "note" not in rows:
        rows["note"] = ""
    rows["note"] = rows["note"].fillna("").astype(object)
    if not MetricObservation.objects.filter(
        agreement_id__in=rows["agreement_id"].unique().tolist(),
        kpi_id__in=rows["kpi_id"].unique().tolist(),
        date__gte=rows["date"].min(), date__lte=rows["date"].max(),
    ).exists():
        # Nothing stored in the rows' range (a first import): every value is new.
        return {(int(kpi_id), str(side)): WriteCounts(int(total), 0, 0) for (kpi_id, side), total
                in rows.groupby(["kpi_id", "side"]).size().items()}
    if connection.vendor != "postgresql":
        if pd.api.types.is_datetime64_any_dtype(rows["date"]):
            rows["date"] = rows["date"].dt.date
        merged = rows.merge(_existing_observations(rows), on=OBSERVATION_KEY, how="left")
        merged["new"] = merged["id"].isna()
        merged["unchanged"] = ~merged["new"] & (merged["value"] == merged["old_value"]) & (
            merged["note"] == merged["old_note"])
        merged["changed"] = ~merged["new"] & ~merged["unchanged"]
        grouped = merged.groupby(["kpi_id", "side"])[["new", "changed", "unchanged"]].sum()
        return {(int(kpi_id), str(side)): WriteCounts(int(row.new), int(row.changed),
                                                      int(row.unchanged))
                for (kpi_id, side), row in grouped.iterrows()}
    observations = MetricObservation._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        _stage_rows(cursor, rows)
        cursor.execute(
            "SELECT i.kpi_id, i.side, count(*) FILTER (WHERE o.id IS NULL),"
            " count(*) FILTER (WHERE o.id IS NOT NULL"
            "  AND NOT (o.value = i.value AND o.note = i.note)),"
            " count(*) FILTER (WHERE o.value = i.value AND o.note = i.note)"
            f" FROM {STAGING_TABLE} i LEFT JOIN {observations} o ON {_SAME_KEY}"
            " GROUP BY i.kpi_id, i.side"
        )
        found = cursor.fetchall()
        # Nothing of the check stays: the staging rows and, if new, the table go.
        transaction.set_rollback(True)
    return {(int(kpi_id), side): WriteCounts(new, changed, unchanged)
            for kpi_id, side, new, changed, unchanged in found}


# --- metric imports ------------------------------------------------------------------------


class ImportNotAllowed(PermissionDenied):
    """The user may not import metrics (or not for that side)."""


class IdempotencyConflict(ValueError):
    """The idempotency key was already used by this user for a different payload."""


@dataclass(frozen=True)
class ImportResult:
    """How an import ended: the batch's status and counts, or its errors (at most 1,000).

    `skipped` is true when the batch was not pending (already run or running): nothing was
    done and the counts are those stored on the batch.
    """

    batch_id: int
    status: str
    rows_total: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.status == ImportStatus.SUCCEEDED

    @classmethod
    def of_batch(cls, batch: ImportBatch, *, notes: list[str] | None = None,
                 skipped: bool = False) -> "ImportResult":
        return cls(
            batch_id=batch.pk, status=batch.status, rows_total=batch.rows_total,
            inserted=batch.inserted, updated=batch.updated, unchanged=batch.unchanged,
            error_count=batch.error_count,
            errors=[RowError.from_dict(error) for error in batch.errors or []],
            notes=notes if notes is not None else list(batch.notes or []), skipped=skipped,
        )


def import_uploader(*, user) -> Uploader:
    """The side and partner a user imports for; None is the host itself (the command)."""
    if user is None:
        return Uploader(side=Side.HOST)
    membership = getattr(user, "membership", None) if user.is_authenticated else None
    if membership is None or not user.is_active:
        raise ImportNotAllowed("Only members of the host or of a partner may import metrics.")
    if membership.role == Role.PARTNER_VIEWER:
        raise ImportNotAllowed("Partner viewers may not import metrics; ask a partner editor.")
    if membership.is_host:
        return Uploader(side=Side.HOST)
    return Uploader(side=Side.PARTNER, partner_id=membership.partner_id,
                    partner_name=membership.partner.name)


def _batch_side(uploader: Uploader, side: str | None) -> str:
    if side in (None, ""):
        return uploader.side
    if side not in Side.values:
        raise ValueError(f"side must be 'host' or 'partner', not {side!r}")
    if not uploader.is_host and side != Side.PARTNER:
        raise ImportNotAllowed("Partner users may only import the partner side.")
    return side


def import_batch_create(*, user, file_name: str, source: str, side: str | None = None,
                        uploaded_file: File | None = None,
                        path: Path | None = None) -> ImportBatch:
    """Store a metric file as a pending batch of the user's side; nothing is read or imported yet.

    Give the file as `uploaded_file` (a Django File/UploadedFile) or `path`. `side` is the
    default side of rows without one; only host users may set it to "partner". An empty file
    or one over METRIC_FILE_MAX_BYTES is not stored: the batch is returned failed at once.
    Raises ImportNotAllowed for viewers and users without membership.
    """
    if (uploaded_file is None) == (path is None):
        raise TypeError("give exactly one of uploaded_file or path")
    if source not in ImportSource.values:
        raise ValueError(f"unknown import source {source!r}")
    uploader = import_uploader(user=user)
    batch = ImportBatch(
        source=source, status=ImportStatus.PENDING, side=_batch_side(uploader, side),
        partner_id=uploader.partner_id, user=user, file_name=Path(file_name).name[:255],
        # An upload waits for its uploader to confirm the preview; other sources do not.
        confirmed_at=None if source == ImportSource.UPLOAD else timezone.now(),
    )
    with _opened(uploaded_file, path) as content:
        size = content.size
        limit = settings.METRIC_FILE_MAX_BYTES
        problem = None
        if size == 0:
            problem = "the file is empty"
        elif size > limit:
            problem = (f"the file is too large: {size / 1e6:,.1f} MB, the limit is "
                       f"{limit / 1e6:,.1f} MB; split it into several files")
        if problem:
            batch.status, batch.finished_at, batch.progress = (
                ImportStatus.FAILED, timezone.now(), 100
            )
            batch.errors = [RowError(None, None, "", problem).as_dict()]
            batch.error_count = 1
            batch.save()
            return batch
        digest = hashlib.sha256()
        for chunk in content.chunks():
            digest.update(chunk)
        content.seek(0)
        batch.sha256 = digest.hexdigest()
        batch.file.save(batch.file_name or "metrics", content, save=False)
    batch.save()
    return batch


@contextmanager
def _opened(uploaded_file: File | None, path: Path | None) -> Iterator[File]:
    if uploaded_file is not None:
        uploaded_file.seek(0)
        yield uploaded_file
        return
    with Path(path).open("rb") as handle:
        yield File(handle, name=Path(path).name)


PREVIEW_ROWS = 10


def metric_file_check(*, path: Path, file_name: str, uploader: Uploader, default_side: str,
                      max_rows: int = PREVIEW_ROWS,
                      progress: Callable[[float], None] | None = None) -> MetricFilePreview:
    """What importing a file would do, without writing: its facts and first rows, every error
    of the import's own validation (`metric_rows_validate`), and when there is none, per KPI,
    how many values are new, changed and unchanged and how many are of the side that is not
    the KPI's source of truth — for each side a file without a side column may be imported as
    (the host's choice; a partner editor's rows are the partner's). Reads only."""
    report = progress or (lambda share: None)
    try:
        table = metric_file_read(path=path, file_name=file_name,
                                 progress=lambda share: report(0.6 * share))
    except MetricFileRejected as rejected:
        return MetricFilePreview(file_name=file_name, format=rejected.format,
                                 notes=rejected.notes, errors=rejected.errors,
                                 error_count=rejected.error_count)
    preview = metric_table_preview(table=table, file_name=file_name, max_rows=max_rows)
    validated = metric_rows_validate(table=table, uploader=uploader, default_side=default_side)
    del table
    report(0.75)
    if not validated.ok:
        return replace(preview, errors=validated.errors, error_count=validated.error_count)
    rows = validated.frame
    if "side" in preview.columns:
        choices = {"file": rows}
    else:
        sides = [Side.HOST.value, Side.PARTNER.value] if uploader.is_host else [default_side]
        choices = {side: rows.assign(side=side) for side in sides}
    kpi_counts = {}
    for step, (choice, chosen) in enumerate(choices.items(), start=1):
        kpi_counts[choice] = _kpi_counts(chosen)
        report(0.75 + 0.25 * step / len(choices))
    return replace(preview, kpi_counts=kpi_counts)


def _kpi_counts(rows: pd.DataFrame) -> list[dict]:
    """Per KPI of the rows, by code: new, changed and unchanged values, and those of the side
    that is not its source of truth."""
    counts = observations_compare(rows=rows)
    kpis = {kpi.pk: kpi for kpi in KPIDefinition.objects.filter(
        pk__in={kpi_id for kpi_id, _side in counts}).only("code", "name", "source")}
    result: dict[int, dict] = {}
    for (kpi_id, side), written in sorted(counts.items()):
        kpi = kpis[kpi_id]
        item = result.setdefault(kpi_id, {
            "kpi": kpi.code, "name": kpi.name, "source": kpi.source, "rows": 0, "new": 0,
            "changed": 0, "unchanged": 0, "other_side": 0,
        })
        total = written.inserted + written.updated + written.unchanged
        item["rows"] += total
        item["new"] += written.inserted
        item["changed"] += written.updated
        item["unchanged"] += written.unchanged
        if side != kpi.source:
            item["other_side"] += total
    return sorted(result.values(), key=lambda item: item["kpi"])


def import_batch_preview(*, batch: ImportBatch) -> MetricFilePreview | None:
    """The preview stored when the batch's file was read (None before); never reads the file."""
    if batch.preview is None:
        return None
    return MetricFilePreview.from_dict(batch.preview, errors=batch.errors or [],
                                       error_count=batch.error_count)


def import_batch_read(*, batch_id: int) -> MetricFilePreview | None:
    """Read a pending upload's file once and store its preview, or fail it with the file's problems.

    Claimed with a conditional UPDATE of `heartbeat_at` (a live reader is never joined by a
    second one); a batch read already, gone or no longer pending is skipped (None). `progress`
    goes 0 -> 99 while reading, and back to 0 for the import.
    """
    now = timezone.now()
    stale = now - dt.timedelta(seconds=settings.IMPORT_STALE_AFTER_SECONDS)
    unread = ImportBatch.objects.filter(pk=batch_id, status=ImportStatus.PENDING,
                                        preview__isnull=True)
    if not unread.filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale)).update(
        heartbeat_at=now, progress=0
    ):
        return None
    batch = ImportBatch.objects.get(pk=batch_id)
    last = [0]

    def progress(share: float) -> None:
        percent = min(99, int(share * 100))
        if percent > last[0]:
            last[0] = percent
            unread.update(progress=percent, heartbeat_at=timezone.now())

    try:
        uploader = import_uploader(user=batch.user)
        with _batch_file_path(batch) as path:
            preview = metric_file_check(path=path, file_name=batch.file_name,
                                        uploader=uploader, default_side=batch.side,
                                        max_rows=PREVIEW_ROWS, progress=progress)
    except PermissionDenied as refused:
        preview = MetricFilePreview(file_name=batch.file_name, format=None,
                                    errors=[RowError(None, None, "", str(refused))],
                                    error_count=1)
    except FileNotFoundError:
        # Cancelled while being read: the batch and its file are gone.
        return None
    except MetricFileRejected as rejected:
        preview = MetricFilePreview(file_name=batch.file_name, format=rejected.format,
                                    notes=rejected.notes, errors=rejected.errors,
                                    error_count=rejected.error_count)
    except Exception as error:
        _batch_fail(batch, [RowError(None, None, "", f"the file could not be read "
                                     f"({type(error).__name__}); nothing was imported")], 1)
        raise
    if not preview.ok:
        # The import would fail: the batch fails now, before anything can be confirmed, and
        # keeps its errors, its report and (for a readable file) what its preview showed.
        if unread.exists():
            _batch_fail(batch, preview.errors, preview.error_count, notes=preview.notes,
                        rows_total=preview.total_rows)
            if preview.format is not None and preview.columns:
                ImportBatch.objects.filter(pk=batch.pk, status=ImportStatus.FAILED).update(
                    preview=preview.as_dict())
        return preview
    unread.update(preview=preview.as_dict(), rows_total=preview.total_rows,
                  notes=preview.notes, progress=0, heartbeat_at=None)
    return preview


def _import_audit(*, batch: ImportBatch, step: str, user, request: HttpRequest | None,
                  **detail) -> None:
    audit_record(action=AuditAction.IMPORT, request=request, user=user, partner=batch.partner,
                 target=f"import batch {batch.pk}",
                 detail={"step": step, "file": batch.file_name, **detail})


@dataclass
class ImportConfirmation:
    """What confirming an upload did. `queue_down` is set when the commit found the task
    queue down: nothing was queued, and the batch awaits confirmation again."""

    confirmed: bool
    queue_down: bool = False


def import_batch_confirm(*, batch: ImportBatch, user, request: HttpRequest | None = None,
                         side: str | None = None) -> ImportConfirmation:
    """Confirm the user's own previewed upload, audited, and queue its import once committed.

    `side` (optional) is the side of the rows without one, chosen on the confirm form; a
    partner editor's may only be the partner's (ImportNotAllowed)."""
    outcome = ImportConfirmation(confirmed=False)
    confirmed_at = timezone.now()
    chosen = {} if side in (None, "") else {
        "side": _batch_side(import_uploader(user=user), side)}

    def start() -> None:
        # After the commit (the worker must find the batch confirmed) and within the caller's
        # request, so that a task queue that is down is told to the user, not a 500.
        from .tasks import import_batch_start  # the tasks module imports this one

        try:
            import_batch_start(batch=batch)
        except TaskQueueUnavailable:
            # Nothing was queued: the batch awaits confirmation again, as before.
            with transaction.atomic():
                ImportBatch.objects.filter(pk=batch.pk, status=ImportStatus.PENDING,
                                           confirmed_at=confirmed_at).update(confirmed_at=None)
                _import_audit(batch=batch, step="not queued", user=user, request=request,
                              reason="task queue unavailable")
            outcome.queue_down = True

    with transaction.atomic():
        # One conditional UPDATE: a batch is confirmed once, and never once cancelled.
        outcome.confirmed = bool(ImportBatch.objects.filter(
            pk=batch.pk, user=user, status=ImportStatus.PENDING, confirmed_at__isnull=True,
            preview__isnull=False, error_count=0,
        ).update(confirmed_at=confirmed_at, **chosen))
        if outcome.confirmed:
            _import_audit(batch=batch, step="confirmed", user=user, request=request,
                          sha256=batch.sha256, **chosen)
            transaction.on_commit(start)
    return outcome


def import_batch_cancel(*, batch: ImportBatch, user, request: HttpRequest | None = None) -> bool:
    """Delete an upload not confirmed yet, audited, and its file once committed; False when it
    was confirmed (or removed) already."""
    with transaction.atomic():
        # Locked, then deleted only if still unconfirmed: a confirm racing with this
        # cancel either finds the batch gone or makes this delete find nothing.
        pending = ImportBatch.objects.select_for_update().filter(
            pk=batch.pk, status=ImportStatus.PENDING, confirmed_at__isnull=True).first()
        if pending is None:
            return False
        stored, storage = pending.file.name, pending.file.storage
        _import_audit(batch=pending, step="cancelled", user=user, request=request,
                      sha256=pending.sha256)
        pending.delete()
        if stored:
            transaction.on_commit(lambda: storage.delete(stored))
    return True


def observations_import(*, batch_id: int,
                        progress: Callable[[int], None] | None = None) -> ImportResult:
    """Import a pending batch's file: every row or none; a batch not pending is skipped.

    Claims the batch (pending -> running) with a conditional UPDATE, so a duplicate task
    delivery does nothing. Reads and validates outside any transaction, then writes the rows
    and marks the batch succeeded in one transaction; any bad row marks it failed with its
    errors. `batch.progress` (and the optional `progress(percent)` callback) goes 0 -> 100.
    """
    claimed = ImportBatch.objects.filter(pk=batch_id, status=ImportStatus.PENDING).update(
        status=ImportStatus.RUNNING, progress=0, heartbeat_at=timezone.now()
    )
    batch = ImportBatch.objects.select_related("user__membership__partner").get(pk=batch_id)
    if not claimed:
        return ImportResult.of_batch(batch, skipped=True)
    reporter = _ProgressReporter(batch_id, progress)
    notes: list[str] = []
    try:
        uploader = import_uploader(user=batch.user)
        if not uploader.is_host and batch.side != Side.PARTNER:
            raise ImportNotAllowed("Partner users may only import the partner side.")
        with _batch_file_path(batch) as path:
            table = metric_file_read(path=path, file_name=batch.file_name)
        notes = table.notes
        reporter(25)
        validated = metric_rows_validate(table=table, uploader=uploader,
                                         default_side=batch.side)
        del table
        reporter(40)
        return _batch_finish(batch, validated, notes=notes, reporter=reporter)
    except MetricFileRejected as rejected:
        return _batch_fail(batch, rejected.errors, rejected.error_count,
                           notes=rejected.notes or notes)
    except PermissionDenied as refused:
        return _batch_fail(batch, [RowError(None, None, "", str(refused))], 1, notes=notes)
    except Exception as error:
        _batch_fail(batch, [RowError(None, None, "", f"the import failed unexpectedly "
                                     f"({type(error).__name__}); nothing was imported")], 1)
        raise
    finally:
        reporter.close()


def observations_import_records(*, records: list[dict], user,
                                idempotency_key: str | None = None) -> ImportBatch:
    """Import API records ({agreement, kpi, date, value, side?, note?}) at once, all or none.

    Returns the batch, succeeded or failed (errors' `row` is the 0-based record index). With
    an `idempotency_key`, a repeated call by the same user returns the first batch unchanged;
    the same key with a different payload raises IdempotencyConflict. A failed batch frees
    its key, so the corrected records can be sent again with it.
    """
    uploader = import_uploader(user=user)
    payload = json.dumps(records, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                         default=str).encode()
    digest = hashlib.sha256(payload).hexdigest()
    if idempotency_key is not None:
        if not idempotency_key or len(idempotency_key) > 128:
            raise ValueError("the idempotency key must have 1 to 128 characters")
        if earlier := _idempotent_batch(user, idempotency_key, digest):
            return earlier
    batch = ImportBatch(
        source=ImportSource.API, status=ImportStatus.RUNNING, side=uploader.side,
        partner_id=uploader.partner_id, user=user, file_name="records.json", sha256=digest,
        idempotency_key=idempotency_key,
        rows_total=len(records) if isinstance(records, list) else 0,
        confirmed_at=timezone.now(), heartbeat_at=timezone.now(),
    )
    batch.file.save("records.json", ContentFile(payload), save=False)
    try:
        with transaction.atomic():
            batch.save()
    except IntegrityError:
        # A concurrent call with the same key won the race: answer with its batch.
        batch.file.delete(save=False)
        if earlier := _idempotent_batch(user, idempotency_key, digest):
            return earlier
        raise
    reporter = _ProgressReporter(batch.pk, None)
    try:
        table = metric_records_table(records=records)
        validated = metric_rows_validate(table=table, uploader=uploader,
                                         default_side=uploader.side)
        _batch_finish(batch, validated, notes=[], reporter=reporter)
    except MetricFileRejected as rejected:
        _batch_fail(batch, rejected.errors, rejected.error_count)
    except Exception as error:
        _batch_fail(batch, [RowError(None, None, "", f"the import failed unexpectedly "
                                     f"({type(error).__name__}); nothing was imported")], 1)
        raise
    finally:
        reporter.close()
    batch.refresh_from_db()
    return batch


def _idempotent_batch(user, key: str, digest: str) -> ImportBatch | None:
    earlier = ImportBatch.objects.filter(user=user, idempotency_key=key).first()
    if earlier is not None and earlier.sha256 != digest:
        raise IdempotencyConflict(
            "This idempotency key was already used for different records; use a new key."
        )
    return earlier


@contextmanager
def _batch_file_path(batch: ImportBatch) -> Iterator[Path]:
    if not batch.file:
        raise MetricFileRejected([RowError(None, None, "", "the batch has no stored file")])
    try:
        yield Path(batch.file.path)
    except NotImplementedError:  # a storage without local paths: spool to a temporary file
        import tempfile

        suffix = Path(batch.file_name).suffix
        with tempfile.NamedTemporaryFile(suffix=suffix) as spool, batch.file.open("rb") as src:
            for chunk in src.chunks():
                spool.write(chunk)
            spool.flush()
            yield Path(spool.name)


def _batch_finish(batch: ImportBatch, validated: ValidatedRows, *, notes: list[str],
                  reporter: "_ProgressReporter") -> ImportResult:
    if not validated.ok:
        return _batch_fail(batch, validated.errors, validated.error_count, notes=notes,
                           rows_total=validated.rows_total)
    try:
        with transaction.atomic():
            counts = observations_write(
                rows=validated.frame, batch=batch, user=batch.user, row_numbers=validated.rows,
                progress=lambda share: reporter(40 + int(share * 59)),
            )
            ImportBatch.objects.filter(pk=batch.pk).update(
                status=ImportStatus.SUCCEEDED, rows_total=validated.rows_total,
                inserted=counts.inserted, updated=counts.updated, unchanged=counts.unchanged,
                error_count=0, errors=[], progress=100, finished_at=timezone.now(),
                notes=notes,
            )
    except ClosedMonthWrite as closed:
        return _batch_fail(batch, closed.errors, closed.error_count, notes=notes,
                           rows_total=validated.rows_total)
    batch.refresh_from_db()
    if reporter.callback is not None:
        reporter.callback(100)
    return ImportResult.of_batch(batch, notes=notes)


def _batch_fail(batch: ImportBatch, errors: list[RowError], error_count: int, *,
                notes: list[str] | None = None, rows_total: int | None = None) -> ImportResult:
    changes = {
        "status": ImportStatus.FAILED, "errors": [error.as_dict() for error in errors],
        "error_count": error_count, "inserted": 0, "updated": 0, "unchanged": 0,
        "progress": 100, "finished_at": timezone.now(), "notes": notes or [],
    }
    if rows_total is not None:
        changes["rows_total"] = rows_total
    if batch.source == ImportSource.API:
        changes["idempotency_key"] = None
    ImportBatch.objects.filter(pk=batch.pk).update(**changes)
    batch.refresh_from_db()
    return ImportResult.of_batch(batch, notes=notes)


class _ProgressReporter:
    """Publishes an import's progress while it runs.

    Outside a transaction the batch row is updated directly. Inside the write transaction an
    update would stay invisible until commit, so on PostgreSQL a second connection publishes
    it (SKIP LOCKED: it never waits for the import's own locks). When the import itself runs
    inside a caller's transaction, only the callback is told.
    """

    def __init__(self, batch_id: int, callback: Callable[[int], None] | None):
        self.batch_id = batch_id
        self.callback = callback
        self.last = -1
        self.publish = not connection.in_atomic_block
        self.side_connection = None

    def __call__(self, percent: int) -> None:
        percent = max(0, min(99, int(percent)))
        if percent <= self.last:
            return
        self.last = percent
        if self.publish:
            self._store(percent)
        if self.callback is not None:
            self.callback(percent)

    def _store(self, percent: int) -> None:
        if not connection.in_atomic_block:
            ImportBatch.objects.filter(pk=self.batch_id, status=ImportStatus.RUNNING).update(
                progress=percent, heartbeat_at=timezone.now()
            )
        elif connection.vendor == "postgresql":
            if self.side_connection is None:
                self.side_connection = connections.create_connection(DEFAULT_DB_ALIAS)
            table = ImportBatch._meta.db_table
            with self.side_connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET progress = %s, heartbeat_at = %s WHERE id IN"
                    f" (SELECT id FROM {table} WHERE id = %s AND status = %s"
                    "  FOR UPDATE SKIP LOCKED)",
                    [percent, timezone.now(), self.batch_id, ImportStatus.RUNNING],
                )

    def close(self) -> None:
        if self.side_connection is not None:
            self.side_connection.close()
            self.side_connection = None


@dataclass
class TidyResult:
    lost_workers: list[int] = field(default_factory=list)
    lost_tasks: list[int] = field(default_factory=list)
    lost_reads: list[int] = field(default_factory=list)
    unconfirmed_removed: int = 0
    files_removed: int = 0


def import_batches_tidy(*, now=None) -> TidyResult:
    """Keep imports from hanging: what the maintenance task does every few minutes.

    - A running import silent for IMPORT_STALE_AFTER_SECONDS lost its worker (its transaction
      rolled back, nothing was written): it is marked failed with a message saying so.
    - A confirmed import still pending after as long lost its task (e.g. the broker restarted):
      its id is returned to be queued again (the claim makes a double run impossible).
    - An upload whose file was never read (its read task was lost, or never queued because the
      broker was down) after as long is returned to be read again; one whose reading started
      and fell silent as long lost its worker and is marked failed, as a running import.
    - An upload left unconfirmed for IMPORT_UNCONFIRMED_MAX_AGE_HOURS is deleted with its file.
    - A failed import (a refused upload, command or API request) keeps its stored file for
      IMPORT_REFUSED_FILE_RETENTION_DAYS; then the file is deleted and the batch says so.
    """
    now = now or timezone.now()
    stale = now - dt.timedelta(seconds=settings.IMPORT_STALE_AFTER_SECONDS)
    result = TidyResult()
    silent = Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, created_at__lt=stale)
    lost = ImportBatch.objects.filter(silent, status=ImportStatus.RUNNING)
    message = RowError(None, None, "", "the import stopped before it finished (its worker was "
                       "lost); nothing was imported: start it again").as_dict()
    for batch_id in lost.values_list("pk", flat=True):
        # Conditional: an import that finished meanwhile keeps its result.
        if ImportBatch.objects.filter(silent, pk=batch_id, status=ImportStatus.RUNNING).update(
            status=ImportStatus.FAILED, errors=[message], error_count=1, progress=100,
            finished_at=now, idempotency_key=None,
        ):
            result.lost_workers.append(batch_id)
    result.lost_tasks = list(ImportBatch.objects.filter(
        status=ImportStatus.PENDING, confirmed_at__lt=stale
    ).values_list("pk", flat=True))
    unread = ImportBatch.objects.filter(status=ImportStatus.PENDING, confirmed_at__isnull=True,
                                        preview__isnull=True)
    # A read that started and went silent lost its worker, perhaps to the file itself (out of
    # memory): it fails like a lost import rather than being read again on every pass.
    read_lost = Q(heartbeat_at__lt=stale)
    read_message = RowError(None, None, "", "reading the file stopped before it finished (its "
                            "worker was lost); nothing was imported: upload it again, or "
                            "split it into smaller files").as_dict()
    for batch_id in unread.filter(read_lost).values_list("pk", flat=True):
        if unread.filter(read_lost, pk=batch_id).update(
            status=ImportStatus.FAILED, errors=[read_message], error_count=1, progress=100,
            finished_at=now,
        ):
            result.lost_workers.append(batch_id)
    # Never started (its task was lost, or not queued while the broker was down): read again.
    result.lost_reads = list(unread.filter(
        heartbeat_at__isnull=True, created_at__lt=stale
    ).values_list("pk", flat=True))
    result.files_removed = _refused_files_remove(now=now)
    abandoned = now - dt.timedelta(hours=settings.IMPORT_UNCONFIRMED_MAX_AGE_HOURS)
    with transaction.atomic():
        for batch in ImportBatch.objects.select_for_update(skip_locked=True).filter(
            status=ImportStatus.PENDING, confirmed_at__isnull=True, created_at__lt=abandoned
        ):
            stored, storage = batch.file.name, batch.file.storage
            batch.delete()
            if stored:
                transaction.on_commit(lambda stored=stored, storage=storage:
                                      storage.delete(stored))
            result.unconfirmed_removed += 1
    return result


def _refused_files_remove(*, now) -> int:
    """Delete the stored files of imports that failed long enough ago; the batches stay."""
    days = settings.IMPORT_REFUSED_FILE_RETENTION_DAYS
    cutoff = now - dt.timedelta(days=days)
    ended = Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff)
    note = (f"The stored file was deleted {now:%Y-%m-%d}, {days} days after the import failed "
            "(IMPORT_REFUSED_FILE_RETENTION_DAYS); its errors are kept.")
    removed = 0
    # A bounded slice per run (every few minutes): a backlog is worked off without one long run.
    for batch_id in ImportBatch.objects.filter(ended, status=ImportStatus.FAILED).exclude(
        file=""
    ).values_list("pk", flat=True)[:1000]:
        with transaction.atomic():
            batch = ImportBatch.objects.select_for_update(skip_locked=True).filter(
                ended, pk=batch_id, status=ImportStatus.FAILED).exclude(file="").first()
            if batch is None:
                continue
            stored, storage = batch.file.name, batch.file.storage
            ImportBatch.objects.filter(pk=batch.pk).update(
                file="", notes=[*(batch.notes or []), note])
            # After commit: a rollback must not leave a batch pointing at a deleted file.
            transaction.on_commit(lambda stored=stored, storage=storage:
                                  storage.delete(stored))
        removed += 1
    return removed
