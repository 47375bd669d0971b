"""What every request meets first: the body limit, /healthz, and the headers of every answer."""

from pathlib import Path

import pytest
import yaml
from django.core.exceptions import RequestDataTooBig
from django.test import Client
from django.test.client import FakePayload

from config.edge import BoundedUploadHandler
from partnerships.models import ImportBatch

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
HUGE = 500 * 1024 * 1024


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def post_declaring(client: Client, path: str, length: int, **headers):
    """A POST that declares `length` bytes but carries a few: FakePayload fails the test if
    anything tries to read more than it carries, so a 413 proves nothing was read."""
    body = b"--x\r\n"
    return client.generic(
        "POST", path, data=b"", content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(length), **{"wsgi.input": FakePayload(body)}, headers=headers,
    )


def test_an_anonymous_huge_upload_is_refused_before_it_is_read(tmp_path):
    response = post_declaring(Client(), "/imports/upload/", HUGE)

    assert response.status_code == 413
    assert "Request too large" in response.content.decode()
    assert ImportBatch.objects.count() == 0
    assert not (tmp_path / "media").exists()


def test_a_signed_in_htmx_upload_too_large_is_shown_in_the_problem_area(host_manager):
    client = Client()
    client.force_login(host_manager)
    response = post_declaring(client, "/imports/upload/", HUGE, **{"HX-Request": "true"})

    assert response.status_code == 413
    assert response["HX-Retarget"] == "#request-problem"
    assert 'role="alert"' in response.content.decode()
    assert "at most 53 MB can be sent" in response.content.decode()
    page = client.get("/imports/upload/").content.decode()
    assert 'id="request-problem"' in page


def test_a_huge_api_body_is_refused_with_json(settings):
    response = post_declaring(Client(), "/api/v1/observations", settings.REQUEST_BODY_MAX_BYTES + 1)

    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert response.json()["max_bytes"] == settings.REQUEST_BODY_MAX_BYTES


def test_a_body_at_the_limit_passes_the_middleware(settings):
    settings.REQUEST_BODY_MAX_BYTES = 10
    response = Client().generic("POST", "/login/", data=b"username=a", content_type=
                                "application/x-www-form-urlencoded")
    assert response.status_code != 413


@pytest.mark.parametrize(("limit", "shown"), [(512, "512 bytes"), (5_000, "5.0 kB"),
                                             (52_428_800, "52 MB"), (3 * 10**9, "3.0 GB")])
def test_the_limit_is_said_in_units_people_read(settings, limit, shown):
    settings.REQUEST_BODY_MAX_BYTES = limit
    response = post_declaring(Client(), "/imports/upload/", limit + 1)
    assert f"at most {shown} can be sent" in response.content.decode()


def test_a_malformed_content_length_is_refused():
    response = Client().generic("POST", "/login/", data=b"", CONTENT_LENGTH="12x")
    assert response.status_code == 400


def test_the_upload_handler_stops_a_stream_past_the_limit(settings):
    settings.REQUEST_BODY_MAX_BYTES = 100
    handler = BoundedUploadHandler()
    handler.handle_raw_input(None, {}, 0, b"x")
    assert handler.receive_data_chunk(b"a" * 60, 0) == b"a" * 60
    with pytest.raises(RequestDataTooBig):
        handler.receive_data_chunk(b"a" * 60, 60)


def test_without_the_middleware_the_stream_guard_refuses_the_file(settings, host_manager):
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE
                           if name != "config.edge.RequestBodyLimitMiddleware"]
    settings.REQUEST_BODY_MAX_BYTES = 2000
    client = Client(raise_request_exception=False)
    client.force_login(host_manager)
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("big.csv", b"agreement,kpi,date,value\n" + b"x" * 5000)
    response = client.post("/imports/upload/", {"file": upload})

    assert response.status_code == 400
    assert ImportBatch.objects.count() == 0


# ---- /healthz ----------------------------------------------------------------------------------


def test_health_answers_without_sign_in_with_each_check():
    response = Client().get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["task_queue"] in ("ok", "in-process")
    assert response["Cache-Control"] == "no-store"


def test_health_answers_with_production_host_and_https_settings(settings):
    # The container's check: plain HTTP to 127.0.0.1, a host production does not allow.
    settings.ALLOWED_HOSTS = ["pp.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    response = Client().get("/healthz", HTTP_HOST="127.0.0.1:8000")

    assert response.status_code == 200
    other = Client().get("/login/", HTTP_HOST="127.0.0.1:8000")
    assert other.status_code == 400  # everything else keeps the host check


def test_health_is_503_when_the_task_queue_is_unreachable(settings):
    from config.celery import app

    previous = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager = False
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    settings.HEALTH_BROKER_TIMEOUT = 1
    try:
        response = Client().get("/healthz")
    finally:
        app.conf.task_always_eager, app.conf.broker_url = previous

    assert response.status_code == 503
    assert response.json()["task_queue"] == "unreachable"
    assert response.json()["database"] == "ok"


def test_the_compose_health_check_calls_healthz():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    check = " ".join(compose["services"]["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in check


# ---- Headers -----------------------------------------------------------------------------------


def test_signed_in_pages_are_private_and_never_stored(host_manager):
    client = Client()
    client.force_login(host_manager)
    for path in ("/", "/portfolio/", "/imports/upload/"):
        response = client.get(path)
        assert response.status_code == 200, path
        directives = {part.strip() for part in response["Cache-Control"].split(",")}
        assert {"private", "no-store"} <= directives, (path, directives)
        assert "camera=()" in response["Permissions-Policy"]


def test_every_answer_has_a_permissions_policy_and_the_log_in_page_too():
    response = Client().get("/login/")
    assert "geolocation=()" in response["Permissions-Policy"]
    assert "microphone=()" in response["Permissions-Policy"]
