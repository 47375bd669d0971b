"""What the pages read of disputes: the list (filtered), one dispute's thread and values, the
markers of the agreement dashboard's KPI table and the counts of the portfolio and the home
page. Every queryset comes scoped from `partnerships.access.disputes_for`."""

from collections.abc import Iterator

from django.db.models import QuerySet

from partnerships.disputes import dispute_values
from partnerships.models import Agreement, Dispute, DisputeStatus
from partnerships.spreadsheets import spreadsheet_escape

DISPUTES_HEADER = ["id", "agreement", "kpi", "month", "opened_by_side", "opened_at", "status",
                   "proposed_value", "resolution", "resolved_value", "closed_at", "reason"]


def dispute_list(*, disputes: QuerySet[Dispute], status: str = "", agreement: Agreement | None
                 = None, month: str = "") -> QuerySet[Dispute]:
    """The disputes of the filters, newest first, with what a row shows."""
    if status:
        disputes = disputes.filter(status=status)
    if agreement is not None:
        disputes = disputes.filter(agreement=agreement)
    if month:
        disputes = disputes.filter(month=month)
    return disputes.select_related("agreement__partner", "kpi").order_by("-opened_at", "-id")


def disputes_open_count(*, disputes: QuerySet[Dispute]) -> int:
    return disputes.filter(status=DisputeStatus.OPEN).count()


def disputes_by_kpi(*, disputes: QuerySet[Dispute], agreement: Agreement,
                    month: str) -> dict[int, Dispute]:
    """The dispute of each KPI of the agreement in the month: the open one, else the latest."""
    found: dict[int, Dispute] = {}
    for dispute in disputes.filter(agreement=agreement, month=month).order_by("opened_at", "id"):
        kept = found.get(dispute.kpi_id)
        if kept is None or kept.status != DisputeStatus.OPEN:
            found[dispute.kpi_id] = dispute
    return found


def dispute_detail(*, dispute: Dispute) -> dict:
    """One dispute's values (both sides' and the proposed one, with the differences) and thread."""
    values = dispute_values(dispute)
    source, other = values["source_value"], values["other_value"]
    return {
        **values,
        "difference": other - source if source is not None and other is not None else None,
        "proposed_difference": dispute.proposed_value - source
        if source is not None and dispute.proposed_value is not None else None,
        "events": list(dispute.events.all()),
    }


def disputes_csv_rows(*, disputes: QuerySet[Dispute]) -> Iterator[list[str]]:
    """One row per dispute: numbers as stored, text cells escaped for spreadsheets."""
    for dispute in disputes:
        yield [
            str(dispute.pk), spreadsheet_escape(dispute.agreement.code),
            spreadsheet_escape(dispute.kpi.code), dispute.month, dispute.opened_side,
            dispute.opened_at.isoformat(), dispute.status,
            "" if dispute.proposed_value is None else repr(dispute.proposed_value),
            dispute.resolution,
            "" if dispute.resolved_value is None else repr(dispute.resolved_value),
            dispute.closed_at.isoformat() if dispute.closed_at else "",
            spreadsheet_escape(dispute.reason),
        ]
