from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from partnerships.access import agreements_for, host_required, manager_required, membership_of
from partnerships.audit import audit_record
from partnerships.models import Agreement, AuditAction, Stage
from partnerships.queue import TaskQueueUnavailable
from scoring.models import ScoringRun
from scoring.services import ScoringAlreadyRunning
from scoring.tasks import scoring_enqueue

from .charts import agreements_by_stage_figure
from .program.overdue import home_overdue_actions
from .selectors.portfolio import portfolio_rows
from .selectors.runs import scoring_runs_recent, scoring_status


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def agreement_visible(*, request: HtmxHttpRequest, code: str) -> Agreement:
    """The agreement by code if the user may see it; 404 otherwise, whether it exists or not."""
    agreement = (agreements_for(user=request.user)
                 .select_related("partner", "owner", "incentive_plan")
                 .filter(code=code).first())
    if agreement is None:
        # Another partner's agreement answers exactly like one that does not exist.
        raise Http404("No such agreement.")
    return agreement


def month_asked(request: HtmxHttpRequest, months: list[str]) -> str:
    """The month (YYYY-MM) the request asks for if the run scored it, else the run's last."""
    asked = request.GET.get("month", "")
    if asked in months:
        return asked
    return months[-1] if months else ""


def month_neighbours(months: list[str], month: str) -> tuple[str, str]:
    """The scored months before and after `month` ("" at either end)."""
    if month not in months:
        return "", ""
    index = months.index(month)
    return (months[index - 1] if index > 0 else "",
            months[index + 1] if index + 1 < len(months) else "")


def redirect_after_change(request: HtmxHttpRequest, url: str) -> HttpResponse:
    """After a saved form or an action: the next page, loaded whole. htmx follows the
    HX-Redirect header of an empty answer; without JavaScript it is a plain redirect."""
    if request.htmx:
        return HttpResponseClientRedirect(url, status=204)
    return redirect(url)


# Agreements linked on a host's home page; the portfolio lists them all.
HOME_LINKS = 20


@login_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    agreements = agreements_for(user=request.user)
    counts = dict(agreements.order_by().values_list("stage").annotate(n=Count("id")))
    total = sum(counts.values())
    membership = membership_of(request.user)
    context = {
        "agreement_count": total,
        "active_count": counts.get(Stage.ACTIVE, 0),
        "stage_figure": agreements_by_stage_figure(counts=counts) if total else None,
        # The overdue actions the user's own side owns (dashboards/program/overdue.py).
        "overdue_actions": home_overdue_actions(user=request.user) if total else None,
    }
    if membership is not None and not membership.is_host and total:
        # A partner's users see each of their own agreements as a card: the latest month's
        # numbers of the published run, the same stored values as every other page.
        run = ScoringRun.objects.current()
        month = run.last_period if run is not None else ""
        context.update(partner_home=True, run=run, month=month, agreement_cards=portfolio_rows(
            agreements=agreements, run=run, period=month))
    else:
        # Links to the agreement dashboards; the host has the portfolio page for more.
        context["agreement_links"] = list(
            agreements.select_related("partner").order_by("code")[:HOME_LINKS]) if total else []
    return render(request, "dashboards/home.html", context)


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
