"""What-if (host managers and admins): change targets, floors and weights of agreement KPIs,
category weights, tier settings and incentive plans, and see before saving what the scoring
rules make of them over the open months, beside the published run; download the comparison;
save the changes through the services after a confirmation.

The simulation is scoring.whatif's; it writes nothing. Reading every observation of the open
months is its slow part: when those are not kept yet, a task prepares them and the page shows
its progress, then simulates (the rules alone answer within seconds)."""

import re
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from partnerships.access import manager_required
from partnerships.models import ProgramSettings
from partnerships.months import last_closed_month
from partnerships.queue import TaskQueueUnavailable
from scoring.exports import iter_csv_lines
from scoring.tasks import whatif_enqueue, whatif_save_enqueue
from scoring.whatif import (
    SAVE_IN_REQUEST,
    WhatIf,
    open_months,
    whatif_inputs_ready,
    whatif_job_claim,
    whatif_job_failed,
    whatif_job_status,
    whatif_save_job_run,
    whatif_simulate,
    whatif_state_check,
    whatif_state_job,
    whatif_state_token,
    whatif_summary,
    whatif_writes_count,
)

from .confirm import Confirmation, confirmation_page, confirmed
from .exports_views import csv_filename, csv_response, export_audit
from .http import HtmxHttpRequest, partial_or_page, redirect_after_change, refusal_into_form
from .selectors.months import month_default
from .selectors.whatif import (
    CSV_HEADER,
    whatif_csv_rows,
    whatif_matrix,
    whatif_rows,
    whatif_totals,
)
from .templatetags.numbers import count_text, money_text
from .whatif_form import SORTS, WhatIfForm

JOB_PATTERN = re.compile(r"^[0-9a-f]{32}$")
# Fields that are no change: what the page shows, not what it simulates.
VIEW_FIELDS = ("month", "sort", "job")
# The confirmation's signed state: the save applies only in it, and only once.
STATE_FIELD = "state"


def _form(request: HtmxHttpRequest, data) -> tuple[WhatIfForm, list[str]]:
    months = open_months()
    return WhatIfForm(data, user=request.user, months=months,
                      settings=ProgramSettings.current()), months


def _query(data, *, without: tuple[str, ...] = ()) -> str:
    """The changes asked for as a query string (empty values left out)."""
    return urlencode([(name, value) for name, values in data.lists() for value in values
                      if value != "" and name not in ("csrfmiddlewaretoken", "confirm",
                                                      "confirm_target", STATE_FIELD, *without)])


def _month(form: WhatIfForm, months: list[str]) -> str:
    month = form.cleaned_data.get("month") if form.is_bound and form.is_valid() else ""
    return month or month_default(months)


def _result(request: HtmxHttpRequest, form: WhatIfForm, months: list[str]) -> dict:
    """The simulation's context, or the progress of the task reading the observations."""
    changes = form.whatif()
    if changes.is_empty():
        return {"notice": "Change at least one value to simulate."}
    job = request.GET.get("job", "")
    if job and JOB_PATTERN.match(job):
        status = whatif_job_status(job_id=job)
        if status is None:
            return {"job_error": "That preparation is no longer known; simulate again."}
        if status["error"]:
            return {"job_error": status["error"]}
        if not status["done"]:
            return {"job": job, "job_status": status}
    elif not whatif_inputs_ready():
        try:
            job = whatif_enqueue()
        except TaskQueueUnavailable as unavailable:
            return {"job_error": str(unavailable)}
        status = whatif_job_status(job_id=job)
        if status is not None and not status["done"]:
            return {"job": job, "job_status": status}
    try:
        simulation = whatif_simulate(whatif=changes)
    except ValidationError as error:
        refusal_into_form(form, error)
        return {}
    month = _month(form, months)
    sort = form.cleaned_data.get("sort") or "payout"
    rows, total = whatif_rows(simulation=simulation, month=month, sort=sort,
                              agreement_id=changes.agreement_id)
    query = _query(request.GET, without=VIEW_FIELDS)
    return {
        "simulation": simulation, "month": month, "rows": rows, "rows_total": total,
        "matrix": whatif_matrix(simulation=simulation, month=month),
        "totals": whatif_totals(simulation=simulation, month=month),
        "sort": sort, "sorts": [
            (name, label, f"{reverse('whatif')}?{query}&{urlencode({'month': month, 'sort': name})}"
             ) for name, label in SORTS.items()],
        "query": query, "save_fields": [
            (name, value) for name, values in request.GET.lists() for value in values
            if value != "" and name not in ("job", "sort")],
        "csv_url": f"{reverse('whatif_csv')}?{query}&{urlencode({'month': month})}",
    }


@manager_required
def whatif(request: HtmxHttpRequest) -> HttpResponse:
    """The form, and for a filled one the simulation (or the progress of its preparation)."""
    form, months = _form(request, request.GET or None)
    context = {"form": form, "months": months, "last_closed": last_closed_month() or ""}
    if form.is_bound and form.is_valid():
        context.update(_result(request, form, months))
        if "job" in context:
            context["poll_url"] = (f"{reverse('whatif')}?{_query(request.GET, without=('job',))}"
                                   f"&{urlencode({'job': context['job']})}")
    return partial_or_page(request, "dashboards/whatif.html", "result", context)


@manager_required
def whatif_csv(request: HtmxHttpRequest) -> HttpResponse:
    """The comparison, every agreement and open month, as CSV (400 for a form with errors)."""
    form, _ = _form(request, request.GET)
    if not form.is_valid() or form.whatif().is_empty():
        return HttpResponse("Choose the changes to simulate first.", status=400,
                            content_type="text/plain; charset=utf-8")
    try:
        simulation = whatif_simulate(whatif=form.whatif())
    except ValidationError as error:
        return HttpResponse(" ".join(error.messages), status=400,
                            content_type="text/plain; charset=utf-8")
    export_audit(request, target="what-if comparison",
                 detail={"whatif": form.whatif().described()})
    return csv_response(lines=iter_csv_lines(header=CSV_HEADER,
                                             rows=whatif_csv_rows(simulation=simulation)),
                        filename=csv_filename("whatif", *simulation.periods[-1:]), bom=True)


def _saving(request: HtmxHttpRequest) -> HttpResponse:
    """GET ?job=: the progress of a save run by a task; when it ends, the next page."""
    job = request.GET.get("job", "")
    status = whatif_job_status(job_id=job) if JOB_PATTERN.match(job) else None
    if status is None:
        raise Http404("No such save.")
    if status["error"]:
        messages.error(request, f"Nothing was saved: {status['error']}")
        return redirect_after_change(request, reverse("whatif"))
    if status["done"]:
        messages.success(request, _saved_message(status.get("saved", 0)))
        return redirect_after_change(request, reverse("scoring_runs"))
    return partial_or_page(request, "dashboards/whatif_saving.html", "panel",
                           {"job": job, "status": status})


def _saved_message(saved: int) -> str:
    return (f"Saved: {count_text(saved)} object(s) changed, each recorded in its history. The "
            "next scoring run applies the changes to the open months.")


def _ask(request: HtmxHttpRequest, *, changes: WhatIf, month: str) -> HttpResponse:
    """The confirmation with the simulation's summary, carrying the state it was asked in."""
    back = f"{reverse('whatif')}?{_query(request.POST)}"
    # Read before simulating: a change of the program meanwhile makes the save refuse.
    token = whatif_state_token(whatif=changes, month=month)
    try:
        simulation = whatif_simulate(whatif=changes)
    except ValidationError as error:
        messages.error(request, "Nothing was saved: " + " ".join(error.messages))
        return redirect_after_change(request, back)
    summary = whatif_summary(simulation=simulation, month=month)
    # The confirmation page sends the request's fields again: the state goes with them.
    request.POST = request.POST.copy()
    request.POST[STATE_FIELD] = token
    first = simulation.periods[0] if simulation.periods else ""
    return confirmation_page(request, Confirmation(
        question="Save these changes?",
        consequence=(
            f"Simulated over the open months{f' from {first}' if first else ''}: "
            f"{count_text(summary['tier_moves'])} tier move(s) in {month}, payouts "
            f"{money_text(summary['payout_now'])} → {money_text(summary['payout_simulated'])}"
            f" ({'+' if summary['payout_difference'] >= 0 else ''}"
            f"{money_text(summary['payout_difference'])}). The changes are saved through "
            "the program's services, each in its history; the next scoring run applies "
            "them to the open months. Closed months never change."),
        action="Save", cancel_url=back))


def _save(request: HtmxHttpRequest, *, changes: WhatIf, token: str, job: str) -> HttpResponse:
    """Save what was confirmed as the job `job`: once, and only in the state confirmed."""
    back = f"{reverse('whatif')}?{_query(request.POST)}"
    progress_url = f"{reverse('whatif_save')}?job={job}"
    if not whatif_job_claim(job_id=job):
        # The same confirmation again (a double click, a resent form): its job is the one.
        messages.info(request, "These changes were confirmed once and are saved once: "
                               "nothing more was applied.")
        return redirect_after_change(request, progress_url)
    try:
        whatif_state_check(token=token)
    except ValidationError as refused:
        whatif_job_failed(job_id=job, error=" ".join(refused.messages))
        messages.error(request, "Nothing was saved: " + " ".join(refused.messages))
        return redirect_after_change(request, back)
    if whatif_writes_count(whatif=changes) > SAVE_IN_REQUEST:
        try:
            whatif_save_enqueue(job_id=job, token=token, user=request.user)
        except TaskQueueUnavailable as unavailable:
            messages.error(request, f"Nothing was saved: {unavailable}")
            return redirect_after_change(request, back)
        return redirect_after_change(request, progress_url)
    whatif_save_job_run(job_id=job, token=token, user_id=request.user.pk, request=request)
    status = whatif_job_status(job_id=job) or {}
    if status.get("error"):
        messages.error(request, f"Nothing was saved: {status['error']}")
        return redirect_after_change(request, back)
    messages.success(request, _saved_message(status.get("saved", 0)))
    return redirect_after_change(request, reverse("scoring_runs"))


@manager_required
@require_http_methods(["GET", "POST"])
def whatif_save(request: HtmxHttpRequest) -> HttpResponse:
    """Asks first with the simulation's summary and the state it was asked in (confirm=yes
    with that state saves), then saves through the services, once per confirmation and only
    while the program is as confirmed (a task with progress for many objects; GET ?job= polls
    it), and goes on to the scoring runs, where the next run applies the changes."""
    if request.method == "GET":
        return _saving(request)
    form, months = _form(request, request.POST)
    if not form.is_valid() or form.whatif().is_empty():
        messages.error(request, "Nothing was saved: choose valid changes first.")
        return redirect_after_change(request, reverse("whatif"))
    changes = form.whatif()
    month = _month(form, months)
    token = request.POST.get(STATE_FIELD, "")
    job = whatif_state_job(token=token, whatif=changes, month=month) if confirmed(request) \
        else None
    if job is None:
        return _ask(request, changes=changes, month=month)
    return _save(request, changes=changes, token=token, job=job)
