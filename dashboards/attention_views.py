"""Needs attention: the worklist of agreements that need someone to act, and its CSV.

Host staff see the agreements they own ("mine") or everyone's; partner users their own
partner's. Each reason links to the page where it is dealt with."""

from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from partnerships.access import agreements_for, is_host, may_manage, may_upload, membership_of
from partnerships.models import Agreement
from partnerships.spreadsheets import spreadsheet_escape
from scoring.attention import (
    ACTIONS_OVERDUE,
    AT_RISK,
    INCOMPLETE,
    OBJECTIVES,
    OPEN_DISPUTES,
    REASON_LABELS,
    REASONS,
    RENEWAL_DUE,
    REVIEW_OVERDUE,
    STALE_DATA,
    TIER_CHANGED,
)
from scoring.exports import iter_csv_lines

from .exports_views import csv_filename, csv_response, export_audit
from .http import HtmxHttpRequest, partial_or_page
from .selectors.attention import (
    ATTENTION_SORTS,
    AttentionRow,
    attention_sorted,
    attention_worklist,
)
from .templatetags.numbers import count_text

MINE, EVERYONE = "mine", "all"
PAGE_SIZE = 50
SORT_LABELS = {
    "reasons": "Most reasons first", "agreement": "Agreement code", "partner": "Partner",
    "owner": "Owner", "review": "Longest overdue review", "ends": "Ending soonest",
}


class AttentionFilterForm(forms.Form):
    reason = forms.MultipleChoiceField(
        label="Reasons", required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(reason, REASON_LABELS[reason]) for reason in REASONS],
        help_text="Agreements with any of the reasons ticked; none ticked shows every reason.",
        template_name="forms/field_radios.html")
    scope = forms.ChoiceField(label="Agreements", required=False,
                              choices=[(MINE, "Mine"), (EVERYONE, "Everyone's")])
    sort = forms.ChoiceField(label="Sort by", required=False,
                             choices=[(name, SORT_LABELS[name]) for name in ATTENTION_SORTS])

    def __init__(self, *args, host: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not host:
            del self.fields["scope"]


def _chosen(request: HtmxHttpRequest) -> tuple[AttentionFilterForm, dict]:
    """The filter form and what it chose; a wrong value falls back to the default."""
    host = is_host(request.user)
    owns_some = host and agreements_for(user=request.user).filter(owner=request.user).exists()
    data = request.GET.copy()
    # "mine" when the manager owns agreements, else everyone's: an empty list would say
    # nothing needs attention.
    data.setdefault("scope", MINE if owns_some else EVERYONE)
    data.setdefault("sort", "reasons")
    form = AttentionFilterForm(data, host=host)
    form.is_valid()
    chosen = {
        "reasons": [reason for reason in data.getlist("reason") if reason in REASONS],
        "scope": data["scope"] if host and data["scope"] in (MINE, EVERYONE) else EVERYONE,
        "sort": data["sort"] if data["sort"].lstrip("-") in ATTENTION_SORTS else "reasons",
    }
    return form, chosen


def _worklist(request: HtmxHttpRequest, chosen: dict):
    agreements = agreements_for(user=request.user)
    if chosen["scope"] == MINE:
        agreements = agreements.filter(owner=request.user)
    return attention_worklist(agreements=agreements)


def _disputes_url(agreement: Agreement) -> str:
    return reverse("disputes") + "?" + urlencode({"status": "open", "agreement": agreement.code})


def reason_links(row: AttentionRow, *, month: str, manager: bool,
                 uploader: bool) -> list[tuple[str, str, str]]:
    """(reason, label with its detail, URL where it is dealt with) of one row."""
    agreement = row.agreement
    facts = row.facts
    dashboard = reverse("agreement_dashboard", args=[agreement.code])
    monthly = dashboard + (f"?month={month}" if month else "")
    reviews = reverse("agreement_reviews", args=[agreement.code])
    actions = facts.overdue_actions
    details = {
        AT_RISK: (f"At risk in {month}", monthly),
        INCOMPLETE: (f"Incomplete in {month}", monthly),
        REVIEW_OVERDUE: (f"Review overdue by {count_text(facts.review_overdue_days)} "
                         f"day{'s' if facts.review_overdue_days != 1 else ''}", reviews),
        ACTIONS_OVERDUE: ("Actions overdue: " + ", ".join(
            f"{count_text(count)} {'host' if side == 'host' else 'partner'}-side"
            for side, count in sorted(actions.items())), reviews),
        STALE_DATA: ("Stale data: " + ", ".join(
            f"{code} since {missing}" for code, missing in facts.stale_kpis),
            reverse("import_upload") if uploader else dashboard),
        OPEN_DISPUTES: (f"{count_text(facts.open_disputes)} open dispute"
                        f"{'s' if facts.open_disputes != 1 else ''}", _disputes_url(agreement)),
        TIER_CHANGED: (f"Tier {facts.previous_tier} → {facts.tier} in {month}", monthly),
        OBJECTIVES: ("Objectives: " + ", ".join(
            f"{count_text(count)} {status.replace('_', ' ')}"
            for status, count in sorted(facts.objectives.items())),
            reverse("program_objectives", args=[agreement.code]) if manager else dashboard),
        RENEWAL_DUE: (f"Renewal due: ends {agreement.end_date:%Y-%m-%d}"
                      if agreement.end_date else "Renewal due",
                      reverse("program_agreement_edit", args=[agreement.code])
                      if manager else dashboard),
    }
    return [(reason, *details[reason]) for reason in row.reasons]


def _query(chosen: dict, **changes) -> str:
    merged = {**chosen, **changes}
    pairs = [("reason", reason) for reason in merged["reasons"]]
    pairs += [(name, merged[name]) for name in ("scope", "sort") if merged.get(name)]
    return urlencode(pairs)


@require_GET
@login_required
def attention(request: HtmxHttpRequest) -> HttpResponse:
    form, chosen = _chosen(request)
    worklist = _worklist(request, chosen)
    manager, uploader = may_manage(request.user), may_upload(request.user)
    shown = attention_sorted(worklist.chosen(reasons=chosen["reasons"]), sort=chosen["sort"])
    page = Paginator(shown, PAGE_SIZE).get_page(request.GET.get("page"))
    counts = worklist.counts()
    query = _query(chosen)
    context = {
        "form": form, "chosen": chosen, "worklist": worklist, "is_host": is_host(request.user),
        "membership": membership_of(request.user), "page": page, "shown_count": len(shown),
        "rows": [(row, reason_links(row, month=worklist.month, manager=manager,
                                    uploader=uploader)) for row in page.object_list],
        "previous_page_url": f"?{query}&page={page.previous_page_number()}"
        if page.has_previous() else "",
        "next_page_url": f"?{query}&page={page.next_page_number()}" if page.has_next() else "",
        "reason_counts": [(reason, REASON_LABELS[reason], counts[reason],
                           "?" + _query(chosen, reasons=[reason])) for reason in REASONS],
        "query": query,
        "filtered": bool(chosen["reasons"]),
        "clear_url": reverse("attention") + "?" + _query(chosen, reasons=[]),
    }
    return partial_or_page(request, "dashboards/attention.html", "attention-results", context)


ATTENTION_EXPORT_HEADER = [
    "agreement", "partner", "title", "stage", "owner", "end_date", "reasons", "month",
    "at_risk", "incomplete", "review_due", "review_overdue_days", "overdue_actions_host",
    "overdue_actions_partner", "stale_kpis", "open_disputes", "previous_tier", "tier",
    "objectives_at_risk", "objectives_overdue",
]


def attention_export_rows(rows: list[AttentionRow], *, month: str):
    for row in rows:
        agreement, facts = row.agreement, row.facts
        yield [
            spreadsheet_escape(agreement.code), spreadsheet_escape(row.partner_name),
            spreadsheet_escape(agreement.title), agreement.stage,
            spreadsheet_escape(row.owner_name),
            agreement.end_date.isoformat() if agreement.end_date else "",
            ";".join(row.reasons), month,
            "yes" if facts.at_risk else "", "yes" if facts.incomplete else "",
            facts.review_due.isoformat() if facts.review_due else "",
            str(facts.review_overdue_days),
            str(facts.overdue_actions.get("host", 0)),
            str(facts.overdue_actions.get("partner", 0)),
            spreadsheet_escape(";".join(f"{code} {missing}"
                                        for code, missing in facts.stale_kpis)),
            str(facts.open_disputes), facts.previous_tier, facts.tier,
            str(facts.objectives.get("at_risk", 0)), str(facts.objectives.get("overdue", 0)),
        ]


@require_GET
@login_required
def attention_csv(request: HtmxHttpRequest) -> HttpResponse:
    """The filtered, sorted worklist as CSV (every row), text escaped for spreadsheets."""
    _, chosen = _chosen(request)
    worklist = _worklist(request, chosen)
    shown = attention_sorted(worklist.chosen(reasons=chosen["reasons"]), sort=chosen["sort"])
    membership = membership_of(request.user)
    host = membership is not None and membership.is_host
    export_audit(request, target="attention",
                 detail={"rows": len(shown), "scope": chosen["scope"] if host else "partner",
                         "reasons": chosen["reasons"], "sort": chosen["sort"]})
    scope = chosen["scope"] if host else (membership.partner.slug if membership
                                          and membership.partner else "none")
    return csv_response(
        lines=iter_csv_lines(header=ATTENTION_EXPORT_HEADER,
                             rows=attention_export_rows(shown, month=worklist.month)),
        filename=csv_filename("attention", scope, worklist.today.isoformat()), bom=True)
