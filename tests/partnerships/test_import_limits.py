"""What one metric file may hold: rows, cells and an XLSX sheet's extent are checked before the
rows are in memory, and every refusal names the limit and the setting behind it."""

import re
import zipfile
from pathlib import Path

import pytest

from partnerships.models import ImportBatch, MetricObservation
from partnerships.services import import_batch_create, observations_import
from tests.partnerships.metric_files.xlsx import write_xlsx

pytestmark = pytest.mark.django_db

HEADER = ["agreement", "kpi", "date", "value"]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def import_path(path: Path):
    batch = import_batch_create(user=None, path=path, file_name=path.name, source="command")
    return observations_import(batch_id=batch.pk)


def rows_of(count: int) -> list[list]:
    return [["ACME-CM-2025", "revenue", f"2025-01-{day:02d}", day] for day in range(1, count + 1)]


def write_csv(path: Path, rows: list[list], header=HEADER) -> Path:
    lines = [",".join(header)] + [",".join(str(cell) for cell in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def rewrite_part(path: Path, part: str, change) -> Path:
    """Rewrite one XML part of a workbook (the tests' writer makes well-formed ones)."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    parts[part] = change(parts[part].decode()).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return path


def refused(result, *fragments: str) -> str:
    assert result.status == "failed" and not MetricObservation.objects.exists()
    messages = " | ".join(error.message for error in result.errors)
    for fragment in fragments:
        assert fragment in messages
    return messages


def test_csv_within_the_row_limit_is_imported_and_one_more_row_is_refused(
    acme_agreement, tmp_path, settings
):
    settings.METRIC_FILE_MAX_ROWS = 5
    assert import_path(write_csv(tmp_path / "five.csv", rows_of(5))).inserted == 5
    MetricObservation.objects.all().delete()
    result = import_path(write_csv(tmp_path / "six.csv", rows_of(6)))
    refused(result, "more than 5 data rows", "METRIC_FILE_MAX_ROWS", "split it")
    assert result.errors[0].row == 7  # the first row over the limit


def test_csv_whose_cells_exceed_the_limit_is_refused_before_parsing(
    acme_agreement, tmp_path, settings
):
    settings.METRIC_FILE_MAX_CELLS = 30
    path = write_csv(tmp_path / "wide.csv", [row + ["", ""] for row in rows_of(5)],
                     header=[*HEADER, "side", "note"])
    refused(import_path(path), "spans 6 columns and 6 rows: 36 cells",
            "METRIC_FILE_MAX_CELLS")


def test_xlsx_over_the_row_limit_is_refused_naming_the_sheet(acme_agreement, tmp_path,
                                                             settings):
    settings.METRIC_FILE_MAX_ROWS = 3
    path = write_xlsx(tmp_path / "long.xlsx", {"Q1": [HEADER, *rows_of(4)]})
    refused(import_path(path), "the sheet 'Q1' has 4 data rows or more",
            "more than the limit of 3 (METRIC_FILE_MAX_ROWS)")
    settings.METRIC_FILE_MAX_ROWS = 4
    assert import_path(path).inserted == 4


def test_xlsx_declaring_more_rows_than_the_limit_is_refused_before_reading(
    acme_agreement, tmp_path, settings
):
    settings.METRIC_FILE_MAX_ROWS = 1000
    path = rewrite_part(
        write_xlsx(tmp_path / "declared.xlsx", {"Data": [HEADER, *rows_of(2)]}),
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace("<sheetData>", '<dimension ref="A1:D2000000"/><sheetData>'),
    )
    refused(import_path(path), "the sheet 'Data' declares that it has 1,999,999 data rows")


def test_xlsx_with_two_far_apart_cells_is_refused_instead_of_laid_out(acme_agreement,
                                                                      tmp_path):
    # calamine lays a sheet out as one dense rectangle: A1 and XFD1048576 would ask for 512 GiB
    # and abort the process.
    path = rewrite_part(
        write_xlsx(tmp_path / "sparse.xlsx", {"Data": [HEADER, *rows_of(1)]}),
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace(
            "</sheetData>", '<row r="1000"><c r="XFD1000"><v>1</v></c></row></sheetData>'),
    )
    refused(import_path(path), "spans 16,384 columns and 1,000 rows: 16,384,000 cells",
            "METRIC_FILE_MAX_CELLS")


def test_xlsx_cells_far_down_are_refused_even_in_an_early_row(acme_agreement, tmp_path):
    path = rewrite_part(
        write_xlsx(tmp_path / "deep.xlsx", {"Data": [HEADER, *rows_of(1)]}),
        "xl/worksheets/sheet1.xml",
        # A cell's own reference places it, whatever its row says; single quotes and a newline
        # before the attribute are valid XML too.
        lambda xml: xml.replace('<c r="A2"', "<c\nr='A1048576'"),
    )
    refused(import_path(path), "more than the limit of 1,000,000 (METRIC_FILE_MAX_ROWS)")


def test_xlsx_cells_without_references_count_towards_the_width(acme_agreement, tmp_path,
                                                               settings):
    settings.METRIC_FILE_MAX_CELLS = 100
    many = "".join("<c><v>1</v></c>" for _ in range(60))
    path = rewrite_part(
        write_xlsx(tmp_path / "unnamed.xlsx", {"Data": [HEADER, *rows_of(1)]}),
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace("</sheetData>", f'<row r="3">{many}</row></sheetData>'),
    )
    # Placed after the farthest named column (D) at most: 4 + 60.
    refused(import_path(path), "spans 64 columns", "METRIC_FILE_MAX_CELLS")


def test_xlsx_whose_shared_strings_dwarf_the_sheet_is_refused(acme_agreement, tmp_path):
    extra = "".join(f"<si><t>s{number}</t></si>" for number in range(100_001))
    path = rewrite_part(
        write_xlsx(tmp_path / "strings.xlsx", {"Data": [HEADER, *rows_of(1)]}),
        "xl/sharedStrings.xml", lambda xml: xml.replace("</sst>", f"{extra}</sst>"),
    )
    refused(import_path(path), "more than 100,000 distinct texts",
            "save that sheet alone as a new workbook")


def test_xlsx_read_in_chunks_keeps_every_row_and_spreadsheet_row_numbers(
    acme_agreement, tmp_path, monkeypatch
):
    from partnerships import importers

    monkeypatch.setattr(importers, "XLSX_CHUNK_ROWS", 4)
    rows = rows_of(10)
    rows[8][3] = "ten"  # spreadsheet row 10
    path = write_xlsx(tmp_path / "chunks.xlsx", {"Data": [HEADER, *rows]})
    result = import_path(path)
    assert [(error.row, error.column) for error in result.errors] == [(10, "value")]
    rows[8][3] = 9
    assert import_path(write_xlsx(tmp_path / "ok.xlsx", {"Data": [HEADER, *rows]})).inserted == 10


def test_xlsx_read_reports_progress_up_to_the_end(acme_agreement, tmp_path):
    from partnerships.importers import metric_file_read

    shares = []
    path = write_xlsx(tmp_path / "p.xlsx", {"Data": [HEADER, *rows_of(3)]})
    table = metric_file_read(path=path, file_name="p.xlsx", progress=shares.append)
    assert len(table) == 3 and shares == sorted(shares) and shares[-1] == 1.0


def test_the_batch_records_what_the_limits_refused(acme_agreement, tmp_path, settings):
    settings.METRIC_FILE_MAX_ROWS = 1
    result = import_path(write_csv(tmp_path / "two.csv", rows_of(2)))
    batch = ImportBatch.objects.get(pk=result.batch_id)
    assert batch.status == "failed" and re.search("METRIC_FILE_MAX_ROWS",
                                                  batch.errors[0]["message"])
