"""`manage.py import_metrics FILE [--side host|partner] [--user NAME]`."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from partnerships.models import (
    AuditEvent,
    ImportBatch,
    MetricObservation,
    ObservationChange,
    Role,
)
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

CORPUS = Path(__file__).parent / "metric_files"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_metrics", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(*args: str) -> tuple[str, str]:
    err = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("import_metrics", *args, stdout=StringIO(), stderr=err)
    return str(refused.value), err.getvalue()


def test_command_prints_counts_and_a_second_run_changes_nothing(acme_agreement):
    out, _ = run(str(CORPUS / "good.csv"))
    assert "4 rows, 4 inserted, 0 updated, 0 unchanged" in out
    out, _ = run(str(CORPUS / "good.csv"))
    assert "4 rows, 0 inserted, 0 updated, 4 unchanged" in out
    assert ImportBatch.objects.filter(source="command", user=None, side="host").count() == 2
    event = AuditEvent.objects.filter(action="import").latest("at")
    assert (event.username, event.detail["status"], event.detail["rows"]) == (
        "manage.py import_metrics", "succeeded", 4
    )


def test_command_prints_each_error_and_fails(acme_agreement):
    message, err = run_failing(str(CORPUS / "bad_dates.csv"))
    assert message.endswith("7 errors; nothing was imported (import batch "
                            f"{ImportBatch.objects.get().pk})")
    assert "bad_dates.csv: row 4, column date: not a valid calendar date (value '2025-02-30')" \
        in err
    assert err.count("\n") == 7
    assert MetricObservation.objects.count() == 0
    assert ImportBatch.objects.get().status == "failed"


def test_command_reports_an_unreadable_file(acme_agreement):
    message, err = run_failing(str(CORPUS / "unclosed_quote.csv"))
    assert "1 error; nothing was imported" in message
    assert "row 2: a double quote" in err


def test_command_side_option_sets_the_default_side(acme_agreement):
    out, _ = run(str(CORPUS / "partner_good.csv"), "--side", "partner")
    assert "2 inserted" in out
    assert set(MetricObservation.objects.values_list("side", flat=True)) == {"partner"}


def test_command_as_partner_editor_applies_their_restrictions(
    acme_agreement, globex_agreement, acme, django_user_model
):
    make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)
    message, err = run_failing(str(CORPUS / "partner_rows.csv"), "--user", "acme-editor")
    assert "2 errors" in message
    assert "row 4, column agreement: not one of Acme Corp's agreements" in err
    assert "row 5, column side: partner users may only import the partner side" in err
    out, _ = run(str(CORPUS / "partner_good.csv"), "--user", "acme-editor")
    assert "2 inserted" in out
    batch = ImportBatch.objects.filter(status="succeeded").get()
    assert (batch.user.username, batch.side, batch.partner) == ("acme-editor", "partner", acme)


def test_command_refuses_host_side_for_a_partner_editor(acme_agreement, acme, django_user_model):
    make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)
    message, _ = run_failing(str(CORPUS / "good.csv"), "--user", "acme-editor", "--side", "host")
    assert "Partner users may only import the partner side" in message
    assert not ImportBatch.objects.exists()


def test_command_refuses_viewers_unknown_users_and_missing_files(acme_viewer):
    assert "Partner viewers may not import" in run_failing(
        str(CORPUS / "good.csv"), "--user", "acme-viewer")[0]
    assert "no user named 'nobody'" in run_failing(
        str(CORPUS / "good.csv"), "--user", "nobody")[0]
    assert "no such file" in run_failing(str(CORPUS / "missing.csv"))[0]
    assert not ImportBatch.objects.exists()


def test_command_update_is_audited_with_the_user(acme_agreement, host_manager):
    run(str(CORPUS / "good.csv"))
    out, _ = run(str(CORPUS / "changed_value.csv"), "--user", "manager")
    assert "0 inserted, 1 updated, 1 unchanged" in out
    change = ObservationChange.objects.get()
    assert (change.old_value, change.new_value, change.changed_by) == (40, 55.5, host_manager)


def test_command_prints_the_sheet_note_of_a_workbook(acme_agreement, tmp_path):
    import datetime as dt

    from tests.partnerships.metric_files.xlsx import write_xlsx

    path = write_xlsx(tmp_path / "book.xlsx", {
        "Data": [["agreement", "kpi", "date", "value"],
                 ["ACME-CM-2025", "revenue", dt.date(2025, 1, 15), 1]],
        "Other": [["x"]],
    })
    out, _ = run(str(path))
    assert "The workbook has 2 sheets; reading the first, 'Data'" in out
    assert "1 inserted" in out
