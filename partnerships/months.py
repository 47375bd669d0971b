"""Which months are closed (DOMAIN.md § Closing months), read from `ProgramMonth`.

Months close in calendar order: closing a month closes every open month up to it, and
reopening one reopens every later closed month. So the closed months are exactly the months up
to the last closed one, whether or not they have a `ProgramMonth` row (a date before the
program's first month is in a closed month too), and one query answers for any number of
dates. Writers of observations check their rows against `last_closed_month()`; the
vectorised check over a file's rows is `partnerships.importers.closed_month_mask`.
"""

import datetime as dt

from .models import ProgramMonth


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
