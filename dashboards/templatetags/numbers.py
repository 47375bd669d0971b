"""The one way numbers are written on pages: thousands separators everywhere, one decimal for
scores, two for money, KPI values by their unit. `{% load numbers %}` in a template; Python code
that builds markup (the portfolio rows, chart labels) calls the same functions.

Rounding is half away from zero, from the figure the CSV exports write (4 decimals; money 2),
so a score the export gives as 74.2500 reads 74.3 on screen, and a page never disagrees with
its CSV; an exact Decimal (an amount of a plan) is rounded half up as it is. Missing and
non-finite values are "—" in a template ("" from the functions, for callers that choose their
own word); a magnitude no import accepts any more (old rows of 1e300) is three significant
digits, never three hundred.
"""

import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

from partnerships.models import ToleranceKind, ValueType
from partnerships.program import value_type_from_unit

register = template.Library()

MISSING = "—"
# Beyond any figure an import accepts (METRIC_VALUE_MAX_ABS is at most 10**15).
IMPLAUSIBLE = 1e15
# Decimals the CSV exports write (DOMAIN.md § Files): scores and values 4, money 2.
EXPORTED_PLACES = 4
MONEY_PLACES = 2


def _finite(value) -> float | Decimal | None:
    """A finite number, or None (missing, not finite, not a number)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


# Not partnerships.models.number_text, on purpose: that one writes a bound or a value in an
# error or history message exactly as it is stored (2.5, 1e+20, no separators, no rounding)
# so a person can compare it with what they typed; this one writes a figure for reading,
# rounded as the CSV exports round it and grouped in thousands.
def number_text(value, *, places: int, exported: int = EXPORTED_PLACES,
                trim: bool = False) -> str:
    """`value` with thousands separators and `places` decimals, rounded half away from zero
    from its exported form (`exported` decimals); "" when missing or not finite; `trim` drops
    trailing zeros (2.50 → 2.5, 3.00 → 3)."""
    number = _finite(value)
    if number is None:
        return ""
    if abs(number) >= IMPLAUSIBLE:  # stored before imports bounded values: no 300 digits
        return f"{float(number):.3g}"
    try:
        # A float as its export writes it; a Decimal (an amount of money) is exact already.
        exact = (number if isinstance(number, Decimal)
                 else Decimal(f"{number:.{max(exported, places)}f}"))
        rounded = exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    except InvalidOperation:  # pragma: no cover - finite and bounded above
        return ""
    if rounded == 0:
        rounded = abs(rounded)  # never "-0.0"
    text = f"{rounded:,f}"
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def rounded(value, *, places: int = 1) -> float | None:
    """The number `number_text` writes, as a float (a chart's point, so its hover text and the
    page agree); None when missing or not finite."""
    text = number_text(value, places=places)
    if not text:
        return None
    return float(text.replace(",", ""))


def apportioned(values: list[float], *, total: float, places: int = 1) -> list[float]:
    """`values` rounded to `places` decimals so that they add up to `total` as written (largest
    remainders: each is its exact value rounded down or up by less than one last digit), as a
    breakdown must add up to the figure it breaks down. Sums of floats are compared in units of
    the last digit, so none is lost to binary rounding."""
    unit = Decimal(1).scaleb(-places)
    exact = [Decimal(f"{value:.{EXPORTED_PLACES + 2}f}") / unit for value in values]
    wanted = int(Decimal(number_text(total, places=places).replace(",", "") or "0") / unit)
    units = [int(value.to_integral_value(rounding="ROUND_FLOOR")) for value in exact]
    # The largest remainders take one unit more until the sum is the total written; should the
    # rounded total lie outside what the values allow, the last units go to the largest ones.
    order = sorted(range(len(values)), key=lambda index: (units[index] - exact[index], index))
    short = wanted - sum(units) if values else 0
    for step in range(abs(short)):
        index = order[step % len(order)] if short > 0 else order[-1 - step % len(order)]
        units[index] += 1 if short > 0 else -1
    return [float(Decimal(count) * unit) for count in units]


def score_text(value) -> str:
    """A score (0–120), a rolling score, a change of score: one decimal."""
    return number_text(value, places=1)


def money_text(value) -> str:
    """An amount of money: two decimals, as the payout columns of the exports."""
    return number_text(value, places=MONEY_PLACES, exported=MONEY_PLACES)


def share_text(value) -> str:
    """A share in [0, 1] (coverage) as a percentage with one decimal, without the sign."""
    number = _finite(value)
    if number is None or abs(number) >= IMPLAUSIBLE:
        return number_text(number, places=1)
    # From the export's 4-decimal share: 0.7500 → 75.0.
    return number_text(Decimal(f"{number:.{EXPORTED_PLACES}f}") * 100, places=1)


def count_text(value) -> str:
    """A whole number: 12,345."""
    return number_text(value, places=0)


def kpi_value_type(kpi) -> str:
    """What a KPI's values are: its type of value, or, for a plain number, what its unit
    implies (a KPI in USD is money even when its type was left at "number")."""
    value_type = getattr(kpi, "value_type", "") or ValueType.NUMBER
    if value_type != ValueType.NUMBER:
        return value_type
    return value_type_from_unit(getattr(kpi, "unit", "") or "")


def kpi_value_text(value, kpi) -> str:
    """A value of `kpi` by its unit: money 2 decimals, percentages 1, counts whole (one
    decimal where a mean of counts has a fraction), other numbers up to 2, trailing zeros
    dropped."""
    kind = kpi_value_type(kpi)
    if kind == ValueType.MONEY:
        return money_text(value)
    if kind == ValueType.PERCENTAGE:
        return number_text(value, places=1)
    if kind == ValueType.COUNT:
        return number_text(value, places=1, trim=True)
    return number_text(value, places=2, trim=True)


def change_sign(change) -> str:
    """"up", "down" or "same" (a change that reads 0.0 on screen), "" when there is none."""
    number = _finite(change)
    if number is None:
        return ""
    if not score_text(number).strip("-0.,"):
        return "same"
    return "up" if number > 0 else "down"


def _or_missing(text: str) -> str:
    return text or MISSING


@register.filter
def score(value) -> str:
    """{{ card.overall|score }} → 74.3; "—" when missing."""
    return _or_missing(score_text(value))


@register.filter
def money(value) -> str:
    """{{ payout|money }} → 7,492.46; "—" when missing."""
    return _or_missing(money_text(value))


@register.filter
def share(value) -> str:
    """{{ card.coverage|share }} → 75.0 (a percentage: the template writes the %)."""
    return _or_missing(share_text(value))


@register.filter
def percent(value) -> str:
    """{{ delta|percent }} → 12.5 (already in percent; the template writes the %)."""
    return _or_missing(number_text(value, places=1))


@register.filter
def count(value) -> str:
    """{{ summary.active|count }} → 1,234."""
    return _or_missing(count_text(value))


@register.filter
def kpi_value(value, kpi) -> str:
    """{{ row.actual|kpi_value:row.kpi }}: the value written as its KPI's unit asks."""
    return _or_missing(kpi_value_text(value, kpi))


def tolerance_text(kpi) -> str:
    """A KPI's tolerance (partnerships.tolerance): "5 %" of the source's value, or "± 250 USD"
    in its unit ("± 0.5 points" for a percentage), as exact as it was set."""
    if getattr(kpi, "tolerance_kind", "") == ToleranceKind.ABSOLUTE:
        unit = getattr(kpi, "unit", "") or ""
        # "± 0.5 %" would read as a percent of the value: an amount of a percentage is points.
        unit = "points" if unit.strip() == "%" else unit
        return f"± {number_text(kpi.tolerance, places=4, trim=True)}{' ' + unit if unit else ''}"
    return f"{number_text(kpi.tolerance, places=2, trim=True)} %"


@register.filter
def tolerance(kpi) -> str:
    """{{ kpi|tolerance }} → 5 % or ± 250 USD."""
    return _or_missing(tolerance_text(kpi))
