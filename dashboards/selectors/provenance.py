"""Where a KPI's values came from: every observation of both sides of one agreement's KPI in a
month and the 12 before, how each arrived and when, every value replaced, and the months under
dispute. Four queries, whatever the number of agreements (each reads one agreement's KPI
through an index: the observations' natural key, the changes' key, the disputes' key)."""

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count

from partnerships.access import import_batch_is_limited
from partnerships.models import (
    Agreement,
    Dispute,
    DisputeStatus,
    ImportBatch,
    KPIDefinition,
    MetricObservation,
    ObservationChange,
)
from partnerships.months import month_first_day, month_of, month_shift, months_from_to

# The month asked for and the 12 before it.
HISTORY_MONTHS = 13
# What partner users see in place of the name of a host user (the host's people are not the
# partner's contacts; the side is what matters to them).
HOST_TEAM = "host team"


@dataclass(frozen=True)
class BatchRef:
    """The import that wrote or replaced a value: its page, how it arrived, by whom."""

    pk: int
    source: str
    source_label: str
    file_name: str
    by: str


@dataclass(frozen=True)
class ObservationItem:
    date: dt.date
    side: str
    value: float
    note: str
    recorded_at: dt.datetime
    batch: BatchRef
    is_source: bool


@dataclass(frozen=True)
class ChangeItem:
    date: dt.date
    side: str
    old_value: float
    new_value: float
    changed_at: dt.datetime
    batch: BatchRef
    old_batch: BatchRef | None


@dataclass
class MonthItem:
    month: str
    observations: list[ObservationItem] = field(default_factory=list)
    changes: list[ChangeItem] = field(default_factory=list)
    disputes: list[Dispute] = field(default_factory=list)

    @property
    def open_dispute(self) -> Dispute | None:
        return next((item for item in self.disputes if item.status == DisputeStatus.OPEN), None)


def _by(batch: ImportBatch, *, limited: bool) -> str:
    """Who ran the import, as the viewer may see it: host users are "host team" to partners."""
    if batch.partner_id is None and limited:
        return HOST_TEAM
    if batch.user is None:
        return "the system" if batch.partner_id is None else "a former user"
    return batch.user.get_username()


def _batch_ref(batch: ImportBatch | None, *, user) -> BatchRef | None:
    if batch is None:
        return None
    # The host's file names are not shown to partners: a name may speak of other partners.
    limited = import_batch_is_limited(user=user, batch=batch)
    return BatchRef(pk=batch.pk, source=batch.source, source_label=batch.get_source_display(),
                    file_name="" if limited else batch.file_name,
                    by=_by(batch, limited=limited))


def kpi_provenance(*, agreement: Agreement, kpi: KPIDefinition, month: str,
                   user) -> list[MonthItem]:
    """The KPI's history for `month` and the 12 before, newest month first: each month's
    observations of both sides (newest date first, the source of truth's side first), the values
    replaced in it (newest first) and its disputes, as `user` may see them
    (`access.import_batch_is_limited`): host users' names show as "host team" to partners."""
    first = month_shift(month, -(HISTORY_MONTHS - 1))
    first_day = month_first_day(first)
    after_last = month_first_day(month_shift(month, 1))
    months = {name: MonthItem(month=name) for name in reversed(months_from_to(first, month))}
    batches: dict[int, BatchRef] = {}

    def ref(batch: ImportBatch | None) -> BatchRef | None:
        if batch is None:
            return None
        if batch.pk not in batches:
            batches[batch.pk] = _batch_ref(batch, user=user)
        return batches[batch.pk]

    observations = (
        MetricObservation.objects.filter(agreement=agreement, kpi=kpi, date__gte=first_day,
                                         date__lt=after_last)
        .select_related("batch__user").order_by("-date", "side")
    )
    for observation in observations:
        months[month_of(observation.date)].observations.append(ObservationItem(
            date=observation.date, side=observation.side, value=observation.value,
            note=observation.note, recorded_at=observation.recorded_at,
            batch=ref(observation.batch), is_source=observation.side == kpi.source,
        ))
    for items in months.values():
        # The source of truth's values first within a date: they are the ones that count.
        items.observations.sort(key=lambda item: (item.date, item.is_source), reverse=True)
    changes = (
        ObservationChange.objects.filter(agreement=agreement, kpi=kpi, date__gte=first_day,
                                         date__lt=after_last)
        .select_related("batch__user", "old_batch__user").order_by("-changed_at", "-pk")
    )
    for change in changes:
        months[month_of(change.date)].changes.append(ChangeItem(
            date=change.date, side=change.side, old_value=change.old_value,
            new_value=change.new_value, changed_at=change.changed_at,
            batch=ref(change.batch), old_batch=ref(change.old_batch),
        ))
    for dispute in Dispute.objects.filter(agreement=agreement, kpi=kpi,
                                          month__in=list(months)).order_by("-opened_at", "-pk"):
        months[dispute.month].disputes.append(dispute)
    return list(months.values())


@dataclass(frozen=True)
class LimitedCounts:
    """What a partner user is shown of another side's import: the values it wrote of their
    agreements (`written`, still current or replaced since), of which `updated` replaced an
    earlier value and `inserted` were new. Unchanged rows are not recorded per agreement."""

    written: int
    inserted: int
    updated: int


def partner_batch_counts(*, batch_ids: list[int], partner_id: int) -> dict[int, LimitedCounts]:
    """For each batch, the values of the partner's agreements it wrote. Three grouped queries,
    whatever the number of batches: every value a batch wrote is either still current (the
    observation points to the batch) or was replaced once since (a change whose old batch it
    is); those that replaced an earlier value are its own changes."""
    def grouped(queryset, key: str) -> dict[int, int]:
        return dict(queryset.filter(**{f"{key}__in": batch_ids}, agreement__partner_id=partner_id)
                    .order_by().values_list(key).annotate(total=Count("pk")))

    current = grouped(MetricObservation.objects, "batch_id")
    replaced_since = grouped(ObservationChange.objects, "old_batch_id")
    updated = grouped(ObservationChange.objects, "batch_id")
    counts = {}
    for batch_id in batch_ids:
        written = current.get(batch_id, 0) + replaced_since.get(batch_id, 0)
        changed = updated.get(batch_id, 0)
        counts[batch_id] = LimitedCounts(written=written, inserted=max(written - changed, 0),
                                         updated=changed)
    return counts
