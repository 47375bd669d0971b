"""Payout statements of closed months (DOMAIN.md § Closing months) and their CSV export.

Closing a month writes a line for every agreement with an incentive plan and a scorecard in
that month: the payout of § Incentives rounded half up to cents, with what it came from. A
month closed again writes, for an agreement whose amount differs from the sum of its earlier
lines, an `adjustment` line of the difference with the reason of the reopening. Lines are
never changed or deleted, so the sum of an agreement's lines of a month is what is due.
"""

import math
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import TextIO

from django.db.models import QuerySet, Sum

from partnerships.models import IncentivePlan, MonthAction, MonthEvent
from partnerships.spreadsheets import spreadsheet_escape

from .exports import agreement_code_order, format_number, write_csv
from .incentives import plan_multipliers
from .models import Scorecard, ScoringRun, StatementKind, StatementLine

STATEMENT_HEADER = [
    "agreement", "partner", "period", "kind", "tier", "overall", "rolling", "multiplier", "base",
    "currency", "amount", "reason",
]
CENT = Decimal("0.01")


def payout_amount(payout: float | None) -> Decimal:
    """The payout in cents, rounded half up from the float as it is written (1.005 → 1.01);
    0.00 when nothing is due."""
    if payout is None or not math.isfinite(payout):
        return Decimal("0.00")
    return Decimal(repr(payout)).quantize(CENT, rounding=ROUND_HALF_UP)


def _reopen_reason(month: str) -> str:
    return (MonthEvent.objects.filter(month=month, action=MonthAction.REOPENED)
            .order_by("-at", "-id").values_list("reason", flat=True).first() or "")


def _due_lines(*, run: ScoringRun, month: str, closing: MonthEvent,
               user) -> dict[int, StatementLine]:
    """Per agreement, the payout line of the month as the run (or its frozen rows) gives it."""
    cards = (Scorecard.objects.of_run(run)
             .filter(period=month, has_scorecard=True, agreement__incentive_plan__isnull=False)
             .select_related("agreement__incentive_plan"))
    due = {}
    for card in cards:
        plan: IncentivePlan = card.agreement.incentive_plan
        due[card.agreement_id] = StatementLine(
            agreement_id=card.agreement_id, period=month, kind=StatementKind.PAYOUT,
            tier=card.tier, overall=card.overall, rolling=card.rolling,
            multiplier=plan_multipliers(plan).get(card.tier) if card.tier else None,
            base_amount=plan.base_amount, currency=plan.currency,
            amount=payout_amount(card.payout), closing=closing, created_by=user,
            username=user.get_username() if user else closing.username,
        )
    return due


def _month_lines(*, run: ScoringRun, month: str, closing: MonthEvent, user) -> list[StatementLine]:
    due = _due_lines(run=run, month=month, closing=closing, user=user)
    written = dict(StatementLine.objects.filter(period=month).order_by()
                   .values("agreement_id").annotate(total=Sum("amount"))
                   .values_list("agreement_id", "total"))
    if not written:
        return [due[agreement_id] for agreement_id in sorted(due)]
    reason = _reopen_reason(month)
    lines = []
    for agreement_id in sorted(set(due) | set(written)):
        line = due.get(agreement_id)
        if agreement_id not in written:
            lines.append(line)
            continue
        amount = line.amount if line else Decimal("0.00")
        if amount == written[agreement_id]:
            continue
        if line is None:  # no longer due (its plan or scorecard is gone): undo what was paid
            line = StatementLine(agreement_id=agreement_id, period=month, closing=closing,
                                 created_by=user, username=closing.username)
        line.kind, line.reason = StatementKind.ADJUSTMENT, reason
        line.amount = amount - written[agreement_id]
        lines.append(line)
    return lines


def statement_lines_write(*, run: ScoringRun, closings: dict[str, MonthEvent], user) -> int:
    """Write the statement lines of the months just closed (`closings`: month → its close event),
    from the run's results; return how many were written. Call it in the close's transaction."""
    lines = []
    for month in sorted(closings):
        lines += _month_lines(run=run, month=month, closing=closings[month], user=user)
    StatementLine.objects.bulk_create(lines)
    return len(lines)


def statement_lines_queryset(*, period: str | None = None,
                             agreement_ids: QuerySet | list[int] | None = None) -> QuerySet:
    """Statement lines sorted by agreement code (code points), period, then the order written."""
    lines = StatementLine.objects.all()
    if period:
        lines = lines.filter(period=period)
    if agreement_ids is not None:
        lines = lines.filter(agreement_id__in=agreement_ids)
    return lines.order_by(agreement_code_order(lines), "period", "id")


def _money(value: Decimal | None) -> str:
    return "" if value is None else str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _multiplier(value: Decimal | None) -> str:
    # As DOMAIN.md writes them: 1.0, 1.25, 1.5.
    return "" if value is None else str(float(value))


def statements_csv_rows(*, period: str | None = None,
                        agreement_ids: QuerySet | list[int] | None = None) -> Iterator[list[str]]:
    """The rows of the statement export (STATEMENT_HEADER), one per line."""
    records = statement_lines_queryset(period=period, agreement_ids=agreement_ids).values_list(
        "agreement__code", "agreement__partner__slug", "period", "kind", "tier", "overall",
        "rolling", "multiplier", "base_amount", "currency", "amount", "reason")
    for code, partner, month, kind, tier, overall, rolling, multiplier, base, currency, amount, \
            reason in records.iterator(chunk_size=2000):
        yield [spreadsheet_escape(code), spreadsheet_escape(partner), month, kind, tier,
               format_number(overall), format_number(rolling), _multiplier(multiplier),
               _money(base), currency, _money(amount), spreadsheet_escape(reason)]


def statements_csv(*, stream: TextIO, period: str | None = None,
                   agreement_ids: QuerySet | list[int] | None = None) -> int:
    """Write the statement export of DOMAIN.md § Files to `stream`; return the lines written."""
    rows = list(statements_csv_rows(period=period, agreement_ids=agreement_ids))
    write_csv(stream=stream, header=STATEMENT_HEADER, rows=rows)
    return len(rows)
