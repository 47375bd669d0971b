"""The import pages: upload → preview → confirm → progress → result, the error report, the
history and a batch's page, downloads, and who may see and do what."""

import csv
import datetime as dt
import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from dashboards.imports_views import template_date
from partnerships.models import (
    Agreement,
    AgreementKPI,
    AuditEvent,
    ImportBatch,
    MetricObservation,
    ObservationChange,
    Role,
)
from partnerships.services import import_batch_create, observations_import
from tests.conftest import make_agreement, make_user, write_observations

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
GOOD_CSV = (
    "agreement,kpi,date,value,side,note\n"
    "ACME-CM-2025,revenue,2025-01-15,40,host,\n"
    "ACME-CM-2025,revenue,2025-02-15,-5.25,host,refund\n"
    "ACME-CM-2025,defect_rate,2025-01-15,3.5,partner,<b>bold</b>\n"
)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def acme_editor(django_user_model, acme):
    return make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)


@pytest.fixture
def globex_editor(django_user_model, globex):
    return make_user(django_user_model, "globex-editor", Role.PARTNER_EDITOR, globex)


def csv_file(text: str, name: str = "metrics.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client: Client, text: str, *, name: str = "metrics.csv", htmx: bool = True,
           **fields):
    headers = HTMX if htmx else {}
    return client.post("/imports/upload/", {"file": csv_file(text, name), **fields},
                       headers=headers)


def confirm(client: Client, batch: ImportBatch, capture, *, htmx: bool = True):
    """Confirm; the on-commit Celery task (eager in tests) runs when the block ends."""
    with capture(execute=True):
        response = client.post(f"/imports/{batch.pk}/confirm/",
                               headers=HTMX if htmx else {})
    return response


def stored() -> set[tuple]:
    return set(MetricObservation.objects.values_list(
        "agreement__code", "kpi__code", "side", "date", "value"))


# ---- The flow -------------------------------------------------------------------------------


def test_host_uploads_previews_confirms_and_sees_the_result(
    host_manager, acme_agreement, django_capture_on_commit_callbacks
):
    client = logged_in(host_manager)
    page = client.get("/imports/upload/")
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in page.text and 'name="side"' in page.text

    response = upload(client, GOOD_CSV, name="january.csv", side="host")

    assert response.status_code == 200 and "<html" not in response.text
    batch = ImportBatch.objects.get()
    assert (batch.status, batch.progress, batch.file_name) == ("pending", 0, "january.csv")
    assert response["HX-Push-Url"] == f"/imports/{batch.pk}/"
    body = response.text
    assert "Check january.csv before importing" in body
    assert "3 data rows" in body and "comma separated" in body
    assert "<code>agreement</code>" in body and "<code>note</code>" in body
    assert "-5.25" in body and "refund" in body
    # Cells are text, never markup.
    assert "&lt;b&gt;bold&lt;/b&gt;" in body and "<b>bold</b>" not in body
    assert "Import 3 rows" in body and 'hx-trigger' not in body
    assert not MetricObservation.objects.exists()  # nothing before the confirmation

    response = confirm(client, batch, django_capture_on_commit_callbacks)

    # The answer comes before the task runs: a queued panel that polls.
    assert response.status_code == 200 and "<html" not in response.text
    assert f'hx-get="/imports/{batch.pk}/panel/"' in response.text
    assert 'hx-trigger="every 1s"' in response.text and "Queued" in response.text
    batch.refresh_from_db()
    assert batch.status == "succeeded"

    panel = client.get(f"/imports/{batch.pk}/panel/", headers=HTMX).text
    assert "hx-trigger" not in panel  # done: no more polling
    assert "All 3 rows were imported" in panel
    counts = re.findall(r'kpi-card__value">(\d+)</span><span class="kpi-card__label">(\w+)',
                        panel)
    assert counts == [("3", "inserted"), ("0", "updated"), ("0", "unchanged")]
    assert len(stored()) == 3
    steps = list(AuditEvent.objects.filter(action="import").values_list("detail__step",
                                                                        flat=True))
    assert sorted(steps) == ["confirmed", "finished", "uploaded"]


def test_running_batch_panel_shows_its_progress_and_polls(host_manager, acme_agreement):
    batch = import_batch_create(user=host_manager, file_name="m.csv", source="upload",
                                uploaded_file=csv_file(GOOD_CSV))
    ImportBatch.objects.filter(pk=batch.pk).update(status="running", progress=42)
    panel = logged_in(host_manager).get(f"/imports/{batch.pk}/panel/", headers=HTMX).text
    assert 'hx-trigger="every 1s"' in panel
    assert '<progress max="100" value="42"' in panel and "42 %" in panel


def test_without_javascript_every_step_is_a_page(
    host_manager, acme_agreement, django_capture_on_commit_callbacks
):
    client = logged_in(host_manager)
    response = upload(client, GOOD_CSV, htmx=False)
    batch = ImportBatch.objects.get()
    assert response.status_code == 302 and response.url == f"/imports/{batch.pk}/"

    page = client.get(response.url).text
    assert "<html" in page and "Check metrics.csv before importing" in page
    assert f'action="/imports/{batch.pk}/confirm/"' in page

    response = confirm(client, batch, django_capture_on_commit_callbacks, htmx=False)
    assert response.status_code == 302 and response.url == f"/imports/{batch.pk}/"
    page = client.get(response.url).text
    assert "All 3 rows were imported" in page and "hx-trigger" not in page


def test_second_import_counts_updated_and_unchanged_and_lists_the_changes(
    host_manager, acme_agreement, kpis, django_capture_on_commit_callbacks
):
    first, _ = write_observations([
        (acme_agreement, kpis["revenue"], "host", "2025-01-15", 40),
        (acme_agreement, kpis["revenue"], "host", "2025-02-15", 10),
    ])
    client = logged_in(host_manager)
    upload(client, GOOD_CSV)
    batch = ImportBatch.objects.get(source="upload")
    confirm(client, batch, django_capture_on_commit_callbacks)
    batch.refresh_from_db()
    assert (batch.inserted, batch.updated, batch.unchanged) == (1, 1, 1)

    page = client.get(f"/imports/{batch.pk}/").text
    assert "Values this import changed <span class=\"muted\">(1)</span>" in page
    change = ObservationChange.objects.get()
    assert (change.old_value, change.new_value) == (10.0, -5.25)
    assert "10.0</td>" in page and "→ -5.25" in page and ">manager<" in page
    # Added: only the new key, not the updated or unchanged ones.
    assert "Values this import added <span class=\"muted\">(1)</span>" in page
    assert "defect_rate" in page


def test_xlsx_preview_names_the_sheet_and_notes_the_other_sheets(host_manager, acme_agreement,
                                                                  tmp_path):
    import datetime as dt

    from tests.partnerships.metric_files.xlsx import write_xlsx

    path = write_xlsx(tmp_path / "q1.xlsx", {
        "Metrics": [["Agreement", "KPI", "Date", "Value"],
                    ["ACME-CM-2025", "revenue", dt.date(2025, 1, 31), 1250.5]],
        "Notes": [["ignored"]],
    })
    upload_file = SimpleUploadedFile("q1.xlsx", path.read_bytes())
    response = logged_in(host_manager).post("/imports/upload/", {"file": upload_file},
                                            headers=HTMX)
    body = response.text
    assert "Check q1.xlsx before importing" in body
    assert "XLSX" in body and "sheet “Metrics”" in body
    assert "The workbook has 2 sheets" in body
    assert "2025-01-31" in body and "1250.5" in body
    assert "(no side or note column)" in body


def test_the_result_still_says_which_sheet_was_read(host_manager, acme_agreement, tmp_path,
                                                    django_capture_on_commit_callbacks):
    import datetime as dt

    from tests.partnerships.metric_files.xlsx import write_xlsx

    path = write_xlsx(tmp_path / "q1.xlsx", {
        "Metrics": [["Agreement", "KPI", "Date", "Value"],
                    ["ACME-CM-2025", "revenue", dt.date(2025, 1, 31), 1250.5]],
        "Notes": [["ignored"]],
    })
    client = logged_in(host_manager)
    client.post("/imports/upload/", {"file": SimpleUploadedFile("q1.xlsx", path.read_bytes())},
                headers=HTMX)
    batch = ImportBatch.objects.get()
    assert batch.confirmed_at is None
    confirm(client, batch, django_capture_on_commit_callbacks)
    batch.refresh_from_db()
    assert batch.status == "succeeded" and batch.confirmed_at is not None
    assert any("2 sheets" in note for note in batch.notes)
    page = client.get(f"/imports/{batch.pk}/").text
    assert "The workbook has 2 sheets" in page
    finished = AuditEvent.objects.filter(action="import", detail__step="finished").get()
    assert (finished.user, finished.detail["status"], finished.detail["inserted"]) == (
        host_manager, "succeeded", 1)


# ---- Bad files --------------------------------------------------------------------------------


BAD_CSV = (
    "agreement,kpi,date,value,note\n"
    "ACME-CM-2025,revenue,2025-01-15,=1+2,fine\n"
    "ACME-CM-2025,revenue,2025-01-16,12,\n"
    'ACME-CM-2025,revenue,not-a-date,5,"<script>alert(1)</script>"\n'
    "ACME-CM-2025,nope,2025-01-17,5,\n"
)


def test_a_bad_file_shows_every_error_and_its_csv_report(
    host_manager, acme_agreement, django_capture_on_commit_callbacks
):
    client = logged_in(host_manager)
    # The errors are listed as soon as the file is read, before any confirmation.
    uploaded = upload(client, BAD_CSV).text
    assert "not a date in ISO format" in uploaded and "unknown KPI code" in uploaded
    batch = ImportBatch.objects.get()
    assert batch.status == "failed" and batch.confirmed_at is None
    response = confirm(client, batch, django_capture_on_commit_callbacks)
    assert response.status_code == 200

    panel = client.get(f"/imports/{batch.pk}/panel/", headers=HTMX).text
    assert "Nothing was imported from metrics.csv" in panel
    assert "3 problems in 4 rows" in panel and "hx-trigger" not in panel
    assert f'href="/imports/{batch.pk}/errors.csv"' in panel
    assert "Download the error report (CSV)" in panel
    assert "not a date in ISO format" in panel and "unknown KPI code" in panel
    assert "<script>" not in panel
    assert not MetricObservation.objects.exists()

    report = client.get(f"/imports/{batch.pk}/errors.csv")
    assert report["Content-Type"] == "text/csv; charset=utf-8"
    assert report["Content-Disposition"] == (
        f'attachment; filename="import-{batch.pk}-errors.csv"')
    rows = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert rows[0] == ["row", "column", "value", "message"]
    assert [row[:3] for row in rows[1:]] == [
        ["2", "value", "'=1+2"], ["4", "date", "not-a-date"], ["5", "kpi", "nope"],
    ]


def test_an_unreadable_file_fails_at_once_with_its_errors(host_manager, acme_agreement):
    client = logged_in(host_manager)
    response = upload(client, "agreement,kpi,value\nACME-CM-2025,revenue,3\n")
    batch = ImportBatch.objects.get()
    assert batch.status == "failed" and batch.error_count >= 1
    assert "Nothing was imported" in response.text and "date" in response.text
    assert "Import 1 row" not in response.text  # nothing to confirm
    assert client.get(f"/imports/{batch.pk}/errors.csv").status_code == 200


def test_an_empty_file_is_refused_at_once(host_manager):
    response = upload(logged_in(host_manager), "")
    # The form refuses an empty upload before any batch exists.
    assert response.status_code == 200 and "empty" in response.text
    assert not ImportBatch.objects.exists()


def test_partner_editor_cannot_import_another_partners_agreement(
    acme_editor, acme_agreement, globex_agreement, django_capture_on_commit_callbacks
):
    client = logged_in(acme_editor)
    page = client.get("/imports/upload/").text
    assert 'name="side"' not in page  # a partner imports its own side only
    upload(client, "agreement,kpi,date,value\n"
                   "GLOBEX-REF-2025,defect_rate,2025-01-15,3\n"
                   "NO-SUCH-CODE,defect_rate,2025-01-15,3\n"
                   "ACME-CM-2025,defect_rate,2025-01-15,2\n")
    batch = ImportBatch.objects.get()
    assert (batch.side, batch.partner_id) == ("partner", acme_editor.membership.partner_id)
    confirm(client, batch, django_capture_on_commit_callbacks)

    panel = client.get(f"/imports/{batch.pk}/panel/", headers=HTMX).text
    assert "2 problems in 3 rows" in panel
    # Another partner's agreement reads exactly like one that does not exist.
    assert panel.count("not one of Acme Corp&#x27;s agreements") == 2
    assert not MetricObservation.objects.exists()


def test_partner_editor_imports_their_own_side(
    acme_editor, acme_agreement, django_capture_on_commit_callbacks
):
    client = logged_in(acme_editor)
    upload(client, "agreement,kpi,date,value\nACME-CM-2025,defect_rate,2025-01-15,2.5\n")
    confirm(client, ImportBatch.objects.get(), django_capture_on_commit_callbacks)
    assert stored() == {("ACME-CM-2025", "defect_rate", "partner",
                         ImportBatch.objects.get().observations.get().date, 2.5)}


# ---- Cancel, confirm once ---------------------------------------------------------------------


def test_cancel_discards_the_pending_upload_and_its_file(host_manager, acme_agreement,
                                                         django_capture_on_commit_callbacks):
    client = logged_in(host_manager)
    upload(client, GOOD_CSV)
    batch = ImportBatch.objects.get()
    path = batch.file.path
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/imports/{batch.pk}/cancel/", headers=HTMX)
    assert response.status_code == 200 and "was cancelled" in response.text
    assert 'name="file"' in response.text  # the form again, for another file
    assert response["HX-Push-Url"] == "/imports/upload/"
    assert not ImportBatch.objects.exists()
    import os

    assert not os.path.exists(path)
    assert AuditEvent.objects.filter(detail__step="cancelled").exists()


def test_a_confirmed_import_cannot_be_cancelled_or_confirmed_again(
    host_manager, acme_agreement
):
    client = logged_in(host_manager)
    upload(client, GOOD_CSV)
    batch = ImportBatch.objects.get()
    # Confirmed, and its task not run yet (the on-commit callback is never executed here).
    client.post(f"/imports/{batch.pk}/confirm/", headers=HTMX)

    again = client.post(f"/imports/{batch.pk}/confirm/", headers=HTMX)
    assert "confirmed or cancelled already" in again.text
    cancel = client.post(f"/imports/{batch.pk}/cancel/", headers=HTMX)
    assert "cannot be cancelled any more" in cancel.text
    assert ImportBatch.objects.get().confirmed_at is not None
    assert AuditEvent.objects.filter(detail__step="confirmed").count() == 1


def test_only_the_uploader_confirms(host_manager, django_user_model, acme_agreement):
    colleague = make_user(django_user_model, "colleague", Role.HOST_MANAGER)
    upload(logged_in(host_manager), GOOD_CSV)
    batch = ImportBatch.objects.get()
    client = logged_in(colleague)
    page = client.get(f"/imports/{batch.pk}/").text
    assert "Waiting for manager to confirm" not in page  # host may cancel, so buttons show
    assert f"/imports/{batch.pk}/confirm/" not in page
    response = client.post(f"/imports/{batch.pk}/confirm/", headers=HTMX)
    assert "Only the person who uploaded" in response.text
    assert ImportBatch.objects.get().confirmed_at is None


# ---- Who may do what ---------------------------------------------------------------------------


def test_partner_viewer_may_not_upload_and_is_told_why(acme_viewer, acme_agreement):
    client = logged_in(acme_viewer)
    for response in (client.get("/imports/upload/"), upload(client, GOOD_CSV),
                     client.get("/account/api-tokens/")):
        assert response.status_code == 403
        assert "Partner viewers may not import metrics; ask a partner editor." in response.text
    assert not ImportBatch.objects.exists()
    history = client.get("/imports/")
    assert history.status_code == 200
    assert 'href="/imports/upload/"' not in history.text
    assert 'href="/imports/"' in history.text  # the nav link: viewers see the history


def test_anonymous_visitors_are_sent_to_log_in(client):
    for url in ("/imports/", "/imports/upload/", "/imports/1/", "/imports/1/errors.csv",
                "/account/api-tokens/"):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith("/login/")


def test_upload_needs_the_csrf_token(host_manager, acme_agreement):
    client = Client(enforce_csrf_checks=True)
    client.force_login(host_manager)
    assert upload(client, GOOD_CSV).status_code == 403
    assert not ImportBatch.objects.exists()


def _batch_of(user, name: str, text: str = GOOD_CSV) -> ImportBatch:
    batch = import_batch_create(user=user, file_name=name, source="upload",
                                uploaded_file=csv_file(text, name))
    observations_import(batch_id=batch.pk)
    batch.refresh_from_db()
    return batch


def test_history_and_batch_pages_are_scoped_to_the_partner(
    acme_editor, globex_editor, acme_viewer, acme_agreement, globex_agreement
):
    acme_batch = _batch_of(acme_editor, "acme-march.csv",
                           "agreement,kpi,date,value\nACME-CM-2025,defect_rate,2025-03-01,2\n")
    globex_batch = _batch_of(globex_editor, "globex-secret.csv",
                             "agreement,kpi,date,value\nGLOBEX-REF-2025,defect_rate,"
                             "2025-03-01,=x\n")
    assert (acme_batch.status, globex_batch.status) == ("succeeded", "failed")

    for user in (acme_viewer, acme_editor):
        client = logged_in(user)
        history = client.get("/imports/").text
        assert "acme-march.csv" in history and "globex-secret" not in history
        assert "1 import" in history
        for suffix in ("", "panel/", "file/", "errors.csv"):
            assert client.get(f"/imports/{globex_batch.pk}/{suffix}").status_code == 404
        assert client.get(f"/imports/{acme_batch.pk}/file/").status_code == 200
    client = logged_in(acme_editor)
    for action in ("confirm", "cancel"):
        assert client.post(f"/imports/{globex_batch.pk}/{action}/").status_code == 404


def test_host_sees_every_batch_with_its_partner_and_filters_by_status(
    host_manager, acme_editor, globex_editor, acme_agreement, globex_agreement
):
    _batch_of(acme_editor, "acme.csv",
              "agreement,kpi,date,value\nACME-CM-2025,defect_rate,2025-03-01,2\n")
    failed = _batch_of(globex_editor, "globex.csv", "agreement,kpi,date,value\nX,y,z,1\n")
    client = logged_in(host_manager)
    history = client.get("/imports/").text
    assert "acme.csv" in history and "globex.csv" in history and "Globex" in history
    assert f'title="{failed.sha256}">{failed.sha256[:12]}…</code>' in history

    only_failed = client.get("/imports/", {"status": "failed"}, headers=HTMX).text
    assert "<html" not in only_failed and 'id="history-results"' in only_failed
    assert "globex.csv" in only_failed and "acme.csv" not in only_failed


def test_pages_that_answer_htmx_with_a_panel_vary_on_hx_request(host_manager, acme_agreement):
    batch = _batch_of(host_manager, "acme.csv",
                      "agreement,kpi,date,value\nACME-CM-2025,defect_rate,2025-03-01,2\n")
    client = logged_in(host_manager)
    for url in ("/imports/", "/imports/upload/", f"/imports/{batch.pk}/",
                f"/imports/{batch.pk}/panel/"):
        for headers in ({}, HTMX):
            response = client.get(url, headers=headers)
            assert response.status_code == 200, url
            assert response.headers["Vary"].count("HX-Request") == 1, url


def test_history_is_paginated(host_manager):
    for number in range(27):
        ImportBatch.objects.create(source="command", side="host", status="succeeded",
                                   file_name=f"file-{number:02d}.csv", user=host_manager)
    client = logged_in(host_manager)
    first = client.get("/imports/").text
    assert "27 imports" in first and "page 1 of 2" in first
    assert "file-26.csv" in first and "file-01.csv" not in first
    second = client.get("/imports/", {"page": 2}).text
    assert "file-01.csv" in second and "file-00.csv" in second and "file-26.csv" not in second


def test_original_file_downloads_as_uploaded(acme_editor, acme_agreement):
    text = "agreement,kpi,date,value\nACME-CM-2025,defect_rate,2025-03-01,2\n"
    batch = _batch_of(acme_editor, "acme <march>.csv", text)
    response = logged_in(acme_editor).get(f"/imports/{batch.pk}/file/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert b"".join(response.streaming_content) == text.encode()


def test_batch_without_stored_file_sends_back_to_its_page(host_manager):
    batch = ImportBatch.objects.create(source="command", side="host", status="succeeded")
    response = logged_in(host_manager).get(f"/imports/{batch.pk}/file/")
    assert response.status_code == 302 and response.url == f"/imports/{batch.pk}/"


def test_nav_shows_imports_to_every_member(host_manager, acme_viewer):
    for user in (host_manager, acme_viewer):
        page = logged_in(user).get("/").text
        assert '<a href="/imports/">Imports</a>' in page


# ---- Reading in a task, the broker down ------------------------------------------------------


def test_upload_only_stores_the_file_and_the_panel_polls_until_a_task_has_read_it(
    host_manager, acme_agreement, monkeypatch
):
    from dashboards import imports_views
    from partnerships.tasks import import_batch_read_run

    monkeypatch.setattr(imports_views, "import_batch_read_start", lambda batch: None)
    client = logged_in(host_manager)
    response = upload(client, GOOD_CSV, name="big.csv")
    batch = ImportBatch.objects.get()
    assert batch.preview is None and batch.status == "pending"
    assert "Reading big.csv" in response.text and 'hx-trigger="every 1s"' in response.text
    assert "Cancel and discard the file" in response.text and "Import 3 rows" not in response.text
    refused = client.post(f"/imports/{batch.pk}/confirm/", headers=HTMX)
    assert "still being read" in refused.text
    assert ImportBatch.objects.get().confirmed_at is None

    assert import_batch_read_run(batch.pk) == "read"
    assert import_batch_read_run(batch.pk) == "skipped"  # a second delivery reads nothing
    panel = client.get(f"/imports/{batch.pk}/panel/", headers=HTMX).text
    assert "Check big.csv before importing" in panel and "Import 3 rows" in panel
    assert "hx-trigger" not in panel


def test_pages_show_the_stored_preview_and_never_read_the_file_again(host_manager,
                                                                     acme_agreement):
    client = logged_in(host_manager)
    upload(client, GOOD_CSV, name="january.csv")
    batch = ImportBatch.objects.get()
    assert batch.preview["total_rows"] == 3 and batch.rows_total == 3
    # Were a view to read the file, this would show in the page (or fail it).
    with open(batch.file.path, "w") as stored_file:
        stored_file.write("not,a,metric,file\n")
    for url in (f"/imports/{batch.pk}/", f"/imports/{batch.pk}/panel/"):
        page = client.get(url, headers=HTMX if url.endswith("panel/") else {}).text
        assert "3 data rows" in page and "-5.25" in page and "refund" in page


def test_cancel_while_the_file_is_read(host_manager, acme_agreement, monkeypatch,
                                       django_capture_on_commit_callbacks):
    from dashboards import imports_views
    from partnerships.tasks import import_batch_read_run

    monkeypatch.setattr(imports_views, "import_batch_read_start", lambda batch: None)
    client = logged_in(host_manager)
    upload(client, GOOD_CSV)
    batch = ImportBatch.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/imports/{batch.pk}/cancel/", headers=HTMX)
    assert "was cancelled" in response.text and not ImportBatch.objects.exists()
    assert import_batch_read_run(batch.pk) == "skipped"  # the task finds nothing to read


@pytest.fixture
def broker_down():
    """The task queue pointed at a port nobody listens on, tasks no longer run in-process."""
    import socket

    from config.celery import app

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    before = app.conf.broker_url, app.conf.task_always_eager
    app.conf.broker_url, app.conf.task_always_eager = f"redis://127.0.0.1:{port}/0", False
    yield
    app.conf.broker_url, app.conf.task_always_eager = before


@pytest.mark.django_db(transaction=True)
def test_confirm_with_the_broker_down_says_so_and_loses_nothing(host_manager, acme_agreement,
                                                                request):
    import time

    client = logged_in(host_manager)
    upload(client, GOOD_CSV)  # read in-process, before the broker goes
    batch = ImportBatch.objects.get()
    request.getfixturevalue("broker_down")
    started = time.monotonic()
    response = client.post(f"/imports/{batch.pk}/confirm/", headers=HTMX)
    elapsed = time.monotonic() - started
    plain = client.post(f"/imports/{batch.pk}/confirm/")

    # htmx swaps only 2xx answers: the panel comes back as 200, saying what happened.
    assert response.status_code == 200 and elapsed < 5
    assert ("The task queue is unavailable; nothing was started — try again shortly"
            in response.text)
    assert "Import 3 rows" in response.text and "hx-trigger" not in response.text
    batch.refresh_from_db()
    assert (batch.status, batch.confirmed_at, batch.progress) == ("pending", None, 0)
    assert batch.file and batch.file.storage.exists(batch.file.name)
    assert plain.status_code == 302
    assert "The task queue is unavailable" in client.get(plain.url).text
    steps = list(AuditEvent.objects.filter(action="import").order_by("pk")
                 .values_list("detail__step", flat=True))
    assert steps == ["uploaded", "confirmed", "not queued", "confirmed", "not queued"]
    assert not MetricObservation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_once_the_broker_is_back_the_same_confirmation_imports(host_manager, acme_agreement,
                                                               request):
    from config.celery import app

    client = logged_in(host_manager)
    upload(client, GOOD_CSV)
    batch = ImportBatch.objects.get()
    before = app.conf.broker_url, app.conf.task_always_eager
    request.getfixturevalue("broker_down")
    client.post(f"/imports/{batch.pk}/confirm/", headers=HTMX)
    app.conf.broker_url, app.conf.task_always_eager = before
    response = client.post(f"/imports/{batch.pk}/confirm/", headers=HTMX)
    assert response.status_code == 200
    batch.refresh_from_db()
    assert batch.status == "succeeded" and len(stored()) == 3


def test_upload_with_the_broker_down_keeps_the_file_to_be_read_later(
    host_manager, acme_agreement, broker_down
):
    response = upload(logged_in(host_manager), GOOD_CSV, name="march.csv")
    assert response.status_code == 200
    assert "The task queue is unavailable, so reading your file waits" in response.text
    assert "Reading march.csv" in response.text and 'hx-trigger="every 1s"' in response.text
    batch = ImportBatch.objects.get()
    assert (batch.status, batch.preview) == ("pending", None)
    assert batch.file.storage.exists(batch.file.name)  # read by the maintenance task later


# ---- The metric file template -----------------------------------------------------------------


def template_of(client: Client, code: str) -> list[list[str]]:
    response = client.get("/imports/template.csv", {"agreement": code})
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")  # spreadsheet programs read it as UTF-8
    return list(csv.reader(io.StringIO(body[1:])))


def one_time_values_left_out(page: str) -> str:
    """The page without its CSP nonces and CSRF tokens (long random words), which differ on
    every answer."""
    return re.sub(r"[A-Za-z0-9_-]{20,}", "", page)


def last_month_end() -> str:
    return (timezone.localdate().replace(day=1) - dt.timedelta(days=1)).isoformat()


def test_the_hosts_template_has_every_kpi_on_its_source_side_and_an_example_row(
        host_manager, acme_agreement):
    client = logged_in(host_manager)
    response = client.get("/imports/template.csv", {"agreement": "ACME-CM-2025"})
    assert response["Content-Disposition"] == (
        'attachment; filename="ACME-CM-2025-metrics-template.csv"')
    day = last_month_end()
    assert template_of(client, "ACME-CM-2025") == [
        ["agreement", "kpi", "date", "value", "side", "note"],
        ["ACME-CM-2025", "defect_rate", day, "2", "partner",
         "Example: the monthly target (%). Put the actual figure of the month in its place."],
        ["ACME-CM-2025", "revenue", day, "", "host", ""],
    ]
    events = AuditEvent.objects.filter(action="export", user=host_manager)
    assert [event.detail for event in events] == [{"agreement": "ACME-CM-2025", "rows": 2}] * 2


def test_a_partner_editors_template_has_only_the_kpis_its_side_reports(
        acme_editor, acme_agreement):
    rows = template_of(logged_in(acme_editor), "ACME-CM-2025")
    assert [(row[1], row[4]) for row in rows[1:]] == [("defect_rate", "partner")]


def test_another_partners_agreement_has_no_template_as_a_missing_one(
        acme_editor, acme_viewer, acme_agreement, globex_agreement):
    client = logged_in(acme_editor)
    other = client.get("/imports/template.csv", {"agreement": "GLOBEX-REF-2025"})
    missing = client.get("/imports/template.csv", {"agreement": "NO-SUCH-1"})
    nothing = client.get("/imports/template.csv")
    assert other.status_code == missing.status_code == nothing.status_code == 404
    assert one_time_values_left_out(other.text).replace("GLOBEX-REF-2025", "") == \
        one_time_values_left_out(missing.text).replace("NO-SUCH-1", "")
    # Partner viewers do not import, so they get no template either.
    viewer = logged_in(acme_viewer).get("/imports/template.csv", {"agreement": "ACME-CM-2025"})
    assert viewer.status_code == 403
    assert not AuditEvent.objects.filter(action="export").exists()


def test_template_text_cells_are_escaped_and_numbers_left_as_numbers(host_manager, acme, kpis):
    agreement = make_agreement(acme, "=HYPERLINK(1)", kpis)
    AgreementKPI.objects.filter(agreement=agreement, kpi__code="defect_rate").update(
        target=-5, floor=-1)
    rows = template_of(logged_in(host_manager), agreement.code)
    assert rows[1][:4] == ["'=HYPERLINK(1)", "defect_rate", last_month_end(), "-5"]


@pytest.mark.parametrize(("start", "end", "expected"), [
    ("2020-01-01", None, "2026-11-30"),
    ("2020-01-01", "2025-06-15", "2025-06-15"),
    ("2026-12-02", None, "2026-12-02"),
])
def test_the_template_is_dated_within_the_agreement(start, end, expected):
    agreement = Agreement(start_date=dt.date.fromisoformat(start),
                          end_date=end and dt.date.fromisoformat(end))
    day = template_date(agreement=agreement, today=dt.date(2026, 12, 6))
    assert day.isoformat() == expected


def test_a_template_uploaded_untouched_is_refused_and_once_filled_in_imports(
        host_manager, acme_agreement, django_capture_on_commit_callbacks):
    client = logged_in(host_manager)
    rows = template_of(client, "ACME-CM-2025")
    text = "\n".join(",".join(row) for row in rows) + "\n"
    upload(client, text, name="template.csv")
    confirm(client, ImportBatch.objects.get(), django_capture_on_commit_callbacks)
    assert ImportBatch.objects.get().status == "failed"
    assert not MetricObservation.objects.exists()

    rows[1][3], rows[1][5] = "3.5", ""
    rows[2][3] = "1200"
    upload(client, "\n".join(",".join(row) for row in rows) + "\n", name="filled.csv")
    confirm(client, ImportBatch.objects.latest("pk"), django_capture_on_commit_callbacks)
    day = dt.date.fromisoformat(last_month_end())
    assert stored() == {("ACME-CM-2025", "defect_rate", "partner", day, 3.5),
                        ("ACME-CM-2025", "revenue", "host", day, 1200.0)}


def test_the_upload_page_offers_a_template_for_each_agreement_of_the_uploader(
        host_manager, acme_editor, acme_agreement, globex_agreement):
    page = logged_in(host_manager).get("/imports/upload/").text
    assert '<form method="get" action="/imports/template.csv"' in page
    # The host's agreements by partner.
    assert re.search(r'<optgroup label="Acme Corp">\s*<option value="ACME-CM-2025">'
                     r"ACME-CM-2025 — 2 KPIs</option>\s*</optgroup>", page)
    assert '<option value="GLOBEX-REF-2025">GLOBEX-REF-2025 — 2 KPIs</option>' in page

    page = logged_in(acme_editor).get("/imports/upload/").text
    assert '<option value="ACME-CM-2025">ACME-CM-2025 — 1 KPI</option>' in page
    assert "GLOBEX" not in page and "<optgroup" not in page


def test_an_agreement_without_a_kpi_of_the_uploaders_side_cannot_be_chosen(
        acme_editor, acme_agreement):
    AgreementKPI.objects.filter(agreement=acme_agreement, kpi__code="defect_rate").delete()
    page = logged_in(acme_editor).get("/imports/upload/").text
    assert "None of your agreements has a KPI that your side reports" in page
    assert "/imports/template.csv" not in page
