"""When the two sides' values of a KPI disagree: the one rule of "beyond tolerance".

A KPI definition carries a tolerance: a percent of the source of truth's value (the default,
5 %) or an absolute amount in the KPI's unit. The difference is always taken against the source
of truth's value, `other − source`:

- absolute: beyond when |other − source| > tolerance;
- percent: beyond when |other − source| × 100 > tolerance × |source|.

The percent rule is written as a product, not a quotient, so that it has an answer when the
source's value is 0: then any other value than 0 is beyond tolerance (no percent of nothing
covers it), and 0 against 0 is not. A difference exactly at the tolerance is within it.

`beyond_tolerance` decides for one pair of values; `beyond_tolerance_q` is the same rule as a
database condition over rows that name the two values and the KPI definition (the
reconciliation page filters a month's KPI scores with it), so that the pages and any rule that
needs it compare alike. Both compute in double precision, the same operations in the same
order.
"""

from django.db.models import F, Q, Value
from django.db.models.functions import Abs
from django.db.models.lookups import GreaterThan

from .models import ToleranceKind


def beyond_tolerance(*, source_value: float, other_value: float, kind: str,
                     tolerance: float) -> bool:
    """Whether `other_value` differs from the source of truth's `source_value` by more than
    the KPI's tolerance (`kind` percent or absolute)."""
    difference = abs(other_value - source_value)
    if kind == ToleranceKind.ABSOLUTE:
        return difference > tolerance
    return difference * 100 > tolerance * abs(source_value)


def difference_percent(*, source_value: float | None, other_value: float | None) -> float | None:
    """`other − source` as a percent of |source|; None when either is missing or the source's
    value is 0 (no percent of nothing)."""
    if source_value is None or other_value is None or source_value == 0:
        return None
    return (other_value - source_value) / abs(source_value) * 100


def beyond_tolerance_q(*, source: str, other: str, kpi: str = "kpi") -> Q:
    """`beyond_tolerance` as a condition on rows whose fields `source` and `other` hold the two
    values (rows where either is missing never match) and whose relation `kpi` is the KPI
    definition."""
    difference = Abs(F(other) - F(source))
    absolute = Q(**{f"{kpi}__tolerance_kind": ToleranceKind.ABSOLUTE}) & Q(
        GreaterThan(difference, F(f"{kpi}__tolerance")))
    percent = Q(**{f"{kpi}__tolerance_kind": ToleranceKind.PERCENT}) & Q(
        GreaterThan(difference * Value(100.0), F(f"{kpi}__tolerance") * Abs(F(source))))
    return Q(**{f"{source}__isnull": False, f"{other}__isnull": False}) & (absolute | percent)
