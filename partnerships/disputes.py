"""Disputes: one side contests the value of one KPI of one agreement in one month (issue 14).

- `dispute_open(user=, agreement=, kpi=, month=, reason=, proposed_value=None)`: either side
  (host staff, or any user of the agreement's partner); the KPI must be one of the agreement's,
  the month one the agreement ran in and not in the future; the proposed value is checked as an
  observation of that KPI would be. One open dispute per agreement, KPI and month.
- `dispute_comment(user=, dispute=, text=)`: both sides, while it is open.
- `dispute_withdraw(user=, dispute=, text="")`: a user of the side that opened it.
- `dispute_resolve(user=, dispute=, resolution=, value=None, text="")`: host managers and
  admins: keep the value, take the other side's value, or enter a corrected one. A taken or
  corrected value is written through the observations' write path
  (`services.observations_write`, with its `ObservationChange` history) as a batch of its own
  (`ImportSource.CORRECTION`), kept in `Dispute.correction_batch`. In a closed month the write
  path refuses: `DisputeMonthClosed` says so and nothing is written; a host admin reopens the
  month first (`scoring.disputes.dispute_resolve_reopening` does both in one transaction).

What a dispute is about is the month value of the KPI's source-of-truth side, the one that
scores (DOMAIN.md § Scoring, rule 1); "the other side's value" is the month value the other
side reported. A value is written so that the month's aggregate becomes it: the source side's
latest observation of the month is replaced (for `sum` and `mean`, by what makes the month's sum
or mean the value), or, when the month has none, one is written on its last day (today for the
month in progress).

Each step runs in one transaction, is a `DisputeEvent` with who, side and when, and records an
`AuditAction.DISPUTE` audit event. Once committed, the other side's users are told by e-mail
(`dispute_mail_send`, queued as a task; sent in-process when the task queue is down), unless
their `MailPreference.alert_dispute` is off (or the caller passes `notify=False`: the demo).
Refusals raise `PermissionDenied` (the user's side or role) or `ValidationError` (the input, by
field), with nothing written.
"""

import datetime as dt
import logging
import math

import pandas as pd
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from .access import may_manage, membership_of
from .audit import audit_record
from .changes import program_changed
from .importers import observation_value_problem
from .mail import mail_send_once, site_link
from .models import (
    HOST_ROLES,
    Agreement,
    AgreementKPI,
    AuditAction,
    Dispute,
    DisputeEvent,
    ImportBatch,
    ImportSource,
    ImportStatus,
    KPIDefinition,
    MailPreference,
    Membership,
    MetricObservation,
    Side,
    number_text,
)
from .months import MONTH_PATTERN, month_closed_message, month_first_day, month_is_closed, month_of
from .services import ClosedMonthWrite, observations_write

logger = logging.getLogger(__name__)

MAIL_KIND = "dispute"
REASON_MAX_CHARS = 2000
NOTE_MAX_CHARS = 500


class DisputeMonthClosed(ValidationError):
    """The value to write falls in a closed month: reopen the month first."""

    def __init__(self, month: str):
        self.month = month
        super().__init__(
            f"{month_closed_message(month)}: the value cannot be written. A host admin reopens "
            f"{month} first, with this dispute as the reason, so that a closed month never "
            "changes silently.", code="month_closed")


# ---- Who acts --------------------------------------------------------------------------------


def dispute_side_of(*, user, agreement: Agreement) -> str:
    """The side the user acts for on this agreement's disputes; PermissionDenied when none."""
    membership = membership_of(user)
    if membership is None:
        raise PermissionDenied("Only members of the host or of the partner take part in a "
                               "dispute.")
    if membership.is_host:
        return Side.HOST
    if membership.partner_id != agreement.partner_id:
        raise PermissionDenied("Only the agreement's own partner takes part in its disputes.")
    return Side.PARTNER


def may_withdraw(*, user, dispute: Dispute) -> bool:
    """A user of the side that opened the dispute, while it is open."""
    if dispute.status != Dispute.Status.OPEN:
        return False
    try:
        return dispute_side_of(user=user, agreement=dispute.agreement) == dispute.opened_side
    except PermissionDenied:
        return False


# ---- What the values are ---------------------------------------------------------------------


def month_days(month: str) -> tuple[dt.date, dt.date]:
    """The first and last day of a month."""
    first = month_first_day(month)
    following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return first, following - dt.timedelta(days=1)


def month_value(*, agreement: Agreement, kpi: KPIDefinition, side: str,
                month: str) -> float | None:
    """The month's value of one side, aggregated with the KPI's aggregation (DOMAIN.md § Scoring,
    rule 1); None when that side reported nothing that month."""
    first, last = month_days(month)
    values = list(MetricObservation.objects.filter(
        agreement=agreement, kpi=kpi, side=side, date__gte=first, date__lte=last,
    ).order_by("date").values_list("value", flat=True))
    if not values:
        return None
    if kpi.aggregation == "sum":
        return math.fsum(values)
    if kpi.aggregation == "mean":
        return math.fsum(values) / len(values)
    return values[-1]  # last: the latest date (one observation per side and date)


def other_side(side: str) -> str:
    return Side.PARTNER if side == Side.HOST else Side.HOST


def dispute_values(dispute: Dispute) -> dict:
    """Both sides' values of the disputed month: {"source", "source_value", "other",
    "other_value"}, the source being the KPI's source of truth."""
    source = dispute.kpi.source
    return {
        "source": source,
        "source_value": month_value(agreement=dispute.agreement, kpi=dispute.kpi, side=source,
                                    month=dispute.month),
        "other": other_side(source),
        "other_value": month_value(agreement=dispute.agreement, kpi=dispute.kpi,
                                   side=other_side(source), month=dispute.month),
    }


# ---- Steps -----------------------------------------------------------------------------------


def _event(*, dispute: Dispute, kind: str, user, side: str, text: str = "",
           detail: dict | None = None, request: HttpRequest | None = None,
           notify: bool = True) -> DisputeEvent:
    event = DisputeEvent.objects.create(
        dispute=dispute, kind=kind, user=user, username=user.get_username()[:150], side=side,
        text=text, detail=detail or {},
    )
    audit_record(
        action=AuditAction.DISPUTE, request=request, user=user,
        partner=dispute.agreement.partner,
        target=f"dispute {dispute.pk} ({dispute.agreement.code} {dispute.kpi.code} "
               f"{dispute.month})",
        detail={"step": kind, "side": side, "event": event.pk, **(detail or {})},
    )
    program_changed()
    if notify:
        transaction.on_commit(lambda: _mail_queue(event.pk))
    return event


def _month_checked(*, agreement: Agreement, month: str) -> None:
    if not isinstance(month, str) or not MONTH_PATTERN.fullmatch(month):
        raise ValidationError({"month": f"A month is written YYYY-MM, not {month!r}."})
    today = timezone.localdate()
    if month > month_of(today):
        raise ValidationError({"month": f"{month} has not begun: a dispute is about a value "
                                        "reported for a month that has begun."})
    first, last = month_days(month)
    if last < agreement.start_date or (agreement.end_date and first > agreement.end_date):
        raise ValidationError({"month": f"{agreement.code} did not run in {month}."})


def _value_checked(*, kpi: KPIDefinition, value, field: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError({field: f"{value!r} is not a number."}) from None
    problem = observation_value_problem(kpi_id=kpi.pk, value=number)
    if problem:
        raise ValidationError({field: f"Not a value {kpi.name} can have: {problem}."})
    return number


def dispute_open(*, user, agreement: Agreement, kpi: KPIDefinition, month: str, reason: str,
                 proposed_value: float | str | None = None,
                 request: HttpRequest | None = None, notify: bool = True) -> Dispute:
    """Open a dispute on one agreement, KPI and month, with a reason and optionally the value
    the opener believes right."""
    side = dispute_side_of(user=user, agreement=agreement)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say what is wrong with the value: a reason is "
                                         "required."})
    if len(reason) > REASON_MAX_CHARS:
        raise ValidationError({"reason": f"At most {REASON_MAX_CHARS:,} characters."})
    if not AgreementKPI.objects.filter(agreement=agreement, kpi=kpi).exists():
        raise ValidationError({"kpi": f"{kpi.name} is not a KPI of {agreement.code}."})
    _month_checked(agreement=agreement, month=month)
    proposed = _value_checked(kpi=kpi, value=proposed_value, field="proposed_value")
    try:
        with transaction.atomic():
            dispute = Dispute.objects.create(
                agreement=agreement, kpi=kpi, month=month, opened_side=side, opened_by=user,
                reason=reason, proposed_value=proposed,
            )
            _event(dispute=dispute, kind=DisputeEvent.Kind.OPENED, user=user, side=side,
                   text=reason, request=request, notify=notify,
                   detail={"proposed_value": proposed, **_values_detail(dispute)})
    except IntegrityError:
        # The constraint `dispute_one_open`: another request opened it first.
        raise ValidationError(
            f"A dispute of {kpi.name} in {month} of {agreement.code} is open already: "
            "add to its thread instead.", code="open_already") from None
    return dispute


def _values_detail(dispute: Dispute) -> dict:
    values = dispute_values(dispute)
    return {"source_value": values["source_value"], "other_value": values["other_value"]}


def _open_locked(dispute: Dispute) -> Dispute:
    locked = Dispute.objects.select_for_update().select_related(
        "agreement__partner", "kpi").get(pk=dispute.pk)
    if locked.status != Dispute.Status.OPEN:
        raise ValidationError(f"The dispute is {locked.get_status_display().lower()} "
                              "already: nothing more can be done on it.", code="not_open")
    return locked


def dispute_comment(*, user, dispute: Dispute, text: str,
                    request: HttpRequest | None = None, notify: bool = True) -> DisputeEvent:
    """Add a comment to an open dispute's thread (either side)."""
    side = dispute_side_of(user=user, agreement=dispute.agreement)
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": "Write the comment first."})
    if len(text) > REASON_MAX_CHARS:
        raise ValidationError({"text": f"At most {REASON_MAX_CHARS:,} characters."})
    with transaction.atomic():
        locked = _open_locked(dispute)
        return _event(dispute=locked, kind=DisputeEvent.Kind.COMMENT, user=user, side=side,
                      text=text, request=request, notify=notify)


def dispute_withdraw(*, user, dispute: Dispute, text: str = "",
                     request: HttpRequest | None = None) -> Dispute:
    """The side that opened the dispute withdraws it."""
    side = dispute_side_of(user=user, agreement=dispute.agreement)
    if side != dispute.opened_side:
        raise PermissionDenied("Only the side that opened a dispute withdraws it.")
    with transaction.atomic():
        locked = _open_locked(dispute)
        now = timezone.now()
        Dispute.objects.filter(pk=locked.pk).update(
            status=Dispute.Status.WITHDRAWN, closed_by=user, closed_at=now)
        _event(dispute=locked, kind=DisputeEvent.Kind.WITHDRAWN, user=user, side=side,
               text=(text or "").strip()[:REASON_MAX_CHARS], request=request)
    locked.refresh_from_db()
    return locked


def dispute_resolve(*, user, dispute: Dispute, resolution: str, value: float | str | None = None,
                    text: str = "", request: HttpRequest | None = None,
                    notify: bool = True) -> Dispute:
    """A host manager resolves the dispute: keep the value, take the other side's, or correct it.

    A taken or corrected value is written as the source side's month value through the write
    path; a closed month raises DisputeMonthClosed and nothing is written."""
    if not may_manage(user):  # host managers and admins resolve disputes
        raise PermissionDenied("Only host managers and admins resolve disputes.")
    if resolution not in Dispute.Resolution.values:
        raise ValidationError({"resolution": "Choose how the dispute is resolved."})
    text = (text or "").strip()[:REASON_MAX_CHARS]
    with transaction.atomic():
        locked = _open_locked(dispute)
        values = dispute_values(locked)
        if resolution == Dispute.Resolution.KEPT:
            written = values["source_value"]
            if value not in (None, ""):
                raise ValidationError({"value": "Keeping the value takes no corrected value."})
        elif resolution == Dispute.Resolution.OTHER_SIDE:
            written = values["other_value"]
            if written is None:
                raise ValidationError({"resolution": f"The {values['other']} side reported no "
                                                     f"value for {locked.month}: there is none "
                                                     "to take."})
        else:
            written = _value_checked(kpi=locked.kpi, value=value, field="value")
            if written is None:
                raise ValidationError({"value": "Enter the corrected value."})
        batch = None
        if resolution != Dispute.Resolution.KEPT:
            batch = _month_value_write(dispute=locked, value=written, user=user,
                                       request=request)
        now = timezone.now()
        Dispute.objects.filter(pk=locked.pk).update(
            status=Dispute.Status.RESOLVED, resolution=resolution, resolved_value=written,
            closed_by=user, closed_at=now, correction_batch=batch)
        _event(dispute=locked, kind=DisputeEvent.Kind.RESOLVED, user=user, side=Side.HOST,
               text=text, request=request, notify=notify, detail={
                   "resolution": resolution, "value": written,
                   "before": values["source_value"],
                   "batch": batch.pk if batch else None})
    locked.refresh_from_db()
    return locked


def _month_value_write(*, dispute: Dispute, value: float, user,
                       request: HttpRequest | None) -> ImportBatch:
    """Write `value` as the source side's month value, as a correction batch of its own."""
    kpi, agreement, month = dispute.kpi, dispute.agreement, dispute.month
    side = kpi.source
    if month_is_closed(month=month):
        raise DisputeMonthClosed(month)
    first, last = month_days(month)
    observations = list(MetricObservation.objects.filter(
        agreement=agreement, kpi=kpi, side=side, date__gte=first, date__lte=last,
    ).order_by("date").values_list("date", "value"))
    if observations:
        day = observations[-1][0]
        others = math.fsum(number for _, number in observations[:-1])
        if kpi.aggregation == "sum":
            written = value - others
        elif kpi.aggregation == "mean":
            written = value * len(observations) - others
        else:
            written = value
    else:
        day = min(last, timezone.localdate())
        if agreement.end_date:
            day = min(day, agreement.end_date)
        written = value
    problem = observation_value_problem(kpi_id=kpi.pk, value=written)
    if problem:
        raise ValidationError({"value": f"Writing {number_text(value)} as the month's value "
                                        f"would need an observation of {number_text(written)} "
                                        f"on {day}, which {kpi.name} cannot have: {problem}."})
    now = timezone.now()
    batch = ImportBatch.objects.create(
        source=ImportSource.CORRECTION, status=ImportStatus.RUNNING, side=side, user=user,
        file_name=f"dispute-{dispute.pk}", rows_total=1, confirmed_at=now, heartbeat_at=now,
    )
    rows = pd.DataFrame({
        "agreement_id": [agreement.pk], "kpi_id": [kpi.pk], "side": [side], "date": [day],
        "value": [float(written)],
        "note": [f"Dispute {dispute.pk} resolved ({dispute.month})"[:NOTE_MAX_CHARS]],
    })
    try:
        counts = observations_write(rows=rows, batch=batch, user=user)
    except ClosedMonthWrite:
        # Closed between the check above and the write lock.
        raise DisputeMonthClosed(month) from None
    ImportBatch.objects.filter(pk=batch.pk).update(
        status=ImportStatus.SUCCEEDED, inserted=counts.inserted, updated=counts.updated,
        unchanged=counts.unchanged, progress=100, finished_at=timezone.now())
    audit_record(action=AuditAction.IMPORT, request=request, user=user,
                 partner=None, target=f"import batch {batch.pk}",
                 detail={"step": "correction", "dispute": dispute.pk, "file": batch.file_name})
    batch.refresh_from_db()
    return batch


def disputes_open_in(*, months: list[str]):
    """The open disputes of these months (what holds their close)."""
    return Dispute.objects.filter(status=Dispute.Status.OPEN, month__in=months)


# ---- E-mail ----------------------------------------------------------------------------------


STEP_WORDS = {
    DisputeEvent.Kind.OPENED: "opened",
    DisputeEvent.Kind.COMMENT: "answered",
    DisputeEvent.Kind.WITHDRAWN: "withdrawn",
    DisputeEvent.Kind.RESOLVED: "resolved",
}


def dispute_mail_recipients(*, event: DisputeEvent):
    """The other side's active users with an address, who have not turned dispute alerts off:
    the host's managers and admins for a partner's step, the partner's users for the host's."""
    agreement = event.dispute.agreement
    if event.side == Side.PARTNER:
        members = Q(membership__role__in=[role.value for role in HOST_ROLES])
    else:
        members = Q(membership__partner_id=agreement.partner_id)
    muted = MailPreference.objects.filter(alert_dispute=False).values("user_id")
    return (get_user_model().objects.filter(members, is_active=True)
            .exclude(email="").exclude(pk__in=muted).order_by("pk"))


def dispute_mail_send(*, event_id: int) -> int:
    """Tell the other side's users of one step of a dispute; each of them once. Returns how
    many messages were sent."""
    event = (DisputeEvent.objects.select_related("dispute__agreement__partner", "dispute__kpi")
             .filter(pk=event_id).first())
    if event is None:
        return 0
    dispute = event.dispute
    values = dispute_values(dispute)
    step = STEP_WORDS[event.kind]
    who = "the host" if event.side == Side.HOST else "the partner"
    subject = (f"Dispute {dispute.pk} {step} by {who}: {dispute.agreement.code} · "
               f"{dispute.kpi.name} · {dispute.month}")
    link = site_link(reverse("dispute_detail", args=[dispute.pk]))
    sent = 0
    for user in dispute_mail_recipients(event=event):
        membership = Membership.objects.filter(user=user).first()
        context = {
            "dispute": dispute, "event": event, "step": step, "who": who, "link": link,
            "values": values, "for_host": membership is not None and membership.is_host,
        }
        outcome = mail_send_once(kind=MAIL_KIND, key=f"dispute:{dispute.pk}:event:{event.pk}",
                                 user=user, subject=subject, template="mail/dispute",
                                 context=context)
        sent += outcome.sent
    return sent


def _mail_queue(event_id: int) -> None:
    """After the commit: as a task, or at once when the task queue is down (sent once either
    way: `mail_send_once` records each message first)."""
    from .queue import TaskQueueUnavailable, task_publish
    from .tasks import dispute_mail_run  # the tasks module imports the services

    try:
        task_publish(dispute_mail_run.si(event_id))
    except TaskQueueUnavailable:
        logger.warning("Task queue down: dispute e-mail of event %s sent in-process", event_id)
        dispute_mail_send(event_id=event_id)
