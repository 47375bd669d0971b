"""Closed months in the demo: a newcomer sees months closed and approved for payment, a month
closed and awaiting approval, and open months (DOMAIN.md § Closing months).

Runs after the demo's first scoring run (`generate_demo` writes the program, scores it and
calls this): it closes every month up to two months before the last scored one, as one host
admin, and another host admin approves the statements of all the closed months but the last,
since a statement is approved by someone other than its closer.
"""

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction

from partnerships.changes import program_changed
from partnerships.models import MonthEvent, ProgramMonth
from partnerships.months import month_before

from .closing import ClosingRefused, months_close, statement_approve
from .models import KPIScore, Scorecard, ScoringRun, StatementApproval, StatementLine

DEMO_CLOSER, DEMO_APPROVER = "finance", "admin"
# Months left open at the end: the last two scored months.
OPEN_MONTHS = 2


@dataclass
class DemoClosing:
    """What the demo closed and approved; `kept` when months were closed already."""

    closed: list[str] = field(default_factory=list)
    approved: list[str] = field(default_factory=list)
    open: list[str] = field(default_factory=list)
    kept: str = ""


def _demo_user(username: str):
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise ClosingRefused(f"No demo user {username!r}: run generate_demo first.")
    return user


def demo_months_close(*, closer: str = DEMO_CLOSER, approver: str = DEMO_APPROVER) -> DemoClosing:
    """Close the demo's months but the last two (as `closer`) and approve all the closed
    months' statements but the last (as `approver`); nothing when a month is closed already."""
    last_closed = ProgramMonth.objects.last_closed()
    if last_closed:
        return DemoClosing(kept=last_closed)
    run = ScoringRun.objects.current()
    if run is None or not run.last_period:
        raise ClosingRefused("No published scoring run yet: run scoring first.")
    through = run.last_period
    for _ in range(OPEN_MONTHS):
        through = month_before(through)
    closed = months_close(through=through, user=_demo_user(closer))
    approving = _demo_user(approver)
    for month in closed[:-1]:
        statement_approve(month=month, user=approving)
    return DemoClosing(closed=closed, approved=closed[:-1],
                       open=[month for month in run.periods if month > through])


def demo_closing_reset() -> None:
    """Before the demo is generated again (--reset): its months open, their statements, approvals
    and frozen results gone, so that the program can be deleted and written anew."""
    with transaction.atomic():
        StatementApproval.objects.all().delete()
        StatementLine.objects.all().delete()
        Scorecard.objects.filter(frozen=True).update(frozen=False)
        KPIScore.objects.filter(frozen=True).update(frozen=False)
        MonthEvent.objects.all().delete()
        ProgramMonth.objects.all().delete()
        program_changed()


def _span(months: list[str]) -> str:
    return months[0] if len(months) == 1 else f"{months[0]} to {months[-1]}"


def demo_months_summary(closing: DemoClosing) -> str:
    """What `demo_months_close` did, in a few lines for the commands."""
    if closing.kept:
        return f"Months already closed (through {closing.kept}); kept."
    lines = [f"Closed {_span(closing.closed)} as {DEMO_CLOSER}."]
    if closing.approved:
        lines.append(f"Approved the statements of {_span(closing.approved)} as {DEMO_APPROVER}.")
    lines.append(f"{closing.closed[-1]} is closed and awaits approval.")
    if closing.open:
        lines.append(f"Open: {_span(closing.open)}.")
    return "\n".join(lines)
