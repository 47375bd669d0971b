"""A counter of changes to the program (its agreements, reviews, action items, …).

Pages may keep figures computed from the program's rows (the portfolio's overdue reviews and
actions) in the cache under a key that names the counter (dashboards/cache.py): every change
moves it on, so a kept figure is not read after the rows under it changed. The write services
move it explicitly: `change_save`, `change_record` and `change_delete` (partnerships/history.py)
call `program_changed` in their transaction; a writer in bulk (the demo generator) calls it
itself. No signal: a bare ORM save does not move it, and nothing in the project saves bare.
It moves at once and again when the transaction commits, so that a figure computed from the
rows before the commit, meanwhile, is not kept either.
"""

import time

from django.core.cache import cache
from django.db import transaction

VERSION_KEY = "program:version"
# Far longer than any figure kept under it; after it expires the counter starts from the clock,
# above any value it held.
VERSION_SECONDS = 30 * 24 * 3600


def program_version() -> int:
    version = cache.get(VERSION_KEY)
    if version is None:
        # A cache emptied or restarted: start from a value no earlier counter reached.
        cache.add(VERSION_KEY, time.time_ns(), VERSION_SECONDS)
        version = cache.get(VERSION_KEY, 0)
    return version


def _move_on() -> None:
    try:
        cache.incr(VERSION_KEY)
        cache.touch(VERSION_KEY, VERSION_SECONDS)
    except ValueError:  # not in the cache
        cache.set(VERSION_KEY, time.time_ns(), VERSION_SECONDS)


def program_changed() -> None:
    """Tell the pages that the program changed: now, and again when the transaction commits."""
    _move_on()
    connection = transaction.get_connection()
    if connection.in_atomic_block and any(
            entry[1] is _move_on for entry in connection.run_on_commit):
        return  # this transaction moves it on at commit already (a service writing many rows)
    transaction.on_commit(_move_on)
