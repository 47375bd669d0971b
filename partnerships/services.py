"""Services that write partnership data. Callers pass validated values; every write is atomic."""

from dataclasses import dataclass

import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from .models import ImportBatch, MetricObservation, ObservationChange

OBSERVATION_KEY = ["agreement_id", "kpi_id", "side", "date"]
# One number for every writer of observations: imports touching the same keys queue up here
# instead of racing between reading the old values and writing the new ones.
OBSERVATION_WRITE_LOCK = 7_240_001


@dataclass(frozen=True)
class WriteCounts:
    inserted: int
    updated: int
    unchanged: int


def _lock_observation_writes() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [OBSERVATION_WRITE_LOCK])
    # SQLite: transactions start IMMEDIATE (settings), so writers are already serialised.


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


def observations_write(*, rows: pd.DataFrame, batch: ImportBatch, user=None) -> WriteCounts:
    """Upsert validated observations by (agreement, KPI, side, date); record replaced values.

    `rows` holds agreement_id, kpi_id, side, date (datetime.date), value (float) and note, with
    no duplicate keys. A key whose value and note are unchanged is left alone.
    """
    if rows.empty:
        return WriteCounts(0, 0, 0)
    rows = rows.astype({"agreement_id": "int64", "kpi_id": "int64", "side": object}).copy()
    if "note" not in rows:
        rows["note"] = ""
    rows["note"] = rows["note"].fillna("").astype(object)
    now = timezone.now()
    with transaction.atomic():
        _lock_observation_writes()
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
