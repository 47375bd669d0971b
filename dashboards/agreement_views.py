"""The dashboard of one agreement, shared by both sides."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from partnerships.access import disputes_for, import_batches_for, membership_of
from partnerships.models import Agreement, AgreementKPI
from partnerships.months import MONTH_PATTERN, month_of
from scoring.models import Scorecard, ScoringRun
from scoring.rules import CANDIDATE_STAGES

from . import charts
from .http import HtmxHttpRequest, agreement_visible, month_asked, month_neighbours
from .program.objectives import objectives_for_dashboard
from .program.overdue import agreement_review_panel
from .selectors.agreement import (
    FLAG_MEANINGS,
    TIER_SERVICE,
    agreement_kpi_rows,
    agreement_months,
    agreement_payouts,
    agreement_recent_imports,
    agreement_scorecards,
    tier_hint,
    tier_since,
)
from .selectors.disputes import disputes_by_kpi
from .selectors.explanation import agreement_explanation
from .selectors.months import TREND_MONTHS, month_shift, trend_window
from .selectors.provenance import HISTORY_MONTHS, HOST_TEAM, kpi_provenance
from .selectors.reconciliation import disagreement_count
from .selectors.runs import tier_cutoffs_kept, tier_policy
from .templatetags.numbers import change_sign


def _category_rows(*, card: Scorecard | None, by_period: dict, window: list[str]) -> list[dict]:
    rows = []
    scored = card is not None and card.has_scorecard
    previous = by_period.get(month_shift(card.period, -1)) if card is not None else None
    for name in charts.CATEGORIES:
        values = [getattr(by_period[period], name)
                  if period in by_period and by_period[period].has_scorecard else None
                  for period in window]
        now = getattr(card, name) if scored else None
        before = (getattr(previous, name)
                  if previous is not None and previous.has_scorecard else None)
        change = now - before if now is not None and before is not None else None
        rows.append({
            "name": name, "value": now, "change": change, "change_sign": change_sign(change),
            "trend": charts.trend_svg(
                trend=charts.trend_line(values=values, width=48),
                label=f"{name} score {window[0]} to {window[-1]}" if window else ""),
        })
    return rows


def agreement_context(request: HtmxHttpRequest, agreement: Agreement, *,
                      printing: bool = False) -> dict:
    """Everything the dashboard shows for the month asked for (the run's last by default)."""
    run = ScoringRun.objects.current()
    scorecards = agreement_scorecards(run=run, agreement=agreement)
    months = [card.period for card in scorecards]
    month = month_asked(request, months)
    previous_month, next_month = month_neighbours(months, month)
    card = next((item for item in scorecards if item.period == month), None)
    scored = card is not None and card.has_scorecard
    window = trend_window(month)
    kpi_rows = agreement_kpi_rows(run=run, agreement=agreement, period=month,
                                  trend_periods=window) if month else []
    # Disputed values are marked in the KPI table, linking to their dispute.
    disputed = disputes_by_kpi(disputes=disputes_for(user=request.user), agreement=agreement,
                               month=month) if month else {}
    for row in kpi_rows:
        row["dispute"] = disputed.get(row["kpi"].pk)
        row["trend_line"] = charts.trend_line(values=row["trend_scores"])
        row["trend"] = charts.trend_svg(
            trend=row["trend_line"],
            label=f"Score of {row['kpi'].name}, {window[0]} to {window[-1]}")
    # Months up to the selected one: the page shows the agreement as it stood then.
    shown = [item for item in scorecards if item.period <= month]
    history = [item for item in shown if item.has_scorecard or item.rolling is not None]
    by_period = {item.period: item for item in scorecards}
    policy = tier_policy(run=run)
    bands = charts.tier_bands(policy=policy)
    cutoffs = tier_cutoffs_kept(run=run, period=month) if month else {}
    month_rows = agreement_months(scorecards=shown)
    try:
        plan = agreement.incentive_plan
    except Agreement.incentive_plan.RelatedObjectDoesNotExist:
        plan = None
    membership = membership_of(request.user)
    return {
        "agreement": agreement, "run": run, "month": month, "months": months,
        "previous_month": previous_month, "next_month": next_month,
        "card": card, "scored": scored, "printing": printing,
        "is_host": membership is not None and membership.is_host,
        # Numbers (None when missing): the template writes them (templatetags/numbers.py).
        "overall": card.overall if scored else None,
        "rolling": card.rolling if card else None,
        "coverage": card.coverage if scored else None,
        "categories": [
            (name, getattr(card, name) if scored else None) for name in charts.CATEGORIES
        ],
        "category_rows": _category_rows(card=card, by_period=by_period, window=window),
        "trend_first": window[0] if window else "", "trend_last": month,
        "tier_since": tier_since(scorecards=scorecards, period=month) if month else "",
        "tier_service": TIER_SERVICE.get(card.tier, "") if card else "",
        "tier_hint": tier_hint(card=card, stage=agreement.stage, cutoffs=cutoffs),
        # Ranked at all: its stage is, and the month has a rolling score to rank.
        "ranked_stage": agreement.stage in CANDIDATE_STAGES,
        "tier_ranked": agreement.stage in CANDIDATE_STAGES and card is not None
        and card.rolling is not None,
        "policy": policy, "bands": bands, "cutoffs": cutoffs,
        # On screen the last TREND_MONTHS months; print and the CSV have every month.
        "month_rows": month_rows if printing else month_rows[:TREND_MONTHS],
        "month_rows_hidden": 0 if printing else max(len(month_rows) - TREND_MONTHS, 0),
        "tier_changes": [row for row in reversed(month_rows) if row["changed"]],
        "flag_meanings": FLAG_MEANINGS,
        "plan": plan,
        # Closed months from their statements, open months as estimates; "paid up to".
        **agreement_payouts(agreement=agreement, rows=month_rows),
        "kpi_rows": kpi_rows,
        # Where the overall comes from and what reaches the next tier (both sides).
        "explanation": agreement_explanation(run=run, agreement=agreement,
                                             scorecards=scorecards, month=month,
                                             policy=policy, cutoffs=cutoffs),
        # Where the two sides disagree this month (dashboards/selectors/reconciliation.py).
        "disagreements": disagreement_count(run=run, month=month,
                                            agreement_ids={agreement.pk}) if month else 0,
        # Reviews due, overdue and open actions of both sides (dashboards/program/overdue.py).
        "review_panel": agreement_review_panel(agreement=agreement, user=request.user,
                                               run=run),
        # Objectives with their progress from the linked KPIs (dashboards/program/progress.py).
        "objectives_progress": objectives_for_dashboard(agreement=agreement, run=run),
        "recent_imports": agreement_recent_imports(
            batches=import_batches_for(user=request.user), agreement=agreement),
        # Print: static SVG instead of Plotly, which needs a script and a screen.
        "history_svg": charts.score_history_svg(scorecards=history, bands=bands)
        if printing and history else None,
        "history_figure": charts.score_history_figure(scorecards=history, bands=bands)
        if history and not printing else None,
        "category_figure": charts.category_scores_figure(scorecard=card, period=month)
        if scored and not printing else None,
    }


@login_required
def agreement_dashboard(request: HtmxHttpRequest, code: str) -> HttpResponse:
    agreement = agreement_visible(request=request, code=code)
    printing = request.GET.get("print") == "1"
    context = agreement_context(request, agreement, printing=printing)
    context["layout"] = "dashboards/agreement_print.html" if printing else "base.html"
    template = "dashboards/agreement.html"
    if request.htmx and not request.htmx.history_restore_request and not printing:
        template += "#month-panel"
    return render(request, template, context)


@login_required
@require_GET
def agreement_kpi_history(request: HtmxHttpRequest, code: str, kpi_code: str) -> HttpResponse:
    """Where one KPI's values came from, both sides', in the month asked for and the 12 before:
    a panel of the dashboard for HTMX, a page of its own without JavaScript."""
    agreement = agreement_visible(request=request, code=code)
    item = get_object_or_404(AgreementKPI.objects.select_related("kpi"), agreement=agreement,
                             kpi__code=kpi_code)
    month = request.GET.get("month", "")
    if not MONTH_PATTERN.fullmatch(month):
        months = [card.period for card in agreement_scorecards(
            run=ScoringRun.objects.current(), agreement=agreement)]
        month = month_asked(request, months) or month_of(timezone.localdate())
    membership = membership_of(request.user)
    months = kpi_provenance(agreement=agreement, kpi=item.kpi, month=month, user=request.user)
    context = {
        "agreement": agreement, "kpi": item.kpi, "month": month,
        "first_month": month_shift(month, -(HISTORY_MONTHS - 1)), "months": months,
        "quiet_months": [entry.month for entry in reversed(months)
                         if not (entry.observations or entry.changes or entry.disputes)],
        "is_host": membership is not None and membership.is_host,
        "host_team": HOST_TEAM,
    }
    template = "dashboards/kpi_history.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#kpi-history"
    return render(request, template, context)


@login_required
def agreement_print(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """The same dashboard laid out for paper: every section, no navigation, static charts."""
    agreement = agreement_visible(request=request, code=code)
    context = agreement_context(request, agreement, printing=True)
    context["layout"] = "dashboards/agreement_print.html"
    return render(request, "dashboards/agreement.html", context)
