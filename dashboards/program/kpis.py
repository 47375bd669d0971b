"""The KPI library, the KPIs of one agreement (with copying a set), and the standard KPI sets
of each agreement type. Host pages: partner users get 404; host managers and admins edit.

Forms post and redirect without JavaScript; with htmx they validate as the user types
(`?validate=1` answers the form with its errors and saves nothing) and a KPI row of an
agreement is edited in place.
"""


from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from dashboards.templatetags.numbers import number_text
from partnerships import program_services
from partnerships.access import agreements_for, host_required, manager_required
from partnerships.kpi_sets import (
    KpiSetRefused,
    kpi_set_copy,
    kpi_set_plan,
    kpi_set_source_items,
)
from partnerships.models import (
    CATEGORY_WEIGHT_FIELDS,
    Agreement,
    AgreementKPI,
    AgreementType,
    Category,
    KPIDefinition,
    KPITemplateItem,
    MetricObservation,
)

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
from .forms import service_fields
from .kpi_forms import (
    AgreementKPIAddForm,
    AgreementKPIValuesForm,
    CopyFromAgreementForm,
    CopyFromTemplateForm,
    KPIDefinitionForm,
    TemplateItemForm,
)

# ---- Helpers shared by the program pages of an agreement ---------------------------------


def number(value: float | None) -> str:
    """A target, floor or weight as typed: 50,000 · 2.5 · 0.125 (up to 4 decimals)."""
    return number_text(value, places=4, trim=True)


def with_display(row):
    """The row (agreement KPI or template item) with its numbers formatted for display."""
    row.target_display, row.floor_display = number(row.target), number(row.floor)
    row.weight_display = number(row.weight)
    return row


SCORING_WARNING = ("Changed: scores change on the next scoring run (the observations stay; "
                   "the way they are scored changes).")


def form_create(request: HtmxHttpRequest, form, *, create, invalid_page, notice, target: str
                ) -> HttpResponse:
    """The POST of an add form: inline validation; or `invalid_page(form)` with its errors
    (the form's, or the refusal of the service); or the row made by `create(form)`, a service
    call, with `notice(row)` as a message and `target` next."""
    valid = form.is_valid()
    if validating(request):
        return validation_response(request, form)
    if not valid:
        return invalid_page(form)
    try:
        row = create(form)
    except ValidationError as refusal:
        refusal_into_form(form, refusal)
        return invalid_page(form)
    messages.success(request, notice(row))
    return redirect_after_change(request, target)


# ---- The KPI library ---------------------------------------------------------------------


@host_required
@vary_on_headers("HX-Request")
def kpi_library(request: HtmxHttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    kpis = KPIDefinition.objects.annotate(
        agreement_count=Count("agreement_kpis", distinct=True)).order_by("category", "code")
    if query:
        kpis = kpis.filter(Q(code__icontains=query) | Q(name__icontains=query)
                           | Q(unit__icontains=query) | Q(description__icontains=query))
    context = {"kpis": list(kpis), "q": query, "total": KPIDefinition.objects.count()}
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "program/kpis/library.html#results", context)
    return render(request, "program/kpis/library.html", context)


def _observation_count(kpi: KPIDefinition) -> int:
    return MetricObservation.objects.filter(kpi=kpi).count() if kpi.pk else 0


def _kpi_form_page(request: HtmxHttpRequest, form: KPIDefinitionForm,
                   kpi: KPIDefinition | None) -> HttpResponse:
    observations = _observation_count(kpi) if kpi else 0
    context = {
        "form": form, "kpi": kpi, "observation_count": observations,
        "warn_fields": form.scoring_changes() if form.is_bound and observations else [],
        "warn_text": SCORING_WARNING,
        "action": reverse("program_kpi_edit", args=[kpi.code]) if kpi
        else reverse("program_kpi_new"),
    }
    return partial_or_page(request, "program/kpis/kpi_form.html", "kpi-form", context)


def _kpi_write(request: HtmxHttpRequest, form: KPIDefinitionForm,
               kpi: KPIDefinition | None) -> KPIDefinition:
    if kpi is None:
        return program_services.kpi_definition_create(user=request.user, request=request,
                                                      **service_fields(form))
    program_services.kpi_definition_update(kpi=kpi, user=request.user, request=request,
                                           **service_fields(form))
    return kpi


def _kpi_save(request: HtmxHttpRequest, kpi: KPIDefinition | None) -> HttpResponse:
    form = KPIDefinitionForm(request.POST, instance=kpi or KPIDefinition())
    valid = form.is_valid()
    scoring_changes = form.scoring_changes() if kpi and _observation_count(kpi) else []
    if validating(request):
        return validation_response(request, form, warn_fields=scoring_changes,
                                   warn_text=SCORING_WARNING)
    if not valid:
        return _kpi_form_page(request, form, kpi)
    try:
        saved = _kpi_write(request, form, kpi)
    except ValidationError as refusal:
        refusal_into_form(form, refusal)
        return _kpi_form_page(request, form, kpi)
    messages.success(request, f"KPI {saved.name} ({saved.code}) {'saved' if kpi else 'added'}.")
    if scoring_changes:
        labels = ", ".join(str(form.fields[name].label) for name in scoring_changes)
        messages.warning(request, f"{labels} of {saved.name} changed: its "
                                  "observations are kept, and its scores (and the scorecards "
                                  "of the agreements using it) change on the next scoring run.")
    if kpi and any(name in form.changed_data for name in form.VALUE_FIELDS):
        if outside := program_services.kpi_observations_outside(kpi=saved):
            messages.warning(request, f"{outside} recorded observation{pluralize(outside)} of "
                                      f"{saved.name} {'are' if outside != 1 else 'is'} outside "
                                      f"its allowed values now ({saved.allowed_values}): "
                                      "kept and scored as before; imports refuse such "
                                      "values from now on.")
    target = reverse("program_kpis")
    return redirect_after_change(request, target)


@manager_required
def kpi_new(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _kpi_save(request, None)
    return _kpi_form_page(request, KPIDefinitionForm(), None)


@manager_required
def kpi_edit(request: HtmxHttpRequest, code: str) -> HttpResponse:
    kpi = get_object_or_404(KPIDefinition, code=code)
    if request.method == "POST":
        return _kpi_save(request, kpi)
    return _kpi_form_page(request, KPIDefinitionForm(instance=kpi), kpi)


@manager_required
@require_POST
def kpi_delete(request: HtmxHttpRequest, code: str) -> HttpResponse:
    kpi = get_object_or_404(KPIDefinition, code=code)
    edit_url = reverse("program_kpi_edit", args=[kpi.code])
    # Said before asking to confirm; the service checks again under its lock.
    if refusal := program_services.kpi_definition_deletion_refusal(kpi=kpi):
        messages.error(request, refusal)
        return redirect_after_change(request, edit_url)
    if not confirmed(request):
        return confirmation_page(request, Confirmation(
            question=f"Delete the KPI “{kpi.name}” ({kpi.code}) from the library?",
            consequence="No agreement uses it and nothing of it is recorded; it also leaves "
                        "the standard KPI sets. The deletion is kept in the history.",
            action="Delete", cancel_url=edit_url))
    try:
        program_services.kpi_definition_delete(kpi=kpi, user=request.user, request=request)
    except ValidationError as refusal:
        messages.error(request, " ".join(refusal.messages))
        return redirect_after_change(request, edit_url)
    messages.success(request, f"KPI {kpi.name} ({kpi.code}) deleted.")
    return redirect_after_change(request, reverse("program_kpis"))


# ---- The KPIs of one agreement -------------------------------------------------------------


def _kpi_groups(agreement: Agreement) -> list[dict]:
    """The agreement's KPIs by category, with the category weight and each KPI's share."""
    rows = list(AgreementKPI.objects.filter(agreement=agreement).select_related("kpi")
                .order_by("kpi__name"))
    weights = agreement.category_weights
    groups = []
    for category in Category:
        items = [with_display(row) for row in rows if row.kpi.category == category]
        in_category = sum(row.weight for row in items)
        for row in items:
            row.share = row.weight / in_category if in_category else None
        groups.append({
            "category": category, "label": category.label, "items": items,
            "weight": weights.get(category, 0),
            "field": CATEGORY_WEIGHT_FIELDS[category],
        })
    return groups


def _kpis_page(request: HtmxHttpRequest, agreement: Agreement,
               form: AgreementKPIAddForm | None = None, *, whole: bool = False) -> HttpResponse:
    context = {
        "agreement": agreement, "groups": _kpi_groups(agreement),
        "form": form or AgreementKPIAddForm(agreement=agreement),
        "template_count": KPITemplateItem.objects.filter(agreement_type=agreement.type).count(),
        "section": "kpis",
    }
    return partial_or_page(request, "program/kpis/agreement.html", "add-form", context,
                           whole=whole)


@host_required
def agreement_kpis(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """GET: the agreement's KPIs; POST (host managers): add one from the library."""
    agreement = agreement_visible(request=request, code=code)
    if request.method != "POST":
        return _kpis_page(request, agreement, whole=True)
    return _agreement_kpi_add(request, agreement)


@manager_required
def _agreement_kpi_add(request: HtmxHttpRequest, agreement: Agreement) -> HttpResponse:
    return form_create(
        request, AgreementKPIAddForm(request.POST, agreement=agreement),
        create=lambda form: program_services.agreement_kpi_add(
            agreement=agreement, user=request.user, request=request, **service_fields(form)),
        invalid_page=lambda form: _kpis_page(request, agreement, form),
        notice=lambda row: f"{row.kpi.name} added to {agreement.code}.",
        target=reverse("program_agreement_kpis", args=[agreement.code]))


def _agreement_kpi(agreement: Agreement, item_id: int) -> AgreementKPI:
    return get_object_or_404(
        AgreementKPI.objects.select_related("kpi"), agreement=agreement, pk=item_id)


def _row_context(agreement: Agreement, row: AgreementKPI, form=None, notice: str = "") -> dict:
    group = next(group for group in _kpi_groups(agreement)
                 if group["category"] == row.kpi.category)
    row.share = next((item.share for item in group["items"] if item.pk == row.pk), "")
    with_display(row)
    return {"agreement": agreement, "row": row, "form": form, "row_notice": notice}


@host_required
@vary_on_headers("HX-Request")
def agreement_kpi_row(request: HtmxHttpRequest, code: str, item_id: int) -> HttpResponse:
    """One KPI row as shown (htmx: after cancelling an edit); the page otherwise."""
    agreement = agreement_visible(request=request, code=code)
    row = _agreement_kpi(agreement, item_id)
    if not request.htmx:
        return redirect("program_agreement_kpis", code=agreement.code)
    return render(request, "program/kpis/agreement.html#kpi-row", _row_context(agreement, row))


@manager_required
@vary_on_headers("HX-Request")
def agreement_kpi_edit(request: HtmxHttpRequest, code: str, item_id: int) -> HttpResponse:
    """Edit target, floor and weight: in the row with htmx, on a page of its own without."""
    agreement = agreement_visible(request=request, code=code)
    row = _agreement_kpi(agreement, item_id)
    # Its own ids: the add form on the same page has fields of the same names.
    auto_id = f"id_row{row.pk}_%s"
    if request.method == "POST":
        form = AgreementKPIValuesForm(request.POST, instance=row, auto_id=auto_id)
        valid = form.is_valid()
        if validating(request):
            return validation_response(request, form)
        if valid:
            try:
                change = program_services.agreement_kpi_update(
                    agreement_kpi=row, user=request.user, request=request,
                    **service_fields(form))
            except ValidationError as refusal:
                refusal_into_form(form, refusal)
            else:
                notice = f"{row.kpi.name} saved." if change else "Nothing changed."
                if request.htmx:
                    return render(request, "program/kpis/agreement.html#kpi-row",
                                  _row_context(agreement, row, notice=notice))
                messages.success(request, notice)
                return redirect("program_agreement_kpis", code=agreement.code)
    else:
        form = AgreementKPIValuesForm(instance=row, auto_id=auto_id)
    context = _row_context(agreement, row, form=form)
    context["section"] = "kpis"
    if request.htmx:
        # Keyboard users land in the row they opened (htmx focuses [autofocus] after a swap).
        form.fields["target"].widget.attrs["autofocus"] = True
        return render(request, "program/kpis/agreement.html#kpi-row-edit", context)
    return render(request, "program/kpis/kpi_row_edit.html", context)


@manager_required
@require_POST
def agreement_kpi_remove(request: HtmxHttpRequest, code: str, item_id: int) -> HttpResponse:
    agreement = agreement_visible(request=request, code=code)
    row = _agreement_kpi(agreement, item_id)
    target = reverse("program_agreement_kpis", args=[agreement.code])
    # Said before asking to confirm; the service checks again under its lock.
    if refusal := program_services.agreement_kpi_removal_refusal(agreement_kpi=row):
        messages.error(request, refusal)
    elif not confirmed(request):
        return confirmation_page(request, Confirmation(
            question=f"Remove “{row.kpi.name}” from {agreement.code}?",
            consequence="Its history stays: the observations already recorded are kept, and "
                        "the next scoring run no longer counts it.",
            action="Remove", cancel_url=target))
    else:
        try:
            program_services.agreement_kpi_remove(agreement_kpi=row, user=request.user,
                                                  request=request)
        except ValidationError as refusal:
            messages.error(request, " ".join(refusal.messages))
        else:
            messages.success(request, f"{row.kpi.name} removed from {agreement.code}. Its "
                                      "observations are kept.")
    return redirect_after_change(request, target)


# ---- Copying a KPI set ------------------------------------------------------------------


def _copy_request(request: HtmxHttpRequest, agreement: Agreement, data) -> dict:
    """The two copy forms bound to whichever the request filled, and the plan if valid."""
    origin = data.get("from", "")
    agreements = agreements_for(user=request.user)
    agreement_form = CopyFromAgreementForm(
        data if origin == "agreement" else None, agreements=agreements, agreement=agreement)
    template_form = CopyFromTemplateForm(data if origin == "template" else None)
    items, source_label, plan = None, "", None
    if origin == "agreement" and agreement_form.is_valid():
        source = agreement_form.cleaned_data["source"]
        items = kpi_set_source_items(agreement=source)
        source_label = f"agreement {source.code}"
        mode = agreement_form.cleaned_data["mode"]
    elif origin == "template" and template_form.is_valid():
        items = kpi_set_source_items(agreement_type=agreement.type)
        source_label = f"the standard set for {agreement.get_type_display()} agreements"
        mode = template_form.cleaned_data["mode"]
    preview = []
    if items is not None:
        plan = kpi_set_plan(agreement=agreement, items=items, mode=mode)
        preview = (
            [{"change": "added", "label": "will be added", "kpi": item.kpi,
              "values": (number(item.target), number(item.floor), number(item.weight))}
             for item in plan.added]
            + [{"change": "updated", "label": "takes the copied values", "kpi": row.kpi,
                "values": tuple(f"{number(old)} → {number(new)}" if old != new else number(new)
                                for old, new in ((row.target, item.target),
                                                 (row.floor, item.floor),
                                                 (row.weight, item.weight)))}
               for row, item in plan.updated]
            + [{"change": "removed", "label": "will be removed", "kpi": row.kpi,
                "values": (number(row.target), number(row.floor), number(row.weight))}
               for row in plan.removed]
            + [{"change": "kept", "label": "kept as it is", "kpi": row.kpi,
                "values": (number(row.target), number(row.floor), number(row.weight))}
               for row in plan.kept]
        )
    return {
        "agreement": agreement, "origin": origin, "agreement_form": agreement_form,
        "template_form": template_form, "items": items, "plan": plan,
        "source_label": source_label, "mode": mode if items is not None else "",
        "source_code": data.get("source", ""), "section": "kpis",
        "template_count": KPITemplateItem.objects.filter(agreement_type=agreement.type).count(),
        "preview": preview,
    }


@manager_required
def agreement_kpis_copy(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """GET: the copy forms and, once one is filled, the preview; POST: do the copy."""
    agreement = agreement_visible(request=request, code=code)
    if request.method != "POST":
        context = _copy_request(request, agreement, request.GET)
        return partial_or_page(request, "program/kpis/copy.html", "preview", context)
    context = _copy_request(request, agreement, request.POST)
    if context["items"] is None:
        return render(request, "program/kpis/copy.html", context)
    try:
        plan = kpi_set_copy(agreement=agreement, items=context["items"], mode=context["mode"],
                            user=request.user, request=request)
    except KpiSetRefused as refusal:
        context["refusal"] = " ".join(refusal.messages)
        return render(request, "program/kpis/copy.html", context)
    messages.success(
        request, f"Copied from {context['source_label']}: {len(plan.added)} added, "
                 f"{len(plan.updated)} changed, {len(plan.removed)} removed, "
                 f"{len(plan.kept)} kept as they were.")
    return redirect("program_agreement_kpis", code=agreement.code)


# ---- KPI templates: the standard set of each agreement type ------------------------------


def _templates_page(request: HtmxHttpRequest, form: TemplateItemForm | None = None,
                    *, whole: bool = False) -> HttpResponse:
    items = [with_display(item) for item in KPITemplateItem.objects.select_related("kpi")
             .order_by("agreement_type", "kpi__category", "kpi__name")]
    groups = [{"type": value, "label": label,
               "items": [item for item in items if item.agreement_type == value]}
              for value, label in AgreementType.choices]
    initial = {}
    if request.GET.get("type") in AgreementType.values:
        initial["agreement_type"] = request.GET["type"]
    context = {"groups": groups, "form": form or TemplateItemForm(initial=initial)}
    return partial_or_page(request, "program/kpis/templates.html", "template-form", context,
                           whole=whole)


@host_required
def kpi_templates(request: HtmxHttpRequest) -> HttpResponse:
    """GET: every agreement type's standard KPI set; POST (host managers): add an item."""
    if request.method != "POST":
        return _templates_page(request, whole=True)
    return _kpi_template_add(request)


@manager_required
def _kpi_template_add(request: HtmxHttpRequest) -> HttpResponse:
    form = TemplateItemForm(request.POST)
    valid = form.is_valid()
    if validating(request):
        return validation_response(request, form)
    if not valid:
        return _templates_page(request, form)
    try:
        item = program_services.kpi_template_item_create(user=request.user, request=request,
                                                         **service_fields(form))
    except ValidationError as refusal:
        refusal_into_form(form, refusal)
        return _templates_page(request, form)
    messages.success(request, f"{item.kpi.name} added to the "
                              f"{item.get_agreement_type_display()} set.")
    target = reverse("program_kpi_templates") + f"#type-{item.agreement_type}"
    return redirect_after_change(request, target)


@manager_required
def kpi_template_edit(request: HtmxHttpRequest, item_id: int) -> HttpResponse:
    item = get_object_or_404(KPITemplateItem.objects.select_related("kpi"), pk=item_id)
    if request.method == "POST":
        form = TemplateItemForm(request.POST, instance=item)
        valid = form.is_valid()
        if validating(request):
            return validation_response(request, form)
        if valid:
            try:
                program_services.kpi_template_item_update(
                    item=item, user=request.user, request=request, **service_fields(form))
            except ValidationError as refusal:
                refusal_into_form(form, refusal)
            else:
                messages.success(request, f"{item.kpi.name} in the "
                                          f"{item.get_agreement_type_display()} set saved.")
                target = reverse("program_kpi_templates") + f"#type-{item.agreement_type}"
                return redirect_after_change(request, target)
    else:
        form = TemplateItemForm(instance=item)
    return partial_or_page(request, "program/kpis/template_edit.html", "template-form",
                           {"form": form, "item": item})


@manager_required
@require_POST
def kpi_template_remove(request: HtmxHttpRequest, item_id: int) -> HttpResponse:
    item = get_object_or_404(KPITemplateItem.objects.select_related("kpi"), pk=item_id)
    target = reverse("program_kpi_templates") + f"#type-{item.agreement_type}"
    if not confirmed(request):
        return confirmation_page(request, Confirmation(
            question=f"Remove “{item.kpi.name}” from the standard set of "
                     f"{item.get_agreement_type_display().lower()} agreements?",
            consequence="Agreements that already have it keep it; only sets copied from now "
                        "on leave it out.",
            action="Remove", cancel_url=target))
    program_services.kpi_template_item_remove(item=item, user=request.user, request=request)
    messages.success(request, f"{item.kpi.name} removed from the "
                              f"{item.get_agreement_type_display()} set.")
    return redirect_after_change(request, target)
