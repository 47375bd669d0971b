"""Agreements: create and edit (host managers), the live check of the scorecard weights, stage
moves with a reason, and the read-only history that both sides read for their own agreements.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from partnerships import program_services
from partnerships.access import host_required, manager_required, partners_for
from partnerships.history import history_for_agreement
from partnerships.lifecycle import (
    StageMoveRefused,
    agreement_stage_move,
    stage_move_label,
    stage_moves_from,
)
from partnerships.models import Stage

from ..http import HtmxHttpRequest, agreement_visible, refusal_into_form
from .forms import AgreementForm, StageMoveForm, service_fields, weights_check

HISTORY_SHOWN = 100


def _stage_context(agreement, form: StageMoveForm | None = None, notice: str = "") -> dict:
    moves = [
        {"value": stage, "label": stage_move_label(from_stage=agreement.stage, to_stage=stage),
         "promote": agreement.stage == Stage.PILOT and stage == Stage.ACTIVE}
        for stage in stage_moves_from(agreement.stage)
    ]
    return {
        "agreement": agreement,
        "moves": moves,
        "stage_form": form or StageMoveForm(),
        "transitions": agreement.stage_transitions.select_related("by").order_by("-at", "-id"),
        "stage_notice": notice,
    }


def _weights_context(form: AgreementForm) -> dict:
    data = form.data if form.is_bound else {
        name: form[name].value() for name in ("weight_financial", "weight_strategic",
                                              "weight_operational", "weight_relationship")}
    return {"check": weights_check(data)}


@manager_required
def agreement_create(request: HtmxHttpRequest) -> HttpResponse:
    initial = {}
    if request.method == "GET" and request.GET.get("partner"):
        partner = partners_for(user=request.user).filter(slug=request.GET["partner"]).first()
        if partner is not None:
            initial["partner"] = partner.slug
    form = AgreementForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            agreement = program_services.agreement_create(
                user=request.user, request=request, stage=form.cleaned_data["initial_stage"],
                **service_fields(form))
        except ValidationError as refusal:
            refusal_into_form(form, refusal)
        else:
            messages.success(
                request, f"Agreement {agreement.code} created as a "
                f"{agreement.get_stage_display().lower()}. Add its KPIs and objectives next.")
            return redirect("program_agreement_edit", code=agreement.code)
    return render(request, "program/agreements/form.html",
                  {"form": form, "agreement": None, **_weights_context(form)})


@manager_required
def agreement_edit(request: HtmxHttpRequest, code: str) -> HttpResponse:
    agreement = agreement_visible(request=request, code=code)
    form = AgreementForm(request.POST or None, instance=agreement, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            change = program_services.agreement_update(
                agreement=agreement, user=request.user, request=request,
                **service_fields(form))
        except ValidationError as refusal:
            refusal_into_form(form, refusal)
            return _edit_page(request, code, form)
        if change:
            messages.success(request, f"Agreement {agreement.code} saved: "
                             f"{len(change.fields)} field{'s' if len(change.fields) != 1 else ''}"
                             " changed.")
        else:
            messages.info(request, "Nothing changed.")
        return redirect("program_agreement_edit", code=agreement.code)
    return _edit_page(request, code, form)


def _edit_page(request: HtmxHttpRequest, code: str, form: AgreementForm,
               stage_form: StageMoveForm | None = None) -> HttpResponse:
    # Fresh from the database: a refused form may have changed the instance in memory.
    agreement = agreement_visible(request=request, code=code)
    return render(request, "program/agreements/form.html", {
        "form": form, **_weights_context(form), **_stage_context(agreement, stage_form),
    })


@host_required
@vary_on_headers("HX-Request")
def agreement_weights(request: HtmxHttpRequest) -> HttpResponse:
    """The sum of the four weights as typed, re-rendered on every input (htmx)."""
    return render(request, "program/agreements/form.html#weights-check",
                  {"check": weights_check(request.GET)})


@manager_required
@require_POST
@vary_on_headers("HX-Request")
def agreement_stage(request: HtmxHttpRequest, code: str) -> HttpResponse:
    agreement = agreement_visible(request=request, code=code)
    form = StageMoveForm(request.POST)
    if form.is_valid():
        from_stage = agreement.get_stage_display().lower()
        try:
            agreement_stage_move(agreement=agreement, to_stage=form.cleaned_data["to_stage"],
                                 user=request.user, reason=form.cleaned_data["reason"],
                                 request=request)
        except StageMoveRefused as refusal:
            form.add_error("to_stage", str(refusal))
        else:
            notice = (f"{agreement.code} moved from {from_stage} to "
                      f"{agreement.get_stage_display().lower()}.")
            if agreement.stage == Stage.ENDED and agreement.end_date:
                notice += f" Its end date is {agreement.end_date:%Y-%m-%d}."
            if request.htmx:
                return render(request, "program/agreements/form.html#stage-panel",
                              _stage_context(agreement, notice=notice))
            messages.success(request, notice)
            return redirect("program_agreement_edit", code=agreement.code)
    if request.htmx:
        return render(request, "program/agreements/form.html#stage-panel",
                      _stage_context(agreement, form))
    return _edit_page(request, code, AgreementForm(instance=agreement, user=request.user),
                      stage_form=form)


@login_required
def agreement_history(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """Both sides: the stage moves and every recorded change of one of their agreements."""
    agreement = agreement_visible(request=request, code=code)
    changes = history_for_agreement(agreement)[:HISTORY_SHOWN]
    return render(request, "program/agreements/history.html", {
        "agreement": agreement,
        "transitions": agreement.stage_transitions.select_related("by").order_by("-at", "-id"),
        "changes": changes,
        "edit_url": reverse("program_agreement_edit", args=[agreement.code]),
    })
