"""The Reconciliation page and its CSV (both sides): every agreement, KPI and month where both
sides reported and differ beyond the KPI's tolerance, or where only the side that is not the
source of truth reported. Host staff see the program, partner users their own agreements (the
scoping layer decides). The rows are the published run's (dashboards/selectors/reconciliation.py).
"""

from dataclasses import dataclass
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from partnerships.access import agreements_for, membership_of
from partnerships.models import Agreement, KPIDefinition, Partner
from partnerships.spreadsheets import spreadsheet_escape
from scoring.exports import format_number, iter_csv_lines
from scoring.models import ScoringRun

from .exports_views import csv_filename, csv_response, export_audit
from .http import HtmxHttpRequest, partial_or_page
from .selectors.months import MonthStates, month_states
from .selectors.reconciliation import (
    KIND_LABELS,
    SORTS,
    Disagreement,
    disagreements_sorted,
    disagreements_visible,
    month_disagreements,
    reconciliation_month_default,
)

# A worklist: 25 rows a page keeps it short on a phone and the page within 4 × the trivial
# view on the benchmark database (50 rows took 4.4 ×).
PAGE_SIZE = 25
DEFAULT_SORT = "agreement"
COLUMNS = (
    ("agreement", "Agreement · month"), ("partner", "Partner"), ("kpi", "KPI"),
    ("source", "Source of truth's value"), ("other", "Other side's value"),
    ("difference", "Difference"),
)
NUMERIC_COLUMNS = frozenset({"source", "other", "difference", "percent"})
CSV_HEADER = [
    "agreement", "partner", "kpi", "month", "month_state", "kind", "source_side",
    "source_value", "other_value", "difference", "difference_percent", "tolerance_kind",
    "tolerance",
]


class KPIChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: KPIDefinition) -> str:
        return obj.name


class ReconciliationFilterForm(forms.Form):
    # Refusals never repeat the value sent: another partner's agreement code reads exactly
    # as one that does not exist.
    month = forms.ChoiceField(
        label="Month", required=False,
        error_messages={"invalid_choice": "The last published run has no scores for that "
                                          "month."})
    partner = forms.ModelChoiceField(
        label="Partner", queryset=Partner.objects.none(), to_field_name="slug",
        required=False, empty_label="All partners",
        error_messages={"invalid_choice": "There is no partner with that name."})
    # A code, not a list: a program of a thousand agreements would send them all each time.
    agreement = forms.CharField(
        label="Agreement", required=False, max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "agreement code", "autocomplete": "off",
                                      "spellcheck": "false"}))
    kpi = KPIChoiceField(
        label="KPI", queryset=KPIDefinition.objects.none(), to_field_name="code",
        required=False, empty_label="All KPIs",
        error_messages={"invalid_choice": "There is no KPI with that code."})
    kind = forms.ChoiceField(
        label="Kind", required=False, choices=[("", "Both kinds"), *KIND_LABELS.items()])

    def __init__(self, *args, agreements: QuerySet[Agreement], months: list[str],
                 states: MonthStates, host: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["month"].choices = [
            (month, states.label(month)) for month in reversed(months)]
        self.agreements = agreements
        if host:
            self.fields["partner"].queryset = Partner.objects.only("slug", "name").order_by(
                "name")
        else:
            del self.fields["partner"]
        self.fields["kpi"].queryset = KPIDefinition.objects.only("code", "name").order_by("name")

    def clean_agreement(self) -> Agreement | None:
        code = self.cleaned_data["agreement"].strip()
        if not code:
            return None
        agreement = self.agreements.filter(code=code).first()
        if agreement is None:
            raise forms.ValidationError("There is no agreement of yours with that code.")
        return agreement


@dataclass
class ReconciliationState:
    run: ScoringRun | None
    form: ReconciliationFilterForm
    month: str
    states: MonthStates
    sort: str
    host: bool
    rows: list[Disagreement] | None  # None: a filter is wrong
    month_total: int  # every row of the month the user may see, before the filters
    filters: dict[str, str]

    def query(self, **changes: str) -> str:
        """This page's query string with some parameters changed ('' drops one)."""
        merged = {"month": self.month, **self.filters, "sort": self.sort, **changes}
        if merged.get("sort") == DEFAULT_SORT:
            merged.pop("sort")
        return urlencode({name: value for name, value in merged.items() if value})


def _state(request: HtmxHttpRequest) -> ReconciliationState:
    run = ScoringRun.objects.current()
    months = run.periods if run is not None else []
    states = month_states()
    membership = membership_of(request.user)
    host = membership is not None and membership.is_host
    agreements = agreements_for(user=request.user)
    form = ReconciliationFilterForm(request.GET or None, agreements=agreements, months=months,
                                    states=states, host=host,
                                    initial={"month": reconciliation_month_default(
                                        months, states)})
    sort = request.GET.get("sort", DEFAULT_SORT)
    if sort.lstrip("-") not in SORTS:
        sort = DEFAULT_SORT
    valid = not form.is_bound or form.is_valid()
    chosen = form.cleaned_data if form.is_bound and valid else {}
    month = chosen.get("month") or reconciliation_month_default(months, states)
    filters = {name: form.data.get(name, "") for name in ("partner", "agreement", "kpi", "kind")
               if name in form.fields and name not in form.errors} if form.is_bound else {}
    rows = None
    month_total = 0
    if valid:
        # Host staff see the program; a partner user, the ids of their own agreements.
        visible = None if host else set(agreements.order_by().values_list("pk", flat=True))
        rows = disagreements_visible(month_disagreements(run=run, month=month),
                                     agreement_ids=visible)
        month_total = len(rows)
        if chosen.get("partner"):
            rows = [row for row in rows if row.partner_slug == chosen["partner"].slug]
        if chosen.get("agreement"):
            rows = [row for row in rows if row.agreement_id == chosen["agreement"].pk]
        if chosen.get("kpi"):
            rows = [row for row in rows if row.kpi.code == chosen["kpi"].code]
        if chosen.get("kind"):
            rows = [row for row in rows if row.kind == chosen["kind"]]
        rows = disagreements_sorted(rows, sort)
    return ReconciliationState(run=run, form=form, month=month, states=states, sort=sort,
                               host=host, rows=rows, month_total=month_total,
                               filters={k: v for k, v in filters.items() if v})


@require_GET
@login_required
def reconciliation(request: HtmxHttpRequest) -> HttpResponse:
    """The disagreements of a month the user may see, filtered and sorted, a page at a time."""
    state = _state(request)
    page: Page | None = None
    if state.rows is not None:
        page = Paginator(state.rows, PAGE_SIZE).get_page(request.GET.get("page"))
    def sorting(name: str) -> dict:
        return {"url": "?" + state.query(sort=("-" + name) if state.sort == name else name),
                "direction": "ascending" if state.sort == name
                else "descending" if state.sort == "-" + name else ""}

    columns = [
        {"name": name, "label": label, **sorting(name),
         "numeric": name in NUMERIC_COLUMNS, "sortable": name in SORTS}
        for name, label in COLUMNS if state.host or name != "partner"
    ]
    # One column shows the difference and its percent, each sortable.
    difference = next(column for column in columns if column["name"] == "difference")
    difference["percent"] = sorting("percent")
    difference["direction"] = difference["direction"] or difference["percent"]["direction"]
    # Every row is of the month shown: its badge drawn once, not once a row.
    month_badge = render_to_string("_month_state.html",
                                   {"month": state.month, "states": state.states})
    context = {
        "run": state.run, "form": state.form, "month": state.month, "states": state.states,
        "month_badge": month_badge,
        "page": page, "columns": columns, "is_host": state.host,
        "month_total": state.month_total,
        "filtered": bool(state.filters),
        "query": state.query(),
        "page_query": state.query(page=""),
    }
    return partial_or_page(request, "dashboards/reconciliation.html", "reconciliation-results",
                           context)


def _csv_row(row: Disagreement, *, states: MonthStates) -> list[str]:
    return [
        spreadsheet_escape(row.agreement_code), spreadsheet_escape(row.partner_slug),
        spreadsheet_escape(row.kpi.code), row.period, states.state(row.period), row.kind,
        row.kpi.source, format_number(row.source_value), format_number(row.other_value),
        format_number(row.difference), format_number(row.difference_percent),
        row.kpi.tolerance_kind, format_number(row.kpi.tolerance),
    ]


@require_GET
@login_required
def reconciliation_csv(request: HtmxHttpRequest) -> HttpResponse:
    """The filtered rows, in the page's order, as CSV; a partner user's file holds only their
    own agreements' rows."""
    state = _state(request)
    if state.rows is None:
        problems = " ".join(str(error) for errors in state.form.errors.values()
                            for error in errors)
        return HttpResponse(problems, status=400, content_type="text/plain; charset=utf-8")
    membership = membership_of(request.user)
    export_audit(request, target="reconciliation",
                 detail={"rows": len(state.rows), "month": state.month,
                         "scope": "program" if state.host else "partner",
                         **state.filters})
    scope = "" if state.host else (membership.partner.slug if membership and membership.partner
                                   else "none")
    rows = (_csv_row(row, states=state.states) for row in state.rows)
    return csv_response(lines=iter_csv_lines(header=CSV_HEADER, rows=rows),
                        filename=csv_filename("reconciliation", scope, state.month,
                                              *state.filters.values()),
                        bom=True)
