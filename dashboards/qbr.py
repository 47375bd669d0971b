"""The QBR pack as HTML and as PDF, and the archive of many packs built in the background.

The PDF is the print page rendered by WeasyPrint on the server: the same template and the same
stylesheets (read from the static files, never fetched over the network), the charts as the
static SVG the print view draws. No browser is needed on the worker.

An archive job (host managers: many agreements, one quarter) lives in the cache, not in the
database: `dashboards/` never writes the database, and a job is a short-lived convenience with
nothing to audit — its state (who asked, which agreements, how far it got) and its ZIP file in
media storage are kept for a day. The worker renews a heartbeat after each pack; a job whose
heartbeat is older than JOB_STALE_SECONDS (its worker died or was restarted) says so, and the
page offers to start it again. A task delivered twice (acks_late after a lost worker) finds the
job done, or running with a fresh heartbeat, and leaves it alone; a stale job is taken over.
"""

import functools
import io
import logging
import re
import time
import uuid
import zipfile

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.template.loader import render_to_string

from partnerships.access import agreements_for, may_manage
from partnerships.models import Agreement
from scoring.models import ScoringRun

from .selectors.qbr import Quarter, qbr_pack, quarter_parse

TEMPLATE = "dashboards/qbr.html"
STYLESHEETS = ("css/app.css", "css/qbr.css")
JOB_SECONDS = 24 * 3600  # how long a job's state and archive are kept
JOB_STALE_SECONDS = 180  # no heartbeat for this long: the worker is gone
JOB_QUEUED_STALE_SECONDS = 15 * 60  # queued this long without a worker taking it
JOB_MAX_AGREEMENTS = 500
JOB_ID = re.compile(r"[0-9a-f]{32}")

# WeasyPrint logs each step of each document at INFO: seven lines per pack in a worker's log.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)


@functools.cache  # one per process: each URLFetcher builds an SSL context (0.1 s)
def _nothing_fetched():
    """A URL fetcher that refuses every URL: the pack's HTML names no resource to load, and no
    request leaves the server on behalf of text a user wrote."""
    from weasyprint.urls import URLFetcher

    class NothingFetched(URLFetcher):
        def fetch(self, url, headers=None):
            raise ValueError(f"The QBR pack loads nothing from outside: {url[:80]}")

    return NothingFetched()


def qbr_html(*, agreement: Agreement, quarter: Quarter, user, pdf: bool = False,
             run: ScoringRun | None = None, request=None) -> str:
    """The pack's page (for the PDF: without the links that only make sense on screen)."""
    context = qbr_pack(agreement=agreement, quarter=quarter, user=user, run=run)
    context.update(user=user, pdf=pdf, action_sides=[
        ("Host commitments", context["host_actions"]),
        (f"{agreement.partner.name} commitments", context["partner_actions"])])
    return render_to_string(TEMPLATE, context, request=request)


def qbr_pdf(*, agreement: Agreement, quarter: Quarter, user,
            run: ScoringRun | None = None) -> bytes:
    """The pack as a PDF (A4), rendered from the print page's HTML and CSS."""
    # Imported here: only the processes that render PDFs load WeasyPrint and Pango.
    from weasyprint import HTML

    html = qbr_html(agreement=agreement, quarter=quarter, user=user, pdf=True, run=run)
    document = HTML(string=html, base_url=settings.SITE_URL + "/",
                    url_fetcher=_nothing_fetched())
    return document.write_pdf(stylesheets=_stylesheets())


@functools.cache
def _stylesheets() -> list:
    """The page's stylesheets, read from disk and parsed once per process (its <link>s are
    left out of the PDF's HTML)."""
    from weasyprint import CSS

    return [CSS(filename=finders.find(name), url_fetcher=_nothing_fetched())
            for name in STYLESHEETS]


def qbr_file_name(*, agreement: Agreement, quarter: Quarter) -> str:
    safe = "".join(char if char.isalnum() or char in "-_" else "_" for char in agreement.code)
    return f"QBR-{quarter}-{safe}.pdf"


# ---- Archive jobs ------------------------------------------------------------------------------


def _job_key(job_id: str) -> str:
    return f"qbr-job:{job_id}"


def _lock_key(job_id: str) -> str:
    return f"qbr-job:{job_id}:worker"


def qbr_job_create(*, user, agreement_ids: list[int], quarter: Quarter) -> dict:
    """A queued job for `user` (its agreements already scoped and checked by the caller)."""
    job = {
        "id": uuid.uuid4().hex, "user_id": user.pk, "quarter": str(quarter),
        "agreement_ids": list(agreement_ids), "total": len(agreement_ids), "done": 0,
        "status": "queued", "file": "", "error": "", "created": time.time(),
        "heartbeat": time.time(), "current": "",
    }
    cache.set(_job_key(job["id"]), job, JOB_SECONDS)
    return job


def qbr_job_for(*, job_id: str, user) -> dict | None:
    """The job, for host managers (who all see every agreement a job may hold; None for anyone
    else, as for a job that does not exist), with `stale` set when its worker stopped
    answering and `percent` done."""
    if not may_manage(user) or not JOB_ID.fullmatch(job_id):
        return None
    job = cache.get(_job_key(job_id))
    if job is None:
        return None
    age = time.time() - job["heartbeat"]
    job["stale"] = ((job["status"] == "running" and age > JOB_STALE_SECONDS)
                    or (job["status"] == "queued" and age > JOB_QUEUED_STALE_SECONDS))
    job["percent"] = round(100 * job["done"] / job["total"]) if job["total"] else 100
    return job


def _save(job: dict) -> None:
    job["heartbeat"] = time.time()
    cache.set(_job_key(job["id"]), job, JOB_SECONDS)


def qbr_archive_build(*, job_id: str) -> str:
    """The task's work: render each agreement's pack into one ZIP in media storage, saying how
    far it got after each one. Safe to run twice."""
    job = cache.get(_job_key(job_id))
    if job is None:
        return "no such job (expired)"
    if job["status"] in ("done", "failed"):
        return f"already {job['status']}"
    # One worker at a time; the claim expires with the heartbeat, so a stale job is taken over.
    if not cache.add(_lock_key(job_id), True, JOB_STALE_SECONDS):
        return "being built by another worker"
    try:
        return _build(job)
    finally:
        cache.delete(_lock_key(job_id))


def _build(job: dict) -> str:
    user = get_user_model().objects.filter(pk=job["user_id"], is_active=True).first()
    quarter = quarter_parse(job["quarter"])
    if user is None or quarter is None:
        job.update(status="failed", error="The user who asked for the packs is no longer "
                                          "active.")
        _save(job)
        return "failed: user"
    # Scoped again here: the user's rights may have changed since the job was queued.
    agreements = (agreements_for(user=user).filter(pk__in=job["agreement_ids"])
                  .select_related("partner", "owner").order_by("code"))
    run = ScoringRun.objects.current()
    job.update(status="running", done=0, total=len(agreements), error="")
    _save(job)
    buffer = io.BytesIO()
    try:
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for agreement in agreements:
                job["current"] = agreement.code
                archive.writestr(qbr_file_name(agreement=agreement, quarter=quarter),
                                 qbr_pdf(agreement=agreement, quarter=quarter, user=user,
                                         run=run))
                job["done"] += 1
                _save(job)
                cache.touch(_lock_key(job["id"]), JOB_STALE_SECONDS)
        name = default_storage.save(f"qbr/{job['id']}/QBR-packs-{quarter}.zip",
                                    ContentFile(buffer.getvalue()))
    except Exception as error:
        job.update(status="failed", error=f"{type(error).__name__}: {error}"[:300])
        _save(job)
        raise
    job.update(status="done", file=name, current="", size=len(buffer.getvalue()))
    _save(job)
    return f"{job['done']} packs"
