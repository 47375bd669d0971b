"""The SMART objectives of an agreement, with their progress measured from the linked KPI.

Host pages (partner users get 404; partner users see the objectives of their own agreements
on the agreement dashboard). Host managers and admins add, edit and delete.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_POST

from partnerships import governance_services
from partnerships.access import host_required, manager_required
from partnerships.models import Agreement, Objective

from ..confirm import Confirmation, confirmation_page, confirmed
from ..http import (
    HtmxHttpRequest,
    agreement_visible,
    partial_or_page,
    redirect_after_change,
    refusal_into_form,
    validating,
    validation_response,
)
from .kpi_forms import ObjectiveForm
from .progress import objectives_progress


def objectives_for_dashboard(*, agreement: Agreement, run=None) -> list:
    """The agreement's objectives with their progress, for the shared agreement dashboard
    (`run`: the published run when the page has it already)."""
    objectives = list(Objective.objects.filter(agreement=agreement).select_related("kpi")
                      .order_by("deadline", "id"))
    for objective in objectives:
        objective.agreement = agreement  # loaded already
    return objectives_progress(objectives=objectives, run=run)


def _page(request: HtmxHttpRequest, agreement: Agreement, form: ObjectiveForm | None = None,
          *, whole: bool = False) -> HttpResponse:
    context = {
        "agreement": agreement, "section": "objectives",
        "progress": objectives_for_dashboard(agreement=agreement),
        "form": form or ObjectiveForm(agreement=agreement),
        "action": reverse("program_objectives", args=[agreement.code]),
    }
    return partial_or_page(request, "program/objectives/list.html", "objective-form", context,
                           whole=whole)


def _redirect(request: HtmxHttpRequest, agreement: Agreement) -> HttpResponse:
    target = reverse("program_objectives", args=[agreement.code])
    return redirect_after_change(request, target)


@host_required
def agreement_objectives(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """GET: the objectives and their progress; POST (host managers): add one."""
    agreement = agreement_visible(request=request, code=code)
    if request.method != "POST":
        return _page(request, agreement, whole=True)
    return _objective_add(request, agreement)


@manager_required
def _objective_add(request: HtmxHttpRequest, agreement: Agreement) -> HttpResponse:
    form = ObjectiveForm(request.POST, agreement=agreement)
    valid = form.is_valid()
    if validating(request):
        return validation_response(request, form)
    if valid:
        try:
            objective = governance_services.objective_create(
                agreement=agreement, user=request.user, request=request, **form.cleaned_data)
        except ValidationError as error:
            refusal_into_form(form, error)
        else:
            messages.success(request, f"Objective “{objective.success_metric}” added.")
            return _redirect(request, agreement)
    return _page(request, agreement, form)


@manager_required
def objective_edit(request: HtmxHttpRequest, code: str, objective_id: int) -> HttpResponse:
    agreement = agreement_visible(request=request, code=code)
    objective = get_object_or_404(Objective, agreement=agreement, pk=objective_id)
    if request.method == "POST":
        form = ObjectiveForm(request.POST, instance=objective, agreement=agreement)
        valid = form.is_valid()
        if validating(request):
            return validation_response(request, form)
        if valid:
            try:
                saved = governance_services.objective_update(
                    objective=objective, user=request.user, request=request,
                    **form.cleaned_data)
            except ValidationError as error:
                refusal_into_form(form, error)
            else:
                messages.success(request, f"Objective “{saved.success_metric}” saved.")
                return _redirect(request, agreement)
    else:
        form = ObjectiveForm(instance=objective, agreement=agreement)
    context = {
        "agreement": agreement, "objective": objective, "form": form, "section": "objectives",
        "action": reverse("program_objective_edit", args=[agreement.code, objective.pk]),
    }
    return partial_or_page(request, "program/objectives/edit.html", "objective-form", context)


@manager_required
@require_POST
def objective_delete(request: HtmxHttpRequest, code: str, objective_id: int) -> HttpResponse:
    agreement = agreement_visible(request=request, code=code)
    objective = get_object_or_404(Objective, agreement=agreement, pk=objective_id)
    if not confirmed(request):
        return confirmation_page(request, Confirmation(
            question=f"Delete the objective “{objective.success_metric}” of {agreement.code}?",
            consequence="Both sides stop seeing it and its progress. The deletion is kept in "
                        "the agreement's history.",
            action="Delete", cancel_url=reverse("program_objectives", args=[agreement.code])))
    governance_services.objective_delete(objective=objective, user=request.user,
                                         request=request)
    messages.success(request, f"Objective “{objective.success_metric}” deleted.")
    return _redirect(request, agreement)
