"""The metrics API: tokens, the all-or-nothing import, idempotency, every refusal, the
OpenAPI description, and the page where users make and revoke their tokens."""

import hashlib
import json
import re

import pytest
from django.test import Client
from django.utils import timezone

from partnerships.models import (
    ApiToken,
    AuditEvent,
    ImportBatch,
    KPIDefinition,
    MetricObservation,
    ProgramMonth,
    Role,
)
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

URL = "/api/v1/observations"
GOOD = [
    {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-31", "value": 40},
    {"agreement": "ACME-CM-2025", "kpi": "defect_rate", "date": "2025-01-31", "value": 3.5,
     "side": "partner", "note": "support desk"},
]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def acme_editor(django_user_model, acme):
    return make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)


def token_for(user, name: str = "CRM") -> str:
    from partnerships.tokens import api_token_create

    return api_token_create(user=user, name=name)[1]


def post(body, key: str | None = None, *, idempotency_key: str | None = None,
         content_type: str = "application/json", client: Client | None = None):
    headers = {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return (client or Client()).post(URL, data, content_type=content_type, headers=headers)


def stored() -> set[tuple]:
    return set(MetricObservation.objects.values_list(
        "agreement__code", "kpi__code", "side", "value"))


# ---- Importing ---------------------------------------------------------------------------------


def test_good_observations_are_imported_201_with_counts(host_manager, acme_agreement):
    key = token_for(host_manager)
    response = post({"observations": GOOD}, key)

    assert response.status_code == 201
    body = response.json()
    batch = ImportBatch.objects.get()
    assert body == {
        "batch": batch.pk, "status": "succeeded", "replayed": False, "rows": 2,
        "inserted": 2, "updated": 0, "unchanged": 0,
        "url": f"http://testserver/imports/{batch.pk}/",
    }
    assert response["Location"] == body["url"]
    assert stored() == {("ACME-CM-2025", "revenue", "host", 40.0),
                        ("ACME-CM-2025", "defect_rate", "partner", 3.5)}
    assert (batch.source, batch.user) == ("api", host_manager)
    event = AuditEvent.objects.get(action="import", detail__step="api")
    assert event.detail["inserted"] == 2
    assert ApiToken.objects.get().last_used_at is not None


def test_the_same_values_again_count_as_unchanged(host_manager, acme_agreement):
    key = token_for(host_manager)
    post({"observations": GOOD}, key)
    again = post({"observations": [GOOD[0], {**GOOD[1], "value": 4}]}, key)
    assert again.status_code == 201
    assert (again.json()["updated"], again.json()["unchanged"]) == (1, 1)


def test_bad_items_422_each_named_and_nothing_written(host_manager, acme_agreement):
    key = token_for(host_manager)
    observations = [
        GOOD[0],
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "31/01/2025", "value": 1},
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-30", "value": "12"},
        {"agreement": "NOPE", "kpi": "revenue", "date": "2025-01-30", "value": 1},
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-29", "value": 1,
         "colour": "red"},
    ]
    response = post({"observations": observations}, key)

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_observations" and body["status"] == "failed"
    assert body["error_count"] == 4
    assert "nothing was imported" in body["message"]
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "date"), (2, "value"), (3, "agreement"), (4, "colour")]
    assert body["errors"][1]["message"] == "must be a JSON number, not a string"
    assert not MetricObservation.objects.exists()


def test_implausible_values_422_with_the_rule_each_breaks(host_manager, acme_agreement, kpis):
    KPIDefinition.objects.filter(pk=kpis["defect_rate"].pk).update(
        value_type="percentage", minimum=0, maximum=100)
    key = token_for(host_manager)
    observations = [
        GOOD[0],
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-30", "value": 1.7e308},
        {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-29",
         "value": -1.9e255},
        {"agreement": "ACME-CM-2025", "kpi": "defect_rate", "date": "2025-01-30",
         "side": "partner", "value": 100.5},
    ]
    response = post({"observations": observations}, key)

    assert response.status_code == 422
    assert [(e["index"], e["field"], e["message"]) for e in response.json()["errors"]] == [
        (1, "value", "1.7e+308 is beyond the allowed magnitude of 1,000,000,000,000"),
        (2, "value", "-1.9e+255 is beyond the allowed magnitude of 1,000,000,000,000"),
        (3, "value", "above the maximum 100 of Defect rate (%)"),
    ]
    assert not MetricObservation.objects.exists()


def test_an_observation_in_a_closed_month_is_refused_422_naming_it_and_the_month(
    host_manager, acme_agreement
):
    ProgramMonth.objects.create(month="2025-01", closed=True, closed_at=timezone.now())
    key = token_for(host_manager)
    february = {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-02-03", "value": 9}
    response = post({"observations": [february, *GOOD]}, key)

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_observations" and body["error_count"] == 2
    assert body["errors"] == [
        {"index": 1, "field": "date", "message": "2025-01 is closed", "value": "2025-01-31",
         "observation": {"agreement": "ACME-CM-2025", "kpi": "revenue", "date": "2025-01-31"}},
        {"index": 2, "field": "date", "message": "2025-01 is closed", "value": "2025-01-31",
         "observation": {"agreement": "ACME-CM-2025", "kpi": "defect_rate",
                         "date": "2025-01-31"}},
    ]
    assert not MetricObservation.objects.exists()
    assert ImportBatch.objects.get().status == "failed"

    # The same agreement's open month goes through.
    assert post({"observations": [february]}, key).status_code == 201
    assert stored() == {("ACME-CM-2025", "revenue", "host", 9.0)}


def test_errors_name_the_observation_as_sent_and_none_for_the_request(host_manager,
                                                                       acme_agreement):
    key = token_for(host_manager)
    response = post({"observations": [{"kpi": "revenue", "date": "2025-01-30", "value": 1},
                                      "not an object"]}, key)
    errors = response.json()["errors"]
    assert [(e["index"], e["observation"]) for e in errors] == [
        (0, {"agreement": None, "kpi": "revenue", "date": "2025-01-30"}), (1, None)]


def test_partner_token_writes_only_its_own_agreements_and_side(
    acme_editor, acme_agreement, globex_agreement
):
    key = token_for(acme_editor)
    foreign = {"agreement": "GLOBEX-REF-2025", "kpi": "defect_rate", "date": "2025-01-31",
               "value": 3}
    host_side = {**GOOD[0], "kpi": "defect_rate", "side": "host"}
    response = post({"observations": [foreign, host_side]}, key)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(0, "agreement"), (1, "side")]
    assert "not one of Acme Corp's agreements" in errors[0]["message"]
    assert not MetricObservation.objects.exists()

    own = post({"observations": [{**GOOD[1], "side": "partner"}]}, key)
    assert own.status_code == 201
    assert stored() == {("ACME-CM-2025", "defect_rate", "partner", 3.5)}
    assert ImportBatch.objects.get(status="succeeded").partner == acme_editor.membership.partner


# ---- Idempotency -------------------------------------------------------------------------------


def test_a_retried_request_imports_once_and_answers_the_same(host_manager, acme_agreement):
    key = token_for(host_manager)
    first = post({"observations": GOOD}, key, idempotency_key="req-7f3a")
    MetricObservation.objects.filter(kpi__code="revenue").update(value=99)  # changed since
    retry = post({"observations": GOOD}, key, idempotency_key="req-7f3a")

    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == {**first.json(), "replayed": True}
    assert ImportBatch.objects.count() == 1
    assert MetricObservation.objects.get(kpi__code="revenue").value == 99  # not re-imported
    assert AuditEvent.objects.filter(action="import", detail__step="api").count() == 1


def test_the_same_key_with_another_body_is_a_conflict(host_manager, acme_agreement):
    key = token_for(host_manager)
    post({"observations": GOOD}, key, idempotency_key="req-1")
    response = post({"observations": GOOD[:1]}, key, idempotency_key="req-1")
    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_conflict"
    assert "different records" in response.json()["message"]
    assert ImportBatch.objects.count() == 1


def test_a_failed_request_frees_its_key_for_the_corrected_one(host_manager, acme_agreement):
    key = token_for(host_manager)
    bad = post({"observations": [{**GOOD[0], "value": "x"}]}, key, idempotency_key="k")
    good = post({"observations": GOOD}, key, idempotency_key="k")
    assert (bad.status_code, good.status_code) == (422, 201)


def test_a_malformed_idempotency_key_is_refused(host_manager, acme_agreement):
    response = post({"observations": GOOD}, token_for(host_manager),
                    idempotency_key="x" * 129)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_idempotency_key"


# ---- Refusals -----------------------------------------------------------------------------------


def test_no_token_or_a_wrong_one_is_401(host_manager, acme_agreement):
    missing = post({"observations": GOOD})
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    token_for(host_manager)
    for key in ("pp_wrong", "", "x" * 500):
        response = post({"observations": GOOD}, key)
        assert response.status_code == 401, key
    basic = Client().post(URL, json.dumps({"observations": GOOD}),
                          content_type="application/json",
                          headers={"Authorization": "Basic bWFuYWdlcjpwdw=="})
    assert basic.status_code == 401
    assert 'error="invalid_token"' in basic["WWW-Authenticate"]
    assert not ImportBatch.objects.exists()


def test_revoked_tokens_and_inactive_users_are_401(host_manager, acme_agreement):
    revoked, live = token_for(host_manager, "old"), token_for(host_manager, "new")
    ApiToken.objects.filter(name="old").update(revoked_at=timezone.now())
    assert post({"observations": GOOD}, revoked).status_code == 401
    type(host_manager).objects.filter(pk=host_manager.pk).update(is_active=False)
    assert post({"observations": GOOD}, live).status_code == 401
    assert not ImportBatch.objects.exists()


def test_a_session_cookie_is_not_enough(host_manager, acme_agreement):
    client = Client(enforce_csrf_checks=True)
    client.force_login(host_manager)
    assert post({"observations": GOOD}, client=client).status_code == 401


def test_the_endpoint_needs_no_csrf_token(host_manager, acme_agreement):
    client = Client(enforce_csrf_checks=True)
    assert post({"observations": GOOD}, token_for(host_manager), client=client).status_code == 201


def test_a_viewers_token_is_403(acme_viewer, acme_agreement):
    response = post({"observations": GOOD}, token_for(acme_viewer))
    assert response.status_code == 403
    assert "Partner viewers may not import" in response.json()["message"]


@pytest.mark.parametrize(("body", "content_type", "status", "code"), [
    ("{not json", "application/json", 400, "invalid_json"),
    ("[1, 2]", "application/json", 400, "invalid_body"),
    ('{"observations": {}}', "application/json", 400, "invalid_body"),
    ('{"observations": []}', "application/json", 400, "invalid_body"),
    ('{"observations": [], "extra": 1}', "application/json", 400, "invalid_body"),
    (b"\xff\xfe{}", "application/json", 400, "invalid_json"),
    ("observations=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
])
def test_malformed_bodies_are_refused(host_manager, acme_agreement, body, content_type,
                                      status, code):
    response = post(body, token_for(host_manager), content_type=content_type)
    assert response.status_code == status
    assert response.json()["error"] == code
    assert not ImportBatch.objects.exists()


def test_too_many_observations_or_too_big_a_body_is_413(host_manager, acme_agreement,
                                                        settings):
    key = token_for(host_manager)
    settings.METRICS_API_MAX_OBSERVATIONS = 1
    response = post({"observations": GOOD}, key)
    assert response.status_code == 413 and response.json()["max_observations"] == 1
    settings.METRICS_API_MAX_OBSERVATIONS = 100
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    assert post({"observations": GOOD}, key).status_code == 413
    assert not ImportBatch.objects.exists()


def test_only_post_is_allowed(host_manager):
    response = Client().get(URL)
    assert response.status_code == 405 and response["Allow"] == "POST"


# ---- The description --------------------------------------------------------------------------


def test_openapi_document_describes_the_endpoint(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert {"title", "version"} <= document["info"].keys()
    operation = document["paths"]["/api/v1/observations"]["post"]
    assert {"201", "200", "400", "401", "403", "409", "413", "422"} <= operation[
        "responses"].keys()
    assert operation["parameters"][0]["name"] == "Idempotency-Key"
    schema_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schemas = document["components"]["schemas"]
    batch = schemas[schema_ref.rsplit("/", 1)[1]]
    assert batch["required"] == ["observations"]
    item = schemas[batch["properties"]["observations"]["items"]["$ref"].rsplit("/", 1)[1]]
    assert item["required"] == ["agreement", "kpi", "date", "value"]
    assert set(item["properties"]) == {"agreement", "kpi", "date", "value", "side", "note"}
    assert document["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    # Every reference resolves.
    text = json.dumps(document)
    for ref in re.findall(r'"\$ref": "#/components/schemas/(\w+)"', text):
        assert ref in schemas


def test_openapi_example_is_accepted_by_the_endpoint(host_manager, acme_agreement, client):
    document = client.get("/api/openapi.json").json()
    operation = document["paths"]["/api/v1/observations"]["post"]
    example = operation["requestBody"]["content"]["application/json"]["example"]
    assert post(example, token_for(host_manager)).status_code == 201


# ---- The token page ----------------------------------------------------------------------------


def test_user_makes_a_token_sees_its_key_once_and_it_works(acme_editor, acme_agreement):
    client = Client()
    client.force_login(acme_editor)
    response = client.post("/account/api-tokens/", {"name": "ERP export"}, follow=True)
    assert response.redirect_chain == [("/account/api-tokens/", 302)]
    assert "no-store" in response["Cache-Control"]
    key = re.search(r'id="new-token-key"[^>]*>(pp_[\w-]+)<', response.text)[1]
    token = ApiToken.objects.get()
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in json.dumps(list(ApiToken.objects.values()), default=str)
    assert key not in str(dict(client.session))  # forgotten once shown
    assert token.prefix == key[:12]

    listing = client.get("/account/api-tokens/").text  # shown once only
    assert key not in listing and 'id="new-token-key"' not in listing
    assert "ERP export" in listing and f"{key[:12]}…" in listing
    assert post({"observations": [GOOD[1]]}, key).status_code == 201

    revoked = client.post("/account/api-tokens/revoke/", {"token": token.pk, "confirm": "yes"})
    assert revoked.status_code == 302
    assert ApiToken.objects.get().revoked_at is not None
    assert post({"observations": [GOOD[1]]}, key).status_code == 401


def test_users_cannot_revoke_anothers_token(acme_editor, host_manager):
    token_for(host_manager)
    client = Client()
    client.force_login(acme_editor)
    client.post("/account/api-tokens/revoke/",
                {"token": ApiToken.objects.get().pk, "confirm": "yes"})
    assert ApiToken.objects.get().revoked_at is None
    assert "no-store" in client.get("/account/api-tokens/")["Cache-Control"]


def test_the_token_page_records_who_made_and_revoked_a_token_from_where(acme_editor, acme):
    client = Client(REMOTE_ADDR="198.51.100.7")
    client.force_login(acme_editor)
    client.post("/account/api-tokens/", {"name": "ERP export"})
    token = ApiToken.objects.get()
    client.post("/account/api-tokens/revoke/", {"token": token.pk, "confirm": "yes"})

    events = AuditEvent.objects.filter(detail__token=token.prefix).order_by("pk")
    assert [(event.detail["step"], event.user, event.partner, event.ip_address)
            for event in events] == [("token created", acme_editor, acme, "198.51.100.7"),
                                     ("token revoked", acme_editor, acme, "198.51.100.7")]


def test_the_token_page_refuses_a_token_beyond_the_limit_and_says_why(host_manager):
    from partnerships.tokens import MAX_ACTIVE_TOKENS

    for number in range(MAX_ACTIVE_TOKENS):
        token_for(host_manager, name=f"token {number}")
    client = Client()
    client.force_login(host_manager)
    response = client.post("/account/api-tokens/", {"name": "one more"})

    assert response.status_code == 200
    assert f"You have {MAX_ACTIVE_TOKENS} live tokens already" in response.text
    assert ApiToken.objects.count() == MAX_ACTIVE_TOKENS
