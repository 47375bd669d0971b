"""The services that change the program's structure: each records its history row with the
changed fields, one `program_changed` audit event and moves the page counter; a refused input
writes nothing; an update that changes nothing records nothing."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.test import RequestFactory

from partnerships import program_services
from partnerships.changes import program_version
from partnerships.kpi_sets import kpi_set_copy, kpi_set_source_items
from partnerships.models import (
    Agreement,
    AgreementKPI,
    AuditAction,
    AuditEvent,
    ChangeKind,
    KPIDefinition,
    KPITemplateItem,
    Objective,
    PartnerAssessment,
    ProgramChange,
    ProgramSettings,
)
from tests.conftest import write_observations

AGREEMENT = {
    "code": "ACME-REF-2026", "type": "referral", "stage": "prospect",
    "start_date": dt.date(2026, 1, 1),
    "weight_financial": 40, "weight_strategic": 20, "weight_operational": 20,
    "weight_relationship": 20,
}


def audit_events():
    return AuditEvent.objects.filter(action=AuditAction.PROGRAM_CHANGED)


def assert_recorded_once(change: ProgramChange, *, kind: str, version_before: int) -> None:
    """The change is the only history row, with one audit event of its own, and the page
    counter moved on."""
    assert ProgramChange.objects.get() == change and change.kind == kind
    event = audit_events().get()
    assert event.detail["change"] == change.pk
    assert event.detail["fields"] == sorted(change.fields)
    assert program_version() > version_before


def assert_nothing_recorded(version_before: int) -> None:
    assert not ProgramChange.objects.exists()
    assert not audit_events().exists()
    assert program_version() == version_before


# ---- Partners and assessments ----------------------------------------------------------------


def test_creating_a_partner_records_its_fields_and_the_address_of_the_request(host_manager):
    version = program_version()
    request = RequestFactory().post("/", REMOTE_ADDR="192.0.2.7")
    request.user = host_manager
    partner = program_services.partner_create(
        user=host_manager, request=request, name="Hooli", slug="hooli", industry="Search")
    change = ProgramChange.objects.get()
    assert_recorded_once(change, kind=ChangeKind.CREATED, version_before=version)
    assert change.fields["Name"] == ["", "Hooli"] and change.fields["Industry"] == ["", "Search"]
    assert change.partner == partner and change.username == host_manager.username
    assert audit_events().get().ip_address == "192.0.2.7"


def test_updating_a_partner_records_only_the_changed_field(acme, host_manager):
    version = program_version()
    change = program_services.partner_update(partner=acme, user=host_manager,
                                             name="Acme Corp", status="inactive")
    assert change.fields == {"Status": ["Active", "Inactive"]}
    assert_recorded_once(change, kind=ChangeKind.UPDATED, version_before=version)
    acme.refresh_from_db()
    assert acme.status == "inactive"


def test_an_update_that_changes_nothing_writes_nothing(acme, host_manager):
    version, updated_at = program_version(), acme.updated_at
    assert program_services.partner_update(partner=acme, user=host_manager, name="Acme Corp",
                                           slug="acme") is None
    assert_nothing_recorded(version)
    acme.refresh_from_db()
    assert acme.updated_at == updated_at


def test_a_refused_partner_update_writes_nothing_and_leaves_the_object_as_stored(
        acme, host_manager):
    version = program_version()
    with pytest.raises(ValidationError) as refused:
        program_services.partner_update(partner=acme, user=host_manager, website="not a url")
    assert "website" in refused.value.message_dict
    assert acme.website == ""
    assert_nothing_recorded(version)


def test_an_unknown_field_is_a_programming_error(acme, host_manager):
    with pytest.raises(TypeError, match="colour"):
        program_services.partner_update(partner=acme, user=host_manager, colour="red")


def test_an_assessment_is_recorded_with_who_made_it(acme, host_manager):
    version = program_version()
    assessment = program_services.assessment_create(
        partner=acme, user=host_manager, assessed_on=dt.date(2026, 2, 1), strategic_fit=4,
        cultural_compatibility=3, operational_capability=4, market_position=5,
        resource_contribution=3, implementation_complexity=2)
    assert assessment.assessed_by == host_manager and assessment.partnership_value == 6
    change = ProgramChange.objects.get()
    assert_recorded_once(change, kind=ChangeKind.CREATED, version_before=version)
    assert change.partner == acme and change.fields["Strategic fit"] == ["", "4"]


def test_an_assessment_score_outside_1_to_5_is_refused(acme, host_manager):
    version = program_version()
    with pytest.raises(ValidationError) as refused:
        program_services.assessment_create(
            partner=acme, user=host_manager, assessed_on=dt.date(2026, 2, 1), strategic_fit=6,
            cultural_compatibility=3, operational_capability=4, market_position=5,
            resource_contribution=3, implementation_complexity=2)
    assert "strategic_fit" in refused.value.message_dict
    assert not PartnerAssessment.objects.exists()
    assert_nothing_recorded(version)


# ---- The KPI library -------------------------------------------------------------------------


def test_a_kpi_definition_is_created_updated_and_deleted_with_its_history(host_manager):
    kpi = program_services.kpi_definition_create(
        user=host_manager, code="leads", name="Qualified leads", unit="leads",
        category="strategic", aggregation="sum", source="partner", value_type="count")
    change = program_services.kpi_definition_update(kpi=kpi, user=host_manager,
                                                    aggregation="last", maximum=500.0)
    assert change.fields == {"Aggregation": ["Sum", "Last value"], "Maximum": ["", "500"]}
    version = program_version()
    program_services.kpi_definition_delete(kpi=kpi, user=host_manager)
    assert not KPIDefinition.objects.filter(code="leads").exists()
    assert [c.kind for c in ProgramChange.objects.order_by("id")] == [
        ChangeKind.CREATED, ChangeKind.UPDATED, ChangeKind.DELETED]
    assert audit_events().count() == 3
    assert program_version() > version


def test_a_kpi_maximum_below_its_minimum_is_refused(kpis, host_manager):
    version = program_version()
    with pytest.raises(ValidationError) as refused:
        program_services.kpi_definition_update(kpi=kpis["revenue"], user=host_manager,
                                               minimum=10.0, maximum=5.0)
    assert "maximum" in refused.value.message_dict
    kpis["revenue"].refresh_from_db()
    assert kpis["revenue"].maximum is None
    assert_nothing_recorded(version)


def test_a_kpi_in_use_by_an_agreement_cannot_be_deleted(acme_agreement, kpis, host_manager):
    version = program_version()
    with pytest.raises(ValidationError, match="agreements use it \\(ACME-CM-2025\\)"):
        program_services.kpi_definition_delete(kpi=kpis["revenue"], user=host_manager)
    assert KPIDefinition.objects.filter(code="revenue").exists()
    assert_nothing_recorded(version)


def test_a_kpi_with_recorded_observations_cannot_be_deleted(acme_agreement, kpis, host_manager):
    write_observations([(acme_agreement, kpis["revenue"], "host", "2026-01-05", 10)])
    AgreementKPI.objects.filter(kpi=kpis["revenue"]).delete()
    with pytest.raises(ValidationError, match="1 observation of it"):
        program_services.kpi_definition_delete(kpi=kpis["revenue"], user=host_manager)
    assert KPIDefinition.objects.filter(code="revenue").exists()


# ---- Agreements --------------------------------------------------------------------------------


def test_an_agreement_is_created_in_the_stage_given(acme, host_manager):
    version = program_version()
    agreement = program_services.agreement_create(user=host_manager, partner=acme, **AGREEMENT)
    change = ProgramChange.objects.get()
    assert_recorded_once(change, kind=ChangeKind.CREATED, version_before=version)
    assert change.agreement == agreement and change.fields["Stage"] == ["", "Prospect"]


@pytest.mark.parametrize(("weights", "message"), [
    ((40, 20, 20, 10), "The weights add up to 90: 10 short of 100."),
    ((40, 30, 20, 20), "The weights add up to 110: 10 over 100."),
])
def test_weights_not_adding_up_to_100_are_refused(acme, host_manager, weights, message):
    version = program_version()
    names = ("weight_financial", "weight_strategic", "weight_operational", "weight_relationship")
    with pytest.raises(ValidationError) as refused:
        program_services.agreement_create(user=host_manager, partner=acme, **{
            **AGREEMENT, **dict(zip(names, weights, strict=True))})
    assert refused.value.messages == [message + " Change them so that they add up to exactly 100."]
    assert not Agreement.objects.exists()
    assert_nothing_recorded(version)


def test_an_end_before_the_start_is_refused_next_to_the_end_date(acme_agreement, host_manager):
    with pytest.raises(ValidationError) as refused:
        program_services.agreement_update(agreement=acme_agreement, user=host_manager,
                                          end_date=dt.date(2024, 12, 31))
    assert refused.value.message_dict == {"end_date": ["The end date is before the start date."]}
    acme_agreement.refresh_from_db()
    assert acme_agreement.end_date is None


def test_an_agreement_update_records_the_changed_terms(acme_agreement, host_manager):
    version = program_version()
    change = program_services.agreement_update(
        agreement=acme_agreement, user=host_manager, title="Joint campaigns",
        weight_financial=60, weight_operational=40)
    assert change.fields == {"Title": ["", "Joint campaigns"],
                             "Financial weight": ["50", "60"],
                             "Operational weight": ["50", "40"]}
    assert_recorded_once(change, kind=ChangeKind.UPDATED, version_before=version)
    assert acme_agreement.weight_financial == 60


@pytest.mark.parametrize("field", ["partner", "stage"])
def test_an_update_keeps_the_agreements_partner_and_stage(acme_agreement, globex, host_manager,
                                                          field):
    value = {"partner": globex, "stage": "ended"}[field]
    with pytest.raises(ValidationError) as refused:
        program_services.agreement_update(agreement=acme_agreement, user=host_manager,
                                          **{field: value})
    assert field in refused.value.message_dict
    acme_agreement.refresh_from_db()
    assert (acme_agreement.partner.slug, acme_agreement.stage) == ("acme", "active")
    assert not ProgramChange.objects.exists()


# ---- The KPIs of an agreement ------------------------------------------------------------------


@pytest.fixture
def leads(db):
    return KPIDefinition.objects.create(code="leads", name="Qualified leads", category="strategic",
                                        aggregation="sum", source="partner")


def test_adding_a_kpi_to_an_agreement_records_it_on_the_agreements_history(
        acme_agreement, leads, host_manager):
    version = program_version()
    row = program_services.agreement_kpi_add(agreement=acme_agreement, user=host_manager,
                                              kpi=leads, target=40, floor=0, weight=2)
    change = ProgramChange.objects.get()
    assert_recorded_once(change, kind=ChangeKind.CREATED, version_before=version)
    assert change.agreement == acme_agreement and change.object_id == row.pk
    assert change.fields["Monthly target"] == ["", "40"]


@pytest.mark.parametrize(("values", "field"), [
    ({"target": 10, "floor": 10, "weight": 1}, "floor"),
    ({"target": 10, "floor": 0, "weight": 0}, "weight"),
    ({"target": float("inf"), "floor": 0, "weight": 1}, "target"),
])
def test_a_kpi_with_a_bad_target_floor_or_weight_is_refused(acme_agreement, leads, host_manager,
                                                          values, field):
    with pytest.raises(ValidationError) as refused:
        program_services.agreement_kpi_add(agreement=acme_agreement, user=host_manager,
                                           kpi=leads, **values)
    assert field in refused.value.message_dict
    assert not AgreementKPI.objects.filter(kpi=leads).exists()
    assert not ProgramChange.objects.exists()


def test_a_kpi_already_on_the_agreement_is_refused(acme_agreement, kpis, host_manager):
    with pytest.raises(ValidationError, match="already on this agreement"):
        program_services.agreement_kpi_add(agreement=acme_agreement, user=host_manager,
                                           kpi=kpis["revenue"], target=5, floor=0, weight=1)
    assert AgreementKPI.objects.filter(agreement=acme_agreement).count() == 2
    assert not ProgramChange.objects.exists()


def test_changing_a_target_records_old_and_new(acme_agreement, kpis, host_manager):
    row = AgreementKPI.objects.get(agreement=acme_agreement, kpi=kpis["revenue"])
    version = program_version()
    change = program_services.agreement_kpi_update(agreement_kpi=row, user=host_manager,
                                                   target=120.0, floor=0.0, weight=1.0)
    assert change.fields == {"Monthly target": ["100", "120"]}
    assert_recorded_once(change, kind=ChangeKind.UPDATED, version_before=version)
    assert program_services.agreement_kpi_update(agreement_kpi=row, user=host_manager,
                                                 target=120.0) is None
    assert ProgramChange.objects.count() == 1



def test_a_change_in_the_seventh_digit_is_saved_and_recorded(acme_agreement, kpis,
                                                            host_manager):
    row = AgreementKPI.objects.get(agreement=acme_agreement, kpi=kpis["revenue"])
    program_services.agreement_kpi_update(agreement_kpi=row, user=host_manager,
                                          target=50000.12)
    change = program_services.agreement_kpi_update(agreement_kpi=row, user=host_manager,
                                                   target=50000.13)
    assert change.fields == {"Monthly target": ["50000.12", "50000.13"]}
    row.refresh_from_db()
    assert row.target == 50000.13

def test_a_kpi_an_objective_measures_stays_on_the_agreement(acme_agreement, kpis,
                                                           host_manager):
    Objective.objects.create(agreement=acme_agreement, goal_type="capability",
                             success_metric="Fewer defects", kpi=kpis["defect_rate"],
                             target_value=3, deadline=dt.date(2026, 12, 31))
    row = AgreementKPI.objects.get(agreement=acme_agreement, kpi=kpis["defect_rate"])
    with pytest.raises(ValidationError, match="Fewer defects"):
        program_services.agreement_kpi_remove(agreement_kpi=row, user=host_manager)
    assert AgreementKPI.objects.filter(pk=row.pk).exists()
    assert not ProgramChange.objects.exists()


def test_removing_a_kpi_keeps_its_old_values_in_the_history(acme_agreement, kpis, host_manager):
    row = AgreementKPI.objects.get(agreement=acme_agreement, kpi=kpis["revenue"])
    version = program_version()
    change = program_services.agreement_kpi_remove(agreement_kpi=row, user=host_manager)
    assert change.fields["Monthly target"] == ["100", ""]
    assert_recorded_once(change, kind=ChangeKind.DELETED, version_before=version)
    assert not AgreementKPI.objects.filter(pk=row.pk).exists()


def test_copying_a_kpi_set_goes_through_the_services(acme_agreement, globex_agreement, leads,
                                                     host_manager):
    AgreementKPI.objects.create(agreement=globex_agreement, kpi=leads, target=30, floor=0)
    kpi_set_copy(agreement=acme_agreement, items=kpi_set_source_items(agreement=globex_agreement),
                 mode="keep", user=host_manager)
    change = ProgramChange.objects.get()
    assert change.kind == ChangeKind.CREATED and change.agreement == acme_agreement
    assert audit_events().get().detail["change"] == change.pk


# ---- The standard KPI sets ---------------------------------------------------------------------


def test_a_template_item_is_added_changed_and_removed_with_its_history(kpis, host_manager):
    item = program_services.kpi_template_item_create(
        user=host_manager, agreement_type="referral", kpi=kpis["revenue"], target=1000.0,
        floor=0.0, weight=1.0)
    change = program_services.kpi_template_item_update(item=item, user=host_manager,
                                                       weight=2.0)
    assert change.fields == {"Weight within its category": ["1", "2"]}
    program_services.kpi_template_item_remove(item=item, user=host_manager)
    assert not KPITemplateItem.objects.exists()
    assert [c.kind for c in ProgramChange.objects.order_by("id")] == [
        ChangeKind.CREATED, ChangeKind.UPDATED, ChangeKind.DELETED]
    assert audit_events().count() == 3


def test_a_kpi_twice_in_one_standard_set_is_refused(kpis, host_manager):
    KPITemplateItem.objects.create(agreement_type="referral", kpi=kpis["revenue"], target=10,
                                   floor=0)
    with pytest.raises(ValidationError, match="already in the Referral set"):
        program_services.kpi_template_item_create(
            user=host_manager, agreement_type="referral", kpi=kpis["revenue"], target=5.0,
            floor=0.0, weight=1.0)
    assert KPITemplateItem.objects.count() == 1
    assert not ProgramChange.objects.exists()


# ---- The scoring settings ----------------------------------------------------------------------


def test_changing_the_scoring_settings_records_the_change(host_manager):
    version = program_version()
    change = program_services.program_settings_update(user=host_manager, hysteresis=1,
                                                      tier_policy="threshold")
    assert change.fields["Hysteresis (months)"] == ["", "1"]
    assert_recorded_once(change, kind=ChangeKind.CREATED, version_before=version)
    change = program_services.program_settings_update(user=host_manager, hysteresis=3)
    assert change.kind == ChangeKind.UPDATED
    assert change.fields == {"Hysteresis (months)": ["1", "3"]}
    assert ProgramSettings.current().hysteresis == 3


def test_settings_equal_to_the_defaults_change_nothing(host_manager):
    version = program_version()
    assert program_services.program_settings_update(user=host_manager, hysteresis=2,
                                                    tier_policy="percentile") is None
    assert not ProgramSettings.objects.exists()
    assert_nothing_recorded(version)


def test_a_growth_threshold_above_the_strategic_one_is_refused(host_manager):
    ProgramSettings.objects.create(pk=1)
    with pytest.raises(ValidationError) as refused:
        program_services.program_settings_update(user=host_manager, growth_threshold=90.0)
    assert "growth_threshold" in refused.value.message_dict
    assert ProgramSettings.current().growth_threshold == 70.0
    assert not ProgramChange.objects.exists()



def test_a_partners_slug_stays_once_a_month_of_its_agreements_is_closed(
        host_manager, acme, acme_agreement):
    from django.utils import timezone

    from partnerships.models import ProgramMonth

    ProgramMonth.objects.create(month="2025-01", closed=True, closed_at=timezone.now())
    with pytest.raises(ValidationError) as refused:
        program_services.partner_update(partner=acme, user=host_manager, slug="acme-renamed")
    assert "closed months" in refused.value.message_dict["slug"][0]
    acme.refresh_from_db()
    assert acme.slug == "acme"
    # The name may change: exports write the slug.
    assert program_services.partner_update(
        partner=acme, user=host_manager, name="Acme Renamed") is not None
