"""Payout statements as the pages read them (DOMAIN.md § Closing months): the status of each
month's statement, the lines grouped by month and agreement with their sums, and the totals
by status. The lines are written by scoring.statements when a month closes; here they are
only read, through the agreements the user may see."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.paginator import Page, Paginator
from django.db.models import Count, QuerySet, Sum

from partnerships.models import Agreement, MonthAction, MonthEvent, ProgramMonth
from scoring.exports import agreement_code_collated
from scoring.models import StatementApproval, StatementLine

APPROVED, AWAITING, REOPENED = "approved", "awaiting", "reopened"
# In this order on the page and in the status filter.
STATUS_LABELS = {
    APPROVED: "Approved",
    AWAITING: "Awaiting approval",
    REOPENED: "Reopened",
}
GROUPS_PER_PAGE = 50


@dataclass(frozen=True)
class StatementStatus:
    """Where a month's statement stands: approved for payment (its latest close), closed and
    awaiting approval, or reopened (its lines stand; its next close adds adjustments)."""

    month: str
    status: str
    closed_at: object = None
    closed_by: str = ""
    approved_at: object = None
    approved_by: str = ""

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.status]


def _latest_closes(months: Iterable[str]) -> dict[str, MonthEvent]:
    latest: dict[str, MonthEvent] = {}
    for event in (MonthEvent.objects.filter(month__in=months, action=MonthAction.CLOSED)
                  .order_by("month", "-at", "-id")):
        latest.setdefault(event.month, event)
    return latest


def statement_statuses(*, months: Iterable[str] | None = None,
                       last_closed: str | None | object = ...) -> dict[str, StatementStatus]:
    """The status of each month that has statement lines (or of `months`): three queries, two
    when the caller passes the last closed month it read already."""
    if months is None:
        months = StatementLine.objects.order_by().values_list("period", flat=True).distinct()
    months = sorted(set(months))
    if last_closed is ...:
        last_closed = ProgramMonth.objects.last_closed()
    closes = _latest_closes(months)
    approvals = {approval.closing_id: approval for approval in StatementApproval.objects.filter(
        closing__in=list(closes.values())).select_related("approved_by")}
    statuses = {}
    for month in months:
        close = closes.get(month)
        if close is None or not last_closed or month > last_closed:
            statuses[month] = StatementStatus(month=month, status=REOPENED)
            continue
        approval = approvals.get(close.pk)
        statuses[month] = StatementStatus(
            month=month, status=APPROVED if approval else AWAITING, closed_at=close.at,
            closed_by=close.username,
            approved_at=approval.approved_at if approval else None,
            approved_by=approval.approved_by.get_username() if approval else "")
    return statuses


def statement_lines_for(*, agreements: QuerySet[Agreement], month: str = "",
                        agreement: Agreement | None = None,
                        months: Iterable[str] | None = None) -> QuerySet[StatementLine]:
    """The lines of the agreements the user may see, of one month or agreement when asked,
    and of `months` only when given (the months of a status)."""
    lines = StatementLine.objects.filter(agreement__in=agreements.order_by().values("pk"))
    if month:
        lines = lines.filter(period=month)
    if agreement is not None:
        lines = lines.filter(agreement=agreement)
    if months is not None:
        lines = lines.filter(period__in=list(months))
    return lines


@dataclass
class AgreementStatement:
    """One agreement's lines of one month in one currency, and their sum (what is due)."""

    agreement_code: str
    partner_name: str
    currency: str
    total: Decimal
    lines: list[StatementLine] = field(default_factory=list)


@dataclass
class MonthStatement:
    """One month on a page: its status, its agreements' statements, and its totals (of all
    the filtered lines of the month, not only this page's) by currency."""

    month: str
    status: StatementStatus
    totals: list[tuple[str, Decimal]]
    agreements: list[AgreementStatement] = field(default_factory=list)


def _month_totals(lines: QuerySet) -> dict[str, list[tuple[str, Decimal]]]:
    totals = defaultdict(list)
    for period, currency, total in (lines.order_by("period", "currency")
                                    .values_list("period", "currency")
                                    .annotate(total=Sum("amount"))):
        totals[period].append((currency, total))
    return totals


def statement_page(*, lines: QuerySet[StatementLine], statuses: dict[str, StatementStatus],
                   number: str | int | None) -> tuple[Page, list[MonthStatement]]:
    """A page of statements, newest month first, agreements by code: GROUPS_PER_PAGE
    agreement-months at a time, never split across pages. Four queries."""
    groups = (lines.order_by().values("period", "agreement_id", "currency")
              .annotate(total=Sum("amount"), code=agreement_code_collated(lines))
              .order_by("-period", "code", "currency"))
    page = Paginator(groups, GROUPS_PER_PAGE).get_page(number)
    chosen = list(page.object_list)
    keys = {(group["period"], group["agreement_id"], group["currency"]) for group in chosen}
    by_key: dict[tuple, list[StatementLine]] = defaultdict(list)
    for line in (lines.filter(period__in={key[0] for key in keys},
                              agreement_id__in={key[1] for key in keys})
                 .select_related("agreement__partner").order_by("id")):
        by_key[(line.period, line.agreement_id, line.currency)].append(line)
    totals = _month_totals(lines.filter(period__in={key[0] for key in keys}))
    months: list[MonthStatement] = []
    for group in chosen:
        period = group["period"]
        if not months or months[-1].month != period:
            months.append(MonthStatement(
                month=period, totals=totals[period],
                status=statuses.get(period) or StatementStatus(month=period, status=REOPENED)))
        found = by_key[(period, group["agreement_id"], group["currency"])]
        months[-1].agreements.append(AgreementStatement(
            agreement_code=found[0].agreement.code, partner_name=found[0].agreement.partner.name,
            currency=group["currency"], total=group["total"], lines=found))
    return page, months


def statement_totals(*, lines: QuerySet[StatementLine],
                     statuses: dict[str, StatementStatus]) -> list[dict]:
    """The filtered lines' sums by status and currency, in STATUS_LABELS order: one query."""
    sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    counts: dict[str, int] = defaultdict(int)
    for period, currency, total, count in (lines.order_by().values_list("period", "currency")
                                           .annotate(total=Sum("amount"), count=Count("id"))):
        status = statuses[period].status if period in statuses else REOPENED
        sums[status][currency] += total
        counts[status] += count
    return [{"status": status, "label": label, "lines": counts[status],
             "totals": sorted(sums[status].items())}
            for status, label in STATUS_LABELS.items() if status in sums]
