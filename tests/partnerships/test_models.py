"""Every rule the database holds is enforced by the database, not only by forms."""

import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from partnerships.models import (
    Agreement,
    AgreementKPI,
    ImportBatch,
    KPIDefinition,
    Membership,
    MetricObservation,
    Partner,
    ProgramSettings,
)
from scoring.models import Scorecard, ScoringRun
from tests.conftest import write_observations

pytestmark = pytest.mark.django_db


def agreement_values(partner, **overrides):
    values = {"partner": partner, "code": "X-1", "type": "referral", "stage": "active",
              "start_date": dt.date(2025, 1, 1)}
    return values | overrides


def rejected(create) -> bool:
    try:
        with transaction.atomic():
            create()
    except IntegrityError:
        return True
    return False


@pytest.mark.parametrize(
    "overrides",
    [
        {"weight_financial": 40},  # 40 + 25 + 25 + 20 = 110
        {"weight_financial": 0, "weight_strategic": 0, "weight_operational": 0,
         "weight_relationship": 0},
        {"weight_financial": 101, "weight_strategic": 0, "weight_operational": 0,
         "weight_relationship": 0},
        {"end_date": dt.date(2024, 12, 31)},
        {"stage": "paused"},
        {"type": "franchise"},
        {"code": ""},
    ],
    ids=["weights-110", "weights-0", "weight-over-100", "end-before-start", "stage", "type",
         "empty-code"],
)
def test_invalid_agreement_is_rejected(acme, overrides):
    assert rejected(lambda: Agreement.objects.create(**agreement_values(acme, **overrides)))


def test_valid_agreement_with_custom_weights_is_accepted(acme):
    Agreement.objects.create(**agreement_values(
        acme, weight_financial=100, weight_strategic=0, weight_operational=0,
        weight_relationship=0, end_date=dt.date(2025, 1, 1),
    ))


def test_duplicate_agreement_code_is_rejected(acme, globex):
    Agreement.objects.create(**agreement_values(acme))
    assert rejected(lambda: Agreement.objects.create(**agreement_values(globex)))


@pytest.mark.parametrize(
    ("target", "floor", "weight"),
    [(10, 10, 1), (10, 0, 0), (10, 0, -1)],
    ids=["floor-equals-target", "zero-weight", "negative-weight"],
)
def test_invalid_agreement_kpi_is_rejected(acme_agreement, kpis, target, floor, weight):
    kpi = KPIDefinition.objects.create(code="leads", name="Leads", category="strategic",
                                       aggregation="sum", source="partner")
    assert rejected(lambda: AgreementKPI.objects.create(
        agreement=acme_agreement, kpi=kpi, target=target, floor=floor, weight=weight
    ))


def test_same_kpi_twice_on_an_agreement_is_rejected(acme_agreement, kpis):
    assert rejected(lambda: AgreementKPI.objects.create(
        agreement=acme_agreement, kpi=kpis["revenue"], target=5, floor=1
    ))


@pytest.mark.parametrize(
    "overrides",
    [{"category": "social"}, {"aggregation": "median"}, {"source": "both"}, {"code": ""}],
)
def test_invalid_kpi_definition_is_rejected(db, overrides):
    values = {"code": "k", "name": "K", "category": "financial", "aggregation": "sum",
              "source": "host"} | overrides
    assert rejected(lambda: KPIDefinition.objects.create(**values))


def test_invalid_partner_status_is_rejected(db):
    assert rejected(lambda: Partner.objects.create(slug="p", name="P", status="dormant"))


def _observation(agreement, kpi, batch, **overrides):
    values = {"agreement": agreement, "kpi": kpi, "side": "host", "date": dt.date(2025, 2, 1),
              "value": 1.0, "batch": batch, "recorded_at": dt.datetime(2025, 2, 2, tzinfo=dt.UTC)}
    return MetricObservation(**(values | overrides))


def test_observation_natural_key_is_unique(acme_agreement, kpis):
    batch = ImportBatch.objects.create(source="command", side="host")
    _observation(acme_agreement, kpis["revenue"], batch).save()
    assert rejected(lambda: _observation(acme_agreement, kpis["revenue"], batch, value=2).save())


def test_observation_side_must_be_host_or_partner(acme_agreement, kpis):
    batch = ImportBatch.objects.create(source="command", side="host")
    assert rejected(lambda: _observation(acme_agreement, kpis["revenue"], batch, side="x").save())


@pytest.mark.parametrize(
    ("role", "with_partner"),
    [("host_manager", True), ("host_admin", True), ("partner_viewer", False),
     ("partner_editor", False), ("owner", False)],
)
def test_membership_role_must_match_its_side(django_user_model, acme, role, with_partner):
    user = django_user_model.objects.create_user(username="u")
    assert rejected(lambda: Membership.objects.create(
        user=user, role=role, partner=acme if with_partner else None
    ))


def test_user_belongs_to_one_side_only(django_user_model, acme, globex):
    user = django_user_model.objects.create_user(username="u")
    Membership.objects.create(user=user, role="partner_viewer", partner=acme)
    assert rejected(lambda: Membership.objects.create(
        user=user, role="partner_viewer", partner=globex
    ))


@pytest.mark.parametrize(
    "overrides",
    [{"id": 2}, {"growth_threshold": 90}, {"hysteresis": 0}, {"tier_policy": "ranked"}],
)
def test_invalid_program_settings_are_rejected(db, overrides):
    assert rejected(lambda: ProgramSettings.objects.create(**overrides))


def test_import_batch_idempotency_key_is_unique_per_user(host_manager):
    ImportBatch.objects.create(source="api", side="host", user=host_manager, idempotency_key="k")
    ImportBatch.objects.create(source="api", side="host", user=host_manager)
    ImportBatch.objects.create(source="api", side="host", user=host_manager)
    assert rejected(lambda: ImportBatch.objects.create(
        source="api", side="host", user=host_manager, idempotency_key="k"
    ))


def test_only_one_scoring_run_can_be_active(db):
    ScoringRun.objects.create(trigger="user", rules_version=1)
    assert rejected(lambda: ScoringRun.objects.create(trigger="user", rules_version=1))


def test_finished_run_must_not_stay_active(db):
    assert rejected(lambda: ScoringRun.objects.create(
        trigger="user", rules_version=1, status="succeeded", active=True
    ))


def test_scorecard_coverage_stays_within_zero_and_one(acme_agreement):
    run = ScoringRun.objects.create(trigger="user", rules_version=1)
    assert rejected(lambda: Scorecard.objects.create(
        run=run, agreement=acme_agreement, period="2025-01", coverage=1.5
    ))


def test_agreement_scope_gives_partner_users_their_own_agreements(
    host_manager, acme_viewer, acme_agreement, globex_agreement
):
    assert set(Agreement.objects.visible_to(host_manager)) == {acme_agreement, globex_agreement}
    assert list(Agreement.objects.visible_to(acme_viewer)) == [acme_agreement]
    acme_viewer.is_active = False
    assert not Agreement.objects.visible_to(acme_viewer).exists()


# The observation table has no database foreign keys (see MetricObservation); the ORM's
# on_delete rules hold its integrity instead.
def test_deleting_an_agreement_deletes_its_observations(acme_agreement, globex_agreement, kpis):
    write_observations([
        (acme_agreement, kpis["revenue"], "host", "2025-03-01", 10),
        (globex_agreement, kpis["revenue"], "host", "2025-03-01", 20),
    ])
    acme_agreement.delete()
    assert list(MetricObservation.objects.values_list("agreement_id", flat=True)) == [
        globex_agreement.pk
    ]


def test_a_kpi_or_batch_with_observations_cannot_be_deleted(acme_agreement, kpis):
    batch, _ = write_observations([(acme_agreement, kpis["revenue"], "host", "2025-03-01", 10)])
    with pytest.raises(ProtectedError):
        kpis["revenue"].delete()
    with pytest.raises(ProtectedError):
        batch.delete()
    assert MetricObservation.objects.count() == 1


def test_deleting_a_user_keeps_their_observations(acme_agreement, kpis, host_manager):
    write_observations(
        [(acme_agreement, kpis["revenue"], "host", "2025-03-01", 10)], user=host_manager
    )
    ImportBatch.objects.update(user=None)
    host_manager.delete()
    observation = MetricObservation.objects.get()
    assert observation.recorded_by_id is None and observation.value == 10
