"""Copying a KPI set onto an agreement: from another agreement, or from the standard set
(KPI template) of an agreement type.

Two ways to treat the KPIs the agreement already has:

- `keep`: they stay exactly as they are; only the KPIs of the source that the agreement lacks
  are added (with the source's target, floor and weight).
- `replace`: the agreement's set becomes the source's: KPIs of both take the source's target,
  floor and weight, the source's new KPIs are added, and the agreement's KPIs that the source
  lacks are removed.

`kpi_set_plan` says what a copy would do (the preview); `kpi_set_copy` does it in one
transaction through the services of agreement KPIs (partnerships/program_services.py), so every
added, changed and removed agreement KPI is validated and recorded in the history.
"""

from dataclasses import dataclass, field
from typing import Literal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest

from .models import Agreement, AgreementKPI, KPIDefinition, KPITemplateItem
from .program_services import agreement_kpi_add, agreement_kpi_remove, agreement_kpi_update

Mode = Literal["keep", "replace"]
MODES: tuple[Mode, ...] = ("keep", "replace")


class KpiSetRefused(ValidationError):
    """A copy that would break the agreement (nothing was written)."""


@dataclass(frozen=True)
class SourceItem:
    kpi: KPIDefinition
    target: float
    floor: float
    weight: float


@dataclass
class KpiSetPlan:
    """What a copy does: each list holds (KPI, target, floor, weight) as they will be."""

    added: list[SourceItem] = field(default_factory=list)
    kept: list[AgreementKPI] = field(default_factory=list)  # untouched, already on it
    updated: list[tuple[AgreementKPI, SourceItem]] = field(default_factory=list)
    removed: list[AgreementKPI] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.added) + len(self.updated) + len(self.removed)


def kpi_set_source_items(*, agreement: Agreement | None = None,
                         agreement_type: str | None = None) -> list[SourceItem]:
    """The KPIs (with target, floor, weight) of a source agreement or of a type's template."""
    if agreement is not None:
        rows = AgreementKPI.objects.filter(agreement=agreement)
    elif agreement_type is not None:
        rows = KPITemplateItem.objects.filter(agreement_type=agreement_type)
    else:
        raise ValueError("Give a source agreement or an agreement type.")
    return [
        SourceItem(kpi=row.kpi, target=row.target, floor=row.floor, weight=row.weight)
        for row in rows.select_related("kpi").order_by("kpi__category", "kpi__code")
    ]


def kpi_set_plan(*, agreement: Agreement, items: list[SourceItem], mode: Mode) -> KpiSetPlan:
    """What copying `items` onto `agreement` in `mode` would add, keep, update and remove."""
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}.")
    existing = {
        row.kpi_id: row
        for row in AgreementKPI.objects.filter(agreement=agreement).select_related("kpi")
        .order_by("kpi__category", "kpi__code")
    }
    plan = KpiSetPlan()
    source_ids = set()
    for item in items:
        source_ids.add(item.kpi.pk)
        current = existing.get(item.kpi.pk)
        if current is None:
            plan.added.append(item)
        elif mode == "keep" or (current.target, current.floor, current.weight) == (
                item.target, item.floor, item.weight):
            plan.kept.append(current)
        else:
            plan.updated.append((current, item))
    for kpi_id, row in existing.items():
        if kpi_id not in source_ids:
            (plan.removed if mode == "replace" else plan.kept).append(row)
    return plan


@transaction.atomic
def kpi_set_copy(*, agreement: Agreement, items: list[SourceItem], mode: Mode,
                 user, request: HttpRequest | None = None) -> KpiSetPlan:
    """Copy a KPI set onto the agreement, all or nothing; each change goes to the history.

    Refused (KpiSetRefused, nothing written) when `replace` would remove a KPI that one of the
    agreement's objectives measures its progress with."""
    # Lock the agreement row: two managers copying at once apply one copy after the other.
    Agreement.objects.select_for_update().filter(pk=agreement.pk).first()
    plan = kpi_set_plan(agreement=agreement, items=items, mode=mode)
    if plan.removed:
        linked = set(agreement.objectives.filter(kpi__in=[row.kpi_id for row in plan.removed])
                     .values_list("kpi__name", flat=True))
        if linked:
            names = ", ".join(sorted(linked))
            raise KpiSetRefused(
                f"Replacing would remove {names}, which an objective of this agreement "
                "measures its progress with. Unlink the objective first, or keep the "
                "existing KPIs."
            )
    for row in plan.removed:
        agreement_kpi_remove(agreement_kpi=row, user=user, request=request)
    for row, item in plan.updated:
        agreement_kpi_update(agreement_kpi=row, user=user, request=request, target=item.target,
                             floor=item.floor, weight=item.weight)
    for item in plan.added:
        agreement_kpi_add(agreement=agreement, user=user, request=request, kpi=item.kpi,
                          target=item.target, floor=item.floor, weight=item.weight)
    return plan
