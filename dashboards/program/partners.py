"""Partners (host only): the list with search, create and edit, the partner's page with its
agreements, contacts, assessments and history, and recording a new assessment.

Forms post and redirect without JavaScript; with htmx the search swaps only the results and
pushes the URL, and a form with errors swaps only itself.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.vary import vary_on_headers

from partnerships import program_services
from partnerships.access import (
    agreements_for,
    assessments_for,
    host_required,
    manager_required,
    partner_members_for,
    partners_for,
)
from partnerships.history import history_for_partner

from ..http import HtmxHttpRequest, redirect_after_change, refusal_into_form
from .forms import AssessmentForm, PartnerForm, PartnerSearchForm, service_fields

HISTORY_SHOWN = 50
PAGE_SIZE = 50


@host_required
@vary_on_headers("HX-Request")
def partner_list(request: HtmxHttpRequest) -> HttpResponse:
    form = PartnerSearchForm(request.GET or None)
    partners = partners_for(user=request.user).annotate(
        agreement_count=Count("agreements", distinct=True)).order_by("name")
    query, status = "", ""
    if form.is_valid():
        query, status = form.cleaned_data["q"].strip(), form.cleaned_data["status"]
    if query:
        partners = partners.filter(Q(name__icontains=query) | Q(slug__icontains=query)
                                   | Q(industry__icontains=query))
    if status:
        partners = partners.filter(status=status)
    page = Paginator(partners, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form, "page": page, "partners": page.object_list,
        "filtered": bool(query or status),
        "query": urlencode({k: v for k, v in (("q", query), ("status", status)) if v}),
    }
    template = "program/partners/list.html"
    if request.htmx and request.htmx.target == "partner-results":
        template += "#partner-results"
    return render(request, template, context)


def _form_page(request: HtmxHttpRequest, form: PartnerForm, partner=None) -> HttpResponse:
    template = "program/partners/form.html"
    if request.htmx:
        template += "#partner-form"
    return render(request, template, {"form": form, "partner": partner})


def _saved(request: HtmxHttpRequest, url: str, message: str) -> HttpResponse:
    messages.success(request, message)
    return redirect_after_change(request, url)


@manager_required
@vary_on_headers("HX-Request")
def partner_create(request: HtmxHttpRequest) -> HttpResponse:
    form = PartnerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            partner = program_services.partner_create(user=request.user, request=request,
                                                      **service_fields(form))
        except ValidationError as refusal:
            refusal_into_form(form, refusal)
        else:
            return _saved(request, reverse("program_partner", args=[partner.slug]),
                          f"Partner {partner.name} created.")
    return _form_page(request, form)


@manager_required
@vary_on_headers("HX-Request")
def partner_edit(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    partner = get_object_or_404(partners_for(user=request.user), slug=slug)
    form = PartnerForm(request.POST or None, instance=partner)
    if request.method == "POST" and form.is_valid():
        try:
            change = program_services.partner_update(
                partner=partner, user=request.user, request=request, **service_fields(form))
        except ValidationError as refusal:
            refusal_into_form(form, refusal)
        else:
            return _saved(request, reverse("program_partner", args=[partner.slug]),
                          f"Partner {partner.name} saved." if change else "Nothing changed.")
    # Fresh from the database: the form changed the instance in memory.
    return _form_page(request, form, partner=get_object_or_404(
        partners_for(user=request.user), slug=slug))


@host_required
def partner_detail(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    partner = get_object_or_404(partners_for(user=request.user), slug=slug)
    agreements = (agreements_for(user=request.user).filter(partner=partner)
                  .select_related("owner").order_by("-start_date", "code"))
    assessments = (assessments_for(user=request.user).filter(partner=partner)
                   .order_by("-assessed_on", "-id"))
    contacts = partner_members_for(user=request.user, partner=partner).order_by(
        "user__username")
    history = history_for_partner(partner).select_related("user")[:HISTORY_SHOWN]
    return render(request, "program/partners/detail.html", {
        "partner": partner, "agreements": agreements, "assessments": assessments,
        "latest": assessments[0] if assessments else None, "contacts": contacts,
        "agreement_contacts": [a for a in agreements if a.partner_contacts.strip()],
        "history": history,
    })


@manager_required
@vary_on_headers("HX-Request")
def assessment_create(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    partner = get_object_or_404(partners_for(user=request.user), slug=slug)
    form = AssessmentForm(request.POST or None,
                          initial={"assessed_on": timezone.localdate()})
    if request.method == "POST" and form.is_valid():
        try:
            assessment = program_services.assessment_create(
                partner=partner, user=request.user, request=request, **service_fields(form))
        except ValidationError as refusal:
            refusal_into_form(form, refusal)
        else:
            return _saved(
                request, reverse("program_partner", args=[partner.slug]) + "#assessments",
                f"Assessment of {partner.name} recorded: partnership value "
                f"{assessment.partnership_value:.1f}.")
    template = "program/partners/assessment_form.html"
    if request.htmx:
        template += "#assessment-form"
    return render(request, template, {"form": form, "partner": partner})

