"""The metrics API for other systems, and the page where users manage their API tokens.

`POST /api/v1/observations` imports a JSON list of observations with the rules of a metric file
(all or nothing, a partner writes only its own agreements and side), authenticated by a
per-user token (`Authorization: Bearer <key>`), made safe to retry by an `Idempotency-Key`.
The contract is `dashboards/openapi.py` (served at /api/openapi.json) and docs/api.md.

Tokens are made, revoked and checked by `partnerships.tokens` (a key is shown once; only its
hash is stored). The endpoint reads no cookie, so it needs no CSRF token.
"""

import json
import re

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from partnerships.audit import audit_record
from partnerships.importers import shown
from partnerships.models import ApiToken, AuditAction, ImportBatch, ImportStatus
from partnerships.services import (
    IdempotencyConflict,
    ImportNotAllowed,
    import_uploader,
    observations_import_records,
)
from partnerships.tokens import (
    TokenRefused,
    api_token_authenticate,
    api_token_create,
    api_token_revoke,
    api_token_used,
)

from .confirm import Confirmation, confirmation_page, confirmed
from .http import HtmxHttpRequest, redirect_after_change, uploader_required

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
REALM = 'Bearer realm="metrics"'
# Seconds a client waits before retrying a request whose Idempotency-Key is still in use.
IN_PROGRESS_RETRY_SECONDS = 2
NEW_KEY_SESSION_KEY = "api_token_new_key"


# ---- The tokens page ---------------------------------------------------------------------------


class TokenForm(forms.Form):
    name = forms.CharField(
        label="Name", max_length=100,
        help_text="What will use the token, e.g. “CRM nightly export”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


@never_cache
@uploader_required
def api_tokens(request: HtmxHttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    tokens = ApiToken.objects.filter(user=request.user).order_by("-created_at")
    if request.method == "POST" and form.is_valid():
        try:
            token, key = api_token_create(user=request.user, request=request,
                                          name=form.cleaned_data["name"].strip())
        except TokenRefused as refused:
            form.add_error(None, str(refused))
        else:
            # Shown by the next page and forgotten at once: a reload neither shows it again
            # nor makes a second token.
            request.session[NEW_KEY_SESSION_KEY] = {"token": token.pk, "key": key}
            return redirect("api_tokens")
    new_key = new_token = None
    shown = request.session.pop(NEW_KEY_SESSION_KEY, None)
    if shown:
        new_token = tokens.filter(pk=shown.get("token"), revoked_at__isnull=True).first()
        new_key = shown.get("key") if new_token else None
    context = {
        "form": form, "tokens": tokens, "new_key": new_key, "new_token": new_token,
        "endpoint": request.build_absolute_uri(reverse("api_observations")),
        "uploader": request.uploader,
    }
    # The key is in this answer only: no cache may keep it (never_cache sets no-store).
    return render(request, "dashboards/imports/tokens.html", context)


@uploader_required
@require_POST
def api_token_revoke_view(request: HtmxHttpRequest) -> HttpResponse:
    token_id = request.POST.get("token", "")
    live = ApiToken.objects.filter(user=request.user, revoked_at__isnull=True)
    token = live.filter(pk=token_id).first() if token_id.isdigit() else None
    if token is not None and not confirmed(request):
        return confirmation_page(request, Confirmation(
            question=f"Revoke the token “{token.name}” ({token.prefix}…)?",
            consequence="Requests with its key are refused from then on; whatever uses it "
                        "needs a new token. Imports already made with it stay.",
            action="Revoke", cancel_url=reverse("api_tokens")))
    if token is not None:
        token = api_token_revoke(user=request.user, token_id=token.pk, request=request)
    if token is None:
        messages.warning(request, "No such live token of yours: nothing was revoked.")
    else:
        messages.success(request, f"The token “{token.name}” is revoked: requests with its key "
                                  "are refused from now on.")
    return redirect_after_change(request, reverse("api_tokens"))


# ---- The endpoint -----------------------------------------------------------------------------


def _problem(http_status: int, code: str, message: str, **extra) -> JsonResponse:
    response = JsonResponse({"error": code, "message": message, **extra}, status=http_status)
    response["Cache-Control"] = "no-store"
    return response


def _unauthorized(message: str, *, token_given: bool) -> JsonResponse:
    response = _problem(401, "unauthorized", message)
    response["WWW-Authenticate"] = REALM + (', error="invalid_token"' if token_given else "")
    return response


def _max_observations() -> int:
    return settings.METRICS_API_MAX_OBSERVATIONS


def _read_observations(request: HttpRequest) -> list | JsonResponse:
    """The `observations` array of the request's JSON body, or the answer refusing it."""
    content_type = request.content_type or ""
    if content_type != "application/json":
        return _problem(415, "unsupported_media_type",
                        "Send the observations as JSON with Content-Type: application/json.")
    try:
        body = request.body
    except RequestDataTooBig:
        return _too_big()
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return _problem(400, "invalid_json", f"The body is not valid UTF-8 JSON: {error}.")
    if not isinstance(payload, dict):
        return _problem(400, "invalid_body",
                        'The body must be a JSON object: {"observations": [...]}.')
    unknown = sorted(set(payload) - {"observations"})
    if unknown:
        return _problem(400, "invalid_body",
                        f"Unknown top-level field {unknown[0]!r}: the body has one field, "
                        "\"observations\".")
    observations = payload.get("observations")
    if not isinstance(observations, list):
        return _problem(400, "invalid_body",
                        'The body needs "observations": a JSON array of observations.')
    if not observations:
        return _problem(400, "invalid_body",
                        '"observations" is empty: send at least one observation.')
    if len(observations) > _max_observations():
        return _too_big(len(observations))
    return observations


def _too_big(count: int | None = None) -> JsonResponse:
    limit = _max_observations()
    what = f"{count:,} observations" if count else "The request body is too large"
    return _problem(413, "too_large",
                    f"{what}: send at most {limit:,} observations (and at most "
                    f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1_000_000} MB) per request; "
                    "split larger sets into several requests.", max_observations=limit)


def _named(records: list, index: int | None) -> dict | None:
    """Which observation an error is about (agreement, KPI and date as sent)."""
    record = records[index] if isinstance(index, int) and 0 <= index < len(records) else None
    if not isinstance(record, dict):
        return None
    return {name: shown(record[name]) if name in record else None
            for name in ("agreement", "kpi", "date")}


def _result(request: HttpRequest, batch: ImportBatch, *, replayed: bool,
            records: list) -> JsonResponse:
    url = request.build_absolute_uri(reverse("import_batch", args=[batch.pk]))
    if batch.status == ImportStatus.SUCCEEDED:
        body = {
            "batch": batch.pk, "status": batch.status, "replayed": replayed,
            "rows": batch.rows_total, "inserted": batch.inserted, "updated": batch.updated,
            "unchanged": batch.unchanged, "url": url,
        }
        response = JsonResponse(body, status=200 if replayed else 201)
        response["Location"] = url
        response["Cache-Control"] = "no-store"
        return response
    errors = [
        {"index": error.get("row"), "field": error.get("column"),
         "message": error.get("message", ""), "value": error.get("value", ""),
         "observation": _named(records, error.get("row"))}
        for error in batch.errors or []
    ]
    count = batch.error_count
    return _problem(
        422, "invalid_observations",
        f"{count:,} problem{'s' if count != 1 else ''} in {batch.rows_total:,} "
        "observations; nothing was imported.",
        batch=batch.pk, status=batch.status, error_count=count, errors=errors,
    )


def _in_progress(batch: ImportBatch | None) -> JsonResponse:
    extra = {"batch": batch.pk} if batch is not None else {}
    response = _problem(
        409, "in_progress",
        "A request with this Idempotency-Key is still being imported. Send the same request "
        f"again after {IN_PROGRESS_RETRY_SECONDS} seconds to get its result; nothing was "
        "imported by this one.", **extra,
    )
    response["Retry-After"] = str(IN_PROGRESS_RETRY_SECONDS)
    return response


@csrf_exempt
def observations_api(request: HttpRequest) -> HttpResponse:
    """POST /api/v1/observations: import observations, all or none (see docs/api.md)."""
    if request.method != "POST":
        response = _problem(405, "method_not_allowed", "Use POST.")
        response["Allow"] = "POST"
        return response
    authorization = request.headers.get("Authorization", "")
    token = api_token_authenticate(authorization=authorization)
    if token is None:
        if not authorization:
            return _unauthorized("Send your API token: Authorization: Bearer <key>.",
                                 token_given=False)
        return _unauthorized("The API token is unknown or revoked, or its user is inactive.",
                             token_given=True)
    user = token.user
    try:
        import_uploader(user=user)
    except ImportNotAllowed as refused:
        return _problem(403, "forbidden", str(refused))
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        return _problem(400, "invalid_idempotency_key",
                        "The Idempotency-Key header must be 1 to 128 printable ASCII "
                        "characters without spaces, e.g. a UUID.")
    observations = _read_observations(request)
    if isinstance(observations, HttpResponse):
        return observations
    api_token_used(token=token)
    started = timezone.now()
    try:
        batch = observations_import_records(
            records=observations, user=user, idempotency_key=idempotency_key
        )
    except IdempotencyConflict as conflict:
        return _problem(409, "idempotency_conflict", str(conflict))
    except ImportNotAllowed as refused:
        return _problem(403, "forbidden", str(refused))
    except IntegrityError:
        # A concurrent request with this key held it and has just let it go (it failed):
        # the next retry goes through.
        return _in_progress(None)
    if batch.status in (ImportStatus.PENDING, ImportStatus.RUNNING):
        # Our own import always returns finished: this is the first request with the key,
        # still running. Neither accepted nor rejected yet: ask the client to come back.
        return _in_progress(batch)
    # The service answers a repeated key with the first batch, made before this request.
    replayed = batch.created_at < started
    if not replayed:
        audit_record(
            action=AuditAction.IMPORT, request=request, user=user, partner=batch.partner,
            target=f"import batch {batch.pk}",
            detail={"step": "api", "token": token.prefix, "status": batch.status,
                    "rows": batch.rows_total, "inserted": batch.inserted,
                    "updated": batch.updated, "errors": batch.error_count},
        )
    return _result(request, batch, replayed=replayed, records=observations)
