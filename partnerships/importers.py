"""Metric files: read a CSV or XLSX safely, validate every row (vectorised), report the errors.

The one reader of metric files (DOMAIN.md § Files, "Metric file"), used by the upload page, the
`import_metrics` command and the API through `partnerships.services`:

    metric_file_read(path, file_name) -> MetricTable --+
    metric_records_table(records)     -> MetricTable --+--> metric_rows_validate(...)
                                                             -> ValidatedRows (rows or errors)

A file that cannot be read at all (too large, not CSV/XLSX, wrong encoding, zip or XML bomb,
unclosed quote, missing columns, formula cells...) raises `MetricFileRejected`. A readable file
gives every bad row as a `RowError`. Row numbers are those a spreadsheet shows (header row 1,
first data row 2); for API records, the 0-based index of the record. Values are checked with
pandas/numpy over whole columns; Python only loops over distinct codes and dates, and over the
(capped) errors it reports. Nothing here writes to the database.
"""

import codecs
import csv
import datetime as dt
import io
import itertools
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET
from django.conf import settings
from django.utils import timezone

from .models import (
    Agreement,
    AgreementKPI,
    KPIDefinition,
    MetricObservation,
    Side,
    ValueType,
    number_text,
)
from .months import last_closed_month, month_closed_message
from .spreadsheets import FORMULA_PREFIXES, spreadsheet_escape

COLUMNS = ("agreement", "kpi", "side", "date", "value", "note")
REQUIRED_COLUMNS = ("agreement", "kpi", "date", "value")
# Errors kept for the report; the count goes on. A million bad rows must not fill the memory.
MAX_ERRORS = 1000
MAX_NOTE_CHARS = MetricObservation._meta.get_field("note").max_length
# A longer cell is never a code, date or number; usually an unclosed quote swallowed the rest.
MAX_FIELD_CHARS = 1000
MAX_SHOWN_CHARS = 80
CSV_EXTENSIONS = frozenset({".csv", ".txt", ".tsv"})
XLSX_EXTENSIONS = frozenset({".xlsx"})
# An XLSX is a zip of XML: refuse archives that unpack to far more than any metric file needs
# (checked in the zip directory, before anything is unpacked).
XLSX_MAX_RATIO = 250
XLSX_MAX_ENTRIES = 10_000
DATE_ORIGIN = np.datetime64("2000-01-01", "D")

ISO_DATE = r"\d{4}-\d{2}-\d{2}"
NON_FINITE = frozenset(
    {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
)
UNIT_OR_CURRENCY = re.compile(
    r"[%‰€$£¥₹₩¢]|\d\s*[A-Za-z]+\s*$|^\s*[A-Za-z]{1,3}\s*[+-]?\d", re.UNICODE
)
SEPARATORS = re.compile(r"^[+-]?\d[\d.,'\s\u00a0\u202f]*$")
_CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]}


@dataclass(frozen=True)
class RowError:
    """One problem: the spreadsheet row (None: the whole file), the column, the value shown."""

    row: int | None
    column: str | None
    value: str
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "value": self.value,
                "message": self.message}

    @classmethod
    def from_dict(cls, data: dict) -> "RowError":
        return cls(data.get("row"), data.get("column"), data.get("value", ""), data["message"])

    def __str__(self) -> str:
        where = "file" if self.row is None else f"row {self.row}"
        if self.column:
            where += f", column {self.column}"
        shown = f" (value {self.value!r})" if self.value else ""
        return f"{where}: {self.message}{shown}"


class MetricFileRejected(Exception):
    """The file (or record list) cannot be read as metric rows; `errors` says why."""

    def __init__(self, errors: list[RowError], *, error_count: int | None = None,
                 notes: Iterable[str] = (), format: str | None = None):
        super().__init__("; ".join(str(error) for error in errors[:3]))
        self.errors = errors[:MAX_ERRORS]
        self.error_count = len(errors) if error_count is None else error_count
        self.notes = list(notes)
        self.format = format


@dataclass(frozen=True)
class MetricFilePreview:
    """What the upload page shows before importing: format, columns, first rows, problems.

    `format` is "csv" or "xlsx" (None when unrecognisable); `encoding` ("utf-8" or
    "utf-8 with BOM") and `delimiter` ("," ";" or a tab) for CSV; `sheet` is the sheet read
    from an XLSX. `rows` holds the first data rows as display strings in the file's column
    order, `total_rows` counts every non-blank data row. `errors` are file-level problems and
    rows dated in a closed month; the upload's check (`partnerships.services.metric_file_check`)
    puts there every row error of the import's own validation instead. `kpi_counts` is what
    the import would do, per KPI: for each side the rows without a side may take ("host",
    "partner"), or "file" when every row names its side, a list of {kpi, name, source, rows,
    new, changed, unchanged, other_side} (other_side: values of the side that is not the
    KPI's source of truth).
    """

    file_name: str
    format: str | None
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    total_rows: int = 0
    notes: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    kpi_counts: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        """What a batch stores of its preview (its errors are the batch's own)."""
        return {"file_name": self.file_name, "format": self.format, "encoding": self.encoding,
                "delimiter": self.delimiter, "sheet": self.sheet, "columns": self.columns,
                "rows": self.rows, "total_rows": self.total_rows, "notes": self.notes,
                "kpi_counts": self.kpi_counts}

    @classmethod
    def from_dict(cls, data: dict, *, errors: Iterable[RowError | dict] = (),
                  error_count: int = 0) -> "MetricFilePreview":
        known = {name: data[name] for name in (
            "file_name", "format", "encoding", "delimiter", "sheet", "columns", "rows",
            "total_rows", "notes", "kpi_counts") if name in data}
        errors = [error if isinstance(error, RowError) else RowError.from_dict(error)
                  for error in errors]
        return cls(**{"file_name": "", "format": None, **known}, errors=errors,
                   error_count=error_count or len(errors))


@dataclass
class MetricTable:
    """Rows read from a file or record list, before validation.

    `data` has one column per metric column present, as text ("" when empty). XLSX cells and
    API records arrive typed: their numbers are in `numbers`, and cells of the wrong type
    (a date cell with a time, a text cell as value...) are listed in `problems` as
    (row mask, column, message, values shown).
    """

    format: str
    data: pd.DataFrame
    rows: np.ndarray
    header: list[str] = field(default_factory=list)
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    notes: list[str] = field(default_factory=list)
    numbers: np.ndarray | None = None
    problems: list[tuple[np.ndarray, str, str | Callable, pd.Series]] = field(
        default_factory=list
    )

    def __len__(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Uploader:
    """Who imports: the host (partner_id None) or one partner's editor; rows obey its rules."""

    side: str
    partner_id: int | None = None
    partner_name: str = ""

    @property
    def is_host(self) -> bool:
        return self.partner_id is None


@dataclass(frozen=True)
class ValidatedRows:
    """The outcome of validation: `frame` for `observations_write` when `error_count` is 0."""

    frame: pd.DataFrame
    rows_total: int
    errors: list[RowError]
    error_count: int
    # The spreadsheet row (or record index) of each row of `frame`, for errors found on write.
    rows: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.error_count == 0


# --- shown values and the error report -----------------------------------------------------


def shown(value: object) -> str:
    """A cell as the error report shows it: text, cut to 80 characters, control chars escaped."""
    text = value if isinstance(value, str) else _cell_text(value)
    if len(text) > MAX_SHOWN_CHARS:
        text = text[:MAX_SHOWN_CHARS - 1] + "…"
    return text.translate(_CONTROL)


def import_errors_csv(*, errors: Iterable[RowError | dict]) -> str:
    """The error report as CSV text: row, column, value, message; formula-like cells escaped."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["row", "column", "value", "message"])
    for error in errors:
        error = RowError.from_dict(error) if isinstance(error, dict) else error
        writer.writerow([
            "" if error.row is None else error.row,
            spreadsheet_escape(error.column or ""),
            spreadsheet_escape(error.value),
            spreadsheet_escape(error.message),
        ])
    return buffer.getvalue()


def _is_plain_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return bool(re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text))


def _cell_text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _file_error(message: str, *, row: int | None = None, column: str | None = None,
                value: str = "") -> RowError:
    return RowError(row, column, shown(value), message)


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB"


# --- reading files -------------------------------------------------------------------------


Progress = Callable[[float], None]


def metric_file_read(*, path: Path, file_name: str,
                     progress: Progress | None = None) -> MetricTable:
    """Read a metric file (CSV or the first sheet of an XLSX) into a table, or raise why not.

    The file's size, rows (METRIC_FILE_MAX_ROWS) and cells (METRIC_FILE_MAX_CELLS) are checked
    before its rows are held in memory; `progress` gets the share read, 0..1.
    """
    report = progress or (lambda share: None)
    file_format = _file_format(path, file_name)
    if file_format == "xlsx":
        table = _read_xlsx(path, report)
    else:
        table = _read_csv(path.read_bytes())
    report(1.0)
    return table


def metric_file_preview(*, path: Path, file_name: str, max_rows: int = 10,
                        progress: Progress | None = None) -> MetricFilePreview:
    """Detect the format, columns and row count and show the first rows, or the file's problems."""
    try:
        table = metric_file_read(path=path, file_name=file_name, progress=progress)
    except MetricFileRejected as rejected:
        return MetricFilePreview(
            file_name=file_name, format=rejected.format, notes=rejected.notes,
            errors=rejected.errors, error_count=rejected.error_count,
        )
    closed_errors, closed_count = _closed_month_errors(table)
    return replace(metric_table_preview(table=table, file_name=file_name, max_rows=max_rows),
                   errors=closed_errors, error_count=closed_count)


def metric_table_preview(*, table: MetricTable, file_name: str,
                         max_rows: int = 10) -> MetricFilePreview:
    """The facts of a table read from a file: format, columns, the first rows, the row count."""
    head = table.data.head(max_rows)
    ordered = [name for name in table.header if name in head.columns]
    return MetricFilePreview(
        file_name=file_name,
        format=table.format,
        encoding=table.encoding,
        delimiter=table.delimiter,
        sheet=table.sheet,
        columns=ordered,
        rows=[[shown(cell) for cell in row] for row in head[ordered].itertuples(index=False)],
        total_rows=len(table),
        notes=table.notes,
    )


def _closed_month_errors(table: MetricTable) -> tuple[list[RowError], int]:
    """The rows dated in a closed month, shown before the upload is confirmed."""
    log = _ErrorLog(table.rows)
    bad = np.zeros(len(table), dtype=bool)
    for mask, column, _message, _values in table.problems:
        if column in ("date", ""):  # a cell the import refuses for another reason
            bad |= mask
    days, date_ok = _date_rows(table.data["date"], bad, _ErrorLog(table.rows))
    _log_closed_months(log, date_ok & closed_month_mask(days), days, table.data["date"])
    return log.errors(), log.count


def _file_format(path: Path, file_name: str) -> str:
    """"csv" or "xlsx" from the extension, checked against the size and the magic bytes."""
    size = path.stat().st_size
    limit = settings.METRIC_FILE_MAX_BYTES
    if size == 0:
        raise MetricFileRejected([_file_error("the file is empty")])
    if size > limit:
        raise MetricFileRejected([_file_error(
            f"the file is too large: {_megabytes(size)}, the limit is {_megabytes(limit)}; "
            "split it into several files"
        )])
    with path.open("rb") as handle:
        head = handle.read(8192)
    kind = _magic_kind(head)
    extension = PurePosixPath(file_name.replace("\\", "/")).suffix.lower()
    if extension in XLSX_EXTENSIONS:
        if kind == "zip":
            return "xlsx"
        if kind == "ole":
            raise _rejected_as("xlsx", "the file is an encrypted (password-protected) or old-style "
                               "Excel workbook, not an XLSX; remove the password and save it "
                               "as .xlsx, or export CSV UTF-8")
        raise _rejected_as("xlsx", f"the file is named .xlsx but its content is "
                           f"{_kind_name(kind)}, not an XLSX workbook")
    if extension in CSV_EXTENSIONS:
        if kind in (None, "utf16", "nul"):
            return "csv"
        if kind == "zip":
            raise _rejected_as("csv", f"the file is named {extension} but is a zip archive "
                               "(an XLSX workbook?); name it .xlsx or export CSV UTF-8")
        raise _rejected_as("csv", f"the file is named {extension} but its content is "
                           f"{_kind_name(kind)}, not CSV text")
    if extension in {".xls", ".xlsm", ".xlsb", ".ods", ".numbers"}:
        raise _rejected_as(None, f"{extension} workbooks are not accepted: save the sheet as "
                           ".xlsx (Excel workbook) or as CSV UTF-8")
    named = f"'{extension}'" if extension else "none"
    raise _rejected_as(None, f"not a CSV or XLSX file (extension {named}); upload a .csv or "
                       ".xlsx file")


def _rejected_as(file_format: str | None, message: str) -> MetricFileRejected:
    return MetricFileRejected([_file_error(message)], format=file_format)


def _magic_kind(head: bytes) -> str | None:
    """What the first bytes say the content is; None for text."""
    signatures = (
        (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"PK\x07\x08", "zip"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"), (b"%PDF", "pdf"),
        (b"\x89PNG", "image"), (b"\xff\xd8\xff", "image"), (b"GIF8", "image"),
        (b"\x1f\x8b", "gzip"), (b"7z\xbc\xaf", "archive"), (b"Rar!", "archive"),
        (b"\x7fELF", "program"), (b"MZ", "program"),
        (codecs.BOM_UTF32_LE, "utf16"), (codecs.BOM_UTF32_BE, "utf16"),
        (codecs.BOM_UTF16_LE, "utf16"), (codecs.BOM_UTF16_BE, "utf16"),
    )
    for signature, kind in signatures:
        if head.startswith(signature):
            return kind
    if b"\x00" in head:
        return "nul"
    return None


def _kind_name(kind: str | None) -> str:
    return {
        "zip": "a zip archive", "ole": "an old-style Office document", "pdf": "a PDF document",
        "image": "an image", "gzip": "a gzip archive", "archive": "a compressed archive",
        "program": "a program", "utf16": "UTF-16 text", "nul": "binary data", None: "text",
    }[kind]


# CSV


def _read_csv(data: bytes) -> MetricTable:
    encoding = "utf-8"
    if data.startswith(codecs.BOM_UTF8):
        data, encoding = data[len(codecs.BOM_UTF8):], "utf-8 with BOM"
    _check_utf8(data)
    if not data.strip():
        raise _rejected_as("csv", "the file is empty")
    first_line = data[: data.find(b"\n")] if b"\n" in data else data
    first_text = first_line.decode("utf-8", "replace").rstrip("\r")
    delimiter = _detect_delimiter(first_text)
    # Every line is at most one row: with the header's width that bounds the cells before
    # pandas holds any of them.
    lines = data.count(b"\n") + (not data.endswith(b"\n"))
    width = len(next(csv.reader([first_text], delimiter=delimiter), [])) or 1
    _check_cells(width, min(lines - 1, _max_rows() + 1), file_format="csv")
    try:
        frame = pd.read_csv(
            io.BytesIO(data), sep=delimiter, header=None, dtype=str, keep_default_na=False,
            na_filter=False, skip_blank_lines=False, engine="c", encoding="utf-8",
            quotechar='"', doublequote=True, nrows=_max_rows() + 2,
        )
    except pd.errors.EmptyDataError:
        raise _rejected_as("csv", "the file is empty") from None
    except pd.errors.ParserError as error:
        raise MetricFileRejected([_parser_error(str(error), delimiter)], format="csv") from None
    if len(frame) - 1 > _max_rows():
        raise _too_many_rows("csv")
    header_cells = frame.iloc[0].tolist()
    data_frame = frame.iloc[1:].reset_index(drop=True)
    rows = np.arange(2, len(data_frame) + 2)
    table = _table_from_cells(
        "csv", header_cells, data_frame, rows, encoding=encoding, delimiter=delimiter,
    )
    _check_field_sizes(table, longest_line=_longest_line(data))
    return table


def _max_rows() -> int:
    return settings.METRIC_FILE_MAX_ROWS


def _too_many_rows(file_format: str, *, notes: Iterable[str] = ()) -> MetricFileRejected:
    limit = _max_rows()
    return MetricFileRejected([_file_error(
        f"the file has more than {limit:,} data rows, the limit (METRIC_FILE_MAX_ROWS): split "
        "it into several files", row=limit + 2,
    )], format=file_format, notes=notes)


def _check_cells(width: int, height: int, *, file_format: str, notes: Iterable[str] = (),
                 where: str = "the file") -> None:
    """Refuse a table whose rectangle of cells (header and data rows) is over the limit."""
    limit = settings.METRIC_FILE_MAX_CELLS
    cells = width * (height + 1)
    if cells > limit:
        raise MetricFileRejected([_file_error(
            f"{where} spans {width:,} columns and {height + 1:,} rows: {cells:,} cells, more "
            f"than the limit of {limit:,} (METRIC_FILE_MAX_CELLS); keep only the columns "
            f"{', '.join(COLUMNS)} and split the rows into several files",
        )], format=file_format, notes=notes)


def _check_utf8(data: bytes) -> None:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _rejected_as("csv", "the file is UTF-16 encoded (Excel's 'Unicode Text'); save "
                           "it as 'CSV UTF-8 (comma delimited)'")
    if b"\x00" in data:
        raise _rejected_as("csv", "the file contains NUL bytes: it is binary or UTF-16 "
                           "without a byte-order mark; save it as 'CSV UTF-8'")
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    step = 1 << 20
    for start in range(0, len(data), step):
        try:
            decoder.decode(data[start:start + step], final=start + step >= len(data))
        except UnicodeDecodeError as error:
            offset = start + error.start
            # A multi-byte character cut at the chunk boundary is reported from its first byte.
            row = data.count(b"\n", 0, max(offset, 0)) + 1
            byte = data[offset:offset + 1].hex().upper() if offset >= 0 else "?"
            raise MetricFileRejected([_file_error(
                f"the file is not UTF-8: byte 0x{byte} on line {row} cannot be decoded (is it "
                "Windows-1252 / Latin-1?); save it as 'CSV UTF-8'",
                row=row,
            )], format="csv") from None


def _detect_delimiter(first_line: str) -> str:
    """The delimiter that splits the header into the most known column names."""
    best, best_score = ",", (-1, -1)
    for delimiter in (",", ";", "\t"):
        fields = next(csv.reader([first_line], delimiter=delimiter), [])
        score = (sum(name.strip().lower() in COLUMNS for name in fields), len(fields))
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _parser_error(message: str, delimiter: str) -> RowError:
    shown_delimiter = "tab" if delimiter == "\t" else repr(delimiter)
    if match := re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message):
        expected, line, saw = (int(group) for group in match.groups())
        return _file_error(
            f"this row has {saw} fields but the header has {expected}: a value containing "
            f"the delimiter {shown_delimiter} must be in double quotes",
            row=line,
        )
    if match := re.search(r"EOF inside string starting at row (\d+)", message):
        return _file_error(
            'a double quote (") opened on this row is never closed: the rest of the file '
            "would be one field",
            row=int(match.group(1)) + 1,
        )
    if "overflow" in message.lower():
        return _file_error("a field is too large or the file is malformed (an unclosed quote?)")
    return _file_error(f"the file cannot be read as CSV: {message}")


def _longest_line(data: bytes) -> int:
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    bounds = np.concatenate(([-1], newlines, [len(data)]))
    return int(np.diff(bounds).max()) if len(bounds) > 1 else len(data)


def _check_field_sizes(table: MetricTable, *, longest_line: int) -> None:
    """Oversized cells (an unclosed quote swallows lines) become row errors, not data."""
    if longest_line <= MAX_FIELD_CHARS:
        return
    for column in table.data.columns:
        lengths = table.data[column].str.len().to_numpy()
        too_long = lengths > MAX_FIELD_CHARS
        if too_long.any():
            table.problems.append((
                too_long, column,
                f"the field is too long (more than {MAX_FIELD_CHARS:,} characters): an "
                "unclosed quote?",
                table.data[column],
            ))
            table.data.loc[too_long, column] = ""


# XLSX


def _read_xlsx(path: Path, report: Progress) -> MetricTable:
    from python_calamine import CalamineError, CalamineWorkbook

    sheet_names, sheet_part, strings_part = _xlsx_inspect(path)
    notes = []
    if len(sheet_names) > 1:
        others = ", ".join(repr(name) for name in sheet_names[1:4])
        more = ", ..." if len(sheet_names) > 4 else ""
        notes.append(
            f"The workbook has {len(sheet_names)} sheets; reading the first, "
            f"{sheet_names[0]!r} (not read: {others}{more})."
        )
    # calamine holds the whole sheet as a dense rectangle: its size is checked from the XML
    # first (a few far-apart cells would otherwise ask for terabytes and abort the process).
    scan = _xlsx_scan(path, sheet_part, sheet_names[0], notes,
                      lambda share: report(0.3 * share))
    if strings_part:
        _xlsx_check_strings(path, strings_part, scan, notes)
    try:
        with CalamineWorkbook.from_path(str(path)) as workbook:
            sheet = workbook.get_sheet_by_index(0)
            header_cells, data = _xlsx_columns(
                sheet, scan, notes, lambda share: report(0.35 + 0.55 * share)
            )
            del sheet
    except (CalamineError, ValueError, OSError) as error:
        raise MetricFileRejected(
            [_file_error(f"the XLSX workbook cannot be read: {error}")], format="xlsx",
            notes=notes,
        ) from None
    if header_cells is None:
        raise MetricFileRejected([_file_error(f"the sheet {sheet_names[0]!r} is empty")],
                                 format="xlsx", notes=notes)
    table = _table_from_cells(
        "xlsx", header_cells, data, np.arange(2, len(data) + 2), sheet=sheet_names[0],
        notes=notes,
    )
    del data
    if scan.formula_count:
        names = [_cell_text(cell).strip().lower() for cell in header_cells]
        raise MetricFileRejected([found.error(names) for found in scan.formulas],
                                 error_count=scan.formula_count, format="xlsx", notes=notes)
    _xlsx_types(table)
    return table


# Rows taken from calamine at a time: transposed into columns at C speed, then let go.
XLSX_CHUNK_ROWS = 65_536
# Columns whose text repeats (codes, sides, dates as text): one string object per distinct value.
_REPEATED_TEXT = frozenset({"agreement", "kpi", "side", "date"})


def _xlsx_columns(sheet, scan: "_SheetScan", notes: list[str],
                  report: Progress) -> tuple[list | None, pd.DataFrame]:
    """The header row and the data rows as columns (spreadsheet row 1 is the header)."""
    start_column = (sheet.start or (0, 0))[1]
    rows = sheet.iter_rows()  # from spreadsheet row 1; columns from the first one used
    first = next(rows, None)
    if first is None:
        return None, pd.DataFrame()
    header = [""] * start_column + list(first)
    names = [_cell_text(cell).strip().lower() for cell in header]
    columns: list[list] = [[] for _ in header]
    interned = [{} if name in _REPEATED_TEXT else None for name in names]
    count = 0
    expected = max(scan.height - 1, 1)
    while chunk := list(itertools.islice(rows, XLSX_CHUNK_ROWS)):
        count += len(chunk)
        if count > _max_rows():
            raise _too_many_rows("xlsx", notes=notes)
        for position in range(start_column):
            columns[position].extend([""] * len(chunk))
        for offset, cells in enumerate(zip(*chunk, strict=True)):
            known = interned[start_column + offset]
            if known is not None:
                cells = [known.setdefault(cell, cell) if type(cell) is str else cell
                         for cell in cells]
            columns[start_column + offset].extend(cells)
        del chunk
        report(min(count / expected, 1.0))
    data = pd.DataFrame({position: pd.Series(column, dtype=object)
                         for position, column in enumerate(columns)})
    if not len(data.columns):
        data = pd.DataFrame(index=range(count))
    return header, data


def _xlsx_inspect(path: Path) -> tuple[list[str], str, str | None]:
    """Check the zip directory and every XML prolog; the sheet names, the first sheet's part and
    the shared strings' part."""
    limit = settings.METRIC_FILE_MAX_UNPACKED_BYTES
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise _rejected_as("xlsx", "the file is not a valid XLSX workbook (a damaged zip "
                           "archive)") from None
    with archive:
        entries = archive.infolist()
        unpacked = sum(entry.file_size for entry in entries)
        if len(entries) > XLSX_MAX_ENTRIES or unpacked > limit:
            raise _rejected_as("xlsx", f"the workbook would unpack to {_megabytes(unpacked)} "
                               f"in {len(entries):,} parts (the limit is {_megabytes(limit)}, "
                               "METRIC_FILE_MAX_UNPACKED_BYTES): refused as a possible zip "
                               "bomb; export the sheet as CSV UTF-8 or split it")
        for entry in entries:
            ratio = entry.file_size / max(entry.compress_size, 1)
            if entry.file_size > 1_000_000 and ratio > XLSX_MAX_RATIO:
                raise _rejected_as("xlsx", f"the part {entry.filename!r} is compressed "
                                   f"{ratio:,.0f} to 1: refused as a possible zip bomb")
            if entry.flag_bits & 0x1:
                raise _rejected_as("xlsx", "the workbook is encrypted; remove the password")
        names = {entry.filename for entry in entries}
        if "xl/workbook.xml" not in names:
            raise _rejected_as("xlsx", "the file is a zip archive but not an XLSX workbook "
                               "(it has no xl/workbook.xml)")
        for entry in entries:
            if entry.filename.endswith((".xml", ".rels")):
                _xml_prolog_check(archive, entry.filename)
        sheets, part, strings = _xlsx_sheets(archive)
        if part not in names:
            raise _rejected_as("xlsx", f"the workbook's first sheet ({sheets[0]!r}) is not a "
                               "worksheet or is missing")
    return sheets, part, strings if strings in names else None


def _xml_prolog_check(archive: zipfile.ZipFile, name: str) -> None:
    """Refuse any DTD (entity bombs live there); a DTD can only come before the root element."""
    try:
        with archive.open(name) as stream:
            for _event in SafeET.iterparse(stream, events=("start",), forbid_dtd=True):
                break
    except DefusedXmlException:
        raise _rejected_as("xlsx", f"the part {name!r} declares a document type or entities "
                           "(an XML entity bomb?); refused") from None
    except (SafeET.ParseError, zipfile.BadZipFile, EOFError, OSError, ValueError):
        raise _rejected_as("xlsx", f"the workbook is damaged: the part {name!r} is not "
                           "valid XML") from None


def _xlsx_sheets(archive: zipfile.ZipFile) -> tuple[list[str], str, str]:
    main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    relation = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
    try:
        workbook = SafeET.fromstring(archive.read("xl/workbook.xml"), forbid_dtd=True)
        rels = SafeET.fromstring(archive.read("xl/_rels/workbook.xml.rels"), forbid_dtd=True)
    except (KeyError, SafeET.ParseError, DefusedXmlException):
        raise _rejected_as("xlsx", "the workbook is damaged (its sheet list cannot be "
                           "read)") from None
    sheets = workbook.findall(f"{main}sheets/{main}sheet")
    if not sheets:
        raise _rejected_as("xlsx", "the workbook has no sheets")
    targets = {rel.get("Id"): rel.get("Target", "") for rel in rels}
    strings = next((rel.get("Target", "") for rel in rels
                    if rel.get("Type", "").endswith("/sharedStrings")), "sharedStrings.xml")
    return ([sheet.get("name", "") for sheet in sheets],
            _part_name(targets.get(sheets[0].get(relation), "")), _part_name(strings))


def _part_name(target: str) -> str:
    part = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return str(PurePosixPath(part)).replace("xl/./", "xl/")


@dataclass(frozen=True)
class _FoundFormula:
    row: int | None
    column: int | None  # 1-based
    cell: str
    formula: str
    is_error_value: bool

    def error(self, names: list[str]) -> RowError:
        column = None
        if self.column is not None and self.column <= len(names):
            column = names[self.column - 1] or None
        if self.is_error_value:
            return RowError(self.row, column, "", f"cell {self.cell} holds an error value "
                            "(such as #N/A or #DIV/0!): enter a number")
        return RowError(self.row, column, shown("=" + self.formula if self.formula else ""),
                        f"cell {self.cell} holds a formula: paste the values only (Paste "
                        "Special, Values) and upload again")


@dataclass
class _SheetScan:
    """What one pass over a sheet's XML found, without holding more than a chunk of it."""

    rows: int = 0  # <row> elements
    cells: int = 0  # <c> elements
    max_row: int = 0  # the highest row number a row or cell names
    max_column: int = 0  # the highest column number a cell names
    rows_unnamed: int = 0  # rows without r="": placed after the one before
    widest_unnamed: int = 0  # the most cells without r="" in one row
    formulas: list[_FoundFormula] = field(default_factory=list)
    formula_count: int = 0

    @property
    def height(self) -> int:
        return max(self.max_row, self.rows) + self.rows_unnamed

    @property
    def width(self) -> int:
        return self.max_column + self.widest_unnamed


# Whitespace between attributes and single quotes around values become one form, so that
# bytes.count and simple patterns see every tag and reference.
_ATTRIBUTE_FORMS = bytes.maketrans(b"\t\n\r'", b'   "')
_DIMENSION = re.compile(rb'dimension ref="[A-Z]{0,3}[0-9]{0,9}:?([A-Z]{1,3})([0-9]{1,9})"')


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def _xlsx_scan(path: Path, part: str, sheet: str, notes: list[str],
               report: Progress) -> _SheetScan:
    """Count the sheet's rows and cells, find its extent and its formula and error cells.

    The XML is streamed in chunks cut before a tag, so every tag scanned is whole; the tail of
    the previous chunk is kept to find the start tag (and reference) of a formula's cell. The
    declared dimension and the running counts refuse an oversized sheet as early as possible.
    """
    scan = _SheetScan()
    limit_rows = _max_rows() + 1

    def check(*, declared: bool = False) -> None:
        where = (f"the sheet {sheet!r} declares that it" if declared
                 else f"the sheet {sheet!r}")
        if scan.height > limit_rows:
            raise MetricFileRejected([_file_error(
                f"{where} has {scan.height - 1:,} data rows or more, more than the limit of "
                f"{limit_rows - 1:,} (METRIC_FILE_MAX_ROWS): split it into several files",
                row=limit_rows + 1,
            )], format="xlsx", notes=notes)
        _check_cells(max(scan.width, 1), max(scan.height, 1) - 1, file_format="xlsx",
                     notes=notes, where=where.replace(" declares that it", "'s declared size"))

    with zipfile.ZipFile(path) as archive, archive.open(part) as stream:
        size = max(archive.getinfo(part).file_size, 1)
        first = stream.read(1 << 16)
        root = re.search(rb"<([A-Za-z_][\w.-]*:)?worksheet[\s>]", first)
        prefix = root.group(1) or b"" if root else b""
        formula_tag, error_type = b"<" + prefix + b"f", b' t="e"'
        cell_tags = (b"<" + prefix + b"c ", b"<" + prefix + b"c>", b"<" + prefix + b"c/>")
        row_tags = (b"<" + prefix + b"row ", b"<" + prefix + b"row>", b"<" + prefix + b"row/>")
        if declared := _DIMENSION.search(first.translate(_ATTRIBUTE_FORMS)):
            scan.max_column = _column_number(declared.group(1))
            scan.max_row = int(declared.group(2))
            check(declared=True)
            scan.max_column = scan.max_row = 0
        pending, context, chunk, done, carried = first, b"", first, len(first), 0
        while True:
            more = stream.read(1 << 22) if chunk else b""
            done += len(more)
            buffer = pending + more
            cut = buffer.rfind(b"<") if more else len(buffer)
            if cut <= 0 and more:
                pending, chunk = buffer, more
                continue
            region = buffer[:cut].translate(_ATTRIBUTE_FORMS)
            carried = _count_extent(scan, region, cell_tags, row_tags, carried)
            check()
            scanned = context + buffer[:cut]
            # bytes.find is many times faster than a regex over hundreds of megabytes.
            for position in _occurrences(scanned, formula_tag, len(context)):
                end = position + len(formula_tag)
                if scanned[end:end + 1] in (b">", b" ", b"/", b"\t", b"\r", b"\n"):
                    scan.formula_count += 1
                    if len(scan.formulas) < MAX_ERRORS:
                        scan.formulas.append(_found_formula(scanned, position, False, prefix))
            for position in _occurrences(scanned, error_type, len(context)):
                scan.formula_count += 1
                if len(scan.formulas) < MAX_ERRORS:
                    scan.formulas.append(_found_formula(scanned, position, True, prefix))
            context, pending, chunk = scanned[-8192:], buffer[cut:], more
            report(min(done / size, 1.0))
            if not more:
                break
    return scan


def _count_extent(scan: _SheetScan, region: bytes, cell_tags: tuple[bytes, ...],
                  row_tags: tuple[bytes, ...], carried: int) -> int:
    """Add a region's rows, cells and farthest references to the scan; returns the unnamed
    cells of its last, possibly unfinished, row (carried into the next region)."""
    cells = sum(region.count(tag) for tag in cell_tags)
    rows = sum(region.count(tag) for tag in row_tags)
    scan.cells += cells
    scan.rows += rows
    named_cells, named_rows, max_column, max_row = _references(region)
    scan.max_column = max(scan.max_column, max_column)
    scan.max_row = max(scan.max_row, max_row)
    scan.rows_unnamed += max(rows - named_rows, 0)
    if named_cells >= cells:
        return 0
    # Cells without a reference follow the one before: the sheet is as wide as the most of
    # them in one row, beyond the farthest named column.
    parts = region.split(b"</" + row_tags[1][1:])
    counts = [sum(part.count(tag) for tag in cell_tags) - _references(part)[0]
              for part in parts]
    counts[0] += carried
    scan.widest_unnamed = max(scan.widest_unnamed, *counts)
    return counts[-1]


_LETTER_WEIGHTS = np.array([1, 26, 676], dtype=np.int64)


def _references(region: bytes) -> tuple[int, int, int, int]:
    """Cell references (r="XFD9") and row numbers (r="9") of a region, with numpy rather than a
    Python loop over millions of matches: (cells named, rows named, max column, max row)."""
    data = np.frombuffer(region, dtype=np.uint8)
    if len(data) < 5:
        return 0, 0, 0, 0
    # ' r="': the attribute r, found only on rows and cells. One pass for "r", then its
    # neighbours at the (far fewer) places found.
    found = np.flatnonzero(data[1:-3] == 114) + 1
    found = found[(data[found - 1] == 32) & (data[found + 1] == 61) & (data[found + 2] == 34)]
    starts = found + 3
    if not len(starts):
        return 0, 0, 0, 0
    padded = np.concatenate([data, np.zeros(16, dtype=np.uint8)])
    heads = padded[starts[:, None] + np.arange(4)].astype(np.int64)
    is_letter = (heads >= 65) & (heads <= 90)
    letters = np.argmin(is_letter, axis=1)  # leading letters, 0 to 3 (4 is not a reference)
    digits = padded[(starts + letters)[:, None] + np.arange(10)].astype(np.int64) - 48
    is_digit = np.logical_and.accumulate((digits >= 0) & (digits <= 9), axis=1)
    numbers = np.zeros(len(starts), dtype=np.int64)
    for place in range(10):
        numbers = np.where(is_digit[:, place], numbers * 10 + digits[:, place], numbers)
    columns = np.zeros(len(starts), dtype=np.int64)
    for place in range(3):
        columns = np.where(place < letters, columns * 26 + heads[:, place] - 64, columns)
    is_cell = (letters >= 1) & (letters <= 3) & is_digit[:, 0]
    is_row = (letters == 0) & is_digit[:, 0]
    return (int(is_cell.sum()), int(is_row.sum()),
            int(columns[is_cell].max(initial=0)), int(numbers[is_cell | is_row].max(initial=0)))


def _xlsx_check_strings(path: Path, part: str, scan: _SheetScan, notes: list[str]) -> None:
    """Refuse a shared-strings table far larger than the sheet read (calamine loads it whole)."""
    limit = max(scan.cells, 100_000)
    count = 0
    with zipfile.ZipFile(path) as archive, archive.open(part) as stream:
        first = stream.read(1 << 16)
        root = re.search(rb"<([A-Za-z_][\w.-]*:)?sst[\s>]", first)
        prefix = root.group(1) or b"" if root else b""
        tags = (b"<" + prefix + b"si>", b"<" + prefix + b"si ", b"<" + prefix + b"si/>")
        pending = first
        while True:
            more = stream.read(1 << 22)
            buffer = pending + more
            cut = buffer.rfind(b"<") if more else len(buffer)
            if cut <= 0 and more:
                pending = buffer
                continue
            region = buffer[:cut].translate(_ATTRIBUTE_FORMS)
            count += sum(region.count(tag) for tag in tags)
            if count > limit:
                raise MetricFileRejected([_file_error(
                    f"the workbook holds more than {limit:,} distinct texts, far more than its "
                    "first sheet uses: save that sheet alone as a new workbook or as CSV UTF-8",
                )], format="xlsx", notes=notes)
            pending = buffer[cut:]
            if not more:
                break


def _occurrences(text: bytes, needle: bytes, start: int) -> Iterator[int]:
    position = text.find(needle, start)
    while position >= 0:
        yield position
        position = text.find(needle, position + 1)


def _found_formula(text: bytes, position: int, is_error_value: bool,
                   prefix: bytes) -> _FoundFormula:
    start = text.rfind(b"<" + prefix + b"c ", 0, position)
    tag_end = text.find(b">", start) if start >= 0 else -1
    reference = re.search(rb'\br="([A-Z]+)([0-9]+)"', text[start:tag_end]) if start >= 0 \
        else None
    row = column = None
    cell = "?"
    if reference:
        letters, row = reference.group(1).decode(), int(reference.group(2))
        column = _column_number(reference.group(1))
        cell = f"{letters}{row}"
    formula = ""
    if not is_error_value:
        body_start = text.find(b">", position)
        body_end = text.find(b"<", body_start)
        if text[body_start - 1:body_start] != b"/" and body_end > body_start:
            formula = text[body_start + 1:body_end].decode("utf-8", "replace")
    return _FoundFormula(row, column, cell, formula, is_error_value)


def _xlsx_types(table: MetricTable) -> None:
    """Turn typed XLSX cells into the text columns and numbers the validator reads."""
    data = table.data
    for column in ("agreement", "kpi", "side", "note"):
        if column in data:
            codes, uniques = pd.factorize(data[column], use_na_sentinel=False)
            texts = np.array([_cell_text(cell) for cell in uniques] or [""], dtype=object)
            data[column] = texts[codes]
    if "date" in data:
        codes, uniques = pd.factorize(data["date"], use_na_sentinel=False)
        converted = [_xlsx_date(cell) for cell in uniques] or [("", None)]
        texts = np.array([text for text, _problem in converted], dtype=object)
        problems = np.array([problem or "" for _text, problem in converted], dtype=object)
        raw = data["date"]
        for message in set(problems) - {""}:
            table.problems.append((problems[codes] == message, "date", message, raw))
        data["date"] = texts[codes]
    if "value" in data:
        raw = data["value"]
        kinds = raw.map(type)
        numeric = kinds.isin([float, int]).to_numpy()
        table.numbers = _floats(raw, numeric)
        text = kinds.isin([str]).to_numpy()
        empty = text & (raw == "").to_numpy()
        table.problems.append((empty, "value", "empty: a value is required", raw))
        table.problems.append((
            text & ~empty, "value",
            lambda kept: [_number_problem(value) + "; in an XLSX, enter it as a number cell"
                          for value in raw.to_numpy(dtype=object)[kept]],
            raw,
        ))
        table.problems.append((
            ~numeric & ~text, "value", "not a number (a date or TRUE/FALSE cell)", raw,
        ))


def _floats(raw: pd.Series, numeric: np.ndarray) -> np.ndarray:
    """Numeric cells as float64 (NaN elsewhere); an integer beyond float range becomes inf."""
    numbers = np.full(len(raw), np.nan)
    picked = raw.to_numpy(dtype=object)[numeric]
    try:
        numbers[numeric] = picked.astype(np.float64)
    except OverflowError:
        numbers[numeric] = [_float_or_inf(value) for value in picked]
    return numbers


def _float_or_inf(value: float | int) -> float:
    try:
        return float(value)
    except OverflowError:
        return np.inf if value > 0 else -np.inf


def _xlsx_date(cell: object) -> tuple[str, str | None]:
    if isinstance(cell, dt.datetime):
        if cell.time() != dt.time(0, 0):
            return "", "the date cell has a time of day; enter a date only"
        return cell.date().isoformat(), None
    if isinstance(cell, dt.date):
        return cell.isoformat(), None
    if isinstance(cell, str):
        return cell, None
    if isinstance(cell, bool):
        return "", "not a date (a TRUE/FALSE cell)"
    if isinstance(cell, int | float):
        return "", ("a number, not a date: format the cell as a date or write the date as "
                    "text YYYY-MM-DD")
    return "", "not a date; enter a date cell or text YYYY-MM-DD"


# Both formats


def _table_from_cells(file_format: str, header_cells: list, data: pd.DataFrame,
                      rows: np.ndarray, **details) -> MetricTable:
    """Check the header, drop blank rows and unnamed empty columns, name the metric columns."""
    header = [_cell_text(cell).strip() for cell in header_cells]
    names = [name.lower() for name in header]
    blank_cells = np.column_stack([(data[column] == "").to_numpy() for column in data.columns]) \
        if len(data.columns) else np.ones((len(data), 0), dtype=bool)
    blank_row = blank_cells.all(axis=1) if len(data.columns) else np.ones(len(data), bool)
    errors = []
    seen = set()
    keep = []
    for position, name in enumerate(names):
        if not name:
            if (~blank_cells[:, position]).any():
                first = int(rows[np.flatnonzero(~blank_cells[:, position])[0]])
                errors.append(_file_error(
                    f"column {position + 1} has values (from row {first}) but no header",
                    row=1,
                ))
            continue
        if name not in COLUMNS:
            errors.append(_file_error(
                f"unknown column {header[position]!r}: the columns are "
                f"{', '.join(COLUMNS)}", row=1, column=header[position], value=header[position],
            ))
        elif name in seen:
            errors.append(_file_error(f"the column {name!r} appears twice", row=1,
                                      column=name))
        else:
            seen.add(name)
            keep.append(position)
    missing = [name for name in REQUIRED_COLUMNS if name not in seen]
    if missing:
        found = ", ".join(repr(name) for name in header if name) or "nothing"
        errors.insert(0, _file_error(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}: the first "
            f"row must be the header agreement, kpi, date, value[, side, note] (found {found})",
            row=1,
        ))
    if errors:
        raise MetricFileRejected(errors, format=file_format, notes=details.get("notes", ()))
    present = ~blank_row
    if not present.any():
        raise MetricFileRejected(
            [_file_error("the file has a header but no data rows")], format=file_format,
            notes=details.get("notes", ()),
        )
    columns = {names[position]: data.iloc[:, position] for position in keep}
    frame = pd.DataFrame(columns)
    if not present.all():
        frame, rows = frame[present].reset_index(drop=True), rows[present]
    return MetricTable(
        format=file_format, data=frame, rows=rows,
        header=[names[position] for position in keep], **details,
    )


# --- API records ---------------------------------------------------------------------------


def metric_records_table(*, records: object) -> MetricTable:
    """The API's list of {agreement, kpi, date, value, side?, note?} as a table (row = index).

    Values must be JSON numbers and dates ISO strings; a wrong type is a row error.
    """
    if not isinstance(records, list):
        raise MetricFileRejected([_file_error("expected a JSON array of records")])
    if not records:
        raise MetricFileRejected([_file_error("no records: the array is empty")])
    count = len(records)
    is_object = np.fromiter((isinstance(record, dict) for record in records), bool, count)
    frame = pd.DataFrame.from_records(
        [record if isinstance(record, dict) else {} for record in records],
        index=range(count),
    )
    table = MetricTable(format="records", data=pd.DataFrame(index=range(count)),
                        rows=np.arange(count), header=list(COLUMNS))
    raw_records = pd.Series(records, dtype=object)
    table.problems.append((~is_object, "", "not a JSON object", raw_records))
    for name in frame.columns:
        if name not in COLUMNS:
            present = frame[name].notna().to_numpy()
            table.problems.append((present, str(name), f"unknown field {str(name)!r}: the "
                                   f"fields are {', '.join(COLUMNS)}", frame[name]))
    for name in COLUMNS:
        raw = frame[name].astype(object) if name in frame else pd.Series(
            [None] * count, dtype=object)
        kinds = raw.map(type)
        absent = raw.isna().to_numpy()
        is_text = kinds.isin([str]).to_numpy()
        if name == "value":
            numeric = kinds.isin([float, int]).to_numpy()
            table.numbers = _floats(raw, numeric)
            table.problems.append((absent & is_object, name, "missing: a value is required",
                                   raw))
            table.problems.append((is_text, name, "must be a JSON number, not a string", raw))
            table.problems.append((~numeric & ~is_text & ~absent, name,
                                   "must be a JSON number", raw))
            table.data[name] = raw
            continue
        if name in REQUIRED_COLUMNS:
            table.problems.append((absent & is_object, name, f"missing: {_required_text(name)}",
                                   raw))
        expected = "an ISO date string YYYY-MM-DD" if name == "date" else "a string"
        table.problems.append((~is_text & ~absent, name, f"must be {expected}", raw))
        text = raw.where(is_text, "")
        nul = text.str.contains("\x00", regex=False).to_numpy(dtype=bool)
        table.problems.append((nul, name, "contains a NUL character", raw))
        table.data[name] = text.where(~nul, "")
    return table


def _required_text(name: str) -> str:
    return {"agreement": "an agreement code is required", "kpi": "a KPI code is required",
            "date": "a date is required"}.get(name, "required")


# --- validation ----------------------------------------------------------------------------


class _ErrorLog:
    """Errors by row mask: counts them all, keeps the first MAX_ERRORS in row order."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows
        self.count = 0
        self.parts: list[pd.DataFrame] = []

    def add(self, mask: np.ndarray, column: str | None, message: str | Callable,
            values: pd.Series | np.ndarray | Callable | None = None) -> None:
        """Log the masked rows; `message` and `values` may be functions of the kept positions."""
        positions = np.flatnonzero(mask)
        if not len(positions):
            return
        self.count += len(positions)
        kept = positions[:MAX_ERRORS]
        if values is None:
            picked = [""] * len(kept)
        elif callable(values):
            picked = list(values(kept))
        else:
            picked = np.asarray(values, dtype=object)[kept] if not isinstance(
                values, pd.Series) else values.to_numpy(dtype=object)[kept]
        messages = list(message(kept)) if callable(message) else [message] * len(kept)
        self.parts.append(pd.DataFrame({
            "position": kept, "order": COLUMN_ORDER.get(column, -1),
            "column": column or None, "value": [shown(value) for value in picked],
            "message": messages,
        }))

    def errors(self) -> list[RowError]:
        if not self.parts:
            return []
        kept = pd.concat(self.parts).sort_values(["position", "order"], kind="stable")
        kept = kept.head(MAX_ERRORS)
        rows = self.rows[kept["position"].to_numpy()]
        return [
            RowError(int(row), column if isinstance(column, str) else None, value, message)
            for row, column, value, message in zip(
                rows, kept["column"], kept["value"], kept["message"], strict=True
            )
        ]


COLUMN_ORDER = {name: position for position, name in enumerate(COLUMNS)}


def metric_rows_validate(*, table: MetricTable, uploader: Uploader, default_side: str,
                         today: dt.date | None = None) -> ValidatedRows:
    """Check every row against the program and the uploader's rights; the rows to write or why not.

    Per row: known agreement (one of the partner's own, for a partner editor), known KPI that
    is part of the agreement, side host/partner (a partner editor only `partner`), an ISO date
    not in a closed month, not in the future and within the agreement's start and end (a date
    in a closed month gets that error only), a finite number within the
    program's magnitude limit and the KPI's allowed values (a count whole and ≥ 0, its minimum
    and maximum), a note of at most 500 characters, and no key (agreement, kpi, side, date)
    twice in the table.
    """
    today = today or timezone.localdate()
    data = table.data
    n = len(table)
    log = _ErrorLog(table.rows)
    bad = {name: np.zeros(n, dtype=bool) for name in (*COLUMNS, "")}
    for mask, column, message, values in table.problems:
        log.add(mask, column or None, message, values)
        bad[column if column in bad else ""] |= mask
    for name in COLUMNS:  # a row that is not a record at all gets no further errors
        bad[name] |= bad[""]

    agreement = _agreement_rows(data["agreement"], uploader, bad["agreement"], log)
    kpi_ids, kpi_ok = _kpi_rows(data["kpi"], bad["kpi"], log)
    allowed = _agreement_kpi_keys(np.unique(agreement.ids[agreement.ok]))
    not_part = agreement.ok & kpi_ok & ~np.isin(
        agreement.ids.astype(np.int64) * (1 << 32) + kpi_ids, allowed
    )
    log.add(not_part, "kpi", lambda kept: [
        f"the KPI is not part of agreement {str(code).strip()!r}"
        for code in data["agreement"].to_numpy(dtype=object)[kept]
    ], data["kpi"])
    kpi_ok &= ~not_part

    side_codes, side_ok = _side_rows(data.get("side"), n, uploader, default_side,
                                     bad["side"], log)
    days, date_ok = _date_rows(data["date"], bad["date"], log)
    closed = date_ok & closed_month_mask(days)
    _log_closed_months(log, closed, days, data["date"])
    date_ok &= ~closed
    future = date_ok & (days > np.datetime64(today, "D"))
    log.add(future, "date", f"the date is in the future (today is {today.isoformat()})",
            data["date"])
    before = date_ok & ~future & agreement.ok & (days < agreement.starts)
    log.add(before, "date", lambda kept: [
        f"the date is before the agreement's start ({np.datetime_as_string(start)})"
        for start in agreement.starts[kept]
    ], data["date"])
    after = date_ok & ~future & agreement.ok & (days > agreement.ends)
    log.add(after, "date", lambda kept: [
        f"the date is after the agreement's end ({np.datetime_as_string(end)})"
        for end in agreement.ends[kept]
    ], data["date"])
    date_ok &= ~(future | before | after)

    values, _ = _value_rows(table, bad["value"], log, kpi_ids=kpi_ids, kpi_ok=kpi_ok)

    notes = data["note"].astype(str).str.strip() if "note" in data else None
    if notes is not None:
        too_long = (notes.str.len() > MAX_NOTE_CHARS).to_numpy() & ~bad["note"]
        log.add(too_long, "note", f"the note is longer than {MAX_NOTE_CHARS} characters",
                notes)

    keyed = agreement.ok & kpi_ok & side_ok & date_ok & ~bad[""]
    _duplicate_rows(keyed, agreement.ids, kpi_ids, side_codes, days, table, log)

    if log.count:
        return ValidatedRows(pd.DataFrame(), n, log.errors(), log.count)
    frame = pd.DataFrame({
        "agreement_id": agreement.ids.astype(np.int64),
        "kpi_id": kpi_ids.astype(np.int64),
        "side": np.array([Side.HOST.value, Side.PARTNER.value], dtype=object)[side_codes],
        "date": days.astype("datetime64[D]"),
        "value": values,
        "note": notes.to_numpy(dtype=object) if notes is not None else "",
    })
    return ValidatedRows(frame, n, [], 0, rows=table.rows)


@dataclass
class _AgreementRows:
    ids: np.ndarray
    ok: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


def _agreement_rows(column: pd.Series, uploader: Uploader, bad: np.ndarray,
                    log: _ErrorLog) -> _AgreementRows:
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    stripped = [str(code).strip() for code in uniques]
    known = _lookup(Agreement.objects.all(), stripped,
                    ("code", "id", "partner_id", "start_date", "end_date"))
    ids = np.full(len(stripped), -1, dtype=np.int64)
    starts = np.full(len(stripped), np.datetime64("NaT", "D"))
    ends = starts.copy()
    status = np.zeros(len(stripped), dtype=np.int8)  # 0 ok, 1 empty, 2 unknown or foreign
    for position, code in enumerate(stripped):
        found = known.get(code)
        if not code:
            status[position] = 1
        elif found is None or (not uploader.is_host and found[1] != uploader.partner_id):
            status[position] = 2
        else:
            ids[position] = found[0]
            starts[position] = np.datetime64(found[2], "D")
            if found[3] is not None:
                ends[position] = np.datetime64(found[3], "D")
    row_status = status[codes]
    log.add((row_status == 1) & ~bad, "agreement", "empty: an agreement code is required")
    unknown = (row_status == 2) & ~bad
    message = ("unknown agreement code" if uploader.is_host else
               f"not one of {uploader.partner_name or 'your partner'}'s agreements: partner "
               "users may only import their own agreements")
    log.add(unknown, "agreement", message, column)
    return _AgreementRows(ids[codes], (row_status == 0) & ~bad, starts[codes], ends[codes])


def _kpi_rows(column: pd.Series, bad: np.ndarray,
              log: _ErrorLog) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    stripped = [str(code).strip() for code in uniques]
    known = _lookup(KPIDefinition.objects.all(), stripped, ("code", "id"))
    ids = np.array([known[code][0] if code in known else -1 for code in stripped],
                   dtype=np.int64)
    empty = np.array([not code for code in stripped], dtype=bool)
    row_ids = ids[codes] if len(codes) else np.zeros(0, dtype=np.int64)
    log.add(empty[codes] & ~bad, "kpi", "empty: a KPI code is required")
    unknown = (row_ids < 0) & ~empty[codes] & ~bad
    log.add(unknown, "kpi", "unknown KPI code", column)
    return row_ids, (row_ids >= 0) & ~bad


def _lookup(queryset, codes: list[str], fields: tuple[str, ...]) -> dict[str, tuple]:
    """Rows by code, queried in slices (SQLite caps the parameters of one query)."""
    wanted = sorted({code for code in codes if code and len(code) <= 200})
    found = {}
    for start in range(0, len(wanted), 500):
        for code, *rest in queryset.filter(code__in=wanted[start:start + 500]).values_list(
            *fields
        ):
            found[code] = tuple(rest)
    return found


def _agreement_kpi_keys(agreement_ids: np.ndarray) -> np.ndarray:
    keys = []
    ids = [int(agreement_id) for agreement_id in agreement_ids]
    for start in range(0, len(ids), 500):
        keys.extend(
            agreement_id * (1 << 32) + kpi_id
            for agreement_id, kpi_id in AgreementKPI.objects.filter(
                agreement_id__in=ids[start:start + 500]
            ).values_list("agreement_id", "kpi_id")
        )
    return np.array(keys, dtype=np.int64)


def _side_rows(column: pd.Series | None, n: int, uploader: Uploader, default_side: str,
               bad: np.ndarray, log: _ErrorLog) -> tuple[np.ndarray, np.ndarray]:
    """Side codes (0 host, 1 partner) per row; empty means the batch's default side."""
    default_code = 1 if default_side == Side.PARTNER else 0
    if column is None:
        return np.full(n, default_code, dtype=np.int8), np.ones(n, dtype=bool)
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    lowered = [str(side).strip().lower() for side in uniques]
    mapping = {"": default_code, Side.HOST.value: 0, Side.PARTNER.value: 1}
    unique_codes = np.array([mapping.get(side, -1) for side in lowered], dtype=np.int8)
    row_codes = unique_codes[codes] if len(codes) else np.zeros(0, dtype=np.int8)
    invalid = (row_codes < 0) & ~bad
    log.add(invalid, "side", "the side must be 'host' or 'partner'", column)
    foreign = np.zeros(n, dtype=bool)
    if not uploader.is_host:
        foreign = (row_codes == 0) & ~bad
        log.add(foreign, "side", "partner users may only import the partner side", column)
    return np.maximum(row_codes, 0), ~invalid & ~foreign & ~bad


def _date_rows(column: pd.Series, bad: np.ndarray,
               log: _ErrorLog) -> tuple[np.ndarray, np.ndarray]:
    """Days per row (NaT where bad); only the distinct texts are parsed."""
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    texts = pd.Series([str(text).strip() for text in uniques], dtype=object)
    iso = texts.str.fullmatch(ISO_DATE).to_numpy(dtype=bool)
    parsed = pd.to_datetime(texts.where(iso), format="%Y-%m-%d", errors="coerce")
    unique_days = parsed.to_numpy(dtype="datetime64[D]")
    empty = (texts == "").to_numpy(dtype=bool)
    days = unique_days[codes]
    log.add(empty[codes] & ~bad, "date", "empty: a date is required")
    log.add(~iso[codes] & ~empty[codes] & ~bad, "date",
            "not a date in ISO format YYYY-MM-DD (e.g. 2025-01-31)", column)
    log.add((iso & np.isnat(unique_days))[codes] & ~bad, "date", "not a valid calendar date",
            column)
    return days, ~np.isnat(days) & ~bad


def closed_month_mask(days: np.ndarray, last_closed: str | None = None) -> np.ndarray:
    """Rows whose day (datetime64[D]; NaT for none) falls in a closed month.

    One query for the last closed month (unless given), then one comparison over the rows:
    months close in calendar order, so every month up to the last closed one is closed.
    """
    last_closed = last_closed_month() if last_closed is None else last_closed
    if last_closed is None:
        return np.zeros(len(days), dtype=bool)
    months = np.asarray(days, dtype="datetime64[D]").astype("datetime64[M]")
    return ~np.isnat(months) & (months <= np.datetime64(last_closed, "M"))


def closed_month_errors(*, days: np.ndarray, rows: np.ndarray,
                        last_closed: str | None = None) -> tuple[list[RowError], int]:
    """The error of each row (numbered by `rows`) dated in a closed month, and their count."""
    days = np.asarray(days, dtype="datetime64[D]")
    log = _ErrorLog(np.asarray(rows))
    _log_closed_months(log, closed_month_mask(days, last_closed), days,
                       lambda kept: np.datetime_as_string(days[kept], unit="D"))
    return log.errors(), log.count


def _log_closed_months(log: "_ErrorLog", closed: np.ndarray, days: np.ndarray,
                       values: pd.Series | Callable) -> None:
    log.add(closed, "date", lambda kept: [
        month_closed_message(month)
        for month in np.datetime_as_string(days[kept].astype("datetime64[M]"), unit="M")
    ], values)


def _value_rows(table: MetricTable, bad: np.ndarray, log: _ErrorLog, *,
                kpi_ids: np.ndarray, kpi_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if table.numbers is not None:
        numbers = table.numbers
        not_finite = ~np.isfinite(numbers) & ~bad
        log.add(not_finite, "value", "not a finite number", table.data["value"])
        wrong = not_finite
    else:
        text = table.data["value"]
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64,
                                                                na_value=np.nan)
        wrong = ~np.isfinite(numbers) & ~bad
        log.add(wrong, "value", lambda kept: [
            _number_problem(value) for value in text.to_numpy(dtype=object)[kept]
        ], text)
    ok = ~wrong & ~bad
    ok &= ~_implausible_rows(numbers, ok, kpi_ids, kpi_ok, table.data["value"], log)
    return numbers, ok


def _implausible_rows(numbers: np.ndarray, ok: np.ndarray, kpi_ids: np.ndarray,
                      kpi_ok: np.ndarray, shown_values: pd.Series, log: _ErrorLog) -> np.ndarray:
    """Finite values an observation may not have: beyond the program's magnitude limit, or
    outside its KPI's allowed values (a count whole and ≥ 0, the minimum and maximum). One
    error per row, the first rule it breaks; returns the rows refused."""
    limit = settings.METRIC_VALUE_MAX_ABS
    with np.errstate(invalid="ignore"):
        huge = ok & (np.abs(numbers) > limit)
    log.add(huge, "value", lambda kept: [
        f"{number_text(float(value))} is beyond the allowed magnitude of {limit:,}"
        for value in numbers[kept]
    ], shown_values)
    refused = huge.copy()
    checked = ok & ~huge & kpi_ok
    if not checked.any():
        return refused
    rules = _kpi_value_rules(np.unique(kpi_ids[checked]))
    if not len(rules["id"]):
        return refused
    rule = np.searchsorted(rules["id"], kpi_ids).clip(0, len(rules["id"]) - 1)
    checked &= rules["id"][rule] == kpi_ids
    is_count = rules["count"][rule]
    minimum, maximum = rules["minimum"][rule], rules["maximum"][rule]
    not_count = checked & is_count & ((numbers < 0) | (numbers != np.floor(numbers)))
    log.add(not_count, "value", lambda kept: [
        f"a count must be a whole number ≥ 0: {number_text(float(value))}"
        for value in numbers[kept]
    ], shown_values)
    below = checked & ~not_count & (numbers < minimum)
    log.add(below, "value", lambda kept: [
        f"below the minimum {number_text(float(bound))} of {label}"
        for bound, label in zip(minimum[kept], rules["label"][rule[kept]], strict=True)
    ], shown_values)
    above = checked & ~not_count & ~below & (numbers > maximum)
    log.add(above, "value", lambda kept: [
        f"above the maximum {number_text(float(bound))} of {label}"
        for bound, label in zip(maximum[kept], rules["label"][rule[kept]], strict=True)
    ], shown_values)
    return refused | not_count | below | above


def _kpi_value_rules(ids: np.ndarray) -> dict[str, np.ndarray]:
    """The allowed values of these KPIs, as arrays sorted by id (no bound: ±inf)."""
    rows = list(KPIDefinition.objects.filter(pk__in=ids.tolist()).order_by("pk"))
    return {
        "id": np.array([kpi.pk for kpi in rows], dtype=np.int64),
        "count": np.array([kpi.value_type == ValueType.COUNT for kpi in rows], dtype=bool),
        "minimum": np.array([-np.inf if kpi.minimum is None else kpi.minimum for kpi in rows]),
        "maximum": np.array([np.inf if kpi.maximum is None else kpi.maximum for kpi in rows]),
        "label": np.array([kpi.label for kpi in rows], dtype=object),
    }


def _number_problem(value: str) -> str:
    """Why a text is not a plain number with `.` as decimal point."""
    text = str(value).strip()
    if not text:
        return "empty: a value is required"
    if text.lower() in NON_FINITE or (_is_plain_number(text) and
                                      not np.isfinite(float(text))):
        return "not a finite number (NaN, infinity or too large)"
    if len(text) > 100:
        return "too long to be a number"
    if UNIT_OR_CURRENCY.search(text) and re.search(r"\d", text):
        return ("has a unit or currency sign (such as %, €, $ or k): write the plain number, "
                "in the KPI's unit")
    if SEPARATORS.match(text) and re.search(r"[,'\s\u00a0\u202f]|\..*\.", text):
        return ("has a thousands separator or a decimal comma: write the plain number with a "
                "point as decimal separator, e.g. 1234.5")
    if text.startswith(FORMULA_PREFIXES):
        return "not a number (a formula or text)"
    return "not a number"


def _duplicate_rows(keyed: np.ndarray, agreement_ids: np.ndarray, kpi_ids: np.ndarray,
                    side_codes: np.ndarray, days: np.ndarray, table: MetricTable,
                    log: _ErrorLog) -> None:
    positions = np.flatnonzero(keyed)
    if len(positions) < 2:
        return
    keys = pd.DataFrame({
        "agreement": agreement_ids[positions], "kpi": kpi_ids[positions],
        "side": side_codes[positions], "day": days[positions].astype(np.int64),
    })
    repeated = keys.duplicated(keep="first").to_numpy()
    if not repeated.any():
        return
    first = pd.Series(positions).groupby(
        [keys["agreement"], keys["kpi"], keys["side"], keys["day"]]
    ).transform("first").to_numpy()
    first_of = dict(zip(positions[repeated].tolist(), first[repeated].tolist(), strict=True))
    mask = np.zeros(len(keyed), dtype=bool)
    mask[positions[repeated]] = True
    data = table.data
    sides = np.array([Side.HOST.value, Side.PARTNER.value])

    def key_text(kept: np.ndarray) -> list[str]:
        return [
            f"{str(data['agreement'].iat[position]).strip()} / "
            f"{str(data['kpi'].iat[position]).strip()} / {sides[side_codes[position]]} / "
            f"{np.datetime_as_string(days[position])}"
            for position in kept
        ]

    log.add(mask, None, lambda kept: [
        f"the same agreement, KPI, side and date as row {table.rows[first_of[position]]}: a "
        "key may appear only once in a file"
        for position in kept
    ], key_text)


def observation_value_problem(*, kpi_id: int, value: float) -> str | None:
    """Why `value` cannot be an observation of the KPI (the rules every import applies: a
    finite number within the program's magnitude limit and the KPI's allowed values), or None."""
    numbers = np.array([value], dtype=np.float64)
    log = _ErrorLog(np.arange(1))
    finite = np.isfinite(numbers)
    log.add(~finite, "value", "not a finite number")
    _implausible_rows(numbers, finite, np.array([kpi_id], dtype=np.int64),
                      np.ones(1, dtype=bool), pd.Series([str(value)]), log)
    errors = log.errors()
    return errors[0].message if errors else None
