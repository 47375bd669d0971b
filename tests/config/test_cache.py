"""Pages keep working when the cache's Redis is down: computed, slower, logged, never a 500."""

import logging
import re
import shutil
import socket
import subprocess
import time

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from scoring.services import scoring_run_inline
from tests.conftest import write_observations

pytestmark = pytest.mark.django_db
PAGES = ("home", "portfolio", "ecosystem")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class OwnRedis:
    """A Redis server of the test's own, to stop and start without touching the shared one."""

    def __init__(self):
        if not shutil.which("redis-server"):
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail("the test's Redis did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def use_cache(settings, location: str) -> None:
    settings.CACHES = {"default": {
        "BACKEND": "config.cache.FailSoftRedisCache", "LOCATION": location,
        "KEY_PREFIX": "cache-down-test", "OPTIONS": {"RETRY_AFTER": 0.3},
    }}


@pytest.fixture
def own_redis(settings):
    original = settings.CACHES
    redis = OwnRedis()
    redis.start()
    use_cache(settings, f"redis://127.0.0.1:{redis.port}/0")
    yield redis
    redis.stop()
    settings.CACHES = original  # the shared fixture's clean-up must find a working cache


@pytest.fixture
def scored(acme_agreement, globex_agreement, kpis):
    rows = []
    for month, value in ((1, 50), (2, 80), (3, 120)):
        for agreement in (acme_agreement, globex_agreement):
            rows.append((agreement, kpis["revenue"], "host", f"2025-{month:02d}-10", value))
            rows.append((agreement, kpis["defect_rate"], "partner", f"2025-{month:02d}-12", 4))
    write_observations(rows)
    scoring_run_inline()
    return acme_agreement


def steady(html: str) -> str:
    """The page without what changes on every request (tokens, nonces, "minutes ago")."""
    html = re.sub(r'(csrfmiddlewaretoken" value="|x-csrftoken": ")[^"]+', "TOKEN", html)
    html = re.sub(r'nonce="[^"]+"', "NONCE", html)
    return re.sub(r"\(\d+\xa0minutes? ago\)", "", html)


def views_of(client: Client, code: str) -> dict[str, tuple[int, str]]:
    answers = {name: client.get(reverse(name)) for name in PAGES}
    answers["agreement"] = client.get(reverse("agreement_dashboard", args=[code]))
    return {name: (response.status_code, response.text) for name, response in answers.items()}


def test_pages_answer_the_same_after_the_cache_goes_down_and_use_it_when_back(
        own_redis, scored, host_manager, caplog):
    client = Client()
    client.force_login(host_manager)
    with_cache = views_of(client, scored.code)
    assert {status for status, _ in with_cache.values()} == {200}
    assert cache.get_many(["anything"]) == {}  # the cache answers

    own_redis.stop()
    with caplog.at_level(logging.WARNING, logger="config.cache"):
        without = views_of(client, scored.code)
        again = views_of(client, scored.code)

    for name, (status, text) in [*without.items(), *again.items()]:
        assert status == 200, name
        assert steady(text) == steady(with_cache[name][1]), name  # the same page, computed
    assert "unavailable" not in without["portfolio"][1].lower()  # nothing alarming on screen
    warnings = [r.message for r in caplog.records if "is unavailable" in r.message]
    assert len(warnings) == 1  # logged once per outage, not once per request

    own_redis.start()
    time.sleep(0.35)
    with caplog.at_level(logging.WARNING, logger="config.cache"):
        cache.set("back", 1)
    assert cache.get("back") == 1
    assert any("available again" in record.message for record in caplog.records)


def test_pages_answer_when_the_cache_was_never_reachable(settings, scored, host_manager):
    original = settings.CACHES
    use_cache(settings, f"redis://127.0.0.1:{free_port()}/0")
    try:
        client = Client()
        client.force_login(host_manager)
        answers = views_of(client, scored.code)
        from dashboards.tasks import pages_warm

        pages_warm()  # the beat's warm-up neither fails nor claims to have kept anything
    finally:
        settings.CACHES = original
    assert {name: status for name, (status, _) in answers.items()} == dict.fromkeys(
        [*PAGES, "agreement"], 200)


def test_after_a_failure_the_cache_is_skipped_rather_than_waited_for(settings):
    original = settings.CACHES
    use_cache(settings, f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert cache.get("key", "fallback") == "fallback"
        assert cache.available is False
        assert cache.add("lock", 1) is False  # a lock cannot be taken: someone "holds" it
        with pytest.raises(ValueError):
            cache.incr("counter")  # as for a missing key, which callers handle
        assert cache.get_or_set("computed", lambda: 42) == 42
        started = time.perf_counter()
        for _ in range(200):
            cache.get("key")
        assert time.perf_counter() - started < 0.1  # no connection attempt while skipped
        time.sleep(0.35)
        assert cache.available is True  # tried again after RETRY_AFTER
    finally:
        settings.CACHES = original
