"""What the pages keep: the keys, how long, how a miss is told apart, and what invalidates each.

Two kinds, one scheme (a key that names what the value was computed from, a `MISS` sentinel,
computed on first need and then read):

- Of a published run (`run_cached`, `run_cached_each`). A published run's scorecards never
  change, so a value computed from them alone is kept under a key that names the run (its id
  and when it was published): it cannot go stale, and the next run publishes under new keys.
  The warm-up computes those of the run's last month right after the run (`run_pages_warm` in
  dashboards/warm.py, on beat), so that the first user to open a page in the morning does not
  wait for them.
- Of the program's rows (`program_cached`): figures computed from agreements, reviews and
  action items (the portfolio's overdue counts) are kept under a key that names the program's
  change counter (partnerships/changes.py). The write services move it on explicitly, through
  `partnerships.history` (`change_save`, `change_record`, `change_delete`): no signal. A bulk
  writer (the demo generator) calls `program_changed` itself.
"""

from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache import cache

from partnerships.changes import program_version
from scoring.models import ScoringRun

# A nightly run's whole day and some: the next run publishes under new keys anyway.
RUN_CACHE_SECONDS = 26 * 3600
# Part of every key: raised when what is kept changes shape, so that a new release reads
# nothing an older one wrote.
RUN_CACHE_FORMAT = 2
# What `cache.get` returns for a key not kept: a kept None, 0 or empty list is a value too,
# and must not be computed again.
MISS = object()


def run_key(run: ScoringRun, name: str, parts: Iterable = ()) -> str:
    """The cache key of a value of a published run: its id and when it was published."""
    return ":".join([f"run{RUN_CACHE_FORMAT}", str(run.pk), run.published_at.isoformat(), name,
                     *(str(part) for part in parts)])


def run_cached(*, run: ScoringRun, name: str, parts: Iterable = (),
               compute: Callable[[], Any]) -> Any:
    """`compute()` for a published run, computed once and then read from the cache.

    Only for values that depend on nothing but the run's own results and on what `parts`
    name. (Deleting an agreement deletes its scorecards: values over many agreements name
    their number and highest id in `parts`.) A run not published (yet) is computed each time."""
    if run.published_at is None:
        return compute()
    key = run_key(run, name, parts)
    value = cache.get(key, MISS)
    if value is MISS:
        value = compute()
        cache.set(key, value, RUN_CACHE_SECONDS)
    return value


def run_cached_each(*, run: ScoringRun, name: str, parts: Iterable = (), ids: list[int],
                    compute: Callable[[list[int]], dict]) -> dict:
    """`run_cached` for one value per agreement: those in the cache in one read, the others
    by `compute(missing ids)`, which returns a value for each."""
    if run.published_at is None:
        return compute(list(ids))
    prefix = run_key(run, name, parts)
    keys = {pk: f"{prefix}:{pk}" for pk in ids}
    # get_many leaves out the keys it does not hold, so a kept None is found as such.
    found = cache.get_many(list(keys.values()))
    values = {pk: found[key] for pk, key in keys.items() if key in found}
    missing = [pk for pk in ids if pk not in values]
    if missing:
        computed = compute(missing)
        cache.set_many({keys[pk]: computed[pk] for pk in missing}, RUN_CACHE_SECONDS)
        values.update(computed)
    return values


# ---- Kept under the program's change counter ------------------------------------------------

# At most: a writer that bypassed the services would show within this time.
PROGRAM_CACHE_SECONDS = 300


def program_key(name: str, parts: Iterable = ()) -> str:
    """The cache key of a value computed from the program's rows: the change counter now."""
    return ":".join([f"program{RUN_CACHE_FORMAT}", str(program_version()), name,
                     *(str(part) for part in parts)])


def run_label(run: ScoringRun | None) -> str:
    """The published run in a key of `program_cached` ('' without one): a value that also
    reads the run's results names it in its `parts`."""
    return f"{run.pk}-{run.published_at.isoformat()}" if run and run.published_at else ""


def program_cached(*, name: str, parts: Iterable = (), compute: Callable[[], Any],
                   seconds: int = PROGRAM_CACHE_SECONDS) -> Any:
    """`compute()` kept until the program changes (the counter moves on) or `seconds` pass.

    The key is taken before computing: a change committed meanwhile moves the counter on, so
    a value computed from the rows before it is never read after it."""
    key = program_key(name, parts)
    value = cache.get(key, MISS)
    if value is MISS:
        value = compute()
        cache.set(key, value, seconds)
    return value
