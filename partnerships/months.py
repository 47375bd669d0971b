"""Which months are closed (DOMAIN.md § Closing months), read from `ProgramMonth`.

Months close in calendar order: closing a month closes every open month up to it, and
reopening one reopens every later closed month. So the closed months are exactly the months up
to the last closed one, whether or not they have a `ProgramMonth` row (a date before the
program's first month is in a closed month too), and one query answers for any number of
dates. Writers of observations check their rows against `last_closed_month()`; the
vectorised check over a file's rows is `partnerships.importers.closed_month_mask`.
"""

import datetime as dt
import re

from .models import MONTH_REGEX, ProgramMonth

# A month as every page, file and command writes it: "YYYY-MM".
MONTH_PATTERN = re.compile(MONTH_REGEX)


def month_shift(month: str, months: int) -> str:
    """The month `months` calendar months after `month` (before it when negative)."""
    year, number = int(month[:4]), int(month[5:7])
    index = year * 12 + number - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_after(month: str) -> str:
    return month_shift(month, 1)


def month_before(month: str) -> str:
    return month_shift(month, -1)


def months_from_to(first: str, last: str) -> list[str]:
    """Every month from `first` to `last`, both included, in calendar order."""
    months = []
    while first <= last:
        months.append(first)
        first = month_after(first)
    return months


def month_first_day(month: str) -> dt.date:
    return dt.date(int(month[:4]), int(month[5:7]), 1)


def month_of(day: dt.date) -> str:
    """The month ("YYYY-MM") a date falls in."""
    return f"{day.year:04d}-{day.month:02d}"


def last_closed_month() -> str | None:
    """The last closed month ("YYYY-MM"), or None while every month is open."""
    return ProgramMonth.objects.last_closed()


def month_is_closed(*, month: str) -> bool:
    """Whether a month ("YYYY-MM") is closed: it is the last closed month or before it."""
    last_closed = last_closed_month()
    return last_closed is not None and month <= last_closed


def month_closed_message(month: str) -> str:
    """The error of an observation dated in a closed month, the same on every path."""
    return f"{month} is closed"
