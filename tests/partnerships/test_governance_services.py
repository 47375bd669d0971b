"""The services that run the agreements: objectives, incentive plans, reviews, action items.

Each writes its history row with the changed fields and one `program_changed` audit event; a
refused input raises ValidationError with nothing written; an update that changes nothing
records nothing; partner users change the status of their own side's actions only."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from partnerships import governance_services as services
from partnerships.changes import program_version
from partnerships.models import (
    ActionItem,
    AuditAction,
    AuditEvent,
    ChangeKind,
    IncentivePlan,
    KPIDefinition,
    Objective,
    ProgramChange,
    Review,
)

pytestmark = pytest.mark.django_db

OBJECTIVE = {"goal_type": "revenue_growth", "success_metric": "Revenue of 50,000 a month",
             "target_value": 50_000.0, "set_on": dt.date(2025, 1, 1),
             "deadline": dt.date(2025, 12, 31), "priority": "high"}
PLAN = {"base_amount": Decimal("1000"), "currency": "eur", "baseline_score": 60.0}
REVIEW = {"kind": "monthly_results", "held_on": dt.date(2025, 6, 1), "notes": "Pipeline grew."}
ACTION = {"description": "Send the joint pipeline", "owner_name": "Ann", "owner_side": "partner",
          "due_date": dt.date(2025, 7, 1)}


def audit_events():
    return list(AuditEvent.objects.filter(action=AuditAction.PROGRAM_CHANGED))


def nothing_written(model) -> bool:
    return not model.objects.exists() and not ProgramChange.objects.exists() and not audit_events()


def only_change() -> ProgramChange:
    """The one change recorded, after checking that one audit event names it."""
    change = ProgramChange.objects.get()
    (event,) = audit_events()
    assert event.detail["change"] == change.pk
    return change


# ---- Objectives --------------------------------------------------------------------------------


def test_creating_an_objective_records_its_fields_and_one_audit_event(
        acme_agreement, host_manager, kpis):
    version = program_version()
    objective = services.objective_create(agreement=acme_agreement, user=host_manager,
                                          kpi=kpis["revenue"], **OBJECTIVE)
    assert objective.pk and objective.agreement == acme_agreement
    change = only_change()
    assert (change.kind, change.username, change.agreement) == (
        ChangeKind.CREATED, "manager", acme_agreement)
    assert change.fields["Success metric"] == ["", "Revenue of 50,000 a month"]
    assert change.fields["Linked KPI"] == ["", str(kpis["revenue"])]
    assert program_version() > version


def test_updating_an_objective_records_only_the_changed_fields(acme_agreement, host_manager):
    objective = services.objective_create(agreement=acme_agreement, user=host_manager,
                                          **OBJECTIVE)
    ProgramChange.objects.all().delete()
    AuditEvent.objects.all().delete()
    services.objective_update(objective=objective, user=host_manager, priority="critical",
                              target_value=60_000.0)
    change = only_change()
    assert change.kind == ChangeKind.UPDATED
    assert change.fields == {"Target value": ["50000", "60000"],
                             "Priority": ["High", "Critical"]}


def test_an_update_that_changes_nothing_records_nothing(acme_agreement, host_manager):
    objective = services.objective_create(agreement=acme_agreement, user=host_manager,
                                          **OBJECTIVE)
    ProgramChange.objects.all().delete()
    AuditEvent.objects.all().delete()
    services.objective_update(objective=objective, user=host_manager,
                              priority=OBJECTIVE["priority"])
    assert not ProgramChange.objects.exists() and not audit_events()


def test_an_update_compares_with_the_stored_row_not_the_object_in_memory(
        acme_agreement, host_manager):
    """A form changes the object it was given before the service runs."""
    objective = services.objective_create(agreement=acme_agreement, user=host_manager,
                                          **OBJECTIVE)
    ProgramChange.objects.all().delete()
    objective.priority = "low"  # as a bound form leaves it
    services.objective_update(objective=objective, user=host_manager, priority="low")
    assert ProgramChange.objects.get().fields == {"Priority": ["High", "Low"]}


@pytest.mark.parametrize(("fields", "field"), [
    ({"deadline": dt.date(2024, 12, 31)}, "deadline"),  # before the day it was set
    ({"target_value": float("inf")}, "target_value"),
    ({"priority": "urgent"}, "priority"),
    ({"success_metric": ""}, "success_metric"),
])
def test_a_refused_objective_raises_and_writes_nothing(acme_agreement, host_manager, fields,
                                                       field):
    with pytest.raises(ValidationError) as refused:
        services.objective_create(agreement=acme_agreement, user=host_manager,
                                  **{**OBJECTIVE, **fields})
    assert field in refused.value.message_dict
    assert nothing_written(Objective)


def test_an_objective_may_only_link_a_kpi_of_its_agreement(acme_agreement, host_manager):
    elsewhere = KPIDefinition.objects.create(code="nps", name="NPS", category="relationship",
                                             aggregation="last", source="partner")
    with pytest.raises(ValidationError) as refused:
        services.objective_create(agreement=acme_agreement, user=host_manager, kpi=elsewhere,
                                  **OBJECTIVE)
    assert refused.value.message_dict["kpi"] == ["Choose one of this agreement's KPIs."]
    assert nothing_written(Objective)


def test_a_refused_update_leaves_the_stored_objective_as_it_was(acme_agreement, host_manager):
    objective = services.objective_create(agreement=acme_agreement, user=host_manager,
                                          **OBJECTIVE)
    with pytest.raises(ValidationError):
        services.objective_update(objective=objective, user=host_manager,
                                  deadline=dt.date(2024, 1, 1))
    objective.refresh_from_db()
    assert objective.deadline == OBJECTIVE["deadline"]
    assert ProgramChange.objects.count() == 1  # its creation only


def test_a_field_the_service_does_not_edit_is_a_programming_error(acme_agreement, host_manager):
    with pytest.raises(TypeError):
        services.objective_create(agreement=acme_agreement, user=host_manager, colour="red",
                                  **OBJECTIVE)


def test_deleting_an_objective_keeps_its_values_in_the_history(acme_agreement, host_manager):
    objective = services.objective_create(agreement=acme_agreement, user=host_manager,
                                          **OBJECTIVE)
    ProgramChange.objects.all().delete()
    AuditEvent.objects.all().delete()
    services.objective_delete(objective=objective, user=host_manager)
    change = only_change()
    assert not Objective.objects.exists()
    assert change.kind == ChangeKind.DELETED
    assert change.fields["Success metric"] == ["Revenue of 50,000 a month", ""]


# ---- Incentive plans -----------------------------------------------------------------------


def test_saving_a_plan_creates_it_then_updates_it(acme_agreement, host_manager):
    plan = services.incentive_plan_save(agreement=acme_agreement, user=host_manager, **PLAN)
    assert plan.currency == "EUR"  # the model's rule normalises the code
    services.incentive_plan_save(agreement=acme_agreement, user=host_manager,
                                 baseline_score=70.0)
    assert IncentivePlan.objects.get().baseline_score == 70.0
    created, updated = ProgramChange.objects.order_by("id")
    assert (created.kind, updated.kind) == (ChangeKind.CREATED, ChangeKind.UPDATED)
    assert updated.fields == {"Baseline rolling score": ["60", "70"]}
    assert len(audit_events()) == 2


@pytest.mark.parametrize(("fields", "field"), [
    ({"currency": "dollars"}, "currency"),
    ({"base_amount": Decimal("-1")}, "__all__"),
    ({"baseline_score": 121.0}, "baseline_score"),
])
def test_a_refused_plan_raises_and_writes_nothing(acme_agreement, host_manager, fields, field):
    with pytest.raises(ValidationError) as refused:
        services.incentive_plan_save(agreement=acme_agreement, user=host_manager,
                                     **{**PLAN, **fields})
    assert field in refused.value.message_dict
    assert nothing_written(IncentivePlan)


def test_removing_a_plan_is_recorded(acme_agreement, host_manager):
    plan = services.incentive_plan_save(agreement=acme_agreement, user=host_manager, **PLAN)
    services.incentive_plan_delete(plan=plan, user=host_manager)
    assert not IncentivePlan.objects.exists()
    assert ProgramChange.objects.order_by("-id").first().kind == ChangeKind.DELETED
    assert len(audit_events()) == 2


# ---- Reviews -------------------------------------------------------------------------------


def test_recording_a_review_names_who_recorded_it(acme_agreement, host_manager):
    review = services.review_create(agreement=acme_agreement, user=host_manager, **REVIEW)
    assert review.created_by == host_manager
    change = only_change()
    assert change.fields["Kind"] == ["", "Monthly results review"]


def test_a_review_in_the_future_is_refused(acme_agreement, host_manager):
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    with pytest.raises(ValidationError) as refused:
        services.review_create(agreement=acme_agreement, user=host_manager,
                               **{**REVIEW, "held_on": tomorrow})
    assert "cannot be in the future" in refused.value.message_dict["held_on"][0]
    assert nothing_written(Review)


def test_updating_and_deleting_a_review_are_recorded(acme_agreement, host_manager):
    review = services.review_create(agreement=acme_agreement, user=host_manager, **REVIEW)
    services.review_update(review=review, user=host_manager, decisions="Renew for a year.")
    services.review_delete(review=review, user=host_manager)
    kinds = list(ProgramChange.objects.order_by("id").values_list("kind", flat=True))
    assert kinds == [ChangeKind.CREATED, ChangeKind.UPDATED, ChangeKind.DELETED]
    assert ProgramChange.objects.get(kind=ChangeKind.UPDATED).fields == {
        "Decisions": ["", "Renew for a year."]}
    assert len(audit_events()) == 3 and not Review.objects.exists()


# ---- Action items --------------------------------------------------------------------------


def test_an_action_of_a_review_of_another_agreement_is_refused(
        acme_agreement, globex_agreement, host_manager):
    other = services.review_create(agreement=globex_agreement, user=host_manager, **REVIEW)
    ProgramChange.objects.all().delete()
    AuditEvent.objects.all().delete()
    with pytest.raises(ValidationError) as refused:
        services.action_item_create(agreement=acme_agreement, user=host_manager, review=other,
                                    **ACTION)
    assert "review" in refused.value.message_dict
    assert nothing_written(ActionItem)


def test_editing_an_action_to_done_stamps_its_completion_and_reopening_clears_it(
        acme_agreement, host_manager):
    action = services.action_item_create(agreement=acme_agreement, user=host_manager, **ACTION)
    done = services.action_item_update(action=action, user=host_manager, status="done")
    assert done.completed_at is not None
    reopened = services.action_item_update(action=done, user=host_manager, status="open")
    assert reopened.completed_at is None
    assert ProgramChange.objects.filter(kind=ChangeKind.UPDATED).count() == 2


def test_deleting_an_action_is_recorded(acme_agreement, host_manager):
    action = services.action_item_create(agreement=acme_agreement, user=host_manager, **ACTION)
    services.action_item_delete(action=action, user=host_manager)
    assert not ActionItem.objects.exists()
    assert [event.detail["kind"] for event in audit_events()] == ["deleted", "created"]


def test_a_partner_user_sets_the_status_of_their_sides_action_under_their_name(
        acme_agreement, host_manager, acme_viewer):
    action = services.action_item_create(agreement=acme_agreement, user=host_manager, **ACTION)
    updated = services.action_item_status_update(action=action, user=acme_viewer,
                                                 status="in_progress")
    assert updated.status == "in_progress"
    change = ProgramChange.objects.order_by("-id").first()
    assert (change.username, change.fields) == ("acme-viewer", {"Status": ["Open",
                                                                           "In progress"]})
    event = audit_events()[0]
    assert event.user == acme_viewer and event.partner == acme_agreement.partner


def test_a_partner_user_may_not_set_the_status_of_a_host_action(
        acme_agreement, host_manager, acme_viewer):
    action = services.action_item_create(agreement=acme_agreement, user=host_manager,
                                         **{**ACTION, "owner_side": "host"})
    with pytest.raises(PermissionDenied):
        services.action_item_status_update(action=action, user=acme_viewer, status="done")
    action.refresh_from_db()
    assert action.status == "open" and ProgramChange.objects.count() == 1


def test_another_partners_user_may_not_set_the_status(
        acme_agreement, host_manager, globex_viewer):
    action = services.action_item_create(agreement=acme_agreement, user=host_manager, **ACTION)
    with pytest.raises(PermissionDenied):
        services.action_item_status_update(action=action, user=globex_viewer, status="done")
    action.refresh_from_db()
    assert action.status == "open" and ProgramChange.objects.count() == 1
    assert len(audit_events()) == 1


def test_an_unknown_status_is_refused(acme_agreement, host_manager):
    action = services.action_item_create(agreement=acme_agreement, user=host_manager, **ACTION)
    with pytest.raises(ValidationError) as refused:
        services.action_item_status_update(action=action, user=host_manager, status="lost")
    assert "status" in refused.value.message_dict
    action.refresh_from_db()
    assert action.status == "open" and ProgramChange.objects.count() == 1
