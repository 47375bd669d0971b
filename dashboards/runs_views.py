"""Scoring runs: the recent runs, one run's panel (polled while it runs), and starting one."""

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from partnerships.access import host_required, manager_required, membership_of
from partnerships.audit import audit_record
from partnerships.models import AuditAction
from partnerships.queue import TaskQueueUnavailable
from scoring.models import ScoringRun
from scoring.services import ScoringAlreadyRunning
from scoring.tasks import scoring_enqueue

from .http import HtmxHttpRequest
from .selectors.runs import scoring_runs_recent, scoring_status


def _run_panel_context(request: HttpRequest, run: ScoringRun | None) -> dict:
    membership = membership_of(request.user)
    return {"run": run, "can_start": membership is not None and membership.can_manage}


@host_required
def scoring_runs(request: HtmxHttpRequest) -> HttpResponse:
    status = scoring_status()
    context = _run_panel_context(request, status["latest_run"])
    context.update(
        runs=scoring_runs_recent(),
        published=status["published_run"],
        nightly_time=f"{settings.SCORING_NIGHTLY_HOUR:02d}:{settings.SCORING_NIGHTLY_MINUTE:02d}",
    )
    return render(request, "dashboards/runs.html", context)


@host_required
def scoring_run_panel(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(ScoringRun, pk=run_id)
    return render(request, "dashboards/runs.html#run-panel", _run_panel_context(request, run))


@manager_required
@require_POST
def scoring_run_start(request: HtmxHttpRequest) -> HttpResponse:
    notice, level = "", messages.WARNING
    try:
        run = scoring_enqueue(trigger=ScoringRun.Trigger.USER, user=request.user)
        audit_record(action=AuditAction.SCORING_RUN, request=request,
                     target=f"scoring run {run.pk}", detail={"trigger": "user"})
    except ScoringAlreadyRunning as refused:
        run, notice = refused.active, str(refused)
    except TaskQueueUnavailable as unavailable:
        # No run was left behind: the panel shows the latest run as it was.
        run, notice, level = ScoringRun.objects.first(), str(unavailable), messages.ERROR
    if not request.htmx:
        if notice:
            messages.add_message(request, level, notice)
        return redirect("scoring_runs")
    if run is not None:
        run.refresh_from_db()
    context = _run_panel_context(request, run) | {
        "notice": notice, "notice_level": messages.DEFAULT_TAGS[level]}
    return render(request, "dashboards/runs.html#run-panel", context)
