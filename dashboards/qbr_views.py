"""The QBR pack of an agreement and a quarter (both sides, their own agreements): a print page
and its PDF; and the packs of many agreements at once (host managers), built by a worker into
one ZIP archive while the page shows how far it got."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from partnerships.access import agreements_for, manager_required
from partnerships.models import Stage
from partnerships.months import MONTH_PATTERN
from partnerships.queue import TaskQueueUnavailable, task_publish
from scoring.models import ScoringRun

from .http import HtmxHttpRequest, agreement_visible
from .qbr import (
    JOB_MAX_AGREEMENTS,
    qbr_file_name,
    qbr_html,
    qbr_job_create,
    qbr_job_for,
    qbr_pdf,
)
from .selectors.qbr import Quarter, quarter_default, quarter_of_month, quarter_parse
from .tasks import qbr_archive

ARCHIVE_PAGE = "dashboards/qbr_archives.html"
# The quarters offered: the current one (of the published run) and the seven before it.
QUARTERS_OFFERED = 8


def _quarter(request: HtmxHttpRequest, run: ScoringRun | None) -> Quarter:
    """`?quarter=2026-Q3`, or the quarter of `?month=2026-08` (the dashboard's month), or the
    published run's latest."""
    quarter = quarter_parse(request.GET.get("quarter", ""))
    if quarter is None and MONTH_PATTERN.fullmatch(request.GET.get("month", "")):
        quarter = quarter_of_month(request.GET["month"])
    return quarter or quarter_default(run=run)


@login_required
@require_GET
def qbr_pack(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """The pack as a page to read and print (`?quarter=2026-Q3`; the latest by default)."""
    agreement = agreement_visible(request=request, code=code)
    run = ScoringRun.objects.current()
    quarter = _quarter(request, run)
    return HttpResponse(qbr_html(agreement=agreement, quarter=quarter, user=request.user,
                                 run=run, request=request))


@login_required
@require_GET
def qbr_pack_pdf(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """The same pack as a PDF, rendered on the server."""
    agreement = agreement_visible(request=request, code=code)
    run = ScoringRun.objects.current()
    quarter = _quarter(request, run)
    pdf = qbr_pdf(agreement=agreement, quarter=quarter, user=request.user, run=run)
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = (
        f'attachment; filename="{qbr_file_name(agreement=agreement, quarter=quarter)}"')
    return response


# ---- Many packs at once (host managers) ---------------------------------------------------------


class QbrArchiveForm(forms.Form):
    """Which agreements (chosen one by one, or by stage and owner) and which quarter."""

    quarter = forms.ChoiceField(label="Quarter")
    agreements = forms.ModelMultipleChoiceField(
        label="Agreements", required=False, queryset=None,
        widget=forms.SelectMultiple(attrs={"size": 10}),
        help_text="Choose some (Ctrl or ⌘ + click), or leave empty to take every agreement "
                  "in the stages below.")
    stages = forms.MultipleChoiceField(
        label="Stages", required=False, choices=Stage.choices,
        initial=[Stage.PILOT, Stage.ACTIVE, Stage.UNDER_REVIEW],
        widget=forms.CheckboxSelectMultiple)
    owner = forms.ChoiceField(label="Owner", choices=[("all", "Everyone's agreements"),
                                                     ("mine", "Only the agreements I own")],
                              initial="all", required=False, widget=forms.RadioSelect)

    def __init__(self, *args, user, quarters: list[Quarter], **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["quarter"].choices = [(str(q), str(q)) for q in quarters]
        self.fields["quarter"].initial = str(quarters[0])
        self.fields["agreements"].queryset = (agreements_for(user=user)
                                              .select_related("partner").order_by("code"))
        self.fields["agreements"].label_from_instance = (
            lambda agreement: f"{agreement.code} · {agreement.partner.name}")

    def chosen(self) -> list[int]:
        """The ids of the agreements the form chose, at most JOB_MAX_AGREEMENTS."""
        data = self.cleaned_data
        if data["agreements"]:
            agreements = data["agreements"]
        else:
            agreements = agreements_for(user=self.user).filter(stage__in=data["stages"])
            if data.get("owner") == "mine":
                agreements = agreements.filter(owner=self.user)
        return list(agreements.order_by("code").values_list("pk", flat=True))

    def clean(self):
        data = super().clean()
        if not self.errors and not data.get("agreements") and not data.get("stages"):
            raise forms.ValidationError("Choose agreements, or at least one stage.")
        return data


def _quarters(run: ScoringRun | None) -> list[Quarter]:
    latest = quarter_default(run=run)
    return [latest.shifted(-index) for index in range(QUARTERS_OFFERED)]


@manager_required
@vary_on_headers("HX-Request")
def qbr_archives(request: HtmxHttpRequest) -> HttpResponse:
    """GET: choose agreements and a quarter; POST: queue the job and go to its page."""
    run = ScoringRun.objects.current()
    form = QbrArchiveForm(request.POST or None, user=request.user, quarters=_quarters(run))
    if form.is_bound and form.is_valid():
        ids = form.chosen()
        if not ids:
            form.add_error(None, "No agreement matches: nothing to render.")
        elif len(ids) > JOB_MAX_AGREEMENTS:
            form.add_error(None, f"{len(ids)} agreements match; one archive takes at most "
                                 f"{JOB_MAX_AGREEMENTS}. Narrow the choice.")
        else:
            job = qbr_job_create(user=request.user, agreement_ids=ids,
                                 quarter=quarter_parse(form.cleaned_data["quarter"]))
            try:
                task_publish(qbr_archive.si(job["id"]))
            except TaskQueueUnavailable as unavailable:
                form.add_error(None, str(unavailable))
            else:
                return redirect("qbr_archive_job", job_id=job["id"])
    return render(request, ARCHIVE_PAGE, {"form": form, "job": None})


@manager_required
@vary_on_headers("HX-Request")
def qbr_archive_job(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    """How far the job got: polled by htmx until it is done, failed or stale."""
    job = qbr_job_for(job_id=job_id, user=request.user)
    if job is None:
        raise Http404("No such archive job (they are kept for a day).")
    template = ARCHIVE_PAGE
    if request.htmx and not request.htmx.history_restore_request:
        template += "#job-panel"
    return render(request, template, {"job": job, "form": None})


@manager_required
def qbr_archive_download(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    job = qbr_job_for(job_id=job_id, user=request.user)
    if job is None or job["status"] != "done" or not default_storage.exists(job["file"]):
        raise Http404("No archive to download.")
    return FileResponse(default_storage.open(job["file"], "rb"), as_attachment=True,
                        filename=f"QBR-packs-{job['quarter']}.zip",
                        content_type="application/zip")


@manager_required
def qbr_archive_again(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    """POST: queue a stale or failed job's agreements again, as a new job."""
    job = qbr_job_for(job_id=job_id, user=request.user)
    if job is None:
        raise Http404("No such archive job.")
    if request.method != "POST":
        return redirect("qbr_archive_job", job_id=job_id)
    again = qbr_job_create(user=request.user, agreement_ids=job["agreement_ids"],
                           quarter=quarter_parse(job["quarter"]))
    try:
        task_publish(qbr_archive.si(again["id"]))
    except TaskQueueUnavailable as unavailable:
        messages.error(request, str(unavailable))
        return redirect("qbr_archive_job", job_id=job_id)
    return redirect(reverse("qbr_archive_job", args=[again["id"]]))
