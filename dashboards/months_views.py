"""The Months page (host staff): each month's state, what closing the next ones freezes, and the
actions on them — close (host managers and admins, asked to confirm with what it freezes),
reopen with a reason and approve a closed month's statement for payment (host admins). The
rules and their refusals are the services' (scoring/closing.py); a refusal is shown as a
message and nothing typed is lost."""

from decimal import Decimal

from django import forms
from django.contrib import messages
from django.db.models import Count, Max
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from partnerships.access import (
    admin_required,
    host_required,
    is_host_admin,
    manager_required,
    may_manage,
)
from partnerships.disputes import disputes_open_in
from partnerships.models import ImportBatch, ImportStatus, MonthEvent, ProgramMonth
from scoring.closing import (
    ClosingRefused,
    auto_close_refusal,
    month_reopen,
    months_close,
    statement_approve,
)
from scoring.models import ScoringRun
from scoring.services import scoring_inputs_fingerprint

from .cache import program_cached, run_label
from .confirm import Confirmation, confirmation_page, confirmed
from .http import HtmxHttpRequest, redirect_after_change
from .selectors.months import (
    CLOSED,
    OPEN,
    STATE_WORDS,
    MonthRow,
    MonthStates,
    month_events_recent,
    month_states,
    months_closable,
    months_overview,
)
from .templatetags.numbers import count_text, money_text

RECENT_EVENTS = 12


class CloseForm(forms.Form):
    through = forms.ChoiceField(label="Close every open month through")
    override_disputes = forms.CharField(
        label="Close despite open disputes, because", required=False, max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Only when disputes of these months are open: they hold the close unless you "
                  "say why it cannot wait. The reason is kept with the close.")

    def __init__(self, *args, closable: list[str], disputed: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["through"].choices = [(month, f"{month} · {STATE_WORDS[OPEN]}")
                                          for month in reversed(closable)]
        if not disputed:
            del self.fields["override_disputes"]


class ReopenForm(forms.Form):
    month = forms.ChoiceField(
        label="Reopen from", help_text="This month and every later closed month reopen.")
    reason = forms.CharField(
        label="Reason", max_length=500, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept with the reopening and carried by the adjustment lines of its next "
                  "close.")

    def __init__(self, *args, closed: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["month"].choices = [(month, f"{month} · {STATE_WORDS[CLOSED]}")
                                        for month in reversed(closed)]


def _scores_current(run: ScoringRun | None, closable: list[str]) -> bool | None:
    """Whether a close would find the scores current; None when there is nothing to close."""
    if run is None or not closable:
        return None
    # Reading every input takes seconds on a large program: kept until the program, the
    # observations (a finished import) or the closed months change. Closing itself checks anew.
    imported = ImportBatch.objects.filter(status=ImportStatus.SUCCEEDED).aggregate(
        last=Max("finished_at"), count=Count("id"))
    months = MonthEvent.objects.aggregate(last=Max("id"))["last"]
    fingerprint = program_cached(
        name="inputs-fingerprint",
        parts=(run_label(run), imported["last"].isoformat() if imported["last"] else "",
               imported["count"], months),
        compute=scoring_inputs_fingerprint)
    return run.fingerprint == fingerprint


def _page(request: HtmxHttpRequest, *, reopen_form: ReopenForm | None = None) -> HttpResponse:
    run = ScoringRun.objects.current()
    states = month_states()
    rows = months_overview(run=run, states=states)
    closable = months_closable(rows)
    closed = sorted(row.month for row in rows if row.state == CLOSED)
    # Open disputes of the months to close: they hold the close unless overridden.
    open_disputes = list(disputes_open_in(months=closable)
                         .select_related("agreement", "kpi").order_by("month", "pk"))
    context = {
        "run": run, "states": states, "rows": rows, "closable": closable,
        "scores_current": _scores_current(run, closable),
        "close_form": CloseForm(closable=closable, initial={"through": closable[-1]},
                                disputed=bool(open_disputes)) if closable else None,
        "reopen_form": reopen_form or (ReopenForm(closed=closed) if closed else None),
        "may_close": may_manage(request.user), "is_admin": is_host_admin(request.user),
        "auto_refusal": auto_close_refusal(),
        "events": month_events_recent(limit=RECENT_EVENTS),
        "open_disputes": open_disputes,
    }
    return render(request, "dashboards/months.html", context)


@host_required
def months_page(request: HtmxHttpRequest) -> HttpResponse:
    return _page(request)


def _freeze_preview(rows: list[MonthRow], months: list[str]) -> str:
    """What closing `months` freezes: scorecards and payouts per month, then in all."""
    chosen = [row for row in sorted(rows, key=lambda row: row.month) if row.month in months]
    each = "; ".join(f"{row.month}: {count_text(row.scorecards)} scorecards, payouts "
                     f"{money_text(row.payouts)}" for row in chosen)
    total = sum(row.scorecards for row in chosen)
    payouts = sum((row.payouts for row in chosen), start=Decimal("0.00"))
    return (f"It freezes {count_text(total)} scorecards and payouts of {money_text(payouts)} "
            f"({each}). No import, edit or scoring run changes them afterwards; the payout "
            "statement is written and awaits approval by a host admin other than you. A host "
            "admin can reopen a month with a reason.")


def _close_confirmation(request: HtmxHttpRequest, *, through: str,
                        states: MonthStates) -> HttpResponse:
    rows = months_overview(run=ScoringRun.objects.current(), states=states)
    months = [month for month in months_closable(rows) if month <= through]
    first = months[0]
    question = f"Close {through}?" if first == through else f"Close {first} to {through}?"
    return confirmation_page(request, Confirmation(
        question=question, consequence=_freeze_preview(rows, months), action="Close",
        cancel_url=reverse("months")))


@manager_required
@require_POST
def months_close_view(request: HtmxHttpRequest) -> HttpResponse:
    """Asks first with what closing freezes (confirm=yes closes), then closes."""
    states = month_states()
    closable = months_closable(months_overview(run=ScoringRun.objects.current(), states=states))
    form = CloseForm(request.POST, closable=closable)
    if not form.is_valid():
        messages.error(request, "Choose a month that has ended and is open.")
        return redirect_after_change(request, reverse("months"))
    through = form.cleaned_data["through"]
    if not confirmed(request):
        return _close_confirmation(request, through=through, states=states)
    try:
        closed = months_close(through=through, user=request.user, request=request,
                              override_disputes=form.cleaned_data["override_disputes"])
    except ClosingRefused as refused:
        messages.error(request, f"Not closed: {refused}")
    else:
        messages.success(request, f"Closed {_months_text(closed)}: their scorecards and "
                                  "payouts are frozen and the statement awaits approval.")
    return redirect_after_change(request, reverse("months"))


def _months_text(months: list[str]) -> str:
    return months[0] if len(months) == 1 else f"{months[0]} to {months[-1]}"


@admin_required
@require_POST
def month_reopen_view(request: HtmxHttpRequest) -> HttpResponse:
    """A host admin reopens a month (and every later closed one) with a reason."""
    closed = list(ProgramMonth.objects.filter(closed=True).values_list("month", flat=True))
    form = ReopenForm(request.POST, closed=closed)
    if not form.is_valid():
        messages.error(request, "Not reopened: choose a closed month and say why.")
        return _page(request, reopen_form=form)
    try:
        reopened = month_reopen(month=form.cleaned_data["month"],
                                reason=form.cleaned_data["reason"], user=request.user,
                                request=request)
    except ClosingRefused as refused:
        form.add_error(None, str(refused))
        messages.error(request, f"Not reopened: {refused}")
        return _page(request, reopen_form=form)
    messages.success(request, f"Reopened {_months_text(reopened)}. Run scoring after the "
                              "corrections, then close again.")
    return redirect_after_change(request, reverse("months"))


@admin_required
@require_POST
def month_statement_approve_view(request: HtmxHttpRequest) -> HttpResponse:
    """A host admin other than the one who closed the month approves its statement."""
    month = request.POST.get("month", "")
    try:
        statement_approve(month=month, user=request.user, request=request)
    except ClosingRefused as refused:
        messages.error(request, f"Not approved: {refused}")
    else:
        messages.success(request, f"The statement of {month} is approved for payment.")
    return redirect_after_change(request, reverse("months"))
