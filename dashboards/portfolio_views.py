"""The host's portfolio of agreements: headline figures, charts, the table and its CSV export."""

import math
from dataclasses import dataclass
from itertools import chain
from urllib.parse import urlencode

from django.core.paginator import Page, Paginator
from django.db.models import Count, QuerySet, Window
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers

from partnerships.access import agreements_for, disputes_for, host_required
from partnerships.audit import audit_record
from partnerships.models import Agreement, AgreementType, AuditAction, Stage, Tier
from scoring.exports import iter_csv_lines
from scoring.models import ScoringRun

from .csv_rows import PORTFOLIO_EXPORT_HEADER, portfolio_export_rows
from .http import HtmxHttpRequest, month_asked, month_neighbours
from .portfolio_table import portfolio_rows_html
from .program.overdue import current_tiers, overdue_for, portfolio_review_figures
from .selectors.disputes import disputes_open_count
from .selectors.portfolio import (
    FLAG_CHOICES,
    PORTFOLIO_SORTS,
    portfolio_export_queryset,
    portfolio_figures_kept,
    portfolio_overview,
    portfolio_queryset,
    portfolio_row,
    portfolio_rows,
    rows_overdue,
    with_overdue,
)
from .selectors.reconciliation import disagreement_count

PAGE_SIZE = 50
FILTERS = ("type", "stage", "tier", "flag", "owner", "q")
COLUMNS = (
    ("partner", "Partner"), ("agreement", "Agreement"), ("type", "Type"), ("stage", "Stage"),
    ("owner", "Owner"), ("tier", "Tier"), ("overall", "Overall"), ("rolling", "Rolling"),
    ("trend", "Trend (12 months)"), ("coverage", "Coverage"), ("flags", "Flags"),
    ("payout", "Payout"), ("review", "Review"), ("actions", "Actions"),
)
NUMERIC_COLUMNS = frozenset({"overall", "rolling", "coverage", "payout"})
FLAG_LABELS = {"at_risk": "At risk", "incomplete": "Incomplete",
               "review_overdue": "Review overdue", "actions_overdue": "Actions overdue"}
# Left out of the cards a phone shows (one tap away on the agreement's page).
WIDE_ONLY_COLUMNS = frozenset({"type", "owner"})
# Header cells of the table: some hold two sortable columns (the partner under the agreement
# code, the stage under the type), so twelve sortable columns fit ten table columns.
HEADER_CELLS = (("agreement", "partner"), ("type", "stage"), ("owner",), ("tier",),
                ("overall",), ("rolling",), ("trend",), ("coverage",),
                ("flags", "review", "actions"), ("payout",))


@dataclass
class PortfolioState:
    """What the query string asked for, checked, and the query of the rows it selects."""

    run: ScoringRun | None
    months: list[str]
    month: str
    filters: dict[str, str | list[str]]  # "flag" a list: rows with any of them
    sort: str
    # The visible agreements (the headline figures and charts are of all of them), how many
    # and how many active, and their owners.
    agreements: QuerySet[Agreement]
    total: int
    active: int
    owners: list[tuple[int, str]]
    last_id: int
    # The table's agreements: filtered and sorted by the database.
    shown: QuerySet[Agreement]

    def query(self, **changes: str | list[str]) -> str:
        """This page's query string with some parameters changed ('' drops one)."""
        state = {"month": self.month, **{k: v for k, v in self.filters.items() if v},
                 "sort": self.sort}
        merged = {**state, **changes}
        return "?" + urlencode({k: v for k, v in merged.items() if v}, doseq=True)


class CountedPaginator(Paginator):
    """A paginator told its count (known already), so it does not ask the database."""

    def __init__(self, object_list, per_page: int, *, count: int) -> None:
        super().__init__(object_list, per_page)
        self.count = count


def _page(request: HtmxHttpRequest, state: PortfolioState) -> Page:
    """The asked page of the table (the first for a bad number, the last past the end) with
    its rows: one query for the page's agreements, which counts them all with a window, and
    two for their scorecards and trends."""
    try:
        number = int(request.GET.get("page") or 1)
    except ValueError:
        number = 1
    today = timezone.localdate()
    counted = with_overdue(state.shown, today=today).annotate(_count=Window(Count("pk")))

    def agreements_of(number: int) -> list[Agreement]:
        return list(counted[(number - 1) * PAGE_SIZE:number * PAGE_SIZE])

    agreements = agreements_of(number) if number >= 1 else []
    if agreements:
        count = agreements[0]._count
    elif number == 1:
        count = 0
    else:  # past the end (or before the start, like Paginator.get_page): the last page
        count = state.shown.count()
        number = max(math.ceil(count / PAGE_SIZE), 1)
        agreements = agreements_of(number) if count else []
    paginator = CountedPaginator((), PAGE_SIZE, count=count)
    rows = portfolio_rows(agreements=agreements, run=state.run, period=state.month)
    return Page(rows_overdue(rows, run=state.run, today=today), number, paginator)


def _portfolio_state(request: HtmxHttpRequest) -> PortfolioState:
    run = ScoringRun.objects.current()
    months = run.periods if run is not None else []
    month = month_asked(request, months)
    agreements = agreements_for(user=request.user) if month else Agreement.objects.none()
    overview = portfolio_overview(agreements=agreements) if month \
        else {"total": 0, "active": 0, "last_id": 0, "owners": []}
    owners = overview["owners"]
    choices = {
        "type": AgreementType.values, "stage": Stage.values, "tier": Tier.values,
        "flag": FLAG_CHOICES,
        # "mine" is the signed-in manager, whether or not they own anything yet.
        "owner": ["mine", *(str(owner_id) for owner_id, _ in owners)],
    }
    filters = {name: request.GET.get(name, "").strip() for name in FILTERS if name != "flag"}
    for name, allowed in choices.items():
        if name != "flag" and filters[name] not in allowed:
            filters[name] = ""
    # Several flags (rows with any of them); a single ?flag= keeps working.
    asked_flags = set(request.GET.getlist("flag"))
    filters["flag"] = [name for name in FLAG_CHOICES if name in asked_flags]
    filters["q"] = filters["q"][:100]
    owner_id = None
    if filters["owner"] == "mine":
        owner_id = request.user.pk
    elif filters["owner"]:
        owner_id = int(filters["owner"])
    sort = request.GET.get("sort", "agreement")
    if sort.lstrip("-") not in PORTFOLIO_SORTS:
        sort = "agreement"
    # The review rules run in Python: only for a filter or a sort that needs them.
    review_overdue = {
        pk: overdue.review_overdue_days for pk, overdue in overdue_for(
            agreement_ids=agreements.order_by().values("pk"), run=run).items()
    } if month and ("review_overdue" in filters["flag"] or sort.lstrip("-") == "review") \
        else {}
    shown = portfolio_queryset(
        agreements=agreements, run=run, period=month, sort=sort, type=filters["type"],
        stage=filters["stage"], tier=filters["tier"], flag=filters["flag"],
        search=filters["q"], owner_id=owner_id, review_overdue=review_overdue)
    return PortfolioState(run=run, months=months, month=month, filters=filters, sort=sort,
                          agreements=agreements, total=overview["total"],
                          active=overview["active"], owners=owners,
                          last_id=overview["last_id"], shown=shown)


def _portfolio_figures(state: PortfolioState) -> dict:
    return portfolio_figures_kept(agreements=state.agreements, run=state.run, month=state.month,
                                  total=state.total, last_id=state.last_id, active=state.active)


@host_required
def portfolio(request: HtmxHttpRequest) -> HttpResponse:
    state = _portfolio_state(request)
    previous_month, next_month = month_neighbours(state.months, state.month)
    page = _page(request, state)
    sort = state.sort
    columns = [
        (name, label, state.query(sort=("-" + name) if sort == name else name, page=""),
         "ascending" if sort == name else "descending" if sort == "-" + name else "",
         ("num " if name in NUMERIC_COLUMNS else "")
         + ("col-wide-only" if name in WIDE_ONLY_COLUMNS else ""))
        for name, label in COLUMNS
    ]
    by_name = {column[0]: column for column in columns}
    header_cells = [
        {"links": [by_name[name] for name in names],
         "classes": by_name[names[0]][4],
         "direction": next((by_name[name][3] for name in names if by_name[name][3]), "")}
        for names in HEADER_CELLS
    ]
    owner_label = dict((str(owner_id), name) for owner_id, name in state.owners)
    context = {
        "run": state.run, "months": state.months, "month": state.month,
        "previous_month_url": state.query(month=previous_month, page="")
        if previous_month else "",
        "next_month_url": state.query(month=next_month, page="") if next_month else "",
        "previous_month": previous_month, "next_month": next_month,
        "page": page,
        "rows_html": portfolio_rows_html(page.object_list, month=state.month),
        # Overdue reviews and actions today (dashboards/program/overdue.py).
        "review_figures": portfolio_review_figures(agreements=agreements_for(user=request.user),
                                                   run=state.run),
        # The two sides' disagreements in the month (dashboards/selectors/reconciliation.py).
        "disagreements": disagreement_count(run=state.run, month=state.month),
        # Open disputes of the program, whatever their month (dashboards/selectors/disputes.py).
        "open_disputes": disputes_open_count(disputes=disputes_for(user=request.user)),
        "filters": state.filters, "sort": sort,
        "owner_filter_label": "mine" if state.filters["owner"] == "mine"
        else owner_label.get(state.filters["owner"], ""),
        "columns": columns, "header_cells": header_cells, "column_count": len(header_cells),
        "filtered_count": page.paginator.count, "total_count": state.total,
        "previous_page_url": state.query(page=str(page.previous_page_number()))
        if page.has_previous() else "",
        "next_page_url": state.query(page=str(page.next_page_number()))
        if page.has_next() else "",
        "export_url": state.query(page="", sort=sort),
        "type_choices": AgreementType.choices, "stage_choices": Stage.choices,
        "tier_choices": Tier.choices,
        "flag_choices": list(FLAG_LABELS.items()),
        "owner_choices": [("mine", "Mine"), *((str(pk), name) for pk, name in state.owners)],
        **(_portfolio_figures(state) if state.month else
           {"summary": {}, "tier_figure": None, "score_figure": None}),
    }
    template = "dashboards/portfolio.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#table"
    response = render(request, template, context)
    # The same URL answers a page or a partial: caches must keep them apart.
    patch_vary_headers(response, ("HX-Request",))
    return response


# Agreements read from the database at a time while the export streams.
EXPORT_CHUNK = 500


@host_required
def portfolio_export(request: HtmxHttpRequest) -> StreamingHttpResponse:
    """The filtered, sorted table as CSV: every row, not only the page, streamed as the
    database gives them (a chunk of agreements at a time)."""
    state = _portfolio_state(request)
    shown = portfolio_export_queryset(queryset=state.shown, run=state.run, period=state.month) \
        if state.month else Agreement.objects.none()
    audit_record(action=AuditAction.EXPORT, request=request,
                 target=f"portfolio {state.month or 'no month'}",
                 detail={"rows": state.shown.count() if state.month else 0, "sort": state.sort,
                         **{name: value for name, value in state.filters.items() if value}})
    today = timezone.localdate()
    shown = with_overdue(shown, today=today)

    def rows():
        tiers = current_tiers(run=state.run)  # once, not per row
        for agreement in shown.iterator(chunk_size=EXPORT_CHUNK):
            yield rows_overdue([portfolio_row(agreement)], run=state.run, today=today,
                               tiers=tiers)[0]

    lines = iter_csv_lines(header=PORTFOLIO_EXPORT_HEADER,
                           rows=portfolio_export_rows(rows=rows(), period=state.month))
    # A BOM first, so spreadsheet programs read the file as UTF-8.
    response = StreamingHttpResponse(chain(["\ufeff"], lines),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="portfolio-{state.month or "unscored"}.csv"'
    )
    return response
