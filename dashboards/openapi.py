"""The OpenAPI 3.1 description of the metrics API, served at /api/openapi.json (docs/api.md)."""

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from partnerships.importers import MAX_ERRORS, MAX_NOTE_CHARS

ERROR_CODES = {
    "400": "The body or a header is malformed (not JSON, no `observations` array, an empty "
           "array, a bad Idempotency-Key). Nothing was imported.",
    "401": "No token, or an unknown or revoked token, or its user is deactivated.",
    "403": "The token's user may not import (a partner viewer, or a user without a role).",
    "409": "`idempotency_conflict`: the Idempotency-Key was used before by this user for "
           "different observations. `in_progress`: the first request with this key is still "
           "being imported; nothing was imported by this one: send it again after the "
           "`Retry-After` header's seconds.",
    "413": "Too many observations or too large a body: split the set into several requests.",
    "415": "The body is not sent as `application/json`.",
}


def _error_schema() -> dict:
    return {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "A stable code for programs.",
                      "examples": ["invalid_body", "unauthorized", "idempotency_conflict"]},
            "message": {"type": "string", "description": "What is wrong, for people."},
        },
    }


def openapi_document(*, server_url: str) -> dict:
    """The API's description; `server_url` is where this site answers (no trailing slash)."""
    max_observations = settings.METRICS_API_MAX_OBSERVATIONS
    observation = {
        "type": "object",
        "additionalProperties": False,
        "required": ["agreement", "kpi", "date", "value"],
        "properties": {
            "agreement": {"type": "string", "description": "The agreement's code.",
                          "examples": ["ACME-CM-2025"]},
            "kpi": {"type": "string", "description": "The KPI definition's code.",
                    "examples": ["revenue"]},
            "date": {"type": "string", "format": "date",
                     "pattern": r"^\d{4}-\d{2}-\d{2}$",
                     "description": "ISO date YYYY-MM-DD: not in the future, within the "
                                    "agreement's start and end."},
            "value": {"type": "number", "minimum": -settings.METRIC_VALUE_MAX_ABS,
                      "maximum": settings.METRIC_VALUE_MAX_ABS,
                      "description": "A finite JSON number in the KPI's unit (not a string), "
                                     "within the KPI's allowed values: a count a whole "
                                     "number ≥ 0, and its minimum and maximum if it states "
                                     "them (the KPI library lists them)."},
            "side": {"type": "string", "enum": ["host", "partner"],
                     "description": "Who reports the value. Default: the token user's side. "
                                    "Partner tokens may only send `partner`."},
            "note": {"type": "string", "maxLength": MAX_NOTE_CHARS},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Partnership Performance metrics API",
            "version": "1.0.0",
            "summary": "Import metric observations of partnership agreements.",
            "description": (
                "Send observations of KPIs of agreements, as a metric file would. A request is "
                "all or nothing: one bad observation rejects the request, lists every problem "
                "and writes nothing. Writing the same key (agreement, KPI, side, date) again "
                "replaces the value; the old value stays in the history. Host tokens may write "
                "both sides of every agreement; a partner editor's token only its own "
                "partner's agreements and the partner side. See docs/api.md."
            ),
        },
        "servers": [{"url": server_url}],
        "security": [{"apiToken": []}],
        "paths": {
            "/api/v1/observations": {
                "post": {
                    "operationId": "importObservations",
                    "summary": "Import observations (all or nothing)",
                    "parameters": [{
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": (
                            "Any unique string (a UUID) of 1 to 128 printable ASCII characters. "
                            "A retry with the same key and the same body imports nothing again "
                            "and answers 200 with the first result; the same key with another "
                            "body is refused with 409 `idempotency_conflict`; a retry while the "
                            "first request still runs answers 409 `in_progress` with "
                            "`Retry-After`. A request that failed validation frees its key."
                        ),
                        "schema": {"type": "string", "minLength": 1, "maxLength": 128,
                                   "pattern": r"^[\x21-\x7e]+$"},
                    }],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/ObservationBatch"},
                            "example": {"observations": [
                                {"agreement": "ACME-CM-2025", "kpi": "revenue",
                                 "date": "2025-03-31", "value": 41250.0},
                                {"agreement": "ACME-CM-2025", "kpi": "defect_rate",
                                 "date": "2025-03-31", "value": 3.5, "side": "partner",
                                 "note": "from the support desk"},
                            ]},
                        }},
                    },
                    "responses": {
                        "201": {"description": "Imported.",
                                "headers": {"Location": {
                                    "description": "The import's page.",
                                    "schema": {"type": "string", "format": "uri"}}},
                                "content": {"application/json": {"schema": {
                                    "$ref": "#/components/schemas/ImportResult"}}}},
                        "200": {"description": "A replay: this Idempotency-Key was imported "
                                               "before; nothing was written again.",
                                "content": {"application/json": {"schema": {
                                    "$ref": "#/components/schemas/ImportResult"}}}},
                        "422": {"description": "Some observations are invalid; nothing was "
                                               "imported. Every problem is listed.",
                                "content": {"application/json": {"schema": {
                                    "$ref": "#/components/schemas/ValidationFailed"}}}},
                        **{
                            code: {"description": text, "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Error"}}},
                                **({"headers": {"Retry-After": {
                                    "description": "With `in_progress`: seconds to wait "
                                                   "before sending the request again.",
                                    "schema": {"type": "integer"}}}} if code == "409" else {})}
                            for code, text in ERROR_CODES.items()
                        },
                    },
                },
            },
        },
        "components": {
            "securitySchemes": {
                "apiToken": {
                    "type": "http", "scheme": "bearer", "bearerFormat": "pp_…",
                    "description": "A personal API token, made on the site's “API tokens” "
                                   "page; its key is shown once.",
                },
            },
            "schemas": {
                "Observation": observation,
                "ObservationBatch": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["observations"],
                    "properties": {"observations": {
                        "type": "array", "minItems": 1, "maxItems": max_observations,
                        "items": {"$ref": "#/components/schemas/Observation"},
                    }},
                },
                "ImportResult": {
                    "type": "object",
                    "required": ["batch", "status", "replayed", "rows", "inserted", "updated",
                                 "unchanged", "url"],
                    "properties": {
                        "batch": {"type": "integer", "description": "The import batch's id."},
                        "status": {"const": "succeeded"},
                        "replayed": {"type": "boolean"},
                        "rows": {"type": "integer"},
                        "inserted": {"type": "integer"},
                        "updated": {"type": "integer",
                                    "description": "Keys whose value or note changed."},
                        "unchanged": {"type": "integer",
                                      "description": "Keys sent again with the same value."},
                        "url": {"type": "string", "format": "uri"},
                    },
                },
                "Error": _error_schema(),
                "ValidationFailed": {
                    "allOf": [{"$ref": "#/components/schemas/Error"}],
                    "type": "object",
                    "required": ["batch", "status", "error_count", "errors"],
                    "properties": {
                        "batch": {"type": "integer",
                                  "description": "The failed import batch, kept for the "
                                                 "record."},
                        "status": {"const": "failed"},
                        "error_count": {"type": "integer",
                                        "description": f"Every problem found; at most "
                                                       f"{MAX_ERRORS:,} are listed."},
                        "errors": {"type": "array", "items": {
                            "$ref": "#/components/schemas/ItemError"}},
                    },
                },
                "ItemError": {
                    "type": "object",
                    "required": ["index", "field", "message"],
                    "properties": {
                        "index": {"type": ["integer", "null"],
                                  "description": "The 0-based position in `observations`; "
                                                 "null for the request as a whole."},
                        "field": {"type": ["string", "null"],
                                  "description": "The field at fault; null when the problem "
                                                 "is the whole observation (a duplicate "
                                                 "key)."},
                        "message": {"type": "string"},
                        "value": {"type": "string",
                                  "description": "The value sent, as text (cut to 80 "
                                                 "characters)."},
                        "observation": {
                            "type": ["object", "null"],
                            "description": "The observation at fault: its agreement, kpi "
                                           "and date as sent (null for the request as a "
                                           "whole).",
                            "properties": {name: {"type": ["string", "null"]}
                                           for name in ("agreement", "kpi", "date")},
                        },
                    },
                },
            },
        },
    }


@require_GET
def openapi_json(request: HttpRequest) -> JsonResponse:
    server_url = request.build_absolute_uri("/").rstrip("/")
    return JsonResponse(openapi_document(server_url=server_url),
                        json_dumps_params={"indent": 2, "ensure_ascii": False})
