"""Calendar months as the pages count them ("YYYY-MM"): their trends, their state (closed,
open, in progress) and the month a page opens on."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Sum

from partnerships.models import MonthAction, MonthEvent
from partnerships.months import last_closed_month, month_shift
from scoring.closing import current_month
from scoring.models import Scorecard, ScoringRun, StatementApproval, StatementLine
from scoring.statements import payout_amount

# How many months, up to the selected one, a trend covers: a row's sparkline on the portfolio,
# the small trends of KPIs and categories on the agreement dashboard.
TREND_MONTHS = 12


def month_range(*, last: str, count: int) -> list[str]:
    """`count` calendar months ending with `last`, oldest first."""
    return [month_shift(last, offset) for offset in range(1 - count, 1)]


def trend_window(month: str) -> list[str]:
    """The TREND_MONTHS calendar months up to `month`, oldest first; none without a month."""
    return month_range(last=month, count=TREND_MONTHS) if month else []


# ---- Closed, open and in progress (DOMAIN.md § Closing months) ------------------------------

CLOSED, OPEN, IN_PROGRESS = "closed", "open", "in_progress"
STATE_WORDS = {CLOSED: "closed", OPEN: "open", IN_PROGRESS: "in progress"}


@dataclass(frozen=True)
class MonthStates:
    """Which months are closed (every month up to the last closed one), which one is in
    progress (today's: it has not ended), and the open ones between."""

    last_closed: str | None
    current: str

    def state(self, month: str) -> str:
        if self.last_closed and month <= self.last_closed:
            return CLOSED
        return IN_PROGRESS if month >= self.current else OPEN

    def label(self, month: str) -> str:
        """"2026-09 · closed", "2026-11 · open", "2026-12 · in progress"."""
        return f"{month} · {STATE_WORDS[self.state(month)]}" if month else ""


def month_states() -> MonthStates:
    """The state of every month, from one query (the last closed month)."""
    return MonthStates(last_closed=last_closed_month(), current=current_month())


def month_default(months: list[str]) -> str:
    """The month a page opens on: the latest of `months` that has ended, never the month in
    progress, whose figures are partial; the month in progress only when no other has scores."""
    ended = [month for month in months if month < current_month()]
    if ended:
        return ended[-1]
    return months[-1] if months else ""


# ---- The Months page ------------------------------------------------------------------------


@dataclass
class MonthRow:
    """One month on the Months page: its state, what it holds, who closed it and, once closed,
    its statement."""

    month: str
    state: str
    scorecards: int = 0
    payouts: Decimal = Decimal("0.00")
    closing: MonthEvent | None = None
    reopening: MonthEvent | None = None
    approval: StatementApproval | None = None

    @property
    def label(self) -> str:
        return STATE_WORDS[self.state]


def _scorecard_counts(run: ScoringRun | None) -> dict[str, int]:
    if run is None:
        return {}
    return dict(Scorecard.objects.of_run(run).filter(has_scorecard=True).order_by()
                .values("period").annotate(n=Count("id")).values_list("period", "n"))


def _payouts_due(*, run: ScoringRun | None, months: list[str]) -> dict[str, Decimal]:
    """Per month, the sum of the payouts as a close would write them (each rounded to cents)."""
    totals = dict.fromkeys(months, Decimal("0.00"))
    if run is None or not months:
        return totals
    payouts = (Scorecard.objects.of_run(run)
               .filter(period__in=months, has_scorecard=True, payout__isnull=False,
                       agreement__incentive_plan__isnull=False)
               .values_list("period", "payout"))
    for period, payout in payouts.iterator(chunk_size=5000):
        totals[period] += payout_amount(payout)
    return totals


def _statement_totals() -> dict[str, Decimal]:
    return dict(StatementLine.objects.order_by().values("period")
                .annotate(total=Sum("amount")).values_list("period", "total"))


def _latest_events(action: str) -> dict[str, MonthEvent]:
    latest = {}
    for event in MonthEvent.objects.filter(action=action).order_by("at", "id"):
        latest[event.month] = event
    return latest


def months_overview(*, run: ScoringRun | None, states: MonthStates) -> list[MonthRow]:
    """Every month of the program, newest first: the month in progress, the months scored and
    the months ever closed; with scorecards, payouts (due, or on the statement once closed),
    the latest close, reopening and approval."""
    closings = _latest_events(MonthAction.CLOSED)
    months = sorted({*(run.periods if run else []), *closings, states.current}, reverse=True)
    counts = _scorecard_counts(run)
    states_of = {month: states.state(month) for month in months}
    due = _payouts_due(run=run, months=[m for m in months if states_of[m] != CLOSED])
    on_statement = _statement_totals()
    approvals = {approval.closing_id: approval for approval in StatementApproval.objects
                 .filter(closing__in=closings.values()).select_related("approved_by")}
    reopenings = _latest_events(MonthAction.REOPENED)
    rows = []
    for month in months:
        closed = states_of[month] == CLOSED
        closing = closings.get(month) if closed else None
        rows.append(MonthRow(
            month=month, state=states_of[month], scorecards=counts.get(month, 0),
            payouts=on_statement.get(month, Decimal("0.00")) if closed else due[month],
            closing=closing, reopening=reopenings.get(month),
            approval=approvals.get(closing.pk) if closing else None))
    return rows


def months_closable(rows: list[MonthRow]) -> list[str]:
    """The months a close may go through: the open months that have ended, oldest first."""
    return sorted(row.month for row in rows if row.state == OPEN)


@dataclass
class MonthEventGroup:
    """One close or reopening as people did it: the months it covered, who, when, why."""

    action: str
    first: str
    last: str
    at: object
    username: str
    reason: str


def month_events_recent(*, limit: int = 12) -> list[MonthEventGroup]:
    """The latest closes and reopenings, newest first, each with the months it covered."""
    groups: list[MonthEventGroup] = []
    for event in MonthEvent.objects.order_by("-at", "-id")[:limit * 40]:
        group = groups[-1] if groups else None
        if group and (group.at, group.action, group.username, group.reason) == (
                event.at, event.action, event.username, event.reason):
            group.first = min(group.first, event.month)
            group.last = max(group.last, event.month)
            continue
        if len(groups) == limit:
            break
        groups.append(MonthEventGroup(action=event.action, first=event.month, last=event.month,
                                      at=event.at, username=event.username,
                                      reason=event.reason))
    return groups
