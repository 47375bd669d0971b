"""The two functions every write of the program goes through: history, audit, page notice."""

import pytest
from django.core.exceptions import ValidationError

from partnerships.changes import program_version
from partnerships.history import (
    SYSTEM_ACTOR,
    change_delete,
    change_save,
    history_snapshot,
)
from partnerships.models import AuditAction, AuditEvent, ChangeKind, Partner, ProgramChange


@pytest.fixture
def partner(db):
    return Partner.objects.create(name="Northwind", slug="northwind", industry="Retail")


def test_an_update_records_each_changed_field_an_audit_event_and_moves_the_counter(
        partner, host_manager):
    version = program_version()
    before = history_snapshot(partner)
    partner.industry = "Logistics"
    change = change_save(user=host_manager, obj=partner, before=before)
    assert change.kind == ChangeKind.UPDATED
    assert change.fields == {"Industry": ["Retail", "Logistics"]}
    assert change.username == host_manager.username
    event = AuditEvent.objects.get(action=AuditAction.PROGRAM_CHANGED)
    assert event.user == host_manager and event.partner == partner
    assert event.detail["change"] == change.pk and event.detail["fields"] == ["Industry"]
    assert program_version() > version


def test_saving_without_a_change_records_nothing(partner, host_manager):
    before = history_snapshot(partner)
    assert change_save(user=host_manager, obj=partner, before=before) is None
    assert not ProgramChange.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.PROGRAM_CHANGED).exists()


def test_the_model_refuses_what_no_form_checked_and_nothing_is_written(partner, host_manager):
    before = history_snapshot(partner)
    partner.slug = "not a slug/with slash"
    with pytest.raises(ValidationError) as refused:
        change_save(user=host_manager, obj=partner, before=before)
    assert "slug" in refused.value.message_dict
    partner.refresh_from_db()
    assert partner.slug == "northwind"
    assert not ProgramChange.objects.exists()


def test_a_change_without_a_user_is_recorded_under_the_system_actor(db):
    partner = Partner(name="Contoso", slug="contoso")
    change = change_save(user=None, obj=partner, audit=False)
    assert change.kind == ChangeKind.CREATED and change.username == SYSTEM_ACTOR
    assert change.fields["Name"] == ["", "Contoso"]
    assert not AuditEvent.objects.exists()


def test_a_deletion_keeps_every_old_value(partner, host_manager):
    change = change_delete(user=host_manager, obj=partner)
    assert change.kind == ChangeKind.DELETED
    assert change.fields["Name"] == ["Northwind", ""]
    assert not Partner.objects.filter(pk=partner.pk).exists()
    assert AuditEvent.objects.get(action=AuditAction.PROGRAM_CHANGED).detail["kind"] == "deleted"
