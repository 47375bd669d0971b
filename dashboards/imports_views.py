"""Metric imports on the web: upload → preview → confirm → progress → result; the history of
imports, one import's changes, and downloads of its file and error report.

The upload request only stores the file: a Celery task (`import_batch_read_run`) reads it once,
within the file limits, and stores its preview on the batch; page views show what is stored and
never read the file. The import itself is `partnerships.services` (read, validate, write: all
rows or none) run by the Celery task `import_batch_run`, queued once the confirmation is
committed. The page polls the batch's panel every second while it is being read, queued or
running; the finished panel no longer polls. Every form works without JavaScript (post, then
redirect to the batch's page). With the broker down, confirming says so and leaves the batch
awaiting confirmation; nothing is started and nothing is lost.

An uploaded file is stored on a pending batch at once, so the preview and the import read the
same bytes. A pending batch is "awaiting confirmation" until its uploader confirms it:
confirming sets `confirmed_at` in one conditional UPDATE, and cancelling deletes the batch only
while `confirmed_at` is still empty, so a batch is confirmed or cancelled, never both: the
services `import_batch_confirm` and `import_batch_cancel` write, these views decide who may.
Uploads left unconfirmed are removed after IMPORT_UNCONFIRMED_MAX_AGE_HOURS (partnerships.tasks).
"""

import datetime as dt

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from partnerships.access import (
    agreements_for,
    import_batch_is_limited,
    import_batches_for,
    is_host,
    may_upload,
    membership_of,
    observations_for,
)
from partnerships.audit import audit_record
from partnerships.importers import Uploader
from partnerships.models import (
    Agreement,
    AgreementKPI,
    AuditAction,
    ImportBatch,
    ImportSource,
    ImportStatus,
    ObservationChange,
    Side,
    number_text,
)
from partnerships.queue import TaskQueueUnavailable
from partnerships.services import (
    MetricFilePreview,
    RowError,
    import_batch_cancel,
    import_batch_confirm,
    import_batch_create,
    import_batch_preview,
    import_errors_csv,
)
from partnerships.spreadsheets import spreadsheet_escape as safe_text
from partnerships.tasks import import_batch_read_start
from scoring.exports import iter_csv_lines

from .exports_views import csv_filename, csv_response, export_audit
from .http import HtmxHttpRequest, agreement_visible, imports_visible, uploader_required
from .selectors.provenance import HOST_TEAM, partner_batch_counts
from .templatetags.numbers import count_text

HISTORY_PAGE_SIZE = 25
DETAIL_PAGE_SIZE = 50
QUEUE_DOWN_CONFIRM = ("The task queue is unavailable; nothing was started — try again shortly. "
                      "Your file is kept and still awaits your confirmation.")
QUEUE_DOWN_UPLOAD = ("The task queue is unavailable, so reading your file waits: it is stored "
                     "and will be read as soon as the queue is back. You may leave this page.")
# The page lists this many errors; the CSV report has every error kept (up to 1,000).
ERRORS_SHOWN = 100
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
# Why a partner user cannot download the host's file.
LIMITED_FILE = ("The host's file is not offered for download: it may hold other partners' "
                "rows. The values it wrote for your agreements are listed on this page.")


# ---- Forms ----------------------------------------------------------------------------------


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Metric file",
        help_text="CSV (UTF-8, comma, semicolon or tab separated) or XLSX (the first sheet is "
                  "read), one observation a row.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.tsv,.txt,.xlsx"}),
    )
    side = forms.ChoiceField(
        label="Side of rows without a side", choices=Side.choices, initial=Side.HOST,
        required=False,
        help_text="Rows with a side column value keep theirs; the host may import both sides.",
    )

    def __init__(self, *args, uploader: Uploader, **kwargs):
        super().__init__(*args, **kwargs)
        if not uploader.is_host:
            # A partner editor imports their own side only: nothing to choose.
            del self.fields["side"]


class ConfirmSideForm(forms.Form):
    """The side of the rows of a file without a side column, chosen when confirming."""

    side = forms.ChoiceField(
        label="The file's values are", widget=forms.RadioSelect,
        choices=[(Side.HOST, "Host values"), (Side.PARTNER, "Partner values")],
        help_text="The file has no side column: every row is imported as this side's value.",
    )


class HistoryFilterForm(forms.Form):
    status = forms.ChoiceField(
        label="Status", required=False, choices=[("", "Any status"), *ImportStatus.choices]
    )


# ---- The panel: one batch's state, shared by the upload page and the batch page -------------


def batch_stage(batch: ImportBatch | None) -> str:
    """Where a batch is: choose, reading, preview, queued, running, succeeded or failed."""
    if batch is None:
        return "choose"
    if batch.status == ImportStatus.PENDING:
        if batch.confirmed_at is not None:
            return "queued"
        return "reading" if batch.preview is None else "preview"
    return batch.status


def _preview_facts(preview: MetricFilePreview) -> dict:
    return {
        "format": (preview.format or "").upper(),
        "delimiter": DELIMITER_NAMES.get(preview.delimiter or "", preview.delimiter),
        "missing_optional": [name for name in ("side", "note")
                             if name not in preview.columns],
        "value_index": preview.columns.index("value") if "value" in preview.columns else -1,
    }


def kpi_checks(preview: MetricFilePreview, *, side: str) -> list[dict]:
    """Per KPI, what the import would do with the rows as `side` (or as the file says), with
    a warning where values are of the side that is not the KPI's source of truth."""
    counts = preview.kpi_counts
    items = counts.get("file", counts.get(side, []))
    checked = []
    for item in items:
        warning = ""
        if item["other_side"]:
            other = (Side.HOST if item["source"] == Side.PARTNER else Side.PARTNER).label.lower()
            counted = f"the {Side(item['source']).label.lower()}'s count."
            if item["other_side"] == 1:
                warning = f"1 value of {item['kpi']} is a {other} value; {counted}"
            else:
                warning = (f"{count_text(item['other_side'])} values of {item['kpi']} are "
                           f"{other} values; {counted}")
        checked.append({**item, "warning": warning})
    return checked


def side_choices(preview: MetricFilePreview, *, batch: ImportBatch) -> list[dict]:
    """The sides a file without a side column may be imported as (the host chooses), each with
    its KPIs' warnings; empty when the file names each row's side or the uploader is a
    partner editor."""
    if "file" in preview.kpi_counts or len(preview.kpi_counts) < 2:
        return []
    return [{"value": side.value, "label": side.label, "checked": side == batch.side,
             "warnings": [item["warning"] for item in kpi_checks(preview, side=side)
                          if item["warning"]]}
            for side in Side]


def _error_rows(errors: list) -> list[RowError]:
    return [error if isinstance(error, RowError) else RowError.from_dict(error)
            for error in errors[:ERRORS_SHOWN]]


def panel_context(request: HtmxHttpRequest, batch: ImportBatch | None, *,
                  preview: MetricFilePreview | None = None,
                  form: UploadForm | None = None, notice: str = "") -> dict:
    stage = batch_stage(batch)
    context = {"batch": batch, "stage": stage, "notice": notice, "form": form,
               "polling": stage in ("reading", "queued", "running")}
    if batch is None:
        return context
    own = batch.user_id == request.user.pk
    context["may_confirm"] = stage == "preview" and own
    context["may_cancel"] = stage in ("reading", "preview") and (
        own or is_host(request.user))
    if import_batch_is_limited(user=request.user, batch=batch):
        # Another side's import (the host's): only the values of the user's agreements.
        context["limited"] = partner_batch_counts(
            batch_ids=[batch.pk], partner_id=membership_of(request.user).partner_id)[batch.pk]
        context["host_team"] = HOST_TEAM
    if stage == "preview":
        preview = preview or import_batch_preview(batch=batch)
        choices = side_choices(preview, batch=batch) if own else []
        context.update(preview=preview, **_preview_facts(preview),
                       kpi_checks=kpi_checks(preview, side=batch.side), side_choices=choices,
                       side_form=ConfirmSideForm(initial={"side": batch.side})
                       if choices else None)
    if stage == "failed":
        context["errors"] = _error_rows(batch.errors or [])
        context["errors_hidden"] = max(0, batch.error_count - len(context["errors"]))
        # Refused when its file was checked, before any confirmation: what the check read.
        if batch.preview is not None and batch.confirmed_at is None:
            preview = import_batch_preview(batch=batch)
            context.update(preview=preview, **_preview_facts(preview), refused_at_check=True)
    return context


def _panel(request: HtmxHttpRequest, batch: ImportBatch | None, **kwargs) -> HttpResponse:
    return render(request, "dashboards/imports/_panel.html",
                  panel_context(request, batch, **kwargs))


def _audit(request: HtmxHttpRequest, batch: ImportBatch, step: str, **detail) -> None:
    audit_record(
        action=AuditAction.IMPORT, request=request, partner=batch.partner,
        target=f"import batch {batch.pk}",
        detail={"step": step, "file": batch.file_name, **detail},
    )


# ---- Upload, confirm, cancel ------------------------------------------------------------------


@vary_on_headers("HX-Request")
@uploader_required
def import_upload(request: HtmxHttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None, uploader=request.uploader)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        batch = import_batch_create(
            user=request.user, file_name=upload.name, source=ImportSource.UPLOAD,
            side=form.cleaned_data.get("side") or None, uploaded_file=upload,
        )
        notice = ""
        if batch.status == ImportStatus.PENDING:
            _audit(request, batch, "uploaded", sha256=batch.sha256, side=batch.side)
            # Read by a task: however large the file, this request only stored it.
            try:
                import_batch_read_start(batch=batch)
            except TaskQueueUnavailable:
                notice = QUEUE_DOWN_UPLOAD
            batch.refresh_from_db()
        url = reverse("import_batch", args=[batch.pk])
        if not request.htmx:
            if notice:
                messages.warning(request, notice)
            return redirect(url)
        return push_url(_panel(request, batch, notice=notice), url)
    if request.htmx and request.method == "POST":
        return _panel(request, None, form=form)
    context = panel_context(request, None, form=form)
    context["uploader"] = request.uploader
    context["template_agreements"] = template_agreements(user=request.user,
                                                         uploader=request.uploader)
    context["template_ready"] = any(agreement.template_kpis
                                    for agreement in context["template_agreements"])
    return render(request, "dashboards/imports/upload.html", context)


@vary_on_headers("HX-Request")
@uploader_required
@require_POST
def import_confirm(request: HtmxHttpRequest, batch_id: int) -> HttpResponse:
    batches = import_batches_for(user=request.user)
    batch = get_object_or_404(batches, pk=batch_id)
    notice = ""
    if batch.user_id != request.user.pk:
        notice = "Only the person who uploaded a file can confirm its import."
    elif batch_stage(batch) == "reading":
        notice = "The file is still being read; confirm once its preview is shown."
    elif request.POST.get("side", "") not in ("", *Side.values):
        notice = "Choose the side of the rows: host or partner."
    else:
        outcome = import_batch_confirm(batch=batch, user=request.user, request=request,
                                       side=request.POST.get("side") or None)
        if not outcome.confirmed:
            notice = "This import was confirmed or cancelled already."
        elif outcome.queue_down:
            notice = QUEUE_DOWN_CONFIRM
    batch.refresh_from_db()
    if not request.htmx:
        if notice:
            messages.warning(request, notice)
        return redirect("import_batch", batch_id=batch.pk)
    return _panel(request, batch, notice=notice)


@vary_on_headers("HX-Request")
@uploader_required
@require_POST
def import_cancel(request: HtmxHttpRequest, batch_id: int) -> HttpResponse:
    batches = import_batches_for(user=request.user)
    batch = get_object_or_404(batches, pk=batch_id)
    may_cancel = batch.user_id == request.user.pk or is_host(request.user)
    cancelled = may_cancel and import_batch_cancel(batch=batch, user=request.user,
                                                   request=request)
    if cancelled:
        notice = f"The upload of {batch.file_name} was cancelled; nothing was imported."
    elif not may_cancel:
        notice = "Only the person who uploaded a file can cancel its import."
    else:
        notice = "This import cannot be cancelled any more: it was confirmed already."
    if not cancelled:
        if request.htmx:
            return _panel(request, batch, notice=notice)
        messages.warning(request, notice)
        return redirect("import_batch", batch_id=batch.pk)
    if not request.htmx:
        messages.success(request, notice)
        return redirect("import_upload")
    form = UploadForm(uploader=request.uploader)
    return push_url(_panel(request, None, form=form, notice=notice), reverse("import_upload"))


# ---- History, one batch, its panel ----------------------------------------------------------


@vary_on_headers("HX-Request")
@imports_visible
@require_GET
def import_history(request: HtmxHttpRequest) -> HttpResponse:
    form = HistoryFilterForm(request.GET or None)
    batches = import_batches_for(user=request.user).select_related("user", "partner")
    status = form.cleaned_data.get("status") if form.is_valid() else ""
    if status:
        batches = batches.filter(status=status)
    page = Paginator(batches.order_by("-created_at", "-pk"), HISTORY_PAGE_SIZE).get_page(
        request.GET.get("page"))
    membership = membership_of(request.user)
    foreign = [batch.pk for batch in page.object_list
               if not membership.is_host and batch.partner_id != membership.partner_id]
    limited = partner_batch_counts(batch_ids=foreign, partner_id=membership.partner_id
                                   ) if foreign else {}
    for batch in page.object_list:
        batch.stage = batch_stage(batch)
        batch.limited = limited.get(batch.pk)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form, "page": page, "query": query.urlencode(), "filtered": bool(status),
        "can_upload": may_upload(request.user),
        "is_host": membership.is_host, "host_team": HOST_TEAM,
    }
    template = "dashboards/imports/history.html"
    if request.htmx:
        template += "#history-results"
    return render(request, template, context)


@vary_on_headers("HX-Request")
@imports_visible
@require_GET
def import_batch(request: HtmxHttpRequest, batch_id: int) -> HttpResponse:
    batch = get_object_or_404(
        import_batches_for(user=request.user).select_related("user", "partner"), pk=batch_id
    )
    visible_agreements = agreements_for(user=request.user)
    changes = (
        ObservationChange.objects.filter(batch=batch, agreement__in=visible_agreements)
        .select_related("agreement", "kpi", "changed_by")
        .order_by("agreement__code", "kpi__code", "side", "date", "pk")
    )
    inserted = (
        observations_for(user=request.user).filter(batch=batch)
        .exclude(changes__batch=batch)
        .select_related("agreement", "kpi")
        .order_by("agreement__code", "kpi__code", "side", "date")
    )
    context = panel_context(request, batch) | {
        "changes": Paginator(changes, DETAIL_PAGE_SIZE).get_page(request.GET.get("changes")),
        "inserted": Paginator(inserted, DETAIL_PAGE_SIZE).get_page(request.GET.get("rows")),
        "is_host": is_host(request.user),
    }
    template = "dashboards/imports/batch.html"
    if request.htmx and request.GET.get("section") in ("changes", "inserted"):
        template += f"#{request.GET['section']}"
    return render(request, template, context)


@vary_on_headers("HX-Request")
@imports_visible
@require_GET
def import_panel(request: HtmxHttpRequest, batch_id: int) -> HttpResponse:
    batch = get_object_or_404(import_batches_for(user=request.user), pk=batch_id)
    return _panel(request, batch)


# ---- Downloads --------------------------------------------------------------------------------


@imports_visible
@require_GET
def import_file(request: HtmxHttpRequest, batch_id: int) -> HttpResponse:
    batch = get_object_or_404(import_batches_for(user=request.user), pk=batch_id)
    if import_batch_is_limited(user=request.user, batch=batch):
        messages.info(request, LIMITED_FILE)
        return redirect("import_batch", batch_id=batch.pk)
    if not batch.file:
        messages.info(request, "This import has no stored file.")
        return redirect("import_batch", batch_id=batch.pk)
    try:
        handle = batch.file.open("rb")
    except FileNotFoundError:
        raise Http404("The stored file is missing.") from None
    # Always a download, never shown inline: the content is whatever was uploaded.
    return FileResponse(
        handle, as_attachment=True, filename=batch.file_name or f"import-{batch.pk}",
        content_type="application/octet-stream",
    )


# The metric file's columns (DOMAIN.md § Files) in the order a person fills them in.
TEMPLATE_HEADER = ["agreement", "kpi", "date", "value", "side", "note"]


def template_agreements(*, user, uploader: Uploader) -> list[Agreement]:
    """The agreements the user may import for, by partner and code, each with
    `template_kpis`: how many of its KPIs the uploader's side reports (all for the host)."""
    reported = Q() if uploader.is_host else Q(agreement_kpis__kpi__source=uploader.side)
    return list(agreements_for(user=user).select_related("partner")
                .order_by("partner__name", "code")
                .annotate(template_kpis=Count("agreement_kpis", filter=reported)))


def template_date(*, agreement: Agreement, today: dt.date) -> dt.date:
    """A date the import takes for the agreement: the last day of the last full month, kept
    within the agreement's start and end."""
    day = today.replace(day=1) - dt.timedelta(days=1)
    if agreement.end_date is not None:
        day = min(day, agreement.end_date)
    return max(day, agreement.start_date)


def template_rows(*, agreement: Agreement, uploader: Uploader, today: dt.date
                  ) -> list[list[str]]:
    """A metric file to fill in: a row per KPI of the agreement that the uploader's side
    reports (the host: every KPI, on its source side), dated as `template_date`; the first row
    an example holding the monthly target, the others a value left to fill in (so a template
    uploaded untouched is refused). Text cells escaped as in every export."""
    items = AgreementKPI.objects.filter(agreement=agreement).select_related("kpi")
    if not uploader.is_host:
        items = items.filter(kpi__source=uploader.side)
    day = template_date(agreement=agreement, today=today).isoformat()
    rows = []
    for item in items.order_by("kpi__name", "kpi__code"):
        example = not rows
        unit = f" ({item.kpi.unit})" if item.kpi.unit else ""
        rows.append([
            safe_text(agreement.code), safe_text(item.kpi.code), day,
            number_text(item.target) if example else "", item.kpi.source,
            safe_text(f"Example: the monthly target{unit}. Put the actual figure of the month "
                      "in its place.") if example else "",
        ])
    return rows


@uploader_required
@require_GET
def import_template(request: HtmxHttpRequest) -> HttpResponse:
    """A metric file template (CSV) for the agreement named by ?agreement=CODE."""
    agreement = agreement_visible(request=request, code=request.GET.get("agreement", ""))
    rows = template_rows(agreement=agreement, uploader=request.uploader,
                         today=timezone.localdate())
    export_audit(request, target=f"metric file template of {agreement.code}",
                 detail={"agreement": agreement.code, "rows": len(rows)})
    return csv_response(lines=iter_csv_lines(header=TEMPLATE_HEADER, rows=rows),
                        filename=csv_filename(agreement.code, "metrics-template"), bom=True)


@imports_visible
@require_GET
def import_error_report(request: HtmxHttpRequest, batch_id: int) -> HttpResponse:
    batch = get_object_or_404(import_batches_for(user=request.user), pk=batch_id)
    # A BOM, so spreadsheet programs read the report as UTF-8.
    body = "\ufeff" + import_errors_csv(errors=batch.errors or [])
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="import-{batch.pk}-errors.csv"'
    )
    return response
