"""The rows of the pages' CSV downloads: stored values as the scorecard export writes them
(4 decimals, money 2, no thousands separators), text a spreadsheet would run escaped."""

from collections.abc import Iterable, Iterator

from partnerships.models import Agreement
from partnerships.spreadsheets import spreadsheet_escape
from scoring.exports import format_number

from .selectors.rows import PortfolioRow


def money_cell(value: float | None) -> str:
    """An amount with two decimals, as the statements export writes it; empty when missing."""
    return "" if value is None else f"{value:.2f}"


PORTFOLIO_EXPORT_HEADER = [
    "period", "partner", "agreement", "title", "type", "stage", "owner", "tier", "tier_move",
    "overall", "rolling", "coverage", "flags", "payout", "currency", "trend_change",
    "review_overdue_days", "overdue_actions",
]


def portfolio_export_rows(*, rows: Iterable[PortfolioRow], period: str) -> Iterator[list[str]]:
    """The table as CSV cells, one row at a time as `rows` yields them."""
    for row in rows:
        card = row.scorecard
        scored = row.has_scorecard
        yield [
            period,
            spreadsheet_escape(row.agreement.partner.name),
            spreadsheet_escape(row.agreement.code),
            spreadsheet_escape(row.agreement.title),
            row.agreement.type,
            row.agreement.stage,
            spreadsheet_escape(row.owner_name),
            row.tier,
            row.tier_move,
            format_number(card.overall) if scored else "",
            format_number(card.rolling) if card is not None else "",
            format_number(card.coverage) if scored else "",
            ";".join(row.flags),
            money_cell(card.payout if card is not None else None),
            row.currency,
            format_number(row.trend_change),
            str(row.review_overdue_days),
            str(row.overdue_actions),
        ]


AGREEMENT_KPI_EXPORT_HEADER = [
    "agreement", "period", "kpi", "name", "category", "unit", "actual", "target", "floor",
    "score", "source_side", "other_side_value", "difference_percent",
]


AGREEMENT_MONTHS_EXPORT_HEADER = [
    "agreement", "period", "tier", "tier_changed", "financial", "strategic", "operational",
    "relationship", "overall", "coverage", "rolling", "flags", "payout",
]


def agreement_kpi_export_rows(*, agreement: Agreement, period: str,
                              rows: list[dict]) -> list[list[str]]:
    """The KPI table as CSV rows: full precision (4 decimals), text escaped for spreadsheets."""
    return [
        [spreadsheet_escape(agreement.code), period, spreadsheet_escape(row["kpi"].code),
         spreadsheet_escape(row["kpi"].name), row["kpi"].category,
         spreadsheet_escape(row["kpi"].unit),
         format_number(row["actual"]), format_number(row["target"]),
         format_number(row["floor"]), format_number(row["score"]), row["source"],
         format_number(row["other"]), format_number(row["delta"])]
        for row in rows
    ]


def agreement_months_export_rows(*, agreement: Agreement,
                                 months: list[dict]) -> list[list[str]]:
    """The month-by-month table as CSV rows, the scores as in the scorecard export."""
    rows = []
    for month in months:
        card = month["card"]
        scored = month["has_scorecard"]
        rows.append([
            spreadsheet_escape(agreement.code), month["period"], month["tier"],
            "yes" if month["changed"] else "",
            *(format_number(getattr(card, name)) if scored else ""
              for name in ("financial", "strategic", "operational", "relationship", "overall",
                           "coverage")),
            format_number(card.rolling), ";".join(month["flags"]),
            money_cell(card.payout),
        ])
    return rows
