"""The cast shared by all tests: a host manager, two partners with their viewers, agreements
with known KPIs, and a helper that writes observations through the real write service."""

import datetime as dt
import uuid

import pandas as pd
import pytest

from partnerships.models import (
    Agreement,
    AgreementKPI,
    ImportBatch,
    KPIDefinition,
    Membership,
    Partner,
    Role,
)
from partnerships.services import observations_write
from tests import write_guard

# Every request of every test: a write of the program without its history row and audit event
# fails the request (tests/write_guard.py).
write_guard.install()


def make_user(django_user_model, username: str, role: str, partner: Partner | None = None):
    user = django_user_model.objects.create_user(username=username, password="pw-" + username)
    Membership.objects.create(user=user, role=role, partner=partner)
    return user


@pytest.fixture
def host_manager(django_user_model):
    return make_user(django_user_model, "manager", Role.HOST_MANAGER)


@pytest.fixture
def acme(db):
    return Partner.objects.create(slug="acme", name="Acme Corp")


@pytest.fixture
def globex(db):
    return Partner.objects.create(slug="globex", name="Globex")


@pytest.fixture
def acme_viewer(django_user_model, acme):
    return make_user(django_user_model, "acme-viewer", Role.PARTNER_VIEWER, acme)


@pytest.fixture
def globex_viewer(django_user_model, globex):
    return make_user(django_user_model, "globex-viewer", Role.PARTNER_VIEWER, globex)


@pytest.fixture
def kpis(db):
    """Two KPIs: revenue (host, sum, financial) and defect rate (partner, mean, operational)."""
    return {
        "revenue": KPIDefinition.objects.create(
            code="revenue", name="Partner-sourced revenue", unit="USD",
            category="financial", aggregation="sum", source="host",
        ),
        "defect_rate": KPIDefinition.objects.create(
            code="defect_rate", name="Defect rate", unit="%",
            category="operational", aggregation="mean", source="partner",
        ),
    }


def make_agreement(partner: Partner, code: str, kpis: dict, *, stage: str = "active",
                   weights: tuple[int, int, int, int] = (50, 0, 50, 0)) -> Agreement:
    """An agreement scored on revenue (target 100, floor 0) and defect rate (target 2, floor 10)."""
    agreement = Agreement.objects.create(
        partner=partner, code=code, type="co_marketing", stage=stage,
        start_date=dt.date(2025, 1, 1),
        weight_financial=weights[0], weight_strategic=weights[1],
        weight_operational=weights[2], weight_relationship=weights[3],
    )
    AgreementKPI.objects.create(agreement=agreement, kpi=kpis["revenue"], target=100, floor=0)
    AgreementKPI.objects.create(agreement=agreement, kpi=kpis["defect_rate"], target=2, floor=10)
    return agreement


@pytest.fixture
def acme_agreement(acme, kpis):
    return make_agreement(acme, "ACME-CM-2025", kpis)


@pytest.fixture
def globex_agreement(globex, kpis):
    return make_agreement(globex, "GLOBEX-REF-2025", kpis)


def write_observations(rows: list[tuple], *, side: str = "host", user=None):
    """Write (agreement, kpi, side, 'YYYY-MM-DD', value) tuples as one command import."""
    batch = ImportBatch.objects.create(source="command", side=side, status="succeeded", user=user)
    frame = pd.DataFrame(
        [
            (agreement.id, kpi.id, obs_side, dt.date.fromisoformat(day), float(value))
            for agreement, kpi, obs_side, day, value in rows
        ],
        columns=["agreement_id", "kpi_id", "side", "date", "value"],
    )
    return batch, observations_write(rows=frame, batch=batch, user=user)


@pytest.fixture(autouse=True)
def program_writes_watched():
    write_guard.reset()
    yield
    write_guard.reset()


@pytest.fixture(autouse=True)
def celery_in_process(request):
    """Unit tests run tasks in-process; the integration tests use a real worker instead."""
    from config.celery import app

    if request.node.get_closest_marker("integration"):
        yield
        return
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


# The key prefixes given out during the current test: removed from Redis after it.
_CACHE_PREFIXES: list[str] = []


def cache_start_over(settings) -> None:
    """A cache as if empty: the same backend (Redis when configured) under a new key prefix,
    so nothing is flushed (the cache may share Redis with Celery's broker)."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    _CACHE_PREFIXES.append(prefix)
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": prefix}}


@pytest.fixture(autouse=True)
def cache_of_its_own(settings):
    """Each test's database starts over: so does its cache, so that nothing a page kept of an
    earlier test's rows (runs and agreements reuse ids on SQLite) is read. Afterwards its keys
    are removed from Redis (the in-process cache forgets them as it fills)."""
    from django.core.cache import cache

    cache_start_over(settings)
    yield
    backend = getattr(cache, "_cache", None)
    if backend is not None and hasattr(backend, "get_client"):  # Redis
        client = backend.get_client(write=True)
        for prefix in _CACHE_PREFIXES:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
    _CACHE_PREFIXES.clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The production hasher is slow on purpose; tests create and log in many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class ReceivedMail:
    """What a real SMTP server (aiosmtpd, in this process) received: parsed messages."""

    def __init__(self):
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        import email
        from email import policy

        message = email.message_from_bytes(envelope.content, policy=policy.default)
        message.envelope_to = list(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list:
        return [message for message in self.messages if address in message.envelope_to]


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on a free port, with the default mailer pointed at it."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    received = ReceivedMail()
    controller = Controller(received, hostname="127.0.0.1", port=port)
    controller.start()
    settings.MAILERS = {"default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 10},
    }}
    yield received
    controller.stop()
