"""Isolation: every URL of the project, called by every kind of visitor with another partner's
ids and with ids that do not exist, answers as it must, and nothing of Globex reaches Acme.

The walker reads every pattern from `django.urls.get_resolver()` — included URLconfs and the
admin's too — so a new page is covered as soon as it exists, and fails this test until ROUTES
says how to call it: which methods to try, who may use it, and how to fill each path kwarg,
query parameter and form field with (a) Globex's object and (b) an id or code that does not
exist. Every cell of the matrix is requested with CSRF checks on, the token sent as a browser
sends it (cookie, and the X-CSRFToken header htmx adds), and once more without the token.

Asserted for each cell:
- anonymous visitors and deactivated users (whose session survived) are sent to log in;
- a role that may not act gets 403, or 404 where a host page hides itself from partner users
  (ROUTES says which);
- for Acme's users, Globex's objects answer 404 exactly like ids that do not exist;
- a marker planted in every Globex name, code, slug, note, file name, e-mail, token name and
  audit entry appears in no response (body or headers) to an Acme user, an anonymous visitor
  or a deactivated user (public pages such as a live invitation link excepted for the latter);
- no admin URL ever answers 200 to a partner user, a deactivated user or anyone without staff
  rights.
The last test prints the figures (patterns, cells, leaks) and fails on any leak.
"""

import datetime as dt
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import import_module
from urllib.parse import quote, urlsplit

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.db import models, transaction
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory, override_settings
from django.urls import NoReverseMatch, URLResolver, get_resolver, resolve, reverse
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils import timezone

from partnerships.audit import audit_record
from partnerships.history import history_record
from partnerships.mail_preferences import unsubscribe_token
from partnerships.models import (
    ActionItem,
    Agreement,
    AgreementKPI,
    ApiToken,
    Dispute,
    DisputeEvent,
    ImportBatch,
    IncentivePlan,
    Invitation,
    KPIDefinition,
    KPITemplateItem,
    Membership,
    MetricObservation,
    Objective,
    ObservationChange,
    Partner,
    PartnerAssessment,
    Review,
    Role,
    StageTransition,
)
from partnerships.tokens import token_hash

MARKER = "Zq7Leak"
MISSING_ID = "987654321"

ANONYMOUS, DEACTIVATED = "anonymous", "deactivated"
ACME_VIEWER, ACME_EDITOR = "acme_viewer", "acme_editor"
HOST_MANAGER, HOST_ADMIN = "host_manager", "host_admin"
# Host admins last: their cells change things (deactivate Globex's user, withdraw invitations).
ROLES = (ANONYMOUS, DEACTIVATED, ACME_VIEWER, ACME_EDITOR, HOST_MANAGER, HOST_ADMIN)
PARTNER_USERS = frozenset({ACME_VIEWER, ACME_EDITOR})
HOST = frozenset({HOST_MANAGER, HOST_ADMIN})
MANAGERS = HOST  # Membership.can_manage: host managers and admins
ADMINS = frozenset({HOST_ADMIN})
UPLOADERS = HOST | {ACME_EDITOR}  # who may import metrics (partner viewers may not)
SIGNED_IN = PARTNER_USERS | HOST
# Whose answers must hold nothing of Globex.
LEAK_CHECKED = PARTNER_USERS | {ANONYMOUS, DEACTIVATED}


# ---- The world: Acme and the host as the viewers, Globex as the other partner --------------


@dataclass
class World:
    users: dict[str, object]
    acme: Partner
    globex: Partner
    globex_agreement: Agreement
    globex_user: object
    globex_batch: ImportBatch
    globex_observation: MetricObservation
    globex_invitation: Invitation
    globex_invitation_token: str
    globex_api_token: ApiToken
    run_id: int
    # Each role's API key (Authorization: Bearer), for the token-authenticated API.
    api_keys: dict[str, str] = field(default_factory=dict)
    # The signed-in session of each role (made once; a test that ends one makes it anew).
    sessions: dict[str, str] = field(default_factory=dict)
    # Per model, the Globex object (or, for program-wide models, an existing one) that
    # admin URLs are called with.
    objects: dict[type, models.Model] = field(default_factory=dict)


def _make_user(username: str, role: str | None, partner: Partner | None = None, **extra):
    user = get_user_model().objects.create_user(
        username=username, password="pw-" + username, email=f"{username}@example.com", **extra
    )
    if role:
        Membership.objects.create(user=user, role=role, partner=partner)
    return user


def _agreement(partner: Partner, code: str, kpis: dict, text: str) -> Agreement:
    terms = {name: text for name in (
        "title", "partner_contacts", "value_financial", "value_strategic", "value_operational",
        "attribution_method", "qualified_lead_definition", "underperformance_consequences",
        "overperformance_rewards", "customer_relationship_owner", "support_responsibilities",
        "marketing_materials", "messaging_approval", "shared_costs", "dispute_resolution",
        "exit_criteria",
    )}
    agreement = Agreement.objects.create(
        partner=partner, code=code, type="co_marketing", stage="active",
        start_date=dt.date(2025, 1, 1), weight_financial=50, weight_strategic=0,
        weight_operational=50, weight_relationship=0, **terms,
    )
    AgreementKPI.objects.create(agreement=agreement, kpi=kpis["revenue"], target=100, floor=0)
    AgreementKPI.objects.create(agreement=agreement, kpi=kpis["defect_rate"], target=2, floor=10)
    Objective.objects.create(agreement=agreement, goal_type="revenue_growth",
                             success_metric=f"{text} objective", kpi=kpis["revenue"],
                             target_value=10, deadline=dt.date(2026, 1, 1))
    IncentivePlan.objects.create(agreement=agreement, base_amount=1000)
    return agreement


def _observations(agreement: Agreement, kpis: dict, partner: Partner, user, text: str):
    now = timezone.now()
    batch = ImportBatch.objects.create(
        source="upload", side="partner", partner=partner, user=user, status="succeeded",
        file_name=f"{text}-metrics.csv", sha256="0" * 64, idempotency_key=f"{text}-key",
        errors=[{"row": 2, "column": "note", "message": f"{text} error", "value": text}],
        error_count=1,
    )
    # The uploaded file itself, downloadable by those who may see the batch.
    batch.file.save(f"{text}-metrics.csv", ContentFile(
        f"agreement,kpi,date,value,note\n{agreement.code},revenue,2025-01-10,81,{text}\n"
        .encode()), save=True)
    observations = []
    for month in (1, 2, 3):
        for kpi, value in ((kpis["revenue"], 80 + month), (kpis["defect_rate"], 4)):
            side = kpi.source
            observations.append(MetricObservation.objects.create(
                agreement=agreement, kpi=kpi, side=side, date=dt.date(2025, month, 10),
                value=value, note=f"{text} note", batch=batch, recorded_by=user,
                recorded_at=now,
            ))
    ObservationChange.objects.create(
        observation=observations[0], agreement=agreement, kpi=observations[0].kpi,
        side=observations[0].side, date=observations[0].date, old_value=1, new_value=2,
        old_batch=batch, batch=batch, changed_by=user, changed_at=now,
    )
    return batch, observations[0]


def _host_batch_of_both(acme_agreement: Agreement, globex_agreement: Agreement, kpis: dict,
                        user) -> ImportBatch:
    """A host import that wrote values of both partners: Acme's users see it, limited to their
    rows; its file name, notes and Globex's row (all marked) must not reach them."""
    now = timezone.now()
    batch = ImportBatch.objects.create(
        source="upload", side="host", user=user, status="succeeded",
        file_name=f"host-{MARKER}-and-acme.csv", sha256="1" * 64, inserted=2, rows_total=2,
        notes=[f"{MARKER} sheet note"])
    batch.file.save(batch.file_name, ContentFile(b"agreement,kpi,date,value\n"), save=True)
    for agreement, note in ((acme_agreement, "host row"), (globex_agreement, f"{MARKER} row")):
        MetricObservation.objects.create(
            agreement=agreement, kpi=kpis["defect_rate"], side="host",
            date=dt.date(2025, 2, 20), value=5, note=note, batch=batch, recorded_by=user,
            recorded_at=now)
    return batch


def _review_with_action(agreement: Agreement, text: str) -> Review:
    review = Review.objects.create(
        agreement=agreement, kind="monthly_results", held_on=dt.date(2025, 3, 1),
        host_attendees=f"{text} host people", partner_attendees=f"{text} partner people",
        notes=f"{text} review notes", decisions=f"{text} decisions")
    for side in ("partner", "host"):
        ActionItem.objects.create(
            agreement=agreement, review=review, description=f"{text} {side} action",
            owner_name=f"{text} owner", owner_side=side, due_date=dt.date(2025, 4, 1))
    return review


def _second_factor_passed(client: Client, user) -> None:
    """Host staff pass the second factor, as after entering their code (when 2FA exists)."""
    if not apps.is_installed("django_otp.plugins.otp_totp"):
        return
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def build_world() -> World:
    from scoring.closing import months_close
    from scoring.services import scoring_run_inline

    kpis = {
        "revenue": KPIDefinition.objects.create(
            code="revenue", name="Partner-sourced revenue", unit="USD", category="financial",
            aggregation="sum", source="host"),
        "defect_rate": KPIDefinition.objects.create(
            code="defect_rate", name="Defect rate", unit="%", category="operational",
            aggregation="mean", source="partner"),
    }
    acme = Partner.objects.create(slug="acme", name="Acme Corp", website="https://acme.example")
    low = MARKER.lower()
    globex = Partner.objects.create(
        slug=f"globex-{low}", name=f"Globex {MARKER}", website=f"https://{low}.example",
        industry=f"{MARKER} industry",
    )
    users = {
        ACME_VIEWER: _make_user("acme-viewer", Role.PARTNER_VIEWER, acme),
        ACME_EDITOR: _make_user("acme-editor", Role.PARTNER_EDITOR, acme),
        HOST_MANAGER: _make_user("host-manager", Role.HOST_MANAGER),
        HOST_ADMIN: _make_user("host-admin", Role.HOST_ADMIN),
        # The strongest account there is, deactivated while its session lives on.
        DEACTIVATED: _make_user("gone-admin", Role.HOST_ADMIN, is_staff=True,
                                is_superuser=True),
    }
    globex_user = _make_user(f"globex-viewer-{low}", Role.PARTNER_VIEWER, globex,
                             first_name=MARKER, last_name=MARKER)
    globex_user.email = f"viewer@{low}.example"
    globex_user.save()
    globex_editor = _make_user(f"globex-editor-{low}", Role.PARTNER_EDITOR, globex)

    acme_agreement = _agreement(acme, "ACME-CM-2025", kpis, "Acme terms")
    globex_agreement = _agreement(globex, f"GLOBEX-{MARKER.upper()}-1", kpis, MARKER)
    # The standard KPI set of co-marketing agreements (program-wide, no partner's data).
    KPITemplateItem.objects.create(agreement_type="co_marketing", kpi=kpis["revenue"],
                                   target=120, floor=0)
    _observations(acme_agreement, kpis, acme, users[ACME_EDITOR], "acme")
    globex_batch, globex_observation = _observations(
        globex_agreement, kpis, globex, globex_editor, MARKER)
    _host_batch_of_both(acme_agreement, globex_agreement, kpis, users[HOST_MANAGER])
    run = scoring_run_inline()
    # January closed: each agreement has a line in its payout statement (Globex's must not
    # reach Acme's users).
    months_close(through="2025-01", user=None)
    # Business reviews and action items of both partners (Globex's carry the marker).
    for agreement, text in ((acme_agreement, "Acme"), (globex_agreement, MARKER)):
        _review_with_action(agreement, text)
        _planned_review(agreement, text)
    # The host's judgement of Globex, its stage moves and its change history.
    PartnerAssessment.objects.create(
        partner=globex, assessed_on=dt.date(2025, 1, 2), strategic_fit=4,
        cultural_compatibility=3, operational_capability=4, market_position=2,
        resource_contribution=3, implementation_complexity=2, horizon_today=f"{MARKER} H1",
        notes=f"{MARKER} assessment notes", assessed_by=users[HOST_MANAGER])
    StageTransition.objects.create(agreement=globex_agreement, from_stage="pilot",
                                   to_stage="active", reason=f"{MARKER} promoted",
                                   by=users[HOST_MANAGER])
    history_record(user=users[HOST_MANAGER], obj=globex_agreement, kind="updated",
                   fields={"Title": ["", f"{MARKER} title"]})
    history_record(user=users[HOST_MANAGER], obj=globex, kind="updated",
                   fields={"Industry": ["", f"{MARKER} industry"]})
    # Disputes of both partners (Globex's reason and thread carry the marker).
    for agreement, opener, text in ((acme_agreement, users[ACME_EDITOR], "Acme"),
                                    (globex_agreement, globex_editor, MARKER)):
        _dispute(agreement, kpis["revenue"], "2025-02", opener, text)

    token = f"{low}-invitation-token"
    invitation = Invitation.objects.create(
        email=f"invitee@{low}.example", role=Role.PARTNER_VIEWER, partner=globex,
        token_hash=token_hash(token), invited_by=users[HOST_ADMIN],
        expires_at=timezone.now() + dt.timedelta(days=1),
    )
    globex_api_token = ApiToken.objects.create(
        user=globex_editor, name=f"{MARKER} uploader", prefix=low[:8], key_hash="f" * 64)
    api_keys = {}
    for role in (ACME_VIEWER, ACME_EDITOR, HOST_MANAGER, HOST_ADMIN, DEACTIVATED):
        api_keys[role] = f"pp_isolation-{role}-key"
        ApiToken.objects.create(user=users[role], name=f"{role} token", prefix="pp_isolatio",
                                key_hash=hashlib.sha256(api_keys[role].encode()).hexdigest())
    audit_record(action="import", user=globex_editor, partner=globex,
                 target=f"import {globex_batch.pk} {MARKER}", detail={"file": MARKER})
    audit_record(action="login_failed", username=f"{low}-typed-name")

    world = World(
        users=users, acme=acme, globex=globex, globex_agreement=globex_agreement,
        globex_user=globex_user, globex_batch=globex_batch,
        globex_observation=globex_observation, globex_invitation=invitation,
        globex_invitation_token=token, globex_api_token=globex_api_token,
        run_id=run.run_id, api_keys=api_keys,
    )
    if apps.is_installed("django_otp.plugins.otp_totp"):
        from django_otp.plugins.otp_totp.models import TOTPDevice

        # Host staff have their authenticator; so has Globex's viewer, under a telling name.
        for role in (HOST_MANAGER, HOST_ADMIN, DEACTIVATED):
            TOTPDevice.objects.create(user=users[role], name="phone", confirmed=True)
        TOTPDevice.objects.create(user=globex_user, name=MARKER, confirmed=True)
    world.objects = _globex_objects(world)
    world.sessions = {role: sign_in(world, role) for role in ROLES if role != ANONYMOUS}
    # Deactivated after signing in: the session outlives the account's right to use it.
    get_user_model().objects.filter(pk=users[DEACTIVATED].pk).update(is_active=False)
    return world


def _globex_objects(world: World) -> dict[type, models.Model]:
    """For each model in the admin: an object of Globex's where the model has one."""
    found = {}
    for model in admin.site._registry:
        queryset = model._default_manager.all()
        names = {f.name for f in model._meta.get_fields()}
        if model is Partner:
            queryset = queryset.filter(pk=world.globex.pk)
        elif model is get_user_model():
            queryset = queryset.filter(pk=world.globex_user.pk)
        elif "partner" in names:
            queryset = queryset.filter(partner=world.globex)
        elif "agreement" in names:
            queryset = queryset.filter(agreement__partner=world.globex)
        elif "user" in names:
            queryset = queryset.filter(user__membership__partner=world.globex)
        found[model] = queryset.order_by("pk").first() or model._default_manager.first()
    return found


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[World]:
    """Built once for the module inside a transaction that is rolled back at its end; each
    test runs in a savepoint within it (pytest-django's `db`), so its changes vanish too."""
    # The per-test fast hasher (tests/conftest.py) is not in force yet at module scope.
    fast_hashing = override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    # Uploaded files of the world live in a temporary folder, not in the project's media.
    media = override_settings(MEDIA_ROOT=str(tmp_path_factory.mktemp("isolation-media")))
    with media, django_db_blocker.unblock(), transaction.atomic():
        with fast_hashing:
            built = build_world()
        yield built
        transaction.set_rollback(True)


@pytest.fixture(autouse=True)
def production_like(settings):
    # Host staff must use the second factor, as in production; the cast has passed it.
    settings.TWO_FACTOR_REQUIRED_FOR_HOST = True


# ---- The table: how to call each URL, and who may use it -------------------------------------


@dataclass(frozen=True)
class Value:
    """A path kwarg, query parameter or form field: Globex's value, and one that exists not."""

    other: Callable[[World, "Pattern"], str]
    missing: str = MISSING_ID


@dataclass(frozen=True)
class Route:
    roles: frozenset  # the signed-in roles that may use it
    methods: tuple[str, ...] = ("GET",)
    path: dict[str, Value] = field(default_factory=dict)
    query: dict[str, Value] = field(default_factory=dict)
    body: dict[str, Value | str] = field(default_factory=dict)
    htmx: bool = False  # also called as htmx calls it (HX-Request: true)
    hidden: bool = True  # partner users who may not use it get 404, not 403
    public: bool = False  # no log-in needed; any answer but a server error will do
    missing: int | None = 404  # allowed roles with missing ids get this (None: a normal answer)
    site_admin: bool = False  # the Django admin: never 200 for anyone in the cast
    csrf: bool = True  # a POST without the token is refused with 403
    # "session": signed in with a cookie; "token": an API key (Authorization: Bearer), so
    # anonymous visitors and deactivated users get 401 instead of a log-in redirect.
    auth: str = "session"
    # A JSON body, built with `fill(value)` for each Value in it.
    json: Callable[[Callable], dict] | None = None
    # What partner users get for Globex's values (None: 404 for path kwargs, else a normal
    # answer); and whether to compare their answers to Globex's and to missing values even
    # when no path kwarg differs.
    partner_other: int | None = None
    parity: bool = False


SLUG = Value(lambda w, p: w.globex.slug, missing="no-such-partner")
GLOBEX_USER_ID = Value(lambda w, p: str(w.globex_user.pk))
GLOBEX_BATCH_ID = Value(lambda w, p: str(w.globex_batch.pk))
GLOBEX_CODE = Value(lambda w, p: w.globex_agreement.code, missing="NO-SUCH-AGREEMENT-1")
TOKEN = "000000"
# Reviews and actions: Globex's own; a fresh one for each deleting cell, since every cell
# of a host role must find the object still there.
GLOBEX_REVIEW_ID = Value(lambda w, p: str(
    Review.objects.filter(agreement=w.globex_agreement, status="held").first().pk))
GLOBEX_ACTION_ID = Value(lambda w, p: str(
    ActionItem.objects.filter(agreement=w.globex_agreement, owner_side="partner").first().pk))
FRESH_GLOBEX_REVIEW_ID = Value(
    lambda w, p: str(_review_with_action(w.globex_agreement, MARKER).pk))
FRESH_GLOBEX_ACTION_ID = Value(
    lambda w, p: str(_review_with_action(w.globex_agreement, MARKER).action_items.first().pk))


def _dispute(agreement: Agreement, kpi: KPIDefinition, month: str, opener, text: str,
             side: str = "partner"):
    """An open dispute opened by `side`, with a comment of the partner."""
    dispute = Dispute.objects.create(agreement=agreement, kpi=kpi, month=month,
                                     opened_side=side, opened_by=opener,
                                     reason=f"{text} dispute reason", proposed_value=7)
    DisputeEvent.objects.create(dispute=dispute, kind="opened", user=opener, side=side,
                                username=opener.username, text=dispute.reason)
    DisputeEvent.objects.create(dispute=dispute, kind="comment", side="partner",
                                username=opener.username, text=f"{text} comment")
    return dispute


GLOBEX_DISPUTE_ID = Value(lambda w, p: str(Dispute.objects.get(
    agreement=w.globex_agreement, month="2025-02", status="open").pk))


def _fresh_globex_dispute(world: "World", side: str = "partner") -> str:
    """An open dispute of Globex's for a cell that resolves or withdraws one (each cell needs
    an open one); opened by the host for the host's withdrawals."""
    from partnerships.months import month_shift

    month = month_shift("2025-03", Dispute.objects.count())
    opener = world.users[HOST_MANAGER] if side == "host" else world.globex_user
    return str(_dispute(world.globex_agreement,
                        KPIDefinition.objects.get(code="defect_rate"), month,
                        opener, MARKER, side=side).pk)


FRESH_GLOBEX_DISPUTE_ID = Value(lambda w, p: _fresh_globex_dispute(w))
FRESH_HOST_OPENED_GLOBEX_DISPUTE_ID = Value(lambda w, p: _fresh_globex_dispute(w, "host"))


def _qbr_job(world: "World") -> str:
    """A finished archive job of Globex's pack, started by the host manager."""
    from django.core.cache import cache
    from django.core.files.storage import default_storage

    from dashboards.qbr import qbr_job_create
    from dashboards.selectors.qbr import Quarter

    job = qbr_job_create(user=world.users[HOST_MANAGER],
                         agreement_ids=[world.globex_agreement.pk], quarter=Quarter(2025, 1))
    name = default_storage.save(f"qbr/{job['id']}/QBR-packs-2025-Q1.zip",
                                ContentFile(b"PK\x05\x06" + bytes(18)))
    job.update(status="done", done=1, file=name)
    cache.set(f"qbr-job:{job['id']}", job, 600)
    return job["id"]


QBR_JOB_ID = Value(lambda w, p: _qbr_job(w), missing="0" * 32)
QUARTER = Value(lambda w, p: "2025-Q1", missing="2025-Q1")
GLOBEX_AGREEMENT_ID = Value(lambda w, p: str(w.globex_agreement.pk))


def _planned_review(agreement: Agreement, text: str) -> Review:
    return Review.objects.create(
        agreement=agreement, kind="quarterly_strategy", status="planned",
        held_on=dt.date.today() + dt.timedelta(days=20), starts_at=dt.time(15, 30),
        agenda=f"{text} agenda", host_attendees=f"{text} host",
        partner_attendees=f"{text} partner")


# A planned review of Globex's: read by the calendar download; a fresh one for each cell that
# records one as held.
GLOBEX_PLANNED_REVIEW_ID = Value(lambda w, p: str(
    Review.objects.filter(agreement=w.globex_agreement, status="planned").first().pk))
FRESH_GLOBEX_PLANNED_REVIEW_ID = Value(
    lambda w, p: str(_planned_review(w.globex_agreement, MARKER).pk))


def _fresh_kpi(prefix: str) -> KPIDefinition:
    """A KPI of its own for a cell that deletes or removes one (each cell needs a live one)."""
    number = KPIDefinition.objects.count() + 1
    return KPIDefinition.objects.create(code=f"{prefix}-{number}", name=f"Cell KPI {number}",
                                        category="strategic", aggregation="sum", source="host")


def _fresh_agreement_kpi(world: "World") -> str:
    row = AgreementKPI.objects.create(agreement=world.globex_agreement,
                                      kpi=_fresh_kpi("cell-agreement"), target=10, floor=0)
    return str(row.pk)


def _fresh_template_item() -> str:
    return str(KPITemplateItem.objects.create(agreement_type="referral",
                                              kpi=_fresh_kpi("cell-template"),
                                              target=10, floor=0).pk)


GLOBEX_AGREEMENT_KPI_ID = Value(lambda w, p: str(
    AgreementKPI.objects.get(agreement=w.globex_agreement, kpi__code="defect_rate").pk))
FRESH_GLOBEX_AGREEMENT_KPI_ID = Value(lambda w, p: _fresh_agreement_kpi(w))
GLOBEX_OBJECTIVE_ID = Value(lambda w, p: str(w.globex_agreement.objectives.first().pk))
FRESH_GLOBEX_OBJECTIVE_ID = Value(lambda w, p: str(Objective.objects.create(
    agreement=w.globex_agreement, goal_type="capability", success_metric=f"{MARKER} cell",
    target_value=1, deadline=dt.date(2026, 6, 30)).pk))
KPI_CODE = Value(lambda w, p: "revenue", missing="no-such-kpi")
FRESH_KPI_CODE = Value(lambda w, p: _fresh_kpi("cell-library").code, missing="no-such-kpi")
TEMPLATE_ITEM_ID = Value(lambda w, p: str(KPITemplateItem.objects.order_by("pk").first().pk))
FRESH_TEMPLATE_ITEM_ID = Value(lambda w, p: _fresh_template_item())
AGREEMENT_KPI_BODY = {"kpi": "revenue", "target": "100", "floor": "100", "weight": "1"}
REVIEW_BODY = {"kind": "tactical_sync", "held_on": "2025-06-01", "notes": "Cell review"}
PLAN_BODY = {"kind": "tactical_sync", "duration_minutes": "45", "agenda": "Cell agenda",
             "held_on": (dt.date.today() + dt.timedelta(days=10)).isoformat()}
# Destructive actions act only when confirmed (dashboards/confirm.py): the cells confirm, so
# that what they reach is the deletion itself.
CONFIRMED = {"confirm": "yes"}
ACTION_BODY = {"description": "Cell action", "owner_name": "Cell owner",
               "owner_side": "partner", "raci": "responsible", "due_date": "2025-07-01"}


def observations_json(fill: Callable) -> dict:
    return {"observations": [{"agreement": fill(GLOBEX_CODE), "kpi": "revenue",
                              "date": "2025-02-15", "value": 5, "side": "partner"}]}


ROUTES: dict[str, Route] = {
    # Django's auth and the log-in hardening pages.
    "login": Route(roles=SIGNED_IN, methods=("GET", "POST"), public=True),
    "logout": Route(roles=SIGNED_IN, methods=("POST",), public=True),
    # Forgotten passwords: public, and the same answer for any address (own tests).
    "password_reset": Route(roles=SIGNED_IN, methods=("GET", "POST"), public=True,
                            body={"email": "someone@example.com"}),
    "password_reset_done": Route(roles=SIGNED_IN, public=True),
    "password_reset_confirm": Route(
        roles=SIGNED_IN, methods=("GET", "POST"), public=True,
        path={"uidb64": Value(lambda w, p: "MQ", missing="Zm9v"),
              "token": Value(lambda w, p: "set-password", missing="no-such-token")}),
    "password_reset_complete": Route(roles=SIGNED_IN, public=True),
    "account_security": Route(roles=SIGNED_IN),
    "two_factor_setup": Route(roles=SIGNED_IN, methods=("GET", "POST"), body={"token": TOKEN}),
    "two_factor_verify": Route(roles=SIGNED_IN, methods=("GET", "POST"), body={"token": TOKEN}),
    "two_factor_remove": Route(roles=SIGNED_IN, methods=("POST",), body={"token": TOKEN}),
    # Dashboards.
    "home": Route(roles=SIGNED_IN),
    "scoring_runs": Route(roles=HOST),
    # A search term is free text: an unknown one finds no rows, it is no missing object.
    "portfolio": Route(roles=HOST, htmx=True, query={"q": SLUG}, missing=None),
    "portfolio_export": Route(roles=HOST, query={"q": SLUG}, missing=None),
    "ecosystem": Route(roles=HOST, htmx=True, missing=None),
    "agreement_dashboard": Route(roles=SIGNED_IN, htmx=True, path={"code": GLOBEX_CODE}),
    "agreement_print": Route(roles=SIGNED_IN, path={"code": GLOBEX_CODE}),
    # The QBR pack (both sides, their own agreements) and the archives of many packs (host
    # managers; a job is any host manager's, identified by a random id).
    "qbr_pack": Route(roles=SIGNED_IN, path={"code": GLOBEX_CODE}, query={"quarter": QUARTER}),
    "qbr_pack_pdf": Route(roles=SIGNED_IN, path={"code": GLOBEX_CODE},
                          query={"quarter": QUARTER}),
    "qbr_archives": Route(roles=MANAGERS, methods=("GET", "POST"), missing=None,
                          body={"quarter": QUARTER, "agreements": GLOBEX_AGREEMENT_ID}),
    "qbr_archive_job": Route(roles=MANAGERS, htmx=True, path={"job_id": QBR_JOB_ID}),
    "qbr_archive_download": Route(roles=MANAGERS, path={"job_id": QBR_JOB_ID}),
    "qbr_archive_again": Route(roles=MANAGERS, methods=("GET", "POST"),
                               path={"job_id": QBR_JOB_ID}),
    "agreement_kpis_csv": Route(roles=SIGNED_IN, path={"code": GLOBEX_CODE}),
    # A KPI's history (both sides' values, imports, changes): Globex's answers as a missing one.
    "agreement_kpi_history": Route(roles=SIGNED_IN, htmx=True, query={"month": "2025-02"},
                                   path={"code": GLOBEX_CODE, "kpi_code": "defect_rate"}),
    "agreement_months_csv": Route(roles=SIGNED_IN, path={"code": GLOBEX_CODE}),
    # Partner users get their own agreements' rows, never Globex's (the leak check reads it).
    "scorecard_export": Route(roles=SIGNED_IN, hidden=False, missing=None),
    # Payout statements: both sides, each their own agreements' lines (the leak check reads
    # them); another partner's agreement filters exactly as one that does not exist.
    "statements": Route(roles=SIGNED_IN, htmx=True, hidden=False, missing=None, parity=True,
                        query={"agreement": GLOBEX_CODE, "month": "2025-01"}),
    "statements_csv": Route(roles=SIGNED_IN, hidden=False, missing=400, partner_other=400,
                            parity=True, query={"agreement": GLOBEX_CODE}),
    # Needs attention: both sides, each their own agreements (the leak check reads the rows);
    # "everyone's" is the whole program for host staff only.
    "attention": Route(roles=SIGNED_IN, htmx=True, hidden=False, missing=None,
                       query={"scope": "all", "reason": "at_risk"}),
    "attention_csv": Route(roles=SIGNED_IN, hidden=False, missing=None, query={"scope": "all"}),
    # Reconciliation: both sides, each their own agreements' rows (the leak check reads them);
    # another partner's agreement filters exactly as one that does not exist.
    "reconciliation": Route(roles=SIGNED_IN, htmx=True, hidden=False, missing=None,
                            parity=True, query={"agreement": GLOBEX_CODE}),
    "reconciliation_csv": Route(roles=SIGNED_IN, hidden=False, missing=400, partner_other=400,
                                parity=True, query={"agreement": GLOBEX_CODE}),
    # Disputes: both sides, each their own agreements' (another partner's dispute answers as a
    # missing one; its agreement filters as one that does not exist); the opening side (here
    # the partner) withdraws; host managers and admins resolve.
    "disputes": Route(roles=SIGNED_IN, htmx=True, hidden=False, missing=None, parity=True,
                      query={"agreement": GLOBEX_CODE, "status": "open"}),
    "disputes_csv": Route(roles=SIGNED_IN, hidden=False, missing=400, partner_other=400,
                          parity=True, query={"agreement": GLOBEX_CODE}),
    "dispute_new": Route(
        roles=SIGNED_IN, methods=("GET", "POST"), hidden=False, missing=None, parity=True,
        query={"agreement": GLOBEX_CODE, "kpi": "revenue", "month": "2025-02"},
        body={"agreement": GLOBEX_CODE, "kpi": "revenue", "month": "2025-02",
              "reason": "Cell reason"}),
    "dispute_detail": Route(roles=SIGNED_IN, path={"dispute_id": GLOBEX_DISPUTE_ID}),
    "dispute_comment": Route(roles=SIGNED_IN, methods=("POST",),
                             path={"dispute_id": GLOBEX_DISPUTE_ID},
                             body={"text": "Cell comment"}),
    "dispute_withdraw": Route(roles=SIGNED_IN, methods=("POST",),
                              path={"dispute_id": FRESH_HOST_OPENED_GLOBEX_DISPUTE_ID},
                              body=CONFIRMED),
    "dispute_resolve": Route(roles=MANAGERS, methods=("POST",),
                             path={"dispute_id": FRESH_GLOBEX_DISPUTE_ID},
                             body={"resolution": "kept", "text": "Cell resolution"}),
    "scoring_run_start": Route(roles=MANAGERS, methods=("POST",), htmx=True),
    "scoring_run_panel": Route(
        roles=HOST, htmx=True, path={"run_id": Value(lambda w, p: str(w.run_id))}),
    # What-if: host managers and admins simulate (GET, writes nothing), download, and save.
    "whatif": Route(roles=MANAGERS, htmx=True, missing=None,
                    query={"scope": GLOBEX_CODE, "target": "+10%"}),
    "whatif_csv": Route(roles=MANAGERS, missing=400,
                        query={"scope": GLOBEX_CODE, "target": "+10%"}),
    "whatif_save": Route(roles=MANAGERS, methods=("POST",), htmx=True, missing=None,
                         body={"scope": GLOBEX_CODE, "target": "+10%", **CONFIRMED}),
    # Closing months: host staff see, managers close, admins reopen and approve statements.
    "months": Route(roles=HOST, missing=None),
    "months_close": Route(roles=MANAGERS, methods=("POST",), htmx=True, missing=None,
                          body={"through": "2025-01"}),
    "month_reopen": Route(roles=ADMINS, methods=("POST",), missing=None,
                          body={"month": "2025-01", "reason": "A late correction"}),
    "month_statement_approve": Route(roles=ADMINS, methods=("POST",), missing=None,
                                     body={"month": "2025-01"}),
    # Access management and the audit log.
    "access_users": Route(roles=ADMINS, query={"partner": SLUG}),
    "access_user": Route(roles=ADMINS, path={"user_id": GLOBEX_USER_ID}),
    "access_user_role": Route(
        roles=ADMINS, methods=("POST",), htmx=True, path={"user_id": GLOBEX_USER_ID},
        body={"role": "partner_editor", "partner": SLUG}),
    "access_user_deactivate": Route(
        roles=ADMINS, methods=("POST",), htmx=True, path={"user_id": GLOBEX_USER_ID},
        body=CONFIRMED),
    "access_user_reactivate": Route(
        roles=ADMINS, methods=("POST",), htmx=True, path={"user_id": GLOBEX_USER_ID}),
    "access_invite": Route(
        roles=ADMINS, methods=("GET", "POST"), htmx=True, query={"partner": SLUG},
        body={"email": "new.person@example.com", "role": "partner_viewer", "partner": SLUG}),
    "access_invitation_withdraw": Route(
        roles=ADMINS, methods=("POST",), body=CONFIRMED,
        path={"invitation_id": Value(lambda w, p: str(w.globex_invitation.pk))}),
    "audit_log": Route(
        roles=ADMINS, htmx=True, missing=None,
        query={"partner": SLUG, "user": Value(lambda w, p: w.globex_user.username,
                                              missing="nobody-by-that-name"),
               "action": "import"}),
    # Metric imports: members see their side's imports; uploaders (not viewers) import.
    "import_history": Route(roles=SIGNED_IN, htmx=True, query={"status": "failed"}),
    "import_upload": Route(
        roles=UPLOADERS, methods=("GET", "POST"), htmx=True, hidden=False,
        body={"side": "partner"}),
    # A metric file template of an agreement: Globex's code answers as a missing one.
    "import_template": Route(
        roles=UPLOADERS, hidden=False, query={"agreement": GLOBEX_CODE}, partner_other=404,
        parity=True),
    "import_batch": Route(
        roles=SIGNED_IN, htmx=True, path={"batch_id": GLOBEX_BATCH_ID},
        query={"section": "changes"}),
    "import_panel": Route(roles=SIGNED_IN, htmx=True, path={"batch_id": GLOBEX_BATCH_ID}),
    "import_confirm": Route(
        roles=UPLOADERS, methods=("POST",), htmx=True, hidden=False,
        path={"batch_id": GLOBEX_BATCH_ID}),
    "import_cancel": Route(
        roles=UPLOADERS, methods=("POST",), htmx=True, hidden=False,
        path={"batch_id": GLOBEX_BATCH_ID}),
    "import_file": Route(roles=SIGNED_IN, path={"batch_id": GLOBEX_BATCH_ID}),
    "import_error_report": Route(roles=SIGNED_IN, path={"batch_id": GLOBEX_BATCH_ID}),
    # The metrics API: token authentication, JSON; Globex's agreement code must be refused
    # exactly like a code that does not exist.
    "api_observations": Route(
        roles=UPLOADERS, methods=("POST",), auth="token", csrf=False, hidden=False,
        json=observations_json, missing=422, partner_other=422, parity=True),
    "api_openapi": Route(roles=SIGNED_IN, public=True),
    # Users' own API tokens: another user's token is "no such token of yours", as a missing one.
    "api_tokens": Route(
        roles=UPLOADERS, methods=("GET", "POST"), hidden=False, body={"name": "cell token"}),
    "api_token_revoke": Route(
        roles=UPLOADERS, methods=("POST",), hidden=False, missing=None, parity=True,
        body={"token": Value(lambda w, p: str(w.globex_api_token.pk)), **CONFIRMED}),
    # E-mail settings: each user their own. The unsubscribe link is public (its signed token
    # names the user and what to turn off); a bad token is an error page, never a 500.
    "account_mail": Route(roles=SIGNED_IN, methods=("GET", "POST"), body={"digest": "on"}),
    "mail_unsubscribe": Route(
        roles=SIGNED_IN, methods=("GET", "POST"), public=True, csrf=False,
        path={"token": Value(lambda w, p: unsubscribe_token(user=w.globex_user, kind="digest"),
                             missing="no-such-unsubscribe-token")}),
    # Public: whoever holds a live link may open it; signed-in users are told to log out.
    # Program management: partners, assessments, agreements and their stages (host
    # managers); an agreement's history (both sides, their own agreements only).
    "program_file_download": Route(roles=MANAGERS, missing=None),
    "program_partners": Route(roles=HOST, htmx=True, missing=None,
                              query={"q": SLUG, "status": "active"}),
    "program_partner_new": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True,
        body={"name": "Cell partner", "slug": "cell-partner", "status": "active"}),
    "program_partner": Route(roles=HOST, path={"slug": SLUG}),
    "program_partner_edit": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True, path={"slug": SLUG},
        body={"name": "Renamed partner"}),
    "program_assessment_new": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True, path={"slug": SLUG},
        body={"assessed_on": "2025-02-01", "strategic_fit": "9"}),
    "program_agreement_new": Route(
        roles=MANAGERS, methods=("GET", "POST"), missing=None, query={"partner": SLUG},
        body={"partner": SLUG, "code": "CELL-1"}),
    "program_agreement_weights": Route(
        roles=HOST, htmx=True, query={"weight_financial": "40", "weight_strategic": "20",
                                      "weight_operational": "20", "weight_relationship": "10"}),
    "program_agreement_edit": Route(
        roles=MANAGERS, methods=("GET", "POST"), path={"code": GLOBEX_CODE},
        body={"title": "Cell title"}),
    "program_agreement_stage": Route(
        roles=MANAGERS, methods=("POST",), htmx=True, path={"code": GLOBEX_CODE},
        body={"to_stage": "under_review", "reason": "Cell move"}),
    "agreement_history": Route(roles=SIGNED_IN, path={"code": GLOBEX_CODE}),
    # Business reviews and action items: both sides read their own agreements'; host managers
    # record them; any signed-in user may post a status, refused for another partner's
    # action exactly as for a missing one (403 for the host's actions of their own).
    "agreement_reviews": Route(roles=SIGNED_IN, path={"code": GLOBEX_CODE}),
    "agreement_action_status": Route(
        roles=SIGNED_IN, methods=("POST",), htmx=True,
        path={"code": GLOBEX_CODE, "action_id": GLOBEX_ACTION_ID},
        body={"status": "in_progress"}),
    "program_review_new": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True, path={"code": GLOBEX_CODE},
        body=REVIEW_BODY),
    "program_review_edit": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True,
        path={"review_id": GLOBEX_REVIEW_ID}, body=REVIEW_BODY),
    "program_review_delete": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True,
        path={"review_id": FRESH_GLOBEX_REVIEW_ID}, body=CONFIRMED),
    # Reviews planned ahead: managers plan them and record them as held; both sides download
    # a planned one for their calendars.
    "program_review_plan": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True, path={"code": GLOBEX_CODE},
        body=PLAN_BODY),
    "program_review_hold": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True,
        path={"review_id": FRESH_GLOBEX_PLANNED_REVIEW_ID}, body=REVIEW_BODY),
    "agreement_review_ics": Route(
        roles=SIGNED_IN, path={"code": GLOBEX_CODE, "review_id": GLOBEX_PLANNED_REVIEW_ID}),
    "program_action_new": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True, path={"code": GLOBEX_CODE},
        query={"review": GLOBEX_REVIEW_ID}, body=ACTION_BODY),
    "program_action_edit": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True,
        path={"action_id": GLOBEX_ACTION_ID}, body=ACTION_BODY),
    "program_action_delete": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True,
        path={"action_id": FRESH_GLOBEX_ACTION_ID}, body=CONFIRMED),
    # The KPI library and standard sets (program-wide, host only), an agreement's KPIs,
    # objectives and incentive plan (host pages; managers edit).
    "program_kpis": Route(roles=HOST, htmx=True, query={"q": "revenue"}, missing=None),
    "program_kpi_new": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True,
        body={"code": "cell kpi", "name": "Cell KPI"}),
    "program_kpi_edit": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True, path={"code": KPI_CODE},
        body={"code": "revenue", "name": "Revenue", "category": "financial"}),
    "program_kpi_delete": Route(
        roles=MANAGERS, methods=("POST",), path={"code": FRESH_KPI_CODE}, body=CONFIRMED),
    "program_kpi_templates": Route(
        roles=HOST, methods=("GET", "POST"), htmx=True, missing=None,
        query={"type": "referral"}, body={"agreement_type": "referral", "kpi": "revenue",
                                          "target": "5", "floor": "5"}),
    "program_kpi_template_edit": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True,
        path={"item_id": TEMPLATE_ITEM_ID}, body={"target": "abc"}),
    "program_kpi_template_remove": Route(
        roles=MANAGERS, methods=("POST",), path={"item_id": FRESH_TEMPLATE_ITEM_ID},
        body=CONFIRMED),
    "program_agreement_kpis": Route(
        roles=HOST, methods=("GET", "POST"), htmx=True, path={"code": GLOBEX_CODE},
        body=AGREEMENT_KPI_BODY),
    "program_agreement_kpis_copy": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True, path={"code": GLOBEX_CODE},
        query={"from": "template", "mode": "keep"}, body={"from": "template", "mode": "keep"}),
    "program_agreement_kpi_row": Route(
        roles=HOST, htmx=True, path={"code": GLOBEX_CODE, "item_id": GLOBEX_AGREEMENT_KPI_ID}),
    "program_agreement_kpi_edit": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True,
        path={"code": GLOBEX_CODE, "item_id": GLOBEX_AGREEMENT_KPI_ID},
        body={"target": "2", "floor": "2", "weight": "0"}),
    "program_agreement_kpi_remove": Route(
        roles=MANAGERS, methods=("POST",), htmx=True,
        path={"code": GLOBEX_CODE, "item_id": FRESH_GLOBEX_AGREEMENT_KPI_ID}, body=CONFIRMED),
    "program_objectives": Route(
        roles=HOST, methods=("GET", "POST"), htmx=True, path={"code": GLOBEX_CODE},
        body={"success_metric": "Cell objective", "goal_type": "capability",
              "target_value": "x"}),
    "program_objective_edit": Route(
        roles=MANAGERS, methods=("GET", "POST"), htmx=True,
        path={"code": GLOBEX_CODE, "objective_id": GLOBEX_OBJECTIVE_ID},
        body={"success_metric": "Cell objective", "deadline": "someday"}),
    "program_objective_delete": Route(
        roles=MANAGERS, methods=("POST",), htmx=True,
        path={"code": GLOBEX_CODE, "objective_id": FRESH_GLOBEX_OBJECTIVE_ID}, body=CONFIRMED),
    "program_incentive_plan": Route(
        roles=HOST, methods=("GET", "POST"), htmx=True, path={"code": GLOBEX_CODE},
        body={"base_amount": "-1", "currency": "usd", "baseline_score": "130"}),
    "program_incentive_plan_delete": Route(
        roles=MANAGERS, methods=("POST",), path={"code": GLOBEX_CODE}, body=CONFIRMED),
    "invitation_accept": Route(
        roles=SIGNED_IN, methods=("GET", "POST"), public=True,
        path={"token": Value(lambda w, p: w.globex_invitation_token,
                             missing="no-such-invitation-token")}),
}


def _admin_model(pattern: "Pattern") -> type | None:
    """The model an admin URL is about, from its name (admin:<app>_<model>_<view>)."""
    name = (pattern.name or "").removeprefix(f"{admin.site.name}:")
    prefix = pattern.route.removeprefix(f"{admin.site.name}/")
    for model in admin.site._registry:
        label = f"{model._meta.app_label}_{model._meta.model_name}_"
        path = f"{model._meta.app_label}/{model._meta.model_name}/"
        if name.startswith(label) or prefix.startswith(path):
            return model
    return None


def _admin_object(world: World, pattern: "Pattern") -> str:
    model = _admin_model(pattern)
    obj = world.objects.get(model) if model else None
    return str(obj.pk) if obj is not None else MISSING_ID


# Every admin URL, whatever models are registered: how to fill the admin's kwargs.
ADMIN_VALUES: dict[str, Value] = {
    "object_id": Value(_admin_object),
    "pk": Value(_admin_object),
    "id": Value(lambda w, p: str(w.globex_user.pk)),
    "content_type_id": Value(lambda w, p: str(ContentType.objects.get_for_model(Agreement).pk)),
    "app_label": Value(lambda w, p: "partnerships", missing="partnerships"),
    "url": Value(lambda w, p: f"partnerships/agreement/{w.globex_agreement.pk}",
                 missing="no-such-admin-page"),
}


# ---- Walking the URLconf ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    key: str  # the URL name with its namespace; the route for unnamed patterns
    name: str | None
    namespace: str
    parts: tuple
    callback: Callable

    @property
    def route(self) -> str:
        return "".join(str(part) for part in self.parts)

    @property
    def in_admin(self) -> bool:
        return self.namespace.split(":")[0] == admin.site.name


def url_patterns() -> list[Pattern]:
    """Every URL pattern of the project, depth first, included URLconfs and the admin's."""
    found: list[Pattern] = []

    def walk(entries, parts: tuple, namespace: str) -> None:
        for entry in entries:
            if isinstance(entry, URLResolver):
                inner = namespace
                if entry.namespace:
                    inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
                walk(entry.url_patterns, (*parts, entry.pattern), inner)
                continue
            name = entry.name and (f"{namespace}:{entry.name}" if namespace else entry.name)
            route = "".join(str(part) for part in (*parts, entry.pattern))
            found.append(Pattern(
                key=name or f"<unnamed> {route}", name=name, namespace=namespace,
                parts=(*parts, entry.pattern), callback=entry.callback,
            ))

    walk(get_resolver().url_patterns, (), "")
    keys = [pattern.key for pattern in found]
    # The same name twice: tell them apart by route, so each still needs its own entry.
    return [
        Pattern(f"{p.key} {p.route}", p.name, p.namespace, p.parts, p.callback)
        if keys.count(p.key) > 1 else p
        for p in found
    ]


PATTERNS = url_patterns()
ROUTE_KWARG = re.compile(r"<(?:[^>:]+:)?(?P<name>\w+)>")
REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>[^()]*\)")


def path_kwargs(pattern: Pattern) -> list[str]:
    names = []
    for part in pattern.parts:
        if isinstance(part, RoutePattern):
            names += [match["name"] for match in ROUTE_KWARG.finditer(str(part))]
        elif isinstance(part, RegexPattern):
            names += list(part.regex.groupindex)
    return names


def build_path(pattern: Pattern, values: dict[str, str]) -> str:
    """The URL of the pattern with these kwargs; checked to resolve to the same view."""
    text = ""
    for part in pattern.parts:
        if isinstance(part, RoutePattern):
            text += ROUTE_KWARG.sub(lambda m: quote(values[m["name"]], safe="/"), str(part))
        elif isinstance(part, RegexPattern):
            regex = str(part).removeprefix("^").removesuffix(r"\Z").removesuffix("$")
            if re.search(r"[\\()\[\]*+?|^${}.]", REGEX_GROUP.sub("", regex)):
                raise AssertionError(f"cannot build a URL for {pattern.route}: add a path")
            text += REGEX_GROUP.sub(lambda m: quote(values[m["name"]], safe="/"), regex)
        else:
            text += str(part)
    path = "/" + text
    assert resolve(path).func is pattern.callback, f"{path} does not reach {pattern.key}"
    return path


def route_for(pattern: Pattern) -> Route | None:
    if pattern.in_admin:
        return Route(roles=frozenset(), methods=("GET", "POST"), site_admin=True,
                     path={name: ADMIN_VALUES[name] for name in path_kwargs(pattern)
                           if name in ADMIN_VALUES})
    return ROUTES.get(pattern.key)


def missing_entries(pattern: Pattern) -> list[str]:
    route = route_for(pattern)
    if route is None:
        return [f"{pattern.key} ({pattern.route}) has no entry in ROUTES: say which methods to "
                "try, who may use it, and how to fill its kwargs with Globex's and missing ids"]
    unfilled = [name for name in path_kwargs(pattern) if name not in route.path]
    return [f"{pattern.key}: no value for path kwarg {name!r}" for name in unfilled]


# ---- One cell: a request and what it must answer ----------------------------------------------


FIGURES = {"patterns": set(), "cells": 0, "parity": 0, "leaks": []}


def _url_path(url: str) -> str:
    return urlsplit(url).path if url else ""


def _pages(*names: str) -> set[str]:
    found = set()
    for name in names:
        try:
            found.add(reverse(name))
        except NoReverseMatch:
            pass
    return found


def _login_pages() -> set[str]:
    return _pages(settings.LOGIN_URL, "login", f"{admin.site.name}:login")


def _gate_pages() -> set[str]:
    return _pages("two_factor_setup", "two_factor_verify")


def _redirect_target(response) -> str:
    if response.status_code in (301, 302, 303, 307, 308):
        return _url_path(response.headers.get("Location", ""))
    return _url_path(response.headers.get("HX-Redirect", ""))


def expectation(route: Route, role: str, variant: str) -> str:
    if route.site_admin:
        return "not 200"
    if route.public:
        return "any"
    if role in (ANONYMOUS, DEACTIVATED):
        return "401" if route.auth == "token" else "login"
    if role not in route.roles:
        return "404" if role in PARTNER_USERS and route.hidden else "403"
    if variant == "missing" and route.missing is not None:
        return str(route.missing)
    if variant == "other" and role in PARTNER_USERS:
        if route.partner_other is not None:
            return str(route.partner_other)
        if route.path:
            return "404"  # another partner's object: exactly as if it did not exist
    return "ok"


def meets(expected: str, response) -> bool:
    status, target = response.status_code, _redirect_target(response)
    if status >= 500:
        return False
    if expected == "any":
        return True
    if expected == "login":
        return target in _login_pages()
    if expected == "not 200":
        return status != 200
    if expected.isdigit():
        return status == int(expected)
    return status in (200, 201, 204, 302, 303) and target not in _login_pages() | _gate_pages()


def response_text(response) -> str:
    if getattr(response, "streaming", False):
        content = b"".join(response.streaming_content)
    else:
        content = response.content
    headers = "\n".join(f"{key}: {value}" for key, value in response.headers.items())
    return content.decode("utf-8", "replace") + "\n" + headers


def without(text: str, sent: list[str]) -> str:
    """The text without the values we sent ourselves (echoed in a URL or a form field)."""
    for value in sorted(sent, key=len, reverse=True):
        text = text.replace(value, "").replace(quote(value, safe=""), "")
    return text


def normalised(text: str, sent: list[str]) -> str:
    # Tokens first: a short value we sent (an "x") could otherwise cut into their markers.
    text = re.sub(r'nonce="[^"]*"', 'nonce=""', text)
    text = re.sub(r"nonce-[A-Za-z0-9+/=_-]+", "nonce-", text)
    text = re.sub(r'("x-csrftoken": "|name="csrfmiddlewaretoken" value=")[^"]*', r"\1", text)
    text = without(text, sent)
    text = re.sub(r"(?i)^(date|set-cookie):.*$", "", text, flags=re.MULTILINE)
    # Ids of rows made by the request itself (a refused import's batch number) differ.
    text = re.sub(r"\d+", "N", text)
    # "How long ago" (timesince) may cross a minute between the two requests: 1 minute, 2 minutes.
    return re.sub(r"N(\s)(year|month|week|day|hour|minute)s\b", r"N\1\2", text)


class Browsers:
    """A browser per cell (a fresh client), sharing the role's signed-in session."""

    def __init__(self, world: World):
        self.world = world
        self.store = import_module(settings.SESSION_ENGINE).SessionStore

    def client(self, role: str, auth: str = "session") -> tuple[Client, str]:
        client = Client(enforce_csrf_checks=True)
        if role != ANONYMOUS and auth == "session":
            key = self.world.sessions.get(role)
            if key is None or not self.store().exists(key):
                # Ended by a cell of this test (log-out, a new key after 2FA): sign in again.
                self.world.sessions[role] = sign_in(self.world, role)
            client.cookies[settings.SESSION_COOKIE_NAME] = self.world.sessions[role]
        # As a browser holds it after any page: the CSRF cookie, and the page's token.
        request = RequestFactory().get("/")
        token = get_token(request)
        client.cookies[settings.CSRF_COOKIE_NAME] = request.META["CSRF_COOKIE"]
        return client, token


def sign_in(world: World, role: str) -> str:
    """A session of the role's user (host staff past the second factor); its key."""
    client = Client()
    client.force_login(world.users[role])
    if role in HOST or role == DEACTIVATED:
        _second_factor_passed(client, world.users[role])
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def walk_pattern(pattern: Pattern, world: World) -> list[str]:
    route = route_for(pattern)
    problems: list[str] = []
    browsers = Browsers(world)
    has_values = route.json is not None or any(isinstance(v, Value) for v in (
        *route.path.values(), *route.query.values(), *route.body.values()))
    variants = ("other", "missing") if has_values else ("plain",)

    def value(item, variant: str) -> str:
        if not isinstance(item, Value):
            return item
        return item.missing if variant == "missing" else item.other(world, pattern)

    def call(role: str, method: str, variant: str, htmx: bool, with_token: bool = True):
        kwargs = {name: value(item, variant) for name, item in route.path.items()}
        query = {name: value(item, variant) for name, item in route.query.items()}
        body = {name: value(item, variant) for name, item in route.body.items()}
        url = build_path(pattern, kwargs)
        client, token = browsers.client(role, route.auth)
        headers = {"HX-Request": "true"} if htmx else {}
        if method == "POST" and with_token:
            headers["X-CSRFToken"] = token
        if route.auth == "token" and role != ANONYMOUS:
            headers["Authorization"] = f"Bearer {world.api_keys[role]}"
        filled: list[str] = []

        def fill(item) -> str:
            filled.append(value(item, variant))
            return filled[-1]

        if method == "POST":
            target = url + ("?" + "&".join(f"{k}={quote(v)}" for k, v in query.items())
                            if query else "")
            if route.json is not None:
                response = client.post(target, json.dumps(route.json(fill)),
                                       content_type="application/json", headers=headers)
            else:
                response = client.post(target, body, headers=headers)
        else:
            response = client.get(url, query, headers=headers)
        FIGURES["cells"] += 1
        sent = [v for v in (*kwargs.values(), *query.values(), *body.values(), *filled) if v]
        return response, sent

    def leak_check(role, response, sent, label):
        public_for_them = route.public and role in (ANONYMOUS, DEACTIVATED)
        if role in LEAK_CHECKED and not public_for_them:
            if MARKER.lower() in without(response_text(response), sent).lower():
                FIGURES["leaks"].append(label)
                problems.append(f"{label}: LEAK of Globex data")

    for role in ROLES:
        for method in route.methods:
            for htmx in (False, True) if route.htmx else (False,):
                answers = {}
                for variant in variants:
                    label = (f"{pattern.key} {method}{' htmx' if htmx else ''} as {role} "
                             f"({variant})")
                    try:
                        response, sent = call(role, method, variant, htmx)
                    except Exception as error:  # noqa: BLE001 - report every cell
                        problems.append(f"{label}: raised {error!r}")
                        continue
                    answers[variant] = (response, sent)
                    expected = expectation(route, role, variant)
                    if not meets(expected, response):
                        problems.append(
                            f"{label}: expected {expected}, got {response.status_code} "
                            f"{_redirect_target(response)}")
                    leak_check(role, response, sent, label)
                # Another partner's object must be indistinguishable from a missing one.
                if (role in PARTNER_USERS and (route.path or route.parity)
                        and not route.public and {"other", "missing"} <= answers.keys()):
                    (other, other_sent), (missing, missing_sent) = (
                        answers["other"], answers["missing"])
                    FIGURES["parity"] += 1
                    sent = other_sent + missing_sent
                    if (other.status_code != missing.status_code
                            or normalised(response_text(other), sent)
                            != normalised(response_text(missing), sent)):
                        problems.append(
                            f"{pattern.key} {method} as {role}: Globex's object answers "
                            f"{other.status_code}, a missing one {missing.status_code}, "
                            "or their pages differ")

        if "POST" in route.methods and route.csrf:
            label = f"{pattern.key} POST without CSRF token as {role}"
            try:
                response, sent = call(role, "POST", variants[0], route.htmx, with_token=False)
            except Exception as error:  # noqa: BLE001
                problems.append(f"{label}: raised {error!r}")
            else:
                if response.status_code != 403:
                    problems.append(f"{label}: expected 403, got {response.status_code}")
                leak_check(role, response, sent, label)
    FIGURES["patterns"].add(pattern.key)
    return problems


# ---- The tests ---------------------------------------------------------------------------------


def test_every_url_pattern_has_an_entry():
    problems = [problem for pattern in PATTERNS for problem in missing_entries(pattern)]
    assert problems == []
    stale = set(ROUTES) - {pattern.key for pattern in PATTERNS}
    assert stale == set(), "ROUTES names URLs that no longer exist"


def test_the_walker_finds_the_included_and_admin_urls():
    keys = {pattern.key for pattern in PATTERNS}
    assert {"home", "login", "access_users", "admin:index",
            "admin:partnerships_agreement_change"} <= keys
    assert any(pattern.key.startswith("<unnamed> admin/") for pattern in PATTERNS)


@pytest.mark.django_db
@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda pattern: pattern.key)
def test_url_answers_each_visitor_as_it_must(pattern, world):
    missing = missing_entries(pattern)
    assert not missing, missing
    problems = walk_pattern(pattern, world)
    assert problems == [], "\n".join(problems)


def test_isolation_figures(capsys):
    """Runs last: prints the matrix's figures (whatever -s says) and fails on any leak."""
    if not FIGURES["patterns"]:
        pytest.skip("the figures come from the tests above; run the whole module")
    admin_count = sum(1 for p in PATTERNS if p.in_admin and p.key in FIGURES["patterns"])
    summary = (
        f"\nIsolation matrix: {len(FIGURES['patterns'])} of {len(PATTERNS)} URL patterns "
        f"({len(FIGURES['patterns']) - admin_count} pages, {admin_count} admin), "
        f"{FIGURES['cells']} cells (requests), {FIGURES['parity']} Globex-vs-missing "
        f"comparisons, {len(FIGURES['leaks'])} leaks\n"
    )
    with capsys.disabled():
        sys.stdout.write(summary)
    assert FIGURES["leaks"] == []
    assert len(FIGURES["patterns"]) == len(PATTERNS)
