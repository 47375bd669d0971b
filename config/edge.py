"""What every request meets before the apps: the body limit, the health answer, and the
headers of every answer.

- A body larger than REQUEST_BODY_MAX_BYTES is refused from its Content-Length, before anything
  reads it: Django spools the file parts of a multipart body to disk before CSRF or any view
  runs, so a later check would come after the disk had filled. The upload handler below counts
  what is actually streamed, as a second line.
- `/healthz` answers before the host check and the HTTPS redirect, so that a container's own
  health check (plain HTTP to 127.0.0.1) reaches it with production settings.
- Pages shown to a signed-in user are never stored by a browser or a shared cache
  (`Cache-Control: private, no-store`), and every answer denies the browser features the
  product never uses (`Permissions-Policy`).
"""

import json
import logging
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_cache_control
from django.utils.html import escape

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"

# Features no page of the product uses. Only names Chromium and Firefox know, so the header
# itself adds no console warnings.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer", "autoplay", "camera", "display-capture", "geolocation", "gyroscope",
        "magnetometer", "microphone", "midi", "payment", "publickey-credentials-get",
        "screen-wake-lock", "serial", "usb", "xr-spatial-tracking",
    )
)


def _size(size: int) -> str:
    """A byte count as people read it: 52 MB, 800 kB, 512 bytes."""
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= factor:
            return f"{size / factor:,.{0 if size >= 10 * factor else 1}f} {unit}"
    return f"{size:,} bytes"


def request_too_large(request: HttpRequest, limit: int) -> HttpResponse:
    """413, in the form the client reads: JSON for the API, a notice for HTMX, else a page."""
    message = (f"The request is too large: at most {_size(limit)} can be sent at once. "
               "Nothing was received or stored.")
    if request.path.startswith("/api/"):
        response = JsonResponse({"error": "too_large", "message": message,
                                 "max_bytes": limit}, status=413)
        response["Cache-Control"] = "no-store"
        return response
    if request.headers.get("HX-Request") == "true":
        response = HttpResponse(f'<p class="message message--error" role="alert">'
                                f"{escape(message)} Split the file into smaller ones.</p>",
                                status=413)
        # Shown in the page's problem area, whatever the form aimed at (static/js/charts.js
        # lets a 413 swap).
        response["HX-Retarget"] = "#request-problem"
        response["HX-Reswap"] = "innerHTML"
        return response
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Request too large · Partnership Performance</title></head><body>"
        "<main><h1>Request too large</h1>"
        f"<p>{escape(message)} Split the file into smaller ones and send them one by one.</p>"
        '<p><a href="/">Back to the start page</a></p></main></body></html>'
    )
    return HttpResponse(page, status=413)


class RequestBodyLimitMiddleware:
    """Refuses a body over REQUEST_BODY_MAX_BYTES from its declared length, for anyone.

    First in MIDDLEWARE: nothing before it may read the body. Without a Content-Length Django
    reads no body at all, so the declared length bounds what is read."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            return HttpResponse("Invalid Content-Length header.", status=400,
                                content_type="text/plain")
        limit = settings.REQUEST_BODY_MAX_BYTES
        if length > limit:
            logger.warning("Refused a %s-byte body for %s %s (limit %s)", f"{length:,}",
                           request.method, request.path, f"{limit:,}")
            return request_too_large(request, limit)
        return self.get_response(request)


class BoundedUploadHandler(FileUploadHandler):
    """Counts the file parts of a body as they stream in and stops past REQUEST_BODY_MAX_BYTES,
    before the next handler writes the chunk to disk. First in FILE_UPLOAD_HANDLERS."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received = getattr(self, "received", 0) + len(raw_data)
        if self.received > settings.REQUEST_BODY_MAX_BYTES:
            raise RequestDataTooBig(
                f"The uploaded files exceed {settings.REQUEST_BODY_MAX_BYTES:,} bytes."
            )
        return raw_data

    def file_complete(self, file_size):
        return None


def _database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any failure means "not reachable" to a health check
        logger.warning("Health check: database unreachable: %s", error)
        return "unreachable"
    return "ok"


def _broker_state() -> str:
    from config.celery import app

    if app.conf.task_always_eager:
        return "in-process"
    try:
        with app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=settings.HEALTH_BROKER_TIMEOUT)
    except Exception as error:  # kombu raises several kinds: any of them means unreachable
        logger.warning("Health check: task queue unreachable: %s", error)
        return "unreachable"
    return "ok"


def _cache_state() -> str:
    from django.core.cache import cache

    try:
        cache.get("healthz")
    except Exception:  # the in-process cache never fails; Redis fails soft (config/cache.py)
        return "unreachable"
    return "ok" if getattr(cache, "available", True) else "unreachable"


def health(request: HttpRequest) -> HttpResponse:
    """200 when the database and the task queue answer, else 503; the cache is reported only,
    since the pages work without it."""
    started = time.perf_counter()
    checks = {"database": _database_state(), "task_queue": _broker_state(),
              "cache": _cache_state()}
    healthy = checks["database"] == "ok" and checks["task_queue"] in ("ok", "in-process")
    body = {"status": "ok" if healthy else "unavailable", **checks,
            "milliseconds": round((time.perf_counter() - started) * 1000, 1)}
    response = HttpResponse(json.dumps(body), status=200 if healthy else 503,
                            content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


class HealthCheckMiddleware:
    """Answers GET/HEAD /healthz itself, before the host check and the HTTPS redirect."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == HEALTH_PATH and request.method in ("GET", "HEAD"):
            return health(request)
        return self.get_response(request)


class ResponseHeadersMiddleware:
    """`Cache-Control: private, no-store` on what a signed-in user is shown, and a
    `Permissions-Policy` on every answer. After the authentication middleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
        response.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response
