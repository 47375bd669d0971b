"""A program-file load through the audited write path: history, stage moves, audit, refusals."""

import hashlib
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from partnerships.models import (
    Agreement,
    AgreementKPI,
    AuditEvent,
    ChangeKind,
    ProgramChange,
    StageTransition,
)
from partnerships.program import ProgramError, program_load
from partnerships.program_export import program_export

pytestmark = pytest.mark.django_db

PROGRAMS = Path(__file__).parent / "programs"
EXAMPLE = (PROGRAMS / "example.yaml").read_text()


def example(**replacements: str) -> str:
    text = EXAMPLE
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    return text


def write_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "program.yaml"
    path.write_text(text)
    return path


def load_command(path: Path, *args: str) -> str:
    stdout = io.StringIO()
    call_command("import_program", str(path), *args, stdout=stdout, stderr=io.StringIO())
    return stdout.getvalue()


def test_a_load_records_each_change_with_its_fields_and_one_audit_event(host_manager, tmp_path):
    load_command(write_file(tmp_path, EXAMPLE))
    path = write_file(tmp_path, example(**{"target: 50000": "target: 150000"}))
    ProgramChange.objects.all().delete()

    load_command(path, "--user", "manager")

    change = ProgramChange.objects.get()
    assert (change.kind, change.object_type, change.username, change.agreement.code) == (
        ChangeKind.UPDATED, "agreement KPI", "manager", "ACME-CM-2025")
    assert change.fields == {"Monthly target": ["50000", "150000"]}
    event = AuditEvent.objects.filter(action="program_loaded").first()
    assert (event.user, event.detail["file"], event.detail["user"]) == (
        host_manager, "program.yaml", "manager")
    assert event.detail["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert event.detail["counts"]["agreement_kpis"] == {
        "created": 0, "updated": 1, "unchanged": 1, "deleted": 0}
    assert not AuditEvent.objects.filter(action="program_changed").exists()


def test_a_load_without_a_user_is_recorded_under_the_system_actor(tmp_path):
    load_command(write_file(tmp_path, EXAMPLE))

    assert set(ProgramChange.objects.values_list("username", flat=True)) == {"system"}
    # A partner, two KPIs, an agreement, its two KPIs and the settings.
    assert ProgramChange.objects.filter(kind=ChangeKind.CREATED).count() == 7
    assert AuditEvent.objects.get(action="program_loaded").username == "system"


def test_loading_the_same_file_twice_records_the_load_but_no_history(tmp_path):
    path = write_file(tmp_path, EXAMPLE)
    load_command(path)
    changes = ProgramChange.objects.count()

    assert "no changes" in load_command(path)
    assert ProgramChange.objects.count() == changes
    assert AuditEvent.objects.filter(action="program_loaded").count() == 2


def test_a_stage_change_in_the_file_is_a_recorded_stage_move(host_manager):
    program_load(document=EXAMPLE)

    program_load(document=example(**{"stage: active": "stage: under_review"}),
                 user=host_manager, file_name="program.yaml")

    move = StageTransition.objects.get()
    assert (move.from_stage, move.to_stage, move.by, move.reason) == (
        "active", "under_review", host_manager, "Program file program.yaml")
    assert ProgramChange.objects.get(kind=ChangeKind.STAGE).fields["Stage"] == [
        "Active", "Under review"]


def test_a_stage_move_the_pages_refuse_is_an_error_and_nothing_is_written(host_manager):
    program_load(document=example(**{"stage: active": "stage: ended",
                                     "end: null": "end: 2025-12-31"}))
    before = (ProgramChange.objects.count(), AuditEvent.objects.count())

    with pytest.raises(ProgramError) as error:
        program_load(document=example(**{"stage: active": "stage: prospect",
                                         "end: null": "end: 2025-12-31",
                                         "target: 50000": "target: 150000"}))

    assert error.value.problems == [
        "agreements[0] (ACME-CM-2025).stage: agreement ACME-CM-2025 cannot move from ended to "
        "prospect (the program pages refuse this move)"]
    assert Agreement.objects.get().stage == "ended"
    assert AgreementKPI.objects.get(kpi__code="revenue").target == 50000
    assert (ProgramChange.objects.count(), AuditEvent.objects.count()) == before
    assert not StageTransition.objects.exists()


def test_a_move_to_ended_needs_the_end_date_the_move_sets(host_manager):
    program_load(document=example(**{"stage: active": "stage: exiting"}))

    with pytest.raises(ProgramError, match=r"moves to ended, which ends it on .*write end:"):
        program_load(document=example(**{"stage: active": "stage: ended"}))
    program_load(document=example(**{"stage: active": "stage: ended",
                                     "end: null": "end: 2025-12-31"}))

    assert StageTransition.objects.get().to_stage == "ended"
    assert Agreement.objects.get().end_date.isoformat() == "2025-12-31"


@pytest.mark.parametrize("code", ["ACME/CM/2025", "-ACME", "ACME CM", "ACMÉ-2025", ".hidden"])
def test_an_agreement_code_no_address_can_carry_is_an_error_and_nothing_is_written(code):
    with pytest.raises(ProgramError) as error:
        program_load(document=example(**{"code: ACME-CM-2025": f"code: '{code}'"}))

    assert error.value.problems == [
        f"agreements[0] ({code}).code: agreement code {code!r} cannot be carried by the pages' "
        "addresses: use letters, digits, “-”, “_” and “.” only, starting with a letter or digit"]
    assert not Agreement.objects.exists()
    assert not ProgramChange.objects.exists()


def test_the_command_refuses_an_unknown_user(tmp_path):
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        load_command(write_file(tmp_path, EXAMPLE), "--user", "nobody")


def test_a_partner_user_may_not_load_with_the_command(acme_viewer, tmp_path):
    with pytest.raises(CommandError):
        load_command(write_file(tmp_path, EXAMPLE), "--user", "acme-viewer")

    assert not Agreement.objects.exists()


def test_a_host_manager_downloads_the_program_file_and_the_download_is_audited(
        client, host_manager, acme_agreement):
    client.force_login(host_manager)

    response = client.get(reverse("program_file_download"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="program-')
    assert response.content.decode() == program_export()
    event = AuditEvent.objects.get(action="export")
    assert (event.user, event.target) == (host_manager, "program file")


def test_a_partner_user_cannot_download_the_program_file(client, acme_viewer, acme_agreement):
    client.force_login(acme_viewer)

    assert client.get(reverse("program_file_download")).status_code == 404
    assert not AuditEvent.objects.filter(action="export").exists()
