"""The metric import pipeline: files and API records in, all rows or none out, every error named."""

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from partnerships.importers import RowError, import_errors_csv, spreadsheet_escape
from partnerships.models import (
    AgreementKPI,
    ImportBatch,
    KPIDefinition,
    MetricObservation,
    ObservationChange,
    Role,
)
from partnerships.services import (
    IdempotencyConflict,
    ImportNotAllowed,
    import_batch_create,
    metric_file_preview,
    observations_import,
    observations_import_records,
)
from partnerships.tasks import import_batch_enqueue, import_batch_run
from tests.conftest import make_user
from tests.partnerships.metric_files.xlsx import ErrorValue, Formula, write_xlsx

pytestmark = pytest.mark.django_db

CORPUS = Path(__file__).parent / "metric_files"
GOOD_ROWS = {
    ("ACME-CM-2025", "revenue", "host", dt.date(2025, 1, 15), 40.0, ""),
    ("ACME-CM-2025", "revenue", "host", dt.date(2025, 2, 15), -5.25, "refund"),
    ("ACME-CM-2025", "defect_rate", "partner", dt.date(2025, 1, 15), 3.5, "=SUM(A1:A9)"),
    ("ACME-CM-2025", "defect_rate", "partner", dt.date(2025, 2, 15), 0.1, "+1, -2 and @here"),
}


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def acme_editor(django_user_model, acme):
    return make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)


@pytest.fixture
def training(kpis):
    """A KPI of the library that no agreement uses."""
    return KPIDefinition.objects.create(
        code="training", name="Training completion", unit="%", category="operational",
        aggregation="last", source="partner",
    )


def import_file(path: Path, *, user=None, side=None, file_name: str | None = None,
                progress=None):
    batch = import_batch_create(user=user, path=path, file_name=file_name or path.name,
                                source="upload", side=side)
    return observations_import(batch_id=batch.pk, progress=progress)


def stored_rows() -> set[tuple]:
    return set(MetricObservation.objects.values_list(
        "agreement__code", "kpi__code", "side", "date", "value", "note"
    ))


def written() -> tuple[int, int]:
    return MetricObservation.objects.count(), ObservationChange.objects.count()


def assert_rejected(result, *fragments: str, before: tuple[int, int] = (0, 0)) -> None:
    """Failed, nothing written, and every fragment in some error message."""
    assert result.status == "failed"
    assert written() == before
    batch = ImportBatch.objects.get(pk=result.batch_id)
    assert batch.status == "failed" and batch.error_count == result.error_count >= 1
    assert (batch.inserted, batch.updated, batch.unchanged) == (0, 0, 0)
    messages = " | ".join(error.message for error in result.errors)
    for fragment in fragments:
        assert fragment in messages


def errors_by_row(result) -> dict[int | None, list[tuple[str | None, str]]]:
    found: dict[int | None, list[tuple[str | None, str]]] = {}
    for error in result.errors:
        found.setdefault(error.row, []).append((error.column, error.message))
    return found


def make_file(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# --- good files --------------------------------------------------------------------------


def test_csv_import_inserts_every_row_and_keeps_formula_like_notes_as_text(acme_agreement):
    progress = []
    result = import_file(CORPUS / "good.csv", progress=progress.append)
    assert result.ok, result.errors
    assert (result.rows_total, result.inserted, result.updated, result.unchanged) == (4, 4, 0, 0)
    assert stored_rows() == GOOD_ROWS
    batch = ImportBatch.objects.get(pk=result.batch_id)
    assert (batch.status, batch.progress, batch.side, batch.partner) == (
        "succeeded", 100, "host", None
    )
    assert len(batch.sha256) == 64 and batch.file.read() == (CORPUS / "good.csv").read_bytes()
    assert progress == sorted(progress) and progress[-1] == 100


@pytest.mark.parametrize("name", ["good_semicolon_bom.csv", "good_tab.tsv"])
def test_semicolon_bom_and_tab_files_give_the_same_observations(acme_agreement, name):
    result = import_file(CORPUS / name)
    assert result.ok, result.errors
    assert stored_rows() == GOOD_ROWS


def test_preview_detects_format_delimiter_and_encoding_and_counts_rows():
    preview = metric_file_preview(path=CORPUS / "good_semicolon_bom.csv",
                                  file_name="good_semicolon_bom.csv", max_rows=2)
    assert preview.ok
    assert (preview.format, preview.delimiter, preview.encoding) == ("csv", ";", "utf-8 with BOM")
    assert preview.columns == ["agreement", "kpi", "date", "value", "side", "note"]
    assert preview.rows == [
        ["ACME-CM-2025", "revenue", "2025-01-15", "40", "host", ""],
        ["ACME-CM-2025", "revenue", "2025-02-15", "-5.25", "host", "refund"],
    ]
    assert preview.total_rows == 4


def test_preview_reports_structural_errors_without_raising():
    preview = metric_file_preview(path=CORPUS / "missing_column.csv",
                                  file_name="missing_column.csv")
    assert not preview.ok
    assert "missing column value" in preview.errors[0].message


def test_header_is_case_insensitive_and_trimmed_and_blank_lines_are_skipped(acme_agreement):
    result = import_file(CORPUS / "header_case_blank_line.csv")
    assert result.ok, result.errors
    assert {(row[3], row[4]) for row in stored_rows()} == {
        (dt.date(2025, 1, 15), 40.0), (dt.date(2025, 1, 20), 10.0)
    }


def test_second_import_of_same_file_changes_nothing(acme_agreement):
    first = import_file(CORPUS / "good.csv")
    second = import_file(CORPUS / "good.csv")
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 4)
    assert not ObservationChange.objects.exists()
    assert set(MetricObservation.objects.values_list("batch_id", flat=True)) == {first.batch_id}


def test_changed_value_replaces_old_one_and_records_the_change(acme_agreement, host_manager):
    first = import_file(CORPUS / "good.csv")
    second = import_file(CORPUS / "changed_value.csv", user=host_manager)
    assert (second.inserted, second.updated, second.unchanged) == (0, 1, 1)
    observation = MetricObservation.objects.get(kpi__code="revenue", date="2025-01-15")
    assert (observation.value, observation.batch_id) == (55.5, second.batch_id)
    assert observation.recorded_by == host_manager
    change = ObservationChange.objects.get()
    assert (change.old_value, change.new_value) == (40, 55.5)
    assert (change.old_batch_id, change.batch_id) == (first.batch_id, second.batch_id)
    assert (change.changed_by, change.observation) == (host_manager, observation)
    assert (change.side, change.date) == ("host", dt.date(2025, 1, 15))


def test_xlsx_and_csv_give_the_same_result(acme_agreement, tmp_path):
    path = write_xlsx(tmp_path / "good.xlsx", {"Metrics": [
        ["Agreement", "KPI", "Date", "Value", "Side", "Note"],
        ["ACME-CM-2025", "revenue", dt.date(2025, 1, 15), 40, "host", None],
        ["ACME-CM-2025", "revenue", "2025-02-15", -5.25, "host", "refund"],
        ["ACME-CM-2025", "defect_rate", dt.datetime(2025, 1, 15), 3.5, "partner", "=SUM(A1:A9)"],
        ["ACME-CM-2025", "defect_rate", dt.date(2025, 2, 15), 0.1, "partner",
         "+1, -2 and @here"],
    ]})
    from_xlsx = import_file(path)
    assert from_xlsx.ok, from_xlsx.errors
    assert stored_rows() == GOOD_ROWS
    from_csv = import_file(CORPUS / "good.csv")
    assert (from_csv.rows_total, from_csv.unchanged) == (4, 4)
    assert not ObservationChange.objects.exists()


def test_xlsx_with_several_sheets_reads_the_first_and_says_which(acme_agreement, tmp_path):
    path = write_xlsx(tmp_path / "sheets.xlsx", {
        "Data": [["agreement", "kpi", "date", "value"],
                 ["ACME-CM-2025", "revenue", dt.date(2025, 1, 15), 1]],
        "Notes": [["anything"]],
        "Lookup": [["x", 1]],
    })
    preview = metric_file_preview(path=path, file_name="sheets.xlsx")
    assert (preview.format, preview.sheet, preview.total_rows) == ("xlsx", "Data", 1)
    assert preview.rows == [["ACME-CM-2025", "revenue", "2025-01-15", "1"]]
    result = import_file(path)
    assert result.ok and result.inserted == 1
    assert result.notes == [
        "The workbook has 3 sheets; reading the first, 'Data' (not read: 'Notes', 'Lookup')."
    ]


def test_host_may_set_the_default_side_to_partner(acme_agreement, host_manager):
    result = import_file(CORPUS / "partner_good.csv", user=host_manager, side="partner")
    assert result.ok and result.inserted == 2
    assert set(MetricObservation.objects.values_list("side", flat=True)) == {"partner"}


def test_running_a_batch_twice_imports_it_once(acme_agreement):
    batch = import_batch_create(user=None, path=CORPUS / "good.csv", file_name="good.csv",
                                source="command")
    first = observations_import(batch_id=batch.pk)
    second = observations_import(batch_id=batch.pk)
    assert first.ok and not first.skipped
    assert second.skipped and (second.status, second.inserted) == ("succeeded", 4)
    assert MetricObservation.objects.count() == 4


def test_uploaded_file_is_stored_with_its_checksum(acme_agreement, host_manager):
    upload = SimpleUploadedFile("march.csv", (CORPUS / "good.csv").read_bytes())
    batch = import_batch_create(user=host_manager, uploaded_file=upload, file_name="march.csv",
                                source="upload")
    assert (batch.status, batch.file_name, batch.side) == ("pending", "march.csv", "host")
    assert batch.file.name.endswith(".csv") and len(batch.sha256) == 64
    assert observations_import(batch_id=batch.pk).inserted == 4


# --- bad rows ----------------------------------------------------------------------------


def test_bad_values_are_each_reported_and_nothing_is_written(acme_agreement):
    result = import_file(CORPUS / "bad_values.csv")
    assert_rejected(result)
    rows = errors_by_row(result)
    assert set(rows) == set(range(2, 13))
    assert all(column == "value" for errors in rows.values() for column, _ in errors)
    unit = "has a unit or currency sign"
    separator = "has a thousands separator or a decimal comma"
    expected = {
        2: unit, 3: unit, 4: unit, 5: separator, 6: separator, 7: "not a finite number",
        8: "not a finite number", 9: "empty: a value is required", 10: "not a number",
        11: "not a number (a formula or text)", 12: separator,
    }
    for row, fragment in expected.items():
        assert fragment in rows[row][0][1], (row, rows[row])
    assert result.errors[0].value == "12%"


def test_bad_dates_are_each_reported(acme_agreement):
    result = import_file(CORPUS / "bad_dates.csv")
    assert_rejected(result)
    rows = {row: messages[0][1] for row, messages in errors_by_row(result).items()}
    assert set(rows) == set(range(2, 9))
    for row in (2, 3, 8):
        assert "not a date in ISO format YYYY-MM-DD" in rows[row]
    assert rows[4] == "not a valid calendar date"
    assert rows[5].startswith("the date is in the future")
    assert rows[6] == "the date is before the agreement's start (2025-01-01)"
    assert rows[7] == "empty: a date is required"


def test_date_after_the_agreements_end_is_an_error(acme_agreement, tmp_path):
    acme_agreement.end_date = dt.date(2025, 1, 31)
    acme_agreement.save()
    path = make_file(tmp_path, "late.csv", "agreement,kpi,date,value\n"
                     "ACME-CM-2025,revenue,2025-01-31,1\nACME-CM-2025,revenue,2025-02-01,1\n")
    result = import_file(path)
    assert_rejected(result)
    assert [(error.row, error.column, error.message) for error in result.errors] == [
        (3, "date", "the date is after the agreement's end (2025-01-31)")
    ]


def test_unknown_codes_foreign_kpis_and_bad_sides_are_reported(acme_agreement, training):
    result = import_file(CORPUS / "bad_codes.csv")
    assert_rejected(result)
    rows = errors_by_row(result)
    assert rows == {
        2: [("agreement", "unknown agreement code")],
        3: [("kpi", "unknown KPI code")],
        4: [("kpi", "the KPI is not part of agreement 'ACME-CM-2025'")],
        5: [("side", "the side must be 'host' or 'partner'")],
        6: [("agreement", "empty: an agreement code is required")],
        7: [("kpi", "empty: a KPI code is required")],
        8: [("agreement", "unknown agreement code")],
    }


def test_same_key_twice_in_a_file_is_an_error(acme_agreement):
    result = import_file(CORPUS / "duplicate_keys.csv")
    assert_rejected(result)
    assert [(error.row, error.column) for error in result.errors] == [(4, None), (6, None)]
    assert result.errors[0].message.startswith(
        "the same agreement, KPI, side and date as row 2"
    )
    assert result.errors[0].value == "ACME-CM-2025 / revenue / host / 2025-01-15"


def test_a_bad_row_rejects_a_file_of_good_rows_and_keeps_earlier_data(acme_agreement, tmp_path):
    import_file(CORPUS / "good.csv")
    before = written()
    lines = ["agreement,kpi,date,value"] + [
        f"ACME-CM-2025,revenue,2025-03-{day:02d},{day}" for day in range(1, 29)
    ] + ["ACME-CM-2025,revenue,2025-04-01,oops"]
    result = import_file(make_file(tmp_path, "one_bad.csv", "\n".join(lines)))
    assert_rejected(result, before=before)
    assert [(error.row, error.column) for error in result.errors] == [(30, "value")]


def test_errors_are_capped_but_counted(acme_agreement, tmp_path):
    lines = ["agreement,kpi,date,value"] + ["NOPE,revenue,2025-01-15,x"] * 1500
    result = import_file(make_file(tmp_path, "many.csv", "\n".join(lines)))
    assert_rejected(result)
    batch = ImportBatch.objects.get(pk=result.batch_id)
    assert batch.error_count == 3000  # an unknown agreement and a bad value on every row
    assert len(batch.errors) == len(result.errors) == 1000
    assert batch.errors[0] == {"row": 2, "column": "agreement", "value": "NOPE",
                               "message": "unknown agreement code"}


def test_note_longer_than_500_characters_is_an_error(acme_agreement, tmp_path):
    path = make_file(tmp_path, "note.csv", "agreement,kpi,date,value,note\n"
                     f"ACME-CM-2025,revenue,2025-01-15,1,{'n' * 501}\n")
    result = import_file(path)
    assert_rejected(result, "the note is longer than 500 characters")


def test_oversized_field_is_an_error_and_is_shown_cut(acme_agreement, tmp_path):
    path = make_file(tmp_path, "huge.csv", "agreement,kpi,date,value,note\n"
                     f"ACME-CM-2025,revenue,2025-01-15,1,\"{'x' * 200_000}\"\n")
    result = import_file(path)
    assert_rejected(result, "the field is too long")
    assert len(result.errors[0].value) == 80


# --- file-level problems -----------------------------------------------------------------


@pytest.mark.parametrize(("name", "fragment"), [
    ("missing_column.csv", "missing column value: the first row must be the header"),
    ("unknown_column.csv", "unknown column 'comment'"),
    ("header_only.csv", "the file has a header but no data rows"),
    ("empty.csv", "the file is empty"),
    ("blank.csv", "the file is empty"),
    ("unclosed_quote.csv", 'a double quote (") opened on this row is never closed'),
    ("too_many_fields.csv", "this row has 5 fields but the header has 4"),
])
def test_structural_problems_reject_the_file(acme_agreement, name, fragment):
    result = import_file(CORPUS / name)
    assert_rejected(result, fragment)


def test_unclosed_quote_names_its_row(acme_agreement):
    result = import_file(CORPUS / "unclosed_quote.csv")
    assert result.errors[0].row == 2


def test_file_over_the_size_limit_is_not_stored(acme_agreement, settings):
    settings.METRIC_FILE_MAX_BYTES = 100
    batch = import_batch_create(user=None, path=CORPUS / "good.csv", file_name="good.csv",
                                source="upload")
    assert batch.status == "failed" and not batch.file
    assert batch.errors[0]["message"].startswith("the file is too large: 0.0 MB")
    assert observations_import(batch_id=batch.pk).skipped
    assert written() == (0, 0)


@pytest.mark.parametrize(("name", "content", "fragment"), [
    ("report.pdf", b"%PDF-1.4\n...", "not a CSV or XLSX file (extension '.pdf')"),
    ("metrics", b"agreement,kpi,date,value\n", "not a CSV or XLSX file (extension none)"),
    ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), ".xls workbooks are not"),
    ("photo.csv", b"\x89PNG\r\n\x1a\n" + bytes(100), "named .csv but its content is an image"),
    ("data.csv", b"agreement,kpi\x00\x01\x02,date", "contains NUL bytes"),
    ("text.xlsx", b"agreement,kpi,date,value\nA,b,2025-01-01,1\n",
     "named .xlsx but its content is text, not an XLSX workbook"),
    ("locked.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "password-protected"),
])
def test_files_that_are_not_csv_or_xlsx_are_rejected(acme_agreement, tmp_path, name, content,
                                                      fragment):
    result = import_file(make_file(tmp_path, name, content))
    assert_rejected(result, fragment)


def test_xlsx_named_csv_is_rejected(acme_agreement, tmp_path):
    path = write_xlsx(tmp_path / "book.xlsx", {"S": [["agreement"]]})
    result = import_file(path, file_name="book.csv")
    assert_rejected(result, "named .csv but is a zip archive (an XLSX workbook?)")


def test_zip_that_is_not_a_workbook_is_rejected(acme_agreement, tmp_path):
    path = tmp_path / "archive.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<document/>")
    assert_rejected(import_file(path), "a zip archive but not an XLSX workbook")


def test_cp1252_file_is_rejected_not_garbled(acme_agreement, tmp_path):
    content = "agreement,kpi,date,value,note\nACME-CM-2025,revenue,2025-01-15,1,café\n"
    result = import_file(make_file(tmp_path, "latin.csv", content.encode("cp1252")))
    assert_rejected(result, "the file is not UTF-8: byte 0xE9 on line 2 cannot be decoded")


def test_utf16_file_is_rejected(acme_agreement, tmp_path):
    content = "agreement\tkpi\tdate\tvalue\nACME-CM-2025\trevenue\t2025-01-15\t1\n"
    result = import_file(make_file(tmp_path, "unicode.csv", content.encode("utf-16")))
    assert_rejected(result, "the file is UTF-16 encoded")
    no_bom = import_file(make_file(tmp_path, "unicode2.csv", content.encode("utf-16-le")))
    assert_rejected(no_bom, "contains NUL bytes")


def test_xlsx_formula_cells_are_refused_with_their_cells(acme_agreement, tmp_path):
    path = write_xlsx(tmp_path / "formulas.xlsx", {"Data": [
        ["agreement", "kpi", "date", "value"],
        ["ACME-CM-2025", "revenue", dt.date(2025, 1, 15), Formula("SUM(1,2)", cached=3)],
        ["ACME-CM-2025", "revenue", dt.date(2025, 1, 16), Formula("B9*2")],
        ["ACME-CM-2025", "revenue", dt.date(2025, 1, 17), ErrorValue("#N/A")],
    ]})
    result = import_file(path)
    assert_rejected(result)
    assert [(error.row, error.column, error.value) for error in result.errors] == [
        (2, "value", "=SUM(1,2)"), (3, "value", "=B9*2"), (4, "value", ""),
    ]
    assert result.errors[0].message.startswith("cell D2 holds a formula: paste the values only")
    assert result.errors[2].message.startswith("cell D4 holds an error value")


def test_xlsx_cells_of_the_wrong_type_are_reported(acme_agreement, tmp_path):
    path = write_xlsx(tmp_path / "types.xlsx", {"Data": [
        ["agreement", "kpi", "date", "value"],
        ["ACME-CM-2025", "revenue", dt.datetime(2025, 1, 15, 13, 30), 1],
        ["ACME-CM-2025", "revenue", 45678, 1],
        ["ACME-CM-2025", "revenue", dt.date(2025, 1, 17), "12"],
        ["ACME-CM-2025", "revenue", dt.date(2025, 1, 18), "12%"],
        ["ACME-CM-2025", "revenue", dt.date(2025, 1, 19), True],
        ["ACME-CM-2025", "revenue", dt.date(2025, 1, 20), None],
    ]})
    result = import_file(path)
    assert_rejected(result)
    assert [(error.row, error.column, error.message) for error in result.errors] == [
        (2, "date", "the date cell has a time of day; enter a date only"),
        (3, "date", "a number, not a date: format the cell as a date or write the date as "
         "text YYYY-MM-DD"),
        (4, "value", "not a number; in an XLSX, enter it as a number cell"),
        (5, "value", "has a unit or currency sign (such as %, €, $ or k): write the plain "
         "number, in the KPI's unit; in an XLSX, enter it as a number cell"),
        (6, "value", "not a number (a date or TRUE/FALSE cell)"),
        (7, "value", "empty: a value is required"),
    ]


def test_xlsx_zip_bomb_is_refused_before_unpacking(acme_agreement, tmp_path, settings):
    settings.METRIC_FILE_MAX_UNPACKED_BYTES = 20_000_000
    path = write_xlsx(tmp_path / "bomb.xlsx", {"Data": [["agreement"]]})
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/padding.bin", bytes(30_000_000))
    assert path.stat().st_size < 1_000_000
    assert_rejected(import_file(path), "would unpack to 30.0 MB",
                    "METRIC_FILE_MAX_UNPACKED_BYTES", "refused as a possible zip bomb")


def test_xlsx_highly_compressed_part_is_refused(acme_agreement, tmp_path):
    path = write_xlsx(tmp_path / "ratio.xlsx", {"Data": [["agreement"]]})
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/padding.bin", bytes(5_000_000))
    assert_rejected(import_file(path), "compressed", "refused as a possible zip bomb")


def test_xlsx_xml_entity_bomb_is_refused(acme_agreement, tmp_path):
    laughs = "".join(
        f'<!ENTITY lol{level} "{("&lol" + str(level - 1) + ";") * 10}">'
        for level in range(1, 10)
    )
    doctype = f'<!DOCTYPE lolz [<!ENTITY lol0 "lol">{laughs}]>'
    path = write_xlsx(tmp_path / "laughs.xlsx", {"Data": [["agreement"]]},
                      shared_strings_extra=doctype)
    assert_rejected(import_file(path), "declares a document type or entities")
    sheet_bomb = write_xlsx(tmp_path / "sheet.xlsx", {"Data": [["agreement"]]}, doctype=doctype)
    assert_rejected(import_file(sheet_bomb), "xl/worksheets/sheet1.xml")


# --- permissions -------------------------------------------------------------------------


def test_partner_editor_may_not_write_other_agreements_or_the_host_side(
    acme_agreement, globex_agreement, acme_editor
):
    result = import_file(CORPUS / "partner_rows.csv", user=acme_editor)
    assert_rejected(result)
    assert [(error.row, error.column, error.message) for error in result.errors] == [
        (4, "agreement", "not one of Acme Corp's agreements: partner users may only import "
         "their own agreements"),
        (5, "side", "partner users may only import the partner side"),
    ]


def test_partner_editor_imports_their_own_partner_side(acme_agreement, acme_editor, acme):
    result = import_file(CORPUS / "partner_good.csv", user=acme_editor)
    assert result.ok and result.inserted == 2
    batch = ImportBatch.objects.get(pk=result.batch_id)
    assert (batch.side, batch.partner, batch.user) == ("partner", acme, acme_editor)
    assert set(MetricObservation.objects.values_list("side", "recorded_by")) == {
        ("partner", acme_editor.pk)
    }


def test_partner_editor_may_not_choose_the_host_side(acme_agreement, acme_editor):
    with pytest.raises(ImportNotAllowed, match="only import the partner side"):
        import_batch_create(user=acme_editor, path=CORPUS / "good.csv", file_name="good.csv",
                            source="upload", side="host")


def test_viewers_and_users_without_membership_may_not_import(acme_viewer, django_user_model):
    outsider = django_user_model.objects.create_user(username="outsider", password="pw")
    for user in (acme_viewer, outsider):
        with pytest.raises(ImportNotAllowed):
            import_batch_create(user=user, path=CORPUS / "good.csv", file_name="good.csv",
                                source="upload")
        with pytest.raises(ImportNotAllowed):
            observations_import_records(records=[], user=user)
    assert not ImportBatch.objects.exists()


def test_revoked_editor_batch_fails_when_it_runs(acme_agreement, acme_editor):
    batch = import_batch_create(user=acme_editor, path=CORPUS / "partner_good.csv",
                                file_name="partner_good.csv", source="upload")
    acme_editor.membership.role = Role.PARTNER_VIEWER
    acme_editor.membership.save()
    acme_editor.refresh_from_db()
    assert_rejected(observations_import(batch_id=batch.pk), "Partner viewers may not import")


# --- error report ------------------------------------------------------------------------


def test_error_report_csv_escapes_formula_like_cells(acme_agreement, training):
    result = import_file(CORPUS / "bad_codes.csv")
    batch = ImportBatch.objects.get(pk=result.batch_id)
    report = list(csv.reader(io.StringIO(import_errors_csv(errors=batch.errors))))
    assert report[0] == ["row", "column", "value", "message"]
    assert ["2", "agreement", "NOPE-2025", "unknown agreement code"] in report
    hyperlink = next(line for line in report if line[0] == "8")
    assert hyperlink[2].startswith("'=HYPERLINK(")


def test_spreadsheet_escape_escapes_every_text_that_starts_like_a_formula():
    # Text cells only: numbers are written by the number formatters, never escaped.
    assert spreadsheet_escape("-5.25") == "'-5.25"
    assert spreadsheet_escape("+1") == "'+1"
    assert spreadsheet_escape("-1+cmd|' /C calc'!A0") == "'-1+cmd|' /C calc'!A0"
    assert spreadsheet_escape("@SUM(A1)") == "'@SUM(A1)"
    assert spreadsheet_escape("\t=1") == "'\t=1"
    assert spreadsheet_escape("plain") == "plain"


def test_control_characters_are_escaped_in_shown_values(acme_agreement):
    batch = observations_import_records(records=[
        {"agreement": "BAD\x1b[31m", "kpi": "revenue", "date": "2025-01-15", "value": 1},
    ], user=None)
    assert batch.errors[0]["value"] == "BAD\\x1b[31m"


# --- API records -------------------------------------------------------------------------


def test_records_import_writes_rows_and_keeps_values_exact(acme_agreement, host_manager):
    records = [
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-15", "value": 0.1},
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-16",
         "value": 999999999999.9999, "note": "Ünïcødé \"quoted\"\ttab\nnew line \\ 🚀"},
        {"agreement": "ACME-CM-2025", "kpi": "defect_rate", "date": "2025-01-15", "value": 3,
         "side": "partner", "note": "=1+1"},
    ]
    batch = observations_import_records(records=records, user=host_manager)
    assert (batch.status, batch.source, batch.inserted, batch.rows_total) == (
        "succeeded", "api", 3, 3
    )
    stored = {(row[3].day, row[4], row[5]) for row in stored_rows()}
    assert stored == {
        (15, 0.1, ""), (16, 999999999999.9999, records[1]["note"]), (15, 3.0, "=1+1"),
    }


def test_records_with_bad_types_are_reported_by_index(acme_agreement, host_manager):
    batch = observations_import_records(records=[
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-15", "value": "12"},
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": 20250116, "value": 1},
        {"agreement": "ACME-CM-2025", "date": "2025-01-17", "value": 1},
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-18", "value": True},
        "not a record",
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-19", "value": 1,
         "colour": "red"},
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-20", "value": 1},
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-21", "value": 10**400},
    ], user=host_manager)
    assert batch.status == "failed"
    assert [(error["row"], error["column"], error["message"]) for error in batch.errors] == [
        (0, "value", "must be a JSON number, not a string"),
        (1, "date", "must be an ISO date string YYYY-MM-DD"),
        (2, "kpi", "missing: a KPI code is required"),
        (3, "value", "must be a JSON number"),
        (4, None, "not a JSON object"),
        (5, "colour", "unknown field 'colour': the fields are agreement, kpi, side, date, "
         "value, note"),
        (7, "value", "not a finite number"),
    ]
    assert written() == (0, 0)


def test_records_of_another_partner_are_refused(acme_agreement, globex_agreement, acme_editor):
    batch = observations_import_records(records=[
        {"agreement": "GLOBEX-REF-2025", "kpi": "defect_rate", "date": "2025-01-15",
         "value": 2},
        {"agreement": "ACME-CM-2025", "kpi": "defect_rate", "date": "2025-01-15", "value": 2,
         "side": "host"},
    ], user=acme_editor)
    assert batch.status == "failed"
    assert [(error["row"], error["column"]) for error in batch.errors] == [
        (0, "agreement"), (1, "side")
    ]
    assert written() == (0, 0)


def test_records_with_the_same_idempotency_key_import_once(acme_agreement, host_manager):
    records = [{"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-15",
                "value": 1}]
    first = observations_import_records(records=records, user=host_manager,
                                        idempotency_key="k-1")
    again = observations_import_records(records=records, user=host_manager,
                                        idempotency_key="k-1")
    assert again.pk == first.pk and again.inserted == 1
    assert ImportBatch.objects.count() == 1
    with pytest.raises(IdempotencyConflict):
        observations_import_records(records=[{**records[0], "value": 2}], user=host_manager,
                                    idempotency_key="k-1")
    assert MetricObservation.objects.get().value == 1


def test_failed_records_free_their_idempotency_key(acme_agreement, host_manager):
    bad = [{"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-15", "value": "x"}]
    failed = observations_import_records(records=bad, user=host_manager, idempotency_key="k-2")
    assert failed.status == "failed" and failed.idempotency_key is None
    good = [{**bad[0], "value": 5}]
    batch = observations_import_records(records=good, user=host_manager, idempotency_key="k-2")
    assert batch.status == "succeeded" and batch.idempotency_key == "k-2"


def test_empty_or_non_list_records_are_refused(host_manager):
    assert observations_import_records(records=[], user=host_manager).errors[0]["message"] == (
        "no records: the array is empty"
    )
    batch = observations_import_records(records={"a": 1}, user=host_manager)
    assert batch.errors[0]["message"] == "expected a JSON array of records"


# --- the Celery task ---------------------------------------------------------------------


def test_import_task_is_queued_only_after_commit(acme_agreement,
                                                 django_capture_on_commit_callbacks):
    batch = import_batch_create(user=None, path=CORPUS / "good.csv", file_name="good.csv",
                                source="upload")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        import_batch_enqueue(batch=batch)
        batch.refresh_from_db()
        assert batch.status == "pending"
    assert len(callbacks) == 1
    callbacks[0]()
    batch.refresh_from_db()
    assert (batch.status, batch.inserted) == ("succeeded", 4)


def test_import_task_delivered_twice_imports_once(acme_agreement):
    batch = import_batch_create(user=None, path=CORPUS / "good.csv", file_name="good.csv",
                                source="upload")
    assert import_batch_run(batch.pk) == "succeeded"
    assert import_batch_run(batch.pk) == "skipped"
    assert MetricObservation.objects.count() == 4


# --- plausible values: the magnitude limit and each KPI's allowed values ---------------------


@pytest.fixture
def ranged_agreement(acme_agreement):
    """ACME-CM-2025 also measured on a count (deals) and a percentage stated as 0..100."""
    deals = KPIDefinition.objects.create(
        code="deals", name="Deals closed", unit="count", category="financial",
        aggregation="sum", source="host", value_type="count",
    )
    conversion = KPIDefinition.objects.create(
        code="conversion", name="Conversion rate", unit="%", category="operational",
        aggregation="mean", source="host", value_type="percentage", minimum=0, maximum=100,
    )
    for kpi in (deals, conversion):
        AgreementKPI.objects.create(agreement=acme_agreement, kpi=kpi, target=10, floor=1)
    return acme_agreement


def value_errors(result_or_batch) -> dict[int, str]:
    errors = getattr(result_or_batch, "errors", [])
    rows = {}
    for error in errors:
        error = RowError.from_dict(error) if isinstance(error, dict) else error
        assert error.column == "value", error
        rows[error.row] = error.message
    return rows


def test_csv_values_beyond_the_magnitude_limit_are_row_errors(acme_agreement, tmp_path):
    path = make_file(tmp_path, "huge.csv", "agreement,kpi,date,value\n"
                     "ACME-CM-2025,revenue,2025-01-01,-1.9e255\n"
                     "ACME-CM-2025,revenue,2025-01-02,1.7e308\n"
                     "ACME-CM-2025,revenue,2025-01-03,1000000000000\n"
                     "ACME-CM-2025,revenue,2025-01-04,1000000000000.5\n"
                     "ACME-CM-2025,revenue,2025-01-05,-1000000000000\n")
    result = import_file(path)
    assert_rejected(result)
    assert value_errors(result) == {
        2: "-1.9e+255 is beyond the allowed magnitude of 1,000,000,000,000",
        3: "1.7e+308 is beyond the allowed magnitude of 1,000,000,000,000",
        5: "1000000000000.5 is beyond the allowed magnitude of 1,000,000,000,000",
    }
    assert result.errors[0].value == "-1.9e255"


def test_csv_counts_must_be_whole_and_percentages_within_their_range(ranged_agreement,
                                                                      tmp_path):
    path = make_file(tmp_path, "ranged.csv", "agreement,kpi,date,value\n"
                     "ACME-CM-2025,deals,2025-01-01,2.5\n"
                     "ACME-CM-2025,deals,2025-01-02,-1\n"
                     "ACME-CM-2025,deals,2025-01-03,3\n"
                     "ACME-CM-2025,deals,2025-01-04,0\n"
                     "ACME-CM-2025,conversion,2025-01-01,100.5\n"
                     "ACME-CM-2025,conversion,2025-01-02,-0.1\n"
                     "ACME-CM-2025,conversion,2025-01-03,-3.2e149\n"
                     "ACME-CM-2025,conversion,2025-01-04,100\n"
                     "ACME-CM-2025,conversion,2025-01-05,0\n"
                     "ACME-CM-2025,revenue,2025-01-01,-2.5\n")
    result = import_file(path)
    assert_rejected(result)
    assert value_errors(result) == {
        2: "a count must be a whole number ≥ 0: 2.5",
        3: "a count must be a whole number ≥ 0: -1",
        6: "above the maximum 100 of Conversion rate (%)",
        7: "below the minimum 0 of Conversion rate (%)",
        8: "-3.2e+149 is beyond the allowed magnitude of 1,000,000,000,000",
    }


def test_values_within_the_rules_are_imported(ranged_agreement, tmp_path):
    path = make_file(tmp_path, "fine.csv", "agreement,kpi,date,value\n"
                     "ACME-CM-2025,deals,2025-01-01,0\n"
                     "ACME-CM-2025,deals,2025-01-02,1e3\n"
                     "ACME-CM-2025,conversion,2025-01-01,0\n"
                     "ACME-CM-2025,conversion,2025-01-02,100\n"
                     "ACME-CM-2025,revenue,2025-01-01,-999999999999.99\n")
    result = import_file(path)
    assert result.ok, result.errors
    assert result.inserted == 5


def test_xlsx_number_cells_obey_the_same_rules(ranged_agreement, tmp_path):
    path = write_xlsx(tmp_path / "ranged.xlsx", {"Data": [
        ["agreement", "kpi", "date", "value"],
        ["ACME-CM-2025", "revenue", dt.date(2025, 1, 1), 1.7e308],
        ["ACME-CM-2025", "revenue", dt.date(2025, 1, 2), 1.7e308],
        ["ACME-CM-2025", "deals", dt.date(2025, 1, 1), 2.5],
        ["ACME-CM-2025", "conversion", dt.date(2025, 1, 1), 101],
        ["ACME-CM-2025", "conversion", dt.date(2025, 1, 2), 99.5],
    ]})
    result = import_file(path)
    assert_rejected(result)
    assert value_errors(result) == {
        2: "1.7e+308 is beyond the allowed magnitude of 1,000,000,000,000",
        3: "1.7e+308 is beyond the allowed magnitude of 1,000,000,000,000",
        4: "a count must be a whole number ≥ 0: 2.5",
        5: "above the maximum 100 of Conversion rate (%)",
    }


def test_api_records_obey_the_same_rules(ranged_agreement, host_manager):
    batch = observations_import_records(records=[
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-15",
         "value": 1.7976931348623157e308},
        {"agreement": "ACME-CM-2025", "kpi": "deals", "date": "2025-01-15", "value": 2.5},
        {"agreement": "ACME-CM-2025", "kpi": "conversion", "date": "2025-01-15", "value": -5},
        {"agreement": "ACME-CM-2025", "kpi": "conversion", "date": "2025-01-16", "value": 55},
    ], user=host_manager)
    assert batch.status == "failed"
    assert [(error["row"], error["column"], error["message"]) for error in batch.errors] == [
        (0, "value", "1.7976931348623157e+308 is beyond the allowed magnitude of "
         "1,000,000,000,000"),
        (1, "value", "a count must be a whole number ≥ 0: 2.5"),
        (2, "value", "below the minimum 0 of Conversion rate (%)"),
    ]
    assert written() == (0, 0)


def test_magnitude_limit_follows_the_setting(acme_agreement, host_manager, settings):
    settings.METRIC_VALUE_MAX_ABS = 1000
    batch = observations_import_records(records=[
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-15", "value": 1000},
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-16", "value": 1001},
    ], user=host_manager)
    assert [(error["row"], error["message"]) for error in batch.errors] == [
        (1, "1001 is beyond the allowed magnitude of 1,000"),
    ]


def test_a_row_with_an_unknown_kpi_still_gets_the_magnitude_error(acme_agreement, tmp_path):
    path = make_file(tmp_path, "unknown.csv", "agreement,kpi,date,value\n"
                     "ACME-CM-2025,nope,2025-01-01,5e20\n")
    result = import_file(path)
    assert_rejected(result)
    assert [(error.column, error.message) for error in result.errors] == [
        ("kpi", "unknown KPI code"),
        ("value", "5e+20 is beyond the allowed magnitude of 1,000,000,000,000"),
    ]
