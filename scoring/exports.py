"""The scorecard export of DOMAIN.md § Files: one row per agreement and month with a scorecard."""

import csv
import math
from collections.abc import Iterable, Iterator
from typing import TextIO

from .models import Scorecard, ScoringRun

EXPORT_HEADER = [
    "agreement", "partner", "period", "financial", "strategic", "operational", "relationship",
    "overall", "coverage", "rolling", "tier", "flags",
]
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def format_number(value: float | None) -> str:
    """Four decimals; empty for a missing or non-finite value; never '-0.0000'."""
    if value is None or not math.isfinite(value):
        return ""
    text = f"{value:.4f}"
    return "0.0000" if text == "-0.0000" else text


def safe_text(value: str) -> str:
    """Text a spreadsheet would run as a formula gets a leading apostrophe."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def scorecard_export_rows(*, run: ScoringRun | None, period: str | None = None) -> list[list[str]]:
    """Rows of the export, sorted by agreement code (code points) then period."""
    if run is None:
        return []
    scorecards = Scorecard.objects.filter(run=run, has_scorecard=True)
    if period:
        scorecards = scorecards.filter(period=period)
    records = scorecards.values_list(
        "agreement__code", "agreement__partner__slug", "period", "financial", "strategic",
        "operational", "relationship", "overall", "coverage", "rolling", "tier", "incomplete",
        "at_risk",
    )
    # Sorted on the raw codes in Python, which compares code points (a database collation
    # might not), before any cell is escaped for spreadsheets.
    rows = []
    for code, partner, month, *scores, coverage, rolling, tier, incomplete, at_risk in sorted(
        records, key=lambda record: (record[0], record[2])
    ):
        flags = [name for name, on in (("incomplete", incomplete), ("at_risk", at_risk)) if on]
        rows.append([
            safe_text(code), safe_text(partner), month,
            *(format_number(score) for score in scores),
            format_number(coverage), format_number(rolling), tier, ";".join(flags),
        ])
    return rows


def write_csv(*, stream: TextIO, header: list[str], rows: Iterable[list[str]]) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def iter_csv_lines(*, header: list[str], rows: Iterable[list[str]]) -> Iterator[str]:
    """CSV lines one by one, for a streaming HTTP response."""

    class Line:
        def write(self, text: str) -> str:
            return text

    writer = csv.writer(Line(), lineterminator="\n")
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow(row)
