"""No writes into a closed month, on every path (DOMAIN.md § Closing months): the metric file
through the command and the upload page, a month closed between the preview and the confirm or
between the validation and the write, the write service itself, the admin and the program
file. The API is tested in tests/dashboards/test_api.py."""

import datetime as dt
import threading
import time
from io import StringIO

import numpy as np
import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from partnerships.importers import closed_month_errors, closed_month_mask
from partnerships.models import ImportBatch, MetricObservation, ProgramMonth, Role
from partnerships.months import last_closed_month, month_is_closed, month_of
from partnerships.program import ProgramError, program_load
from partnerships.services import (
    ClosedMonthWrite,
    import_batch_create,
    lock_observation_writes,
    observations_import,
    observations_write,
)
from tests.conftest import make_user, write_observations
from tests.partnerships.metric_files.xlsx import write_xlsx

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
JANUARY_AND_FEBRUARY = (
    "agreement,kpi,date,value,side\n"
    "ACME-CM-2025,revenue,2025-01-15,40,host\n"
    "ACME-CM-2025,revenue,2025-02-15,50,host\n"
    "ACME-CM-2025,defect_rate,2025-01-31,3.5,partner\n"
)
FEBRUARY_ONLY = (
    "agreement,kpi,date,value,side\n"
    "ACME-CM-2025,revenue,2025-02-15,50,host\n"
    "ACME-CM-2025,defect_rate,2025-02-28,3.5,partner\n"
)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def close(month: str) -> ProgramMonth:
    return ProgramMonth.objects.create(month=month, closed=True, closed_at=timezone.now())


def metric_file(tmp_path, text: str, name: str = "metrics.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def import_command(path) -> tuple[str, str]:
    """Run `import_metrics`; the command's message and what it wrote to stderr."""
    err = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("import_metrics", str(path), stdout=StringIO(), stderr=err)
    return str(refused.value), err.getvalue()


def stored() -> set[tuple]:
    return set(MetricObservation.objects.values_list("kpi__code", "side", "date", "value"))


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client: Client, text: str):
    file = SimpleUploadedFile("metrics.csv", text.encode(), content_type="text/csv")
    return client.post("/imports/upload/", {"file": file}, headers=HTMX)


# ---- Which months are closed -------------------------------------------------------------


def test_every_month_up_to_the_last_closed_one_is_closed_and_later_ones_open():
    assert last_closed_month() is None and not month_is_closed(month="2025-01")
    ProgramMonth.objects.create(month="2025-03", closed=False)
    assert last_closed_month() is None
    close("2025-02")

    assert last_closed_month() == "2025-02"
    # Months close in calendar order: a month before the last closed one is closed, row or not.
    assert month_is_closed(month="2025-02") and month_is_closed(month="2024-11")
    assert not month_is_closed(month="2025-03")
    assert (month_of(dt.date(2025, 2, 28)), month_of(dt.date(987, 1, 1))) == (
        "2025-02", "0987-01")


def test_the_closed_month_check_compares_whole_columns_with_one_query(
    django_assert_num_queries
):
    close("2025-02")
    days = np.array(["2025-02-28", "2025-03-01", "NaT", "2024-12-31"], dtype="datetime64[D]")
    with django_assert_num_queries(1):
        mask = closed_month_mask(days)
    assert mask.tolist() == [True, False, False, True]
    with django_assert_num_queries(0):
        assert closed_month_mask(days, "2024-12").tolist() == [False, False, False, True]


def test_the_error_names_the_month_first_then_says_it_is_closed():
    close("2026-03")
    errors, count = closed_month_errors(
        days=np.array(["2026-03-31", "2026-04-01", "2026-03-01"], dtype="datetime64[D]"),
        rows=np.array([2, 3, 4]),
    )
    assert count == 2
    assert [error.as_dict() for error in errors] == [
        {"row": 2, "column": "date", "value": "2026-03-31", "message": "2026-03 is closed"},
        {"row": 4, "column": "date", "value": "2026-03-01", "message": "2026-03 is closed"},
    ]
    assert str(errors[0]) == "row 2, column date: 2026-03 is closed (value '2026-03-31')"


# ---- The metric file: the command ----------------------------------------------------------


def test_a_file_with_a_row_in_a_closed_month_is_refused_whole_with_that_rows_error(
    acme_agreement, tmp_path
):
    close("2025-01")
    message, err = import_command(metric_file(tmp_path, JANUARY_AND_FEBRUARY))

    assert "2 errors; nothing was imported" in message
    assert "row 2, column date: 2025-01 is closed (value '2025-01-15')" in err
    assert "row 4, column date: 2025-01 is closed (value '2025-01-31')" in err
    assert "row 3" not in err  # the February row is fine, but the file is all or nothing
    assert not MetricObservation.objects.exists()
    batch = ImportBatch.objects.get()
    assert (batch.status, batch.error_count, batch.rows_total) == ("failed", 2, 3)
    assert batch.errors[0] == {"row": 2, "column": "date", "value": "2025-01-15",
                               "message": "2025-01 is closed"}


def test_rows_in_open_months_of_the_same_agreement_still_import(acme_agreement, tmp_path):
    close("2025-01")
    out = StringIO()
    call_command("import_metrics", str(metric_file(tmp_path, FEBRUARY_ONLY)), stdout=out)

    assert "2 rows, 2 inserted" in out.getvalue()
    assert stored() == {("revenue", "host", dt.date(2025, 2, 15), 50.0),
                        ("defect_rate", "partner", dt.date(2025, 2, 28), 3.5)}


def test_a_date_before_the_agreement_in_a_closed_month_gets_the_closed_month_error(
    acme_agreement, tmp_path
):
    # The agreement starts 2025-01-01; 2024-12 is closed with every month up to 2025-01.
    close("2025-01")
    _, err = import_command(metric_file(tmp_path, (
        "agreement,kpi,date,value\nACME-CM-2025,revenue,2024-12-31,1\n")))
    assert "row 2, column date: 2024-12 is closed (value '2024-12-31')" in err
    assert "before the agreement's start" not in err


def test_reopened_months_take_rows_again(acme_agreement, tmp_path):
    month = close("2025-01")
    import_command(metric_file(tmp_path, JANUARY_AND_FEBRUARY))
    ProgramMonth.objects.filter(pk=month.pk).update(closed=False)

    call_command("import_metrics", str(metric_file(tmp_path, JANUARY_AND_FEBRUARY)),
                 stdout=StringIO())
    assert MetricObservation.objects.count() == 3


def test_an_xlsx_date_cell_in_a_closed_month_is_refused(acme_agreement, tmp_path):
    close("2025-01")
    path = write_xlsx(tmp_path / "metrics.xlsx", {"Metrics": [
        ["agreement", "kpi", "date", "value"],
        ["ACME-CM-2025", "revenue", dt.date(2025, 1, 20), 7],
    ]})

    _, err = import_command(path)
    assert "row 2, column date: 2025-01 is closed" in err
    assert not MetricObservation.objects.exists()


# ---- The metric file: the upload page ------------------------------------------------------


def test_the_upload_preview_shows_the_closed_month_rows_and_nothing_can_be_confirmed(
    host_manager, acme_agreement, django_capture_on_commit_callbacks
):
    close("2025-01")
    client = logged_in(host_manager)
    page = upload(client, JANUARY_AND_FEBRUARY).text

    batch = ImportBatch.objects.get()
    assert batch.status == "failed" and batch.error_count == 2
    assert "Nothing was imported" in page and "2025-01 is closed" in page
    assert "Import 3 rows" not in page
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/imports/{batch.pk}/confirm/", headers=HTMX)
    batch.refresh_from_db()
    assert batch.status == "failed" and batch.confirmed_at is None
    assert not MetricObservation.objects.exists()
    report = client.get(f"/imports/{batch.pk}/errors.csv").content.decode("utf-8-sig")
    assert "2,date,2025-01-15,2025-01 is closed" in report


def test_a_month_closed_between_preview_and_confirm_refuses_the_confirm(
    host_manager, acme_agreement, django_capture_on_commit_callbacks
):
    client = logged_in(host_manager)
    assert "Import 3 rows" in upload(client, JANUARY_AND_FEBRUARY).text
    batch = ImportBatch.objects.get()
    close("2025-01")

    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/imports/{batch.pk}/confirm/", headers=HTMX)

    batch.refresh_from_db()
    assert batch.status == "failed"
    assert [(error["row"], error["column"], error["message"]) for error in batch.errors] == [
        (2, "date", "2025-01 is closed"), (4, "date", "2025-01 is closed")]
    assert not MetricObservation.objects.exists()
    panel = client.get(f"/imports/{batch.pk}/panel/", headers=HTMX).text
    assert "Nothing was imported" in panel and "2025-01 is closed" in panel


def test_the_upload_of_open_months_is_previewed_and_imported(
    host_manager, acme_agreement, django_capture_on_commit_callbacks
):
    close("2025-01")
    client = logged_in(host_manager)
    assert "Import 2 rows" in upload(client, FEBRUARY_ONLY).text
    batch = ImportBatch.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/imports/{batch.pk}/confirm/", headers=HTMX)
    batch.refresh_from_db()
    assert (batch.status, batch.inserted) == ("succeeded", 2)


# ---- The write itself ----------------------------------------------------------------------


def test_the_write_service_refuses_rows_in_a_closed_month_and_writes_none(
    acme_agreement, kpis
):
    close("2025-01")
    batch = ImportBatch.objects.create(source="command", side="host", status="running")
    rows = pd.DataFrame({
        "agreement_id": [acme_agreement.pk] * 2, "kpi_id": [kpis["revenue"].pk] * 2,
        "side": ["host", "host"], "date": [dt.date(2025, 2, 1), dt.date(2025, 1, 31)],
        "value": [1.0, 2.0],
    })
    with pytest.raises(ClosedMonthWrite) as refused:
        observations_write(rows=rows, batch=batch, row_numbers=np.array([7, 8]))
    assert [error.as_dict() for error in refused.value.errors] == [
        {"row": 8, "column": "date", "value": "2025-01-31", "message": "2025-01 is closed"}]
    assert not MetricObservation.objects.exists()


def test_a_month_closed_between_validation_and_write_fails_the_batch_with_the_row_errors(
    acme_agreement, tmp_path, monkeypatch
):
    from partnerships import services

    validate = services.metric_rows_validate

    def validate_then_close(**arguments):
        validated = validate(**arguments)
        close("2025-01")  # as the closing does, after the rows were checked
        return validated

    monkeypatch.setattr(services, "metric_rows_validate", validate_then_close)
    path = metric_file(tmp_path, JANUARY_AND_FEBRUARY)
    batch = import_batch_create(user=None, path=path, file_name=path.name, source="command")
    result = observations_import(batch_id=batch.pk)

    assert result.status == "failed" and result.rows_total == 3
    assert [(error.row, error.column, error.message) for error in result.errors] == [
        (2, "date", "2025-01 is closed"), (4, "date", "2025-01 is closed")]
    assert not MetricObservation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_import_waiting_for_a_closing_sees_the_month_it_closed(acme_agreement, tmp_path):
    """The closing holds the observation write lock: an import validated before the month
    closed waits for it, then finds the month closed and writes nothing."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's advisory locks")
    path = metric_file(tmp_path, JANUARY_AND_FEBRUARY)
    batch = import_batch_create(user=None, path=path, file_name=path.name, source="command")
    locked, results, failures = threading.Event(), [], []

    def closing():
        try:
            with transaction.atomic():
                lock_observation_writes()
                locked.set()
                _wait_for_a_lock_waiter()
                close("2025-01")
        except Exception as error:  # reported in the test's thread
            failures.append(error)
        finally:
            connection.close()

    def importing():
        try:
            locked.wait(30)
            results.append(observations_import(batch_id=batch.pk))
        except Exception as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=closing), threading.Thread(target=importing)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    (result,) = results
    assert result.status == "failed"
    assert [error.message for error in result.errors] == ["2025-01 is closed"] * 2
    assert not MetricObservation.objects.exists()


def _wait_for_a_lock_waiter(timeout: float = 30) -> None:
    """Until another session waits for an advisory lock (the import, validated, about to write)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                           " AND NOT granted")
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the import never waited for the lock")


# ---- The admin and the program file --------------------------------------------------------


def test_the_admin_cannot_add_change_or_delete_an_observation(
    django_user_model, acme_agreement, kpis
):
    close("2025-01")
    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-02-03", 5)])
    observation = MetricObservation.objects.get()
    host_admin = make_user(django_user_model, "host-admin", Role.HOST_ADMIN)
    host_admin.is_staff = host_admin.is_superuser = True
    host_admin.save()
    client = Client()
    client.force_login(host_admin)

    assert client.get(reverse("admin:partnerships_metricobservation_changelist")).status_code \
        == 200
    assert client.get(reverse("admin:partnerships_metricobservation_add")).status_code == 403
    change = reverse("admin:partnerships_metricobservation_change", args=[observation.pk])
    client.post(change, {"date": "2025-01-03", "value": "6"})
    delete = reverse("admin:partnerships_metricobservation_delete", args=[observation.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert MetricObservation.objects.values_list("date", "value").get() == (
        dt.date(2025, 2, 3), 5.0)


def test_the_program_file_carries_no_observations(kpis):
    document = {
        "partners": [{"slug": "acme", "name": "Acme Corp"}], "kpis": [], "agreements": [],
        "observations": [{"agreement": "ACME-CM-2025", "kpi": "revenue",
                          "date": "2025-01-15", "value": 1}],
    }
    with pytest.raises(ProgramError) as refused:
        program_load(document=document)
    assert "observations" in str(refused.value) and "unknown key" in str(refused.value)
    assert not MetricObservation.objects.exists()
