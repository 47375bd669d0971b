"""The dashboard of one agreement, shared by both sides."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render

from partnerships.access import agreements_for
from scoring.models import ScoringRun

from . import charts
from .program.overdue import agreement_review_panel
from .selectors import agreement_kpi_rows, agreement_scorecards, one_decimal, tier_since
from .views import HtmxHttpRequest


def _month(request: HtmxHttpRequest, months: list[str]) -> str:
    """The requested month if the run scored it, else the run's last month."""
    asked = request.GET.get("month", "")
    if asked in months:
        return asked
    return months[-1] if months else ""


def _neighbours(months: list[str], month: str) -> tuple[str, str]:
    if month not in months:
        return "", ""
    index = months.index(month)
    return (months[index - 1] if index > 0 else "",
            months[index + 1] if index + 1 < len(months) else "")


@login_required
def agreement_dashboard(request: HtmxHttpRequest, code: str) -> HttpResponse:
    agreement = (agreements_for(user=request.user).select_related("partner", "owner")
                 .filter(code=code).first())
    if agreement is None:
        # Another partner's agreement answers exactly like one that does not exist.
        raise Http404("No such agreement.")
    run = ScoringRun.objects.current()
    scorecards = agreement_scorecards(run=run, agreement=agreement)
    months = [card.period for card in scorecards]
    month = _month(request, months)
    previous_month, next_month = _neighbours(months, month)
    card = next((item for item in scorecards if item.period == month), None)
    scored = card is not None and card.has_scorecard
    kpi_rows = agreement_kpi_rows(run=run, agreement=agreement, period=month) if month else []
    history = [item for item in scorecards if item.has_scorecard or item.rolling is not None]
    context = {
        "agreement": agreement, "run": run, "month": month, "months": months,
        "previous_month": previous_month, "next_month": next_month,
        "card": card, "scored": scored,
        "overall": one_decimal(card.overall) if scored else "",
        "rolling": one_decimal(card.rolling) if card else "",
        "coverage": one_decimal(card.coverage * 100) if scored else "",
        "categories": [
            (name, one_decimal(getattr(card, name)) if scored else "")
            for name in charts.CATEGORIES
        ],
        "tier_since": tier_since(scorecards=scorecards, period=month) if month else "",
        "kpi_rows": kpi_rows,
        # Reviews due, overdue and open actions of both sides (dashboards/program/overdue.py).
        "review_panel": agreement_review_panel(agreement=agreement, user=request.user),
        "history_figure": charts.score_history_figure(scorecards=history) if history else None,
        "category_figure": charts.category_scores_figure(scorecard=card, period=month)
        if scored else None,
    }
    template = "dashboards/agreement.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#month-panel"
    return render(request, template, context)
