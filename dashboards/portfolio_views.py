"""The host's portfolio of agreements."""

from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render

from partnerships.access import agreements_for, host_required
from partnerships.models import AgreementType, Stage, Tier
from scoring.models import ScoringRun

from .selectors import (
    FLAG_CHOICES,
    PORTFOLIO_SORTS,
    portfolio_filter,
    portfolio_rows,
    portfolio_sort,
    portfolio_summary,
)
from .views import HtmxHttpRequest

PAGE_SIZE = 50
FILTERS = ("type", "stage", "tier", "flag", "q")


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


@host_required
def portfolio(request: HtmxHttpRequest) -> HttpResponse:
    run = ScoringRun.objects.current()
    months = run.periods if run is not None else []
    month = _month(request, months)
    previous_month, next_month = _neighbours(months, month)
    choices = {
        "type": AgreementType.values, "stage": Stage.values, "tier": Tier.values,
        "flag": FLAG_CHOICES,
    }
    filters = {name: request.GET.get(name, "").strip() for name in FILTERS}
    for name, allowed in choices.items():
        if filters[name] not in allowed:
            filters[name] = ""
    filters["q"] = filters["q"][:100]
    sort = request.GET.get("sort", "agreement")
    if sort.lstrip("-") not in PORTFOLIO_SORTS:
        sort = "agreement"

    rows = portfolio_rows(agreements=agreements_for(user=request.user), run=run, period=month) \
        if month else []
    summary = portfolio_summary(rows=rows)
    shown = portfolio_sort(
        rows=portfolio_filter(rows=rows, type=filters["type"], stage=filters["stage"],
                              tier=filters["tier"], flag=filters["flag"], search=filters["q"]),
        sort=sort,
    )
    page = Paginator(shown, PAGE_SIZE).get_page(request.GET.get("page"))

    state = {"month": month, **{k: v for k, v in filters.items() if v}, "sort": sort}

    def query(**changes: str) -> str:
        merged = {**state, **changes}
        return "?" + urlencode({k: v for k, v in merged.items() if v})

    columns = [
        (name, label, query(sort=("-" + name) if sort == name else name, page=""),
         "ascending" if sort == name else "descending" if sort == "-" + name else "")
        for name, label in (("partner", "Partner"), ("agreement", "Agreement"),
                            ("type", "Type"), ("stage", "Stage"), ("tier", "Tier"),
                            ("overall", "Overall"), ("rolling", "Rolling"),
                            ("coverage", "Coverage"))
    ]
    context = {
        "run": run, "months": months, "month": month,
        "previous_month_url": query(month=previous_month, page="") if previous_month else "",
        "next_month_url": query(month=next_month, page="") if next_month else "",
        "previous_month": previous_month, "next_month": next_month,
        "summary": summary, "page": page, "filters": filters, "sort": sort,
        "columns": columns, "filtered_count": len(shown), "total_count": len(rows),
        "previous_page_url": query(page=str(page.previous_page_number()))
        if page.has_previous() else "",
        "next_page_url": query(page=str(page.next_page_number())) if page.has_next() else "",
        "type_choices": AgreementType.choices, "stage_choices": Stage.choices,
        "tier_choices": Tier.choices,
        "flag_choices": [("at_risk", "At risk"), ("incomplete", "Incomplete")],
    }
    template = "dashboards/portfolio.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#table"
    return render(request, template, context)
