"""Closed months in the demo: a newcomer sees months closed and approved for payment, a month
closed and awaiting approval, and open months (DOMAIN.md § Closing months).

Runs after the demo's first scoring run (`bin/dev demo`): the demo generator writes the
program, `score` scores it, then this closes every month up to two months before the last
scored one, as one host admin, and another host admin approves the statements of all the
closed months but the last, since a statement is approved by someone other than its closer.
"""

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model

from partnerships.models import ProgramMonth

from .closing import ClosingRefused, month_before, months_close, statement_approve
from .models import ScoringRun

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
