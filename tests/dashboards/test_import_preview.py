"""The upload's preview tells the truth before confirm: every row error of the import's own
validation, per KPI the values new, changed and unchanged, warnings about values of the side
that is not a KPI's source of truth, and the side of a file without a side column."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from partnerships.models import ImportBatch, MetricObservation, Role
from tests.conftest import make_user, write_observations

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
# The file of the issue: six rows, each wrong in its own way.
SIX_ERRORS = (
    "agreement,kpi,date,value\n"
    "ACME-CM-2025,revenue,2025-13-45,10\n"
    "NO-SUCH-AGREEMENT,revenue,2025-02-15,10\n"
    "ACME-CM-2025,revenue,2099-01-15,10\n"
    "ACME-CM-2025,revenue,2025-03-15,\"12,5%\"\n"
    "ACME-CM-2025,revenue,2025-04-15,\n"
    "ACME-CM-2025,no_such_kpi,2025-05-15,10\n"
)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client: Client, text: str, **fields):
    upload_file = SimpleUploadedFile("metrics.csv", text.encode(), content_type="text/csv")
    return client.post("/imports/upload/", {"file": upload_file, **fields}, headers=HTMX)


def confirm(client: Client, batch: ImportBatch, capture, **fields):
    with capture(execute=True):
        return client.post(f"/imports/{batch.pk}/confirm/", fields, headers=HTMX)


def kpi_counts(body: str) -> list[tuple[str, ...]]:
    """(KPI, values, new, changed, unchanged) of each row of the preview's KPI table."""
    table = body.split('class="table table--stack table--import kpi-checks"')[1]
    table = table.split("</table>")[0]
    return [
        (code, *re.findall(r'class="num">([\d,]+)</td>', row))
        for code, row in re.findall(r"<code>(\w+)</code>(.*?)</tr>", table, re.S)
    ]


def test_the_six_error_file_shows_six_errors_and_no_enabled_confirm(
    host_manager, acme_agreement, django_capture_on_commit_callbacks
):
    client = logged_in(host_manager)
    body = upload(client, SIX_ERRORS).text

    batch = ImportBatch.objects.get()
    assert (batch.status, batch.error_count, batch.confirmed_at) == ("failed", 6, None)
    assert "6 problems in 6 rows" in body and "found when the file was checked" in body
    rows = re.findall(r'data-label="Row" class="num">(\d+)</td>', body)
    assert rows == ["2", "3", "4", "5", "6", "7"]
    for message in ("not a valid calendar date", "unknown agreement code",
                    "the date is in the future", "unit or currency sign", "a value is required",
                    "unknown KPI code"):
        assert message in body
    # The only Import button is disabled and says why; no confirm form is offered.
    assert re.search(r"<button[^>]*disabled[^>]*>Import refused: 6 problems</button>", body)
    assert "Import 6 rows" not in body
    assert f"/imports/{batch.pk}/confirm/" not in body
    assert "Upload a corrected file" in body
    # Confirming anyway imports nothing.
    confirm(client, batch, django_capture_on_commit_callbacks)
    batch.refresh_from_db()
    assert batch.status == "failed" and not MetricObservation.objects.exists()


def test_the_preview_counts_new_changed_and_unchanged_values_per_kpi(
    host_manager, acme_agreement, kpis
):
    write_observations([
        (acme_agreement, kpis["revenue"], "host", "2025-01-15", 40),
        (acme_agreement, kpis["revenue"], "host", "2025-02-15", 50),
        (acme_agreement, kpis["defect_rate"], "partner", "2025-01-15", 4),
    ])
    client = logged_in(host_manager)
    body = upload(client, (
        "agreement,kpi,date,value,side\n"
        "ACME-CM-2025,revenue,2025-01-15,40,host\n"      # unchanged
        "ACME-CM-2025,revenue,2025-02-15,55,host\n"      # changed
        "ACME-CM-2025,revenue,2025-03-15,60,host\n"      # new
        "ACME-CM-2025,revenue,2025-04-15,61,host\n"      # new
        "ACME-CM-2025,defect_rate,2025-01-15,5,partner\n"  # changed
    )).text

    assert "no problem found" in body and "Import 5 rows" in body
    assert kpi_counts(body) == [("defect_rate", "1", "0", "1", "0"),
                                ("revenue", "4", "2", "1", "1")]
    assert "values of" not in body  # every value is of its KPI's source side
    # Nothing was written by the check.
    assert MetricObservation.objects.count() == 3


def test_values_of_the_side_that_is_not_the_source_are_counted_and_warned_about(
    host_manager, acme_agreement
):
    client = logged_in(host_manager)
    body = upload(client, (
        "agreement,kpi,date,value,side\n"
        "ACME-CM-2025,defect_rate,2025-01-15,3,host\n"
        "ACME-CM-2025,defect_rate,2025-02-15,4,host\n"
        "ACME-CM-2025,defect_rate,2025-03-15,4,partner\n"
        "ACME-CM-2025,revenue,2025-03-15,4,host\n"
    )).text
    assert "2 values of defect_rate are host values; the partner&#x27;s count." in body
    assert "of revenue" not in body


def test_a_file_without_a_side_column_offers_the_side_and_the_choice_is_honoured(
    host_manager, acme_agreement, django_capture_on_commit_callbacks
):
    client = logged_in(host_manager)
    body = upload(client, "agreement,kpi,date,value\n"
                          "ACME-CM-2025,defect_rate,2025-01-15,3\n"
                          "ACME-CM-2025,defect_rate,2025-02-15,4\n").text
    batch = ImportBatch.objects.get()
    assert batch.side == "host"
    # Both choices, the uploader's side first chosen, each with what it would mean.
    assert re.search(r'<input type="radio" name="side" value="host"[^>]*checked', body)
    assert 'value="partner"' in body
    assert "As host values: 2 values of defect_rate are host values; the partner&#x27;s " \
           "count." in body
    assert "As partner values:" not in body

    confirm(client, batch, django_capture_on_commit_callbacks, side="partner")

    batch.refresh_from_db()
    assert (batch.status, batch.side, batch.inserted) == ("succeeded", "partner", 2)
    assert set(MetricObservation.objects.values_list("side", flat=True)) == {"partner"}


def test_a_partner_editor_cannot_choose_the_host_side(
    django_user_model, acme, acme_agreement, django_capture_on_commit_callbacks
):
    editor = make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)
    client = logged_in(editor)
    body = upload(client, "agreement,kpi,date,value\nACME-CM-2025,defect_rate,2025-01-15,3\n"
                  ).text
    assert 'name="side"' not in body  # their rows are the partner's: nothing to choose
    batch = ImportBatch.objects.get()
    response = confirm(client, batch, django_capture_on_commit_callbacks, side="host")
    assert response.status_code == 403
    batch.refresh_from_db()
    assert batch.confirmed_at is None and not MetricObservation.objects.exists()
