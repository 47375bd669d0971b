"""Reconciliation: where the two sides' values of a KPI in a month disagree.

A row is an agreement, KPI and month of the published run where both sides reported and the
other side's value is beyond the KPI's tolerance from the source of truth's
(partnerships.tolerance), or where only the side that is not the source of truth reported.
The values are the run's KPI scores (`actual` of the source side, `other_side_actual`), so the
page agrees with the agreement dashboard and reflects the last published run; the tolerances
are the KPI definitions' as they are now.

A month's rows of the whole program are read in one query and kept under the run and the
program's change counter (a tolerance edited moves it on); who sees which rows is decided on
the kept list (host staff: all; partner users: their agreements'), so the number of queries
does not depend on the number of agreements.
"""

from dataclasses import dataclass

from django.db.models import Q

from partnerships.tolerance import beyond_tolerance_q, difference_percent
from scoring.models import KPIScore, ScoringRun

from ..cache import program_cached, run_label
from .months import MonthStates, month_default

DIFFERS, ONLY_OTHER = "differs", "only_other"
KIND_LABELS = {DIFFERS: "Both reported, beyond tolerance",
               ONLY_OTHER: "Only the other side reported"}


@dataclass(frozen=True)
class ReconciliationKPI:
    """What the page writes of a KPI definition (its values by unit, its tolerance)."""

    code: str
    name: str
    unit: str
    value_type: str
    category: str
    source: str
    tolerance_kind: str
    tolerance: float

    @property
    def other_side(self) -> str:
        return "partner" if self.source == "host" else "host"


@dataclass(frozen=True)
class Disagreement:
    agreement_id: int
    agreement_code: str
    partner_slug: str
    partner_name: str
    kpi: ReconciliationKPI
    period: str
    source_value: float | None  # None: only the other side reported
    other_value: float

    @property
    def kind(self) -> str:
        return ONLY_OTHER if self.source_value is None else DIFFERS

    @property
    def difference(self) -> float | None:
        """The other side's value minus the source of truth's (None without the source's)."""
        return None if self.source_value is None else self.other_value - self.source_value

    @property
    def difference_percent(self) -> float | None:
        return difference_percent(source_value=self.source_value, other_value=self.other_value)


def _month_disagreements(*, run: ScoringRun, month: str) -> list[Disagreement]:
    """Every disagreement of the program in `month`, by agreement code then KPI code: one
    query."""
    rows = (
        KPIScore.objects.of_run(run).filter(period=month)
        .filter(beyond_tolerance_q(source="actual", other="other_side_actual")
                | Q(actual__isnull=True, other_side_actual__isnull=False))
        .order_by()
        .values_list(
            "agreement_id", "agreement__code", "agreement__partner__slug",
            "agreement__partner__name", "kpi__code", "kpi__name", "kpi__unit",
            "kpi__value_type", "kpi__category", "kpi__source", "kpi__tolerance_kind",
            "kpi__tolerance", "actual", "other_side_actual")
    )
    kpis: dict[str, ReconciliationKPI] = {}
    result = []
    for (agreement_id, code, slug, partner_name, kpi_code, *kpi_fields, actual,
         other) in rows:
        kpi = kpis.get(kpi_code)
        if kpi is None:
            kpi = kpis[kpi_code] = ReconciliationKPI(kpi_code, *kpi_fields)
        result.append(Disagreement(
            agreement_id=agreement_id, agreement_code=code, partner_slug=slug,
            partner_name=partner_name, kpi=kpi, period=month, source_value=actual,
            other_value=other))
    result.sort(key=lambda row: (row.agreement_code, row.kpi.code))
    return result


def reconciliation_month_default(months: list[str], states: MonthStates) -> str:
    """The month the page opens on: the last closed month when the run scored it, else the
    month pages open on."""
    if states.last_closed and states.last_closed in months:
        return states.last_closed
    return month_default(months)


def month_disagreements(*, run: ScoringRun | None, month: str) -> list[Disagreement]:
    """`_month_disagreements`, kept until the run or the program (a tolerance) changes."""
    if run is None or not month:
        return []
    return program_cached(name="reconciliation", parts=(run_label(run), month),
                          compute=lambda: _month_disagreements(run=run, month=month))


def disagreements_visible(rows: list[Disagreement], *,
                          agreement_ids: set[int] | None) -> list[Disagreement]:
    """The rows of the agreements a user sees (`agreement_ids`; None: the whole program)."""
    if agreement_ids is None:
        return list(rows)
    return [row for row in rows if row.agreement_id in agreement_ids]


def disagreement_count(*, run: ScoringRun | None, month: str,
                       agreement_ids: set[int] | None = None) -> int:
    """How many disagreements `month` has (of `agreement_ids` only, when given)."""
    return len(disagreements_visible(month_disagreements(run=run, month=month),
                                     agreement_ids=agreement_ids))


def _none_last(value: float | None, descending: bool) -> tuple:
    # Missing values (only the other side reported) sort after the others either way.
    if value is None:
        return (1, 0.0)
    return (0, -value if descending else value)


SORTS = {
    "agreement": lambda row: (row.agreement_code, row.kpi.code),
    "partner": lambda row: (row.partner_name.casefold(), row.agreement_code, row.kpi.code),
    "kpi": lambda row: (row.kpi.name.casefold(), row.agreement_code),
    "source": lambda row: row.source_value,
    "other": lambda row: row.other_value,
    "difference": lambda row: None if row.difference is None else abs(row.difference),
    "percent": lambda row: (None if row.difference_percent is None
                            else abs(row.difference_percent)),
}
NUMERIC_SORTS = frozenset({"source", "other", "difference", "percent"})


def disagreements_sorted(rows: list[Disagreement], sort: str) -> list[Disagreement]:
    """Rows by `sort` (a key of SORTS, "-" first for descending); numbers with the missing
    ones last, then by agreement and KPI."""
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    key = SORTS[name]
    if name in NUMERIC_SORTS:
        return sorted(rows, key=lambda row: (*_none_last(key(row), descending),
                                             row.agreement_code, row.kpi.code))
    return sorted(rows, key=key, reverse=descending)

