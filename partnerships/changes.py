"""A counter of changes to the program's agreements, reviews and action items.

Pages may keep figures computed from these (the portfolio's overdue reviews and actions) in the
cache under a key that names the counter: every change moves it on, so a kept figure is not
read after the rows under it changed. Saves and deletes through the ORM move it by themselves
(signals connected in apps.py); writers that bypass them (bulk loads) call `program_changed`.
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


def program_changed(**_signal) -> None:
    _move_on()
    connection = transaction.get_connection()
    if connection.in_atomic_block and any(
            entry[1] is _move_on for entry in connection.run_on_commit):
        return  # this transaction moves it on at commit already (a cascade of deletes)
    transaction.on_commit(_move_on)
