"""Closing and reopening months, and approving a closed month's statement (DOMAIN.md § Closing
months).

- `months_close(through=, user=, request=None, override_disputes="")`: closes every open month
  up to and including `through`, in calendar order, when it has ended and the published run is
  current; freezes that run's scorecards and KPI scores of those months and writes their
  statement lines. An open dispute of one of those months holds the close unless
  `override_disputes` gives the reason to close anyway (kept in each month's close event and
  in the audit event); the schedule never overrides.
- `month_reopen(month=, reason=, user=, request=None)`: a host admin reopens a month and every
  later closed month, with a reason. Their frozen rows stay shown until a run computes those
  months again; their next close replaces them.
- `statement_approve(month=, user=, request=None)`: a host admin other than the one who closed
  the month approves its statement for payment (for that close only).
- `months_auto_close(today=None)`: the schedule's close, MONTH_AUTO_CLOSE_DAYS after a month
  ends; a refusal is recorded as an audit event (`auto_close_refusal` reads the last one).

Each runs in one transaction, records a `MonthEvent` per month and an audit event. `user=None`
is the system actor (a command run without --user, the schedule). Refusals raise
`ClosingRefused` (the rules) or `PermissionDenied` (the user's role), with nothing written.
"""

import datetime as dt

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from partnerships.access import is_host_admin, may_manage
from partnerships.audit import audit_record
from partnerships.changes import program_changed
from partnerships.disputes import disputes_open_in
from partnerships.history import SYSTEM_ACTOR
from partnerships.models import AuditAction, AuditEvent, MonthAction, MonthEvent, ProgramMonth
from partnerships.months import MONTH_PATTERN, month_after, month_before, months_from_to
from partnerships.services import lock_observation_writes

from .models import KPIScore, Scorecard, ScoringRun, StatementApproval
from .services import scoring_inputs_fingerprint
from .statements import statement_lines_write


class ClosingRefused(Exception):
    """A close, reopening or approval the rules do not allow; the message says why."""


def month_checked(month: str) -> str:
    """`month` when it is a month written YYYY-MM; else ClosingRefused."""
    if not isinstance(month, str) or not MONTH_PATTERN.fullmatch(month):
        raise ClosingRefused(f"A month is written YYYY-MM, not {month!r}.")
    return month


def current_month() -> str:
    """The month in progress, by the local date: it has not ended, so it cannot close."""
    return timezone.localdate().strftime("%Y-%m")


def _authenticated(user):
    return user if user is not None and user.is_authenticated else None


def _audit(*, action: str, user, request: HttpRequest | None, target: str, detail: dict) -> None:
    actor = _authenticated(user)
    audit_record(action=action, request=request, user=actor,
                 username="" if actor else SYSTEM_ACTOR, target=target, detail=detail)


def _event(*, month: str, action: str, user, at, reason: str = "") -> MonthEvent:
    actor = _authenticated(user)
    return MonthEvent.objects.create(
        month=month, action=action, at=at, user=actor, reason=reason,
        username=actor.get_username() if actor else SYSTEM_ACTOR,
    )


def _months_to_close(*, last_closed: str | None, through: str, run: ScoringRun) -> list[str]:
    if last_closed:
        return months_from_to(month_after(last_closed), through)
    # Nothing closed yet: from the first month the program has (scored, or reopened once).
    firsts = [through, run.first_period,
              ProgramMonth.objects.order_by("month").values_list("month", flat=True).first()]
    return months_from_to(min(month for month in firsts if month), through)


def _freeze(*, run: ScoringRun, months: list[str]) -> None:
    """Mark the run's rows of `months` frozen, unmarking what an earlier close of them froze.

    A month before the run's `open_from` was not computed by it: its frozen rows are the ones
    the run shows, and stay."""
    computed = [month for month in months if not run.open_from or month >= run.open_from]
    for model in (Scorecard, KPIScore):
        model.objects.filter(frozen=True, period__in=computed).exclude(run=run).update(
            frozen=False)
        model.objects.filter(run=run, period__in=computed, frozen=False).update(frozen=True)


def _current_run_or_refuse() -> ScoringRun:
    run = ScoringRun.objects.current()
    if run is None:
        raise ClosingRefused("No published scoring run yet: run scoring first.")
    if run.fingerprint != scoring_inputs_fingerprint():
        raise ClosingRefused(
            "The scores are not current (observations, terms or settings changed since the "
            f"last published run, run {run.pk}): run scoring first.")
    return run


def months_close(*, through: str, user, request: HttpRequest | None = None,
                 override_disputes: str = "") -> list[str]:
    """Close every open month up to and including `through`; return the months closed."""
    month_checked(through)
    override_disputes = (override_disputes or "").strip()
    if user is not None and not may_manage(user):
        raise PermissionDenied("Only host managers and admins close months.")
    if through >= current_month():
        raise ClosingRefused(
            f"{through} has not ended yet: only a month that has ended can be closed.")
    with transaction.atomic():
        # The lock of every observation writer: no import writes into a month while it closes,
        # and two closes (or a close and a reopening) take turns.
        lock_observation_writes()
        last_closed = ProgramMonth.objects.last_closed()
        if last_closed and through <= last_closed:
            return []
        run = _current_run_or_refuse()
        months = _months_to_close(last_closed=last_closed, through=through, run=run)
        disputed = list(disputes_open_in(months=months).order_by("month", "pk")
                        .values_list("pk", "month"))
        if disputed and not override_disputes:
            held = sorted({month for _, month in disputed})
            raise ClosingRefused(
                f"{len(disputed)} open dispute{'s' if len(disputed) != 1 else ''} "
                f"({', '.join(held)}) hold the close: resolve "
                f"{'them' if len(disputed) != 1 else 'it'} first, or close anyway with a "
                "reason for overriding.")
        reason = f"Closed with open disputes: {override_disputes}" if disputed else ""
        now = timezone.now()
        closings = {}
        for month in months:
            ProgramMonth.objects.update_or_create(month=month, defaults={
                "closed": True, "closed_at": now, "closed_by": _authenticated(user)})
            closings[month] = _event(month=month, action=MonthAction.CLOSED, user=user, at=now,
                                     reason=reason)
        _freeze(run=run, months=months)
        lines = statement_lines_write(run=run, closings=closings, user=_authenticated(user))
        detail = {"months": months, "run": run.pk, "statement_lines": lines}
        if disputed:
            detail.update(override_disputes=override_disputes,
                          disputes=[pk for pk, _ in disputed])
        _audit(action=AuditAction.MONTH_CLOSED, user=user, request=request,
               target=f"months {months[0]} to {months[-1]}", detail=detail)
        program_changed()
    return months


def month_reopen(*, month: str, reason: str, user,
                 request: HttpRequest | None = None) -> list[str]:
    """Reopen `month` and every later closed month, with a reason; return the months reopened."""
    month_checked(month)
    reason = (reason or "").strip()
    if user is not None and not is_host_admin(user):
        raise PermissionDenied("Only a host admin reopens a month.")
    if not reason:
        raise ClosingRefused("Say why the month is reopened: a reason is required.")
    with transaction.atomic():
        lock_observation_writes()
        last_closed = ProgramMonth.objects.last_closed()
        if last_closed is None or month > last_closed:
            raise ClosingRefused(f"{month} is not closed.")
        months = months_from_to(month, last_closed)
        now = timezone.now()
        for each in months:
            ProgramMonth.objects.update_or_create(month=each, defaults={
                "closed": False, "closed_at": None, "closed_by": None})
            _event(month=each, action=MonthAction.REOPENED, user=user, at=now, reason=reason)
        _audit(action=AuditAction.MONTH_REOPENED, user=user, request=request,
               target=f"months {months[0]} to {months[-1]}",
               detail={"months": months, "reason": reason})
        program_changed()
    return months


def last_close(month: str) -> MonthEvent | None:
    """The latest close of `month` (the one its statement is approved for)."""
    return (MonthEvent.objects.filter(month=month, action=MonthAction.CLOSED)
            .order_by("-at", "-id").first())


def statement_approve(*, month: str, user,
                      request: HttpRequest | None = None) -> StatementApproval:
    """Approve the closed month's statement for payment: a host admin other than its closer."""
    month_checked(month)
    if user is None or not is_host_admin(user):
        raise PermissionDenied("Only a host admin approves a statement for payment.")
    with transaction.atomic():
        state = ProgramMonth.objects.select_for_update().filter(month=month).first()
        if state is None or not state.closed:
            raise ClosingRefused(f"{month} is not closed: only a closed month's statement "
                                 "is approved.")
        closing = last_close(month)
        if closing.user_id == user.pk:
            raise ClosingRefused(f"{month} was closed by {user.get_username()}: its statement "
                                 "is approved by another host admin.")
        if StatementApproval.objects.filter(closing=closing).exists():
            raise ClosingRefused(f"The statement of {month} is approved already.")
        approval = StatementApproval.objects.create(month=month, closing=closing,
                                                    approved_by=user)
        _audit(action=AuditAction.STATEMENT_APPROVED, user=user, request=request,
               target=f"statement {month}", detail={"month": month, "close": closing.pk})
    return approval


def statement_approved(month: str) -> bool:
    """Whether the closed month's statement is approved (for its latest close)."""
    closing = last_close(month)
    return (closing is not None
            and ProgramMonth.objects.filter(month=month, closed=True).exists()
            and StatementApproval.objects.filter(closing=closing).exists())


def _auto_close_through(*, today: dt.date, days: int) -> str:
    """The last month that ended at least `days` days before `today`, short of a reopened month
    still open: that one is closed again by hand, when its corrections are done."""
    ended = today - dt.timedelta(days=days)
    through = (ended.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    reopened = (ProgramMonth.objects.filter(closed=False, month__lte=through)
                .order_by("month").values_list("month", flat=True).first())
    return month_before(reopened) if reopened else through


def months_auto_close(*, today: dt.date | None = None) -> str:
    """Close the months that ended MONTH_AUTO_CLOSE_DAYS days ago or more; say what happened."""
    days = settings.MONTH_AUTO_CLOSE_DAYS
    if days <= 0:
        return "automatic closing is off"
    through = _auto_close_through(today=today or timezone.localdate(), days=days)
    last_closed = ProgramMonth.objects.last_closed()
    if last_closed and through <= last_closed:
        return f"nothing to close (closed up to {last_closed})"
    try:
        months = months_close(through=through, user=None)
    except ClosingRefused as refused:
        # Kept where the Months page finds it; the schedule tries again the next day.
        _audit(action=AuditAction.MONTH_CLOSE_REFUSED, user=None, request=None,
               target=f"automatic close through {through}",
               detail={"automatic": True, "through": through, "refused": str(refused)})
        return f"could not close {through}: {refused}"
    return f"closed {', '.join(months)}" if months else "nothing to close"


def auto_close_refusal() -> dict | None:
    """The last automatic close that was refused, {"through", "refused", "at"}, unless a close
    succeeded since."""
    event = (AuditEvent.objects
             .filter(action__in=[AuditAction.MONTH_CLOSED, AuditAction.MONTH_CLOSE_REFUSED])
             .order_by("-at", "-id").first())
    if event is None or event.action != AuditAction.MONTH_CLOSE_REFUSED:
        return None
    return {"through": event.detail.get("through", ""), "refused": event.detail["refused"],
            "at": event.at}
