"""The ecosystem page (host): growth, engagement, value and health of the program over time."""

import re

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers

from partnerships.access import (
    agreements_for,
    host_required,
    import_batches_for,
    observations_for,
)
from partnerships.models import Stage
from scoring.models import ScoringRun

from . import charts
from .http import HtmxHttpRequest
from .selectors import ecosystem as queries
from .templatetags.numbers import rounded

SPANS = (6, 12, 24, 36)
DEFAULT_SPAN = 12
MONTH = re.compile(r"(19|20)\d\d-(0[1-9]|1[0-2])")


def _range(request: HtmxHttpRequest, run: ScoringRun | None) -> tuple[str, int, dict, dict]:
    """The last month and the number of months asked for; errors per field, input kept."""
    # Not this calendar month, whose metrics have not arrived yet: the latest month with data
    # (the health section shows the last scored month up to the chosen one).
    default_end = queries.ecosystem_latest_month(
        observations=observations_for(user=request.user), run=run,
        today=timezone.localdate())
    asked = {"end": request.GET.get("end", "").strip()[:20],
             "span": request.GET.get("span", "").strip()[:10]}
    errors = {}
    end = asked["end"] or default_end
    if not MONTH.fullmatch(end):
        errors["end"] = f"Give the last month as YYYY-MM, for example {default_end}."
        end = default_end
    span = DEFAULT_SPAN
    if asked["span"]:
        if asked["span"].isdigit() and int(asked["span"]) in SPANS:
            span = int(asked["span"])
        else:
            errors["span"] = "Choose one of the listed ranges."
    return end, span, asked, errors


@host_required
def ecosystem(request: HtmxHttpRequest) -> HttpResponse:
    run = ScoringRun.objects.current()
    end, span, asked, errors = _range(request, run)
    months = queries.ecosystem_months(end=end, span=span)
    agreements = agreements_for(user=request.user)
    first = months[0]
    period_label = f"{first} to {end}"

    new_agreements = queries.growth_new_agreements(agreements=agreements, months=months)
    stage_moves = queries.growth_stage_moves(agreements=agreements, months=months)
    imports = queries.engagement_imports(
        batches=import_batches_for(user=request.user), months=months)
    reviews = queries.engagement_reviews(agreements=agreements, months=months)
    revenue = queries.value_revenue(observations=observations_for(user=request.user),
                                      agreements=agreements, months=months)
    revenue_left_out = queries.value_left_out(
        observations=observations_for(user=request.user), agreements=agreements, months=months)
    scored = [month for month in (run.periods if run is not None else []) if month <= end]
    tier_moves = queries.health_tier_moves(run=run, agreements=agreements,
                                           month=scored[-1] if scored else end)
    at_risk = queries.health_at_risk(run=run, agreements=agreements, months=months)
    satisfaction = queries.health_satisfaction(run=run, agreements=agreements, months=months)
    churn = queries.health_churn(agreements=agreements, months=months)
    types = queries.diversity_by_type(agreements=agreements)

    def figure(has_data: bool, **kwargs) -> dict | None:
        return charts.monthly_figure(months=months, **kwargs) if has_data else None

    stage_labels = dict(Stage.choices)
    context = {
        "run": run, "end": end, "span": span, "spans": SPANS, "asked": asked,
        "errors": errors, "months": months, "period_label": period_label,
        "new_agreements_figure": figure(
            any(new_agreements), title="New agreements per month", subtitle=period_label,
            series=[("new agreements", new_agreements)], y_title="agreements (by start date)"),
        "new_agreements_total": sum(new_agreements),
        "stage_moves_figure": figure(
            bool(stage_moves), title="Stage changes per month", subtitle=period_label,
            series=[(f"to {stage_labels[stage].lower()}", values)
                    for stage, values in stage_moves.items()],
            y_title="stage changes", stacked=True),
        "imports_figure": figure(
            any(any(values) for values in imports.values()),
            title="Metric imports per month",
            subtitle=f"successful ones, {period_label}",
            series=list(imports.items()), y_title="imports", stacked=True),
        "reviews_figure": figure(
            any(reviews), title="Business reviews per month", subtitle=period_label,
            series=[("reviews", reviews)], y_title="reviews"),
        # One chart per KPI: their units differ (USD, deals, …), so they share no axis.
        "revenue_figures": [
            (f"chart-revenue-{index}", charts.monthly_figure(
                months=months, title=f"{name} ({unit})" if unit else name,
                subtitle=f"sum per month, {period_label}", series=[(name, values)],
                y_title=unit or "sum", kind="line", value_format=",.0f", tick_format="~s",
                colours={name: charts.CATEGORY_COLOURS["financial"]}))
            for index, ((name, unit), values) in enumerate(revenue.items()) if any(values)
        ],
        "revenue_kpis": [f"{name} ({unit})" if unit else name for name, unit in revenue],
        "revenue_left_out": revenue_left_out,
        "value_max_abs": settings.METRIC_VALUE_MAX_ABS,
        "tier_moves": tier_moves,
        "at_risk_figure": figure(
            any(at_risk), title="Agreements at risk per month", subtitle=period_label,
            series=[("at risk", at_risk)], y_title="agreements at risk",
            colours={"at risk": charts.AT_RISK_COLOUR}),
        "satisfaction": satisfaction,
        "satisfaction_figure": figure(
            any(value is not None for value in satisfaction["values"]),
            title="Satisfaction per month", subtitle=period_label,
            # Rounded as the page writes a score, so the hover text agrees with it.
            series=[("satisfaction", [rounded(value) for value in satisfaction["values"]])],
            y_title="mean score (0–120)", kind="line", value_format=".1f", tick_format=",d",
            y_range=[0, 125]),
        "churn_figure": figure(
            any(churn), title="Exits per month",
            subtitle=f"moves to exiting or ended, {period_label}",
            series=[("exits", churn)], y_title="agreements",
            colours={"exits": charts.AT_RISK_COLOUR}),
        "types_figure": charts.category_bars_figure(
            title="Agreements per type", subtitle="today, ended ones left out",
            labels=[label for label, _ in types], values=[n for _, n in types],
            x_title="agreements") if any(n for _, n in types) else None,
    }
    template = "dashboards/ecosystem.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#body"
    response = render(request, template, context)
    # The same URL answers a page or a partial: caches must keep them apart.
    patch_vary_headers(response, ("HX-Request",))
    return response
