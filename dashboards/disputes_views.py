"""Disputes (both sides): the list with its filters and CSV, opening one (prefilled from the
agreement dashboard or the reconciliation list), and a dispute's page with its values and
thread and the forms of who may act — comment (both sides), withdraw (the side that opened it)
and resolve (host managers and admins; in a closed month a host admin reopens it first, with
the dispute as the reason). A partner's users see their own agreements' disputes only; another
partner's answers as a missing one. The rules and refusals are the services'
(partnerships/disputes.py, scoring/disputes.py)."""

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from partnerships.access import (
    agreements_for,
    disputes_for,
    is_host,
    is_host_admin,
    manager_required,
    may_manage,
)
from partnerships.disputes import (
    DisputeMonthClosed,
    dispute_comment,
    dispute_open,
    dispute_resolve,
    dispute_side_of,
    dispute_values,
    dispute_withdraw,
    may_withdraw,
)
from partnerships.models import (
    Agreement,
    Dispute,
    DisputeResolution,
    DisputeStatus,
    KPIDefinition,
)
from partnerships.months import MONTH_PATTERN, month_is_closed
from scoring.closing import ClosingRefused
from scoring.disputes import dispute_resolve_reopening
from scoring.exports import iter_csv_lines

from .confirm import Confirmation, confirmation_page, confirmed
from .exports_views import csv_filename, csv_response, export_audit
from .http import HtmxHttpRequest, partial_or_page, refusal_into_form
from .selectors.disputes import (
    DISPUTES_HEADER,
    dispute_detail,
    dispute_list,
    disputes_csv_rows,
)
from .templatetags.numbers import kpi_value_text


class AgreementChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Agreement) -> str:
        return obj.code


class KPIChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: KPIDefinition) -> str:
        return obj.label


def _month_clean(value: str) -> str:
    value = (value or "").strip()
    if value and not MONTH_PATTERN.fullmatch(value):
        raise ValidationError("A month is written YYYY-MM, e.g. 2026-03.")
    return value


class DisputeFilterForm(forms.Form):
    # Refusals never repeat the value sent: another partner's agreement code reads exactly as
    # one that does not exist.
    status = forms.ChoiceField(
        label="Status", required=False,
        choices=[("", "Any status"), *DisputeStatus.choices])
    agreement = AgreementChoiceField(
        label="Agreement", queryset=Agreement.objects.none(), to_field_name="code",
        required=False, empty_label="All agreements",
        error_messages={"invalid_choice": "There is no agreement of yours with that code."})
    month = forms.CharField(label="Month", required=False, max_length=7,
                            widget=forms.TextInput(attrs={"placeholder": "YYYY-MM"}))

    def __init__(self, *args, agreements: QuerySet[Agreement], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agreement"].queryset = agreements.order_by("code")

    def clean_month(self) -> str:
        return _month_clean(self.cleaned_data.get("month", ""))


def _filtered(request: HtmxHttpRequest) -> tuple[DisputeFilterForm, QuerySet | None]:
    agreements = agreements_for(user=request.user)
    data = request.GET.copy()
    if not request.GET:
        data["status"] = DisputeStatus.OPEN  # the list opens on what needs an answer
    form = DisputeFilterForm(data, agreements=agreements)
    if not form.is_valid():
        return form, None
    chosen = form.cleaned_data
    return form, dispute_list(disputes=disputes_for(user=request.user),
                              status=chosen["status"], agreement=chosen["agreement"],
                              month=chosen["month"])


@require_GET
@login_required
def disputes(request: HtmxHttpRequest) -> HttpResponse:
    """The disputes the user may see, filtered (open ones first by default)."""
    form, rows = _filtered(request)
    query = {name: form.data.get(name, "") for name in form.fields if form.data.get(name)}
    context = {
        "form": form, "rows": list(rows[:500]) if rows is not None else None,
        "query": urlencode(query) if rows is not None else "",
        "is_host": is_host(request.user),
    }
    return partial_or_page(request, "dashboards/disputes/list.html", "dispute-results",
                           context)


@require_GET
@login_required
def disputes_csv(request: HtmxHttpRequest) -> HttpResponse:
    """The filtered disputes as CSV, one row each."""
    form, rows = _filtered(request)
    if rows is None:
        problems = " ".join(str(error) for errors in form.errors.values() for error in errors)
        return HttpResponse(problems, status=400, content_type="text/plain; charset=utf-8")
    export_audit(request, target="disputes", detail={"rows": rows.count()})
    return csv_response(lines=iter_csv_lines(header=DISPUTES_HEADER,
                                             rows=disputes_csv_rows(disputes=rows)),
                        filename=csv_filename("disputes"), bom=True)


class DisputeOpenForm(forms.Form):
    agreement = AgreementChoiceField(
        label="Agreement", queryset=Agreement.objects.none(), to_field_name="code",
        error_messages={"invalid_choice": "Choose one of your agreements."})
    kpi = KPIChoiceField(
        label="KPI", queryset=KPIDefinition.objects.none(), to_field_name="code",
        error_messages={"invalid_choice": "Choose a KPI of the agreement."})
    month = forms.CharField(label="Month", max_length=7,
                            help_text="The month whose value you dispute, YYYY-MM.")
    reason = forms.CharField(
        label="Reason", max_length=2000, widget=forms.Textarea(attrs={"rows": 4}),
        help_text="What is wrong with the value, and how you know: both sides read it.")
    proposed_value = forms.CharField(
        label="Value you believe right (optional)", required=False, max_length=40,
        help_text="In the KPI's unit, with a point as decimal separator.")

    def __init__(self, *args, agreements: QuerySet[Agreement], agreement: Agreement | None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agreement"].queryset = agreements.order_by("code")
        kpis = KPIDefinition.objects.filter(agreement_kpis__agreement__in=agreements)
        if agreement is not None:
            kpis = KPIDefinition.objects.filter(agreement_kpis__agreement=agreement)
        self.fields["kpi"].queryset = kpis.distinct().order_by("name")

    def clean_month(self) -> str:
        return _month_clean(self.cleaned_data.get("month", ""))


@login_required
def dispute_new(request: HtmxHttpRequest) -> HttpResponse:
    """GET: the form, prefilled from ?agreement=&kpi=&month=; POST: open the dispute."""
    agreements = agreements_for(user=request.user)
    source = request.POST if request.method == "POST" else request.GET
    agreement = agreements.filter(code=source.get("agreement", "")).first()
    if request.method == "POST":
        form = DisputeOpenForm(request.POST, agreements=agreements, agreement=agreement)
        if form.is_valid():
            fields = form.cleaned_data
            try:
                dispute = dispute_open(
                    user=request.user, agreement=fields["agreement"], kpi=fields["kpi"],
                    month=fields["month"], reason=fields["reason"],
                    proposed_value=fields["proposed_value"] or None, request=request)
            except ValidationError as refused:
                refusal_into_form(form, refused)
            else:
                messages.success(request, f"Dispute {dispute.pk} opened. The other side is "
                                          "told by e-mail and answers in its thread.")
                return redirect("dispute_detail", dispute_id=dispute.pk)
    else:
        initial = {name: request.GET.get(name, "") for name in ("kpi", "month")}
        if agreement is not None:
            initial["agreement"] = agreement.code
        form = DisputeOpenForm(initial=initial, agreements=agreements, agreement=agreement)
    open_already = None
    if agreement is not None and form["kpi"].value() and form["month"].value():
        open_already = disputes_for(user=request.user).filter(
            agreement=agreement, kpi__code=form["kpi"].value(), month=form["month"].value(),
            status=DisputeStatus.OPEN).first()
    month = form["month"].value() or ""
    return render(request, "dashboards/disputes/new.html", {
        "form": form, "agreement": agreement, "open_already": open_already,
        "month_closed": month if MONTH_PATTERN.fullmatch(month)
        and month_is_closed(month=month) else ""})


def _dispute_visible(request: HtmxHttpRequest, dispute_id: int) -> Dispute:
    dispute = (disputes_for(user=request.user)
               .select_related("agreement__partner", "kpi", "correction_batch")
               .filter(pk=dispute_id).first())
    if dispute is None:
        # Another partner's dispute answers exactly like one that does not exist.
        raise Http404("No such dispute.")
    return dispute


# The dispute's page shows several of these forms at once: each names its fields' ids apart.
class ThreadForm(forms.Form):
    id_prefix = ""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", f"{self.id_prefix}-%s")
        super().__init__(*args, **kwargs)


class CommentForm(ThreadForm):
    id_prefix = "comment"
    text = forms.CharField(label="Your answer", max_length=2000,
                           widget=forms.Textarea(attrs={"rows": 3}))


class WithdrawForm(ThreadForm):
    id_prefix = "withdraw"
    text = forms.CharField(label="Why (optional)", required=False, max_length=2000,
                           widget=forms.Textarea(attrs={"rows": 2}))


class ResolveForm(ThreadForm):
    id_prefix = "resolve"
    resolution = forms.ChoiceField(label="Resolution", choices=DisputeResolution.choices,
                                   widget=forms.RadioSelect)
    value = forms.CharField(
        label="Corrected value", required=False, max_length=40,
        help_text="Only for a corrected value: the month's value, in the KPI's unit.")
    text = forms.CharField(label="Note to both sides (optional)", required=False,
                           max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    reopen = forms.BooleanField(
        label="Reopen the month first, with this dispute as the reason", required=False,
        help_text="The month is closed: a taken or corrected value needs it reopened (it and "
                  "every later closed month). Run scoring and close it again afterwards.")

    def __init__(self, *args, dispute: Dispute, month_closed: bool, admin: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not (month_closed and admin):
            del self.fields["reopen"]
        # Each choice names the side and the value it keeps or takes.
        kpi, values = dispute.kpi, dispute_values(dispute)

        def shown(value: float | None) -> str:
            if value is None:
                return "no value"
            return f"{kpi_value_text(value, kpi)} {kpi.unit}".strip()

        self.fields["resolution"].choices = [
            (DisputeResolution.KEPT, f"Keep the {values['source']}'s value "
                                     f"({shown(values['source_value'])}), the source of truth"),
            (DisputeResolution.OTHER_SIDE, f"Take the {values['other']}'s value "
                                           f"({shown(values['other_value'])})"),
            (DisputeResolution.CORRECTED, "Enter a corrected value"),
        ]
        unit = f", in {kpi.unit}" if kpi.unit else ""
        self.fields["value"].help_text = f"Only for a corrected value: the month's value{unit}."


def _detail_page(request: HtmxHttpRequest, dispute: Dispute, *,
                 comment_form: CommentForm | None = None,
                 resolve_form: ResolveForm | None = None, status: int = 200) -> HttpResponse:
    month_closed = month_is_closed(month=dispute.month)
    admin = is_host_admin(request.user)
    is_open = dispute.status == DisputeStatus.OPEN
    try:
        side = dispute_side_of(user=request.user, agreement=dispute.agreement)
    except PermissionDenied:
        side = ""
    context = {
        "dispute": dispute, **dispute_detail(dispute=dispute), "side": side,
        "is_host": is_host(request.user), "month_closed": month_closed, "is_admin": admin,
        "comment_form": comment_form or (CommentForm() if is_open and side else None),
        "withdraw_form": WithdrawForm() if may_withdraw(user=request.user, dispute=dispute)
        else None,
        "resolve_form": resolve_form or (
            ResolveForm(dispute=dispute, month_closed=month_closed, admin=admin)
            if is_open and may_manage(request.user) else None),
    }
    return render(request, "dashboards/disputes/detail.html", context, status=status)


@require_GET
@login_required
def dispute_detail_view(request: HtmxHttpRequest, dispute_id: int) -> HttpResponse:
    return _detail_page(request, _dispute_visible(request, dispute_id))


def _back(dispute: Dispute, anchor: str = "thread") -> HttpResponse:
    return redirect(reverse("dispute_detail", args=[dispute.pk]) + f"#{anchor}")


@require_POST
@login_required
def dispute_comment_view(request: HtmxHttpRequest, dispute_id: int) -> HttpResponse:
    dispute = _dispute_visible(request, dispute_id)
    form = CommentForm(request.POST)
    if form.is_valid():
        try:
            dispute_comment(user=request.user, dispute=dispute, text=form.cleaned_data["text"],
                            request=request)
        except ValidationError as refused:
            refusal_into_form(form, refused)
        else:
            messages.success(request, "Answer added; the other side is told by e-mail.")
            return _back(dispute)
    return _detail_page(request, dispute, comment_form=form)


@require_POST
@login_required
def dispute_withdraw_view(request: HtmxHttpRequest, dispute_id: int) -> HttpResponse:
    """The opening side withdraws its dispute, after confirming."""
    dispute = _dispute_visible(request, dispute_id)
    if not may_withdraw(user=request.user, dispute=dispute):
        if dispute.status != DisputeStatus.OPEN:
            messages.error(request, f"The dispute is {dispute.get_status_display().lower()} "
                                    "already.")
            return _back(dispute)
        raise PermissionDenied("Only the side that opened a dispute withdraws it.")
    if not confirmed(request):
        return confirmation_page(request, Confirmation(
            question=f"Withdraw dispute {dispute.pk}?",
            consequence=f"The value of {dispute.kpi.name} in {dispute.month} stays as it is; "
                        "the thread is kept and the other side is told.",
            action="Withdraw", cancel_url=reverse("dispute_detail", args=[dispute.pk])))
    form = WithdrawForm(request.POST)
    text = form.cleaned_data["text"] if form.is_valid() else ""
    try:
        dispute_withdraw(user=request.user, dispute=dispute, text=text, request=request)
    except ValidationError as refused:
        messages.error(request, " ".join(refused.messages))
    else:
        messages.success(request, f"Dispute {dispute.pk} withdrawn.")
    return _back(dispute)


@manager_required
@require_POST
def dispute_resolve_view(request: HtmxHttpRequest, dispute_id: int) -> HttpResponse:
    """A host manager resolves the dispute; a host admin may reopen its closed month first."""
    dispute = _dispute_visible(request, dispute_id)
    month_closed = month_is_closed(month=dispute.month)
    admin = is_host_admin(request.user)
    form = ResolveForm(request.POST, dispute=dispute, month_closed=month_closed,
                       admin=admin)
    if form.is_valid():
        fields = form.cleaned_data
        arguments = {"user": request.user, "dispute": dispute,
                     "resolution": fields["resolution"], "value": fields["value"] or None,
                     "text": fields["text"], "request": request}
        try:
            if fields.get("reopen") and fields["resolution"] != DisputeResolution.KEPT:
                _, reopened = dispute_resolve_reopening(**arguments)
                messages.info(request, f"Reopened {', '.join(reopened)} for dispute "
                                       f"{dispute.pk}. Run scoring, then close again.")
            else:
                dispute_resolve(**arguments)
        except DisputeMonthClosed as closed:
            form.add_error(None, closed.messages[0] + ("" if admin else
                           " Ask a host admin to resolve it, or keep the value."))
        except (ValidationError, ClosingRefused) as refused:
            if isinstance(refused, ValidationError):
                refusal_into_form(form, refused)
            else:
                form.add_error(None, str(refused))
        else:
            messages.success(request, f"Dispute {dispute.pk} resolved. A new value counts "
                                      "from the next scoring run; the partner is told.")
            return _back(dispute, "resolution")
    dispute.refresh_from_db()
    return _detail_page(request, dispute, resolve_form=form)
