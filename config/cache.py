"""A Redis cache that fails soft: with Redis out of reach, pages compute what they would have
read, and nothing raises.

Everything the pages keep in the cache can be computed again from the database, so losing the
cache must cost time, not an error page (Django's Redis backend has no IGNORE_EXCEPTIONS). After
a failure the cache is skipped for `RETRY_AFTER` seconds, so that each request does not wait
for a connection timeout again; the outage and the recovery are logged once each.
"""

import logging
import re
import threading
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class FailSoftRedisCache(RedisCache):
    """Django's Redis cache; while Redis cannot be reached, a cache that keeps nothing."""

    # Seconds to skip Redis after a failure before trying it again.
    RETRY_AFTER = 10.0

    def __init__(self, server, params):
        super().__init__(server, params)
        self._options = dict(self._options)  # the settings' own dict stays as it was
        self.retry_after = float(self._options.pop("RETRY_AFTER", self.RETRY_AFTER))
        # Short socket timeouts unless set: a cache slower than the database is no use.
        self._options.setdefault("socket_connect_timeout", 0.5)
        self._options.setdefault("socket_timeout", 2.0)
        # For the log: the server without any password in its URL.
        self._where = re.sub(r"//[^@/]*@", "//", self._servers[0])
        self._down_until = 0.0
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, error: Exception) -> None:
        with self._lock:
            was_up = self._down_until == 0.0
            self._down_until = time.monotonic() + self.retry_after
        if was_up:
            logger.warning(
                "The cache at %s is unavailable (%s: %s); pages are computed without it and "
                "it is tried again every %g s", self._where, type(error).__name__, error,
                self.retry_after,
            )

    def _succeeded(self) -> None:
        if self._down_until:
            with self._lock:
                self._down_until = 0.0
            logger.warning("The cache at %s is available again", self._where)

    def _call(self, method: str, fallback, *args, **kwargs):
        if not self.available:
            return fallback() if callable(fallback) else fallback
        try:
            result = getattr(super(), method)(*args, **kwargs)
        except UNREACHABLE as error:
            self._failed(error)
            return fallback() if callable(fallback) else fallback
        self._succeeded()
        return result

    def get(self, key, default=None, version=None):
        return self._call("get", default, key, default, version)

    def get_many(self, keys, version=None):
        return self._call("get_many", dict, keys, version)

    def has_key(self, key, version=None):
        return self._call("has_key", False, key, version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        # False: "someone else holds it", which is what a lock taken with add() must read.
        return self._call("add", False, key, value, timeout, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set", None, key, value, timeout, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set_many", lambda: list(data), data, timeout, version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("touch", False, key, timeout, version)

    def delete(self, key, version=None):
        return self._call("delete", False, key, version)

    def delete_many(self, keys, version=None):
        return self._call("delete_many", None, keys, version)

    def clear(self):
        return self._call("clear", None)

    def incr(self, key, delta=1, version=None):
        def missing():
            # As for a key that is not there: callers already handle that case.
            raise ValueError(f"Key '{key}' not found (the cache is unavailable)")

        return self._call("incr", missing, key, delta, version)
