"""The Statements page and its CSV (both sides): the payout statement lines of closed months,
filtered by month, agreement and status, with their sums and approvals. Host users see the
program's lines, partner users their own agreements' only (the scoping layer decides). The
lines are only shown: they are written when a month closes and are never edited."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpResponse
from django.views.decorators.http import require_GET

from partnerships.access import agreements_for, is_host, membership_of
from partnerships.models import Agreement
from scoring.exports import iter_csv_lines
from scoring.models import StatementLine
from scoring.statements import STATEMENT_HEADER, statements_csv_rows

from .exports_views import csv_filename, csv_response, export_audit
from .http import HtmxHttpRequest, partial_or_page
from .selectors.statements import (
    STATUS_LABELS,
    StatementStatus,
    statement_lines_for,
    statement_page,
    statement_statuses,
    statement_totals,
)


class AgreementChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Agreement) -> str:
        return f"{obj.code} · {obj.partner.name}"


class StatementFilterForm(forms.Form):
    # Refusals never repeat the value sent: another partner's agreement code reads exactly
    # as one that does not exist.
    month = forms.ChoiceField(
        label="Month", required=False,
        error_messages={"invalid_choice": "There is no statement for that month."})
    agreement = AgreementChoiceField(
        label="Agreement", queryset=Agreement.objects.none(), to_field_name="code",
        required=False, empty_label="All agreements",
        error_messages={"invalid_choice": "There is no statement of yours for that agreement."})
    status = forms.ChoiceField(
        label="Status", required=False, choices=[("", "Any status"), *STATUS_LABELS.items()])

    def __init__(self, *args, agreements: QuerySet[Agreement],
                 statuses: dict[str, StatementStatus], host: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not host:
            self.fields["agreement"].empty_label = "All your agreements"
        self.fields["month"].choices = [("", "All months"), *(
            (month, f"{month} · {status.label.lower()}")
            for month, status in sorted(statuses.items(), reverse=True))]
        self.fields["agreement"].queryset = (
            agreements.filter(pk__in=StatementLine.objects.order_by().values("agreement_id"))
            .select_related("partner").order_by("code"))


def _filtered(request: HtmxHttpRequest) -> tuple[StatementFilterForm, QuerySet | None, dict]:
    """The filter form, the lines it selects (None when a filter is wrong) and the statuses of
    the months the user's lines are in."""
    agreements = agreements_for(user=request.user)
    statuses = statement_statuses(months=StatementLine.objects.filter(
        agreement__in=agreements.order_by().values("pk")).order_by()
        .values_list("period", flat=True).distinct())
    form = StatementFilterForm(request.GET or None, agreements=agreements, statuses=statuses,
                               host=is_host(request.user))
    if form.is_bound and not form.is_valid():
        return form, None, statuses
    chosen = form.cleaned_data if form.is_bound else {}
    status = chosen.get("status", "")
    lines = statement_lines_for(
        agreements=agreements, month=chosen.get("month", ""), agreement=chosen.get("agreement"),
        months=[month for month, item in statuses.items() if item.status == status]
        if status else None)
    return form, lines, statuses


def _query(form: StatementFilterForm) -> str:
    """The filters as a query string (valid ones only), for the CSV and the pages."""
    if not form.is_bound or not hasattr(form, "cleaned_data"):
        return ""
    query = form.data.copy()
    for name in list(query):
        if name not in form.fields or not query.get(name):
            query.pop(name)
    return query.urlencode()


@require_GET
@login_required
def statements(request: HtmxHttpRequest) -> HttpResponse:
    """The statement lines the user may see, filtered, a page of agreement-months at a time."""
    form, lines, statuses = _filtered(request)
    page, months = (statement_page(lines=lines, statuses=statuses,
                                   number=request.GET.get("page"))
                    if lines is not None else (None, []))
    membership = membership_of(request.user)
    context = {
        "form": form, "page": page, "months": months, "query": _query(form),
        "totals": statement_totals(lines=lines, statuses=statuses) if lines is not None else [],
        "filtered": form.is_bound and any(form.data.get(name) for name in form.fields),
        "has_statements": bool(statuses),
        "is_host": membership is not None and membership.is_host,
    }
    return partial_or_page(request, "dashboards/statements.html", "statement-results", context)


@require_GET
@login_required
def statements_csv(request: HtmxHttpRequest) -> HttpResponse:
    """The filtered lines in the CSV of DOMAIN.md § Files (what `export_statements` writes);
    a partner user's file holds only their own agreements' lines."""
    form, lines, _ = _filtered(request)
    if lines is None:
        problems = " ".join(str(error) for errors in form.errors.values() for error in errors)
        return HttpResponse(problems, status=400, content_type="text/plain; charset=utf-8")
    chosen = form.cleaned_data if form.is_bound else {}
    membership = membership_of(request.user)
    host = membership is not None and membership.is_host
    agreement = chosen.get("agreement")
    months = set(lines.order_by().values_list("period", flat=True).distinct())
    count = lines.count()
    export_audit(request, target="statements",
                 detail={"rows": count, "scope": "program" if host else "partner",
                         **{name: str(value) for name, value in chosen.items() if value}})
    # The whole program for the host (unless one agreement is asked for): the rows are the
    # command's, byte for byte; a partner's, by the ids the scoping layer gives them.
    if agreement is not None:
        agreement_ids = [agreement.pk]
    else:
        agreement_ids = None if host else agreements_for(user=request.user).order_by() \
            .values("pk")
    rows = (row for row in statements_csv_rows(period=chosen.get("month") or None,
                                               agreement_ids=agreement_ids)
            if row[2] in months)
    scope = "" if host else (membership.partner.slug if membership and membership.partner
                             else "none")
    return csv_response(lines=iter_csv_lines(header=STATEMENT_HEADER, rows=rows),
                        filename=csv_filename("statements", scope, chosen.get("month", ""),
                                              agreement.code if agreement else "",
                                              chosen.get("status", "")),
                        bom=False)
