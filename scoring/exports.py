"""The scorecard export of DOMAIN.md § Files: one row per agreement and month with a scorecard."""

import csv
import math
from collections.abc import Iterable, Iterator
from typing import TextIO

from django.db import connections
from django.db.models import F, QuerySet
from django.db.models.functions import Collate

from partnerships.spreadsheets import spreadsheet_escape

from .models import Scorecard, ScoringRun

EXPORT_HEADER = [
    "agreement", "partner", "period", "financial", "strategic", "operational", "relationship",
    "overall", "coverage", "rolling", "tier", "flags",
]


def format_number(value: float | None) -> str:
    """Four decimals; empty for a missing or non-finite value; never '-0.0000'."""
    if value is None or not math.isfinite(value):
        return ""
    text = f"{value:.4f}"
    return "0.0000" if text == "-0.0000" else text


def agreement_code_collated(queryset: QuerySet):
    """The agreement code of the rows of `queryset`, compared byte by byte as Python compares
    strings (UTF-8 bytes sort as code points): the database's default collation may ignore
    punctuation or order letters by locale."""
    vendor = connections[queryset.db].vendor
    if vendor in ("postgresql", "sqlite"):
        return Collate("agreement__code", {"postgresql": "C", "sqlite": "BINARY"}[vendor])
    return F("agreement__code")


def agreement_code_order(queryset: QuerySet):
    """Ascending agreement code, in code-point order (`agreement_code_collated`)."""
    return agreement_code_collated(queryset).asc()


def scorecard_export_queryset(*, run: ScoringRun | None, period: str | None = None,
                              agreement_ids: QuerySet | Iterable[int] | None = None) -> QuerySet:
    """The run's scorecards the export writes (of `agreement_ids` only, when given: the ones
    a user may see), sorted by agreement code in code-point order, then period."""
    if run is None:
        return Scorecard.objects.none()
    scorecards = Scorecard.objects.of_run(run).filter(has_scorecard=True)
    if period:
        scorecards = scorecards.filter(period=period)
    if agreement_ids is not None:
        scorecards = scorecards.filter(agreement_id__in=agreement_ids)
    return scorecards.order_by(agreement_code_order(scorecards), "period")


def scorecard_export_iter(*, run: ScoringRun | None, period: str | None = None,
                          agreement_ids: QuerySet | Iterable[int] | None = None,
                          chunk_size: int = 2000) -> Iterator[list[str]]:
    """Rows of the export one by one, read from the database in chunks."""
    records = scorecard_export_queryset(
        run=run, period=period, agreement_ids=agreement_ids,
    ).values_list(
        "agreement__code", "agreement__partner__slug", "period", "financial", "strategic",
        "operational", "relationship", "overall", "coverage", "rolling", "tier", "incomplete",
        "at_risk",
    )
    for code, partner, month, *scores, coverage, rolling, tier, incomplete, at_risk in (
            records.iterator(chunk_size=chunk_size)):
        flags = [name for name, on in (("incomplete", incomplete), ("at_risk", at_risk)) if on]
        yield [
            spreadsheet_escape(code), spreadsheet_escape(partner), month,
            *(format_number(score) for score in scores),
            format_number(coverage), format_number(rolling), tier, ";".join(flags),
        ]


def scorecard_export_rows(*, run: ScoringRun | None, period: str | None = None) -> list[list[str]]:
    """Rows of the export, sorted by agreement code (code points) then period."""
    return list(scorecard_export_iter(run=run, period=period))


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
