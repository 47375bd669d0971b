"""The import pages in a real browser: upload → preview → confirm → result, the error report,
live progress by polling, under the CSP, at desktop and phone widths.

With a live server and eager Celery the import runs on commit inside the confirming request,
so its answer already shows the result; polling is exercised with a batch set running by hand.
Screenshots go to /tmp/pp-shots/ for a human to look at.
"""

import re

import pytest
from django.utils import timezone

from partnerships.models import ImportBatch
from tests.browser import (
    DESKTOP,
    PHONE,
    SHOTS,
    horizontal_overflow,
    log_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


GOOD_CSV = (
    "agreement;kpi;date;value;side;note\n"
    "ACME-CM-2025;revenue;2025-01-15;40;host;\n"
    "ACME-CM-2025;revenue;2025-02-15;-5.25;host;refund after the February campaign\n"
    "ACME-CM-2025;defect_rate;2025-01-15;3.5;partner;<img src=x onerror=alert(1)>\n"
)
BAD_CSV = (
    "agreement,kpi,date,value\n"
    "ACME-CM-2025,revenue,2025-01-15,\"1,234.50\"\n"
    "ACME-CM-2025,revenue,31/01/2025,12\n"
    "GLOBEX-REF-2025,revenue,2025-01-15,=HYPERLINK(\"http://evil.example\")\n"
)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def choose(page, name: str, text: str) -> None:
    page.set_input_files("input[type=file]", files=[
        {"name": name, "mimeType": "text/csv", "buffer": text.encode()}])


def test_upload_preview_confirm_and_result(page, live_server, host_manager, acme_agreement):
    SHOTS.mkdir(exist_ok=True)
    log_in(page, live_server, "manager", "pw-manager")
    page.get_by_role("link", name="Imports", exact=True).click()
    page.get_by_role("link", name="Import a file").click()
    page.wait_for_url(live_server.url + "/imports/upload/")

    choose(page, "march.csv", GOOD_CSV)
    page.get_by_role("button", name="Upload and preview").click()
    page.get_by_role("heading", name="Check march.csv before importing").wait_for()
    batch = ImportBatch.objects.get()
    page.wait_for_url(f"{live_server.url}/imports/{batch.pk}/")  # pushed: a reload keeps it
    assert "semicolon separated" in page.locator("#import-panel").inner_text()
    assert page.locator(".preview-table tbody tr").count() == 3
    # The cell is shown as text; no image element was made from it.
    assert page.get_by_text("<img src=x onerror=alert(1)>").is_visible()
    assert page.locator("#import-panel img").count() == 0
    page.screenshot(path=str(SHOTS / "import-preview-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SHOTS / "import-preview-phone.png"), full_page=True)
    assert horizontal_overflow(page) <= 0
    page.set_viewport_size(DESKTOP)

    page.get_by_role("button", name="Import 3 rows").click()
    page.get_by_text("All 3 rows were imported").wait_for()
    counts = page.locator(".import-counts .kpi-card__value").all_inner_texts()
    assert counts == ["3", "0", "0"]
    assert page.locator("#import-panel[hx-trigger]").count() == 0
    page.screenshot(path=str(SHOTS / "import-result-desktop.png"), full_page=True)

    page.set_viewport_size(PHONE)
    page.reload()
    page.get_by_role("heading", name="Values this import added (3)").wait_for()
    page.screenshot(path=str(SHOTS / "import-batch-phone.png"), full_page=True)
    assert horizontal_overflow(page) <= 0

    page.goto(live_server.url + "/imports/")
    page.screenshot(path=str(SHOTS / "import-history-phone.png"), full_page=True)
    assert horizontal_overflow(page) <= 0
    page.set_viewport_size(DESKTOP)
    page.reload()
    page.screenshot(path=str(SHOTS / "import-history-desktop.png"), full_page=True)
    assert page.problems == []


def test_a_bad_file_shows_the_errors_and_the_report_link_on_a_phone(
    page, live_server, host_manager, acme_agreement
):
    SHOTS.mkdir(exist_ok=True)
    page.set_viewport_size(PHONE)
    log_in(page, live_server, "manager", "pw-manager")
    page.goto(live_server.url + "/imports/upload/")
    page.screenshot(path=str(SHOTS / "import-upload-phone.png"), full_page=True)
    assert horizontal_overflow(page) <= 0

    choose(page, "bad.csv", BAD_CSV)
    page.get_by_role("button", name="Upload and preview").click()
    # Every error before any confirmation: the file is refused and importing disabled.
    page.get_by_role("heading", name="Nothing was imported from bad.csv").wait_for()
    assert page.locator(".error-table tbody tr").count() == 4
    assert page.get_by_role("button", name="Import refused: 4 problems").is_disabled()
    link = page.get_by_role("link", name="Download the error report (CSV)")
    assert re.fullmatch(r"/imports/\d+/errors\.csv", link.get_attribute("href"))
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename.endswith("-errors.csv")
    page.screenshot(path=str(SHOTS / "import-errors-phone.png"), full_page=True)
    assert horizontal_overflow(page) <= 0
    assert page.problems == []


def test_progress_polls_until_the_import_ends(page, live_server, host_manager, acme_agreement):
    log_in(page, live_server, "manager", "pw-manager")
    batch = ImportBatch.objects.create(
        source="upload", side="host", status="running", progress=40, user=host_manager,
        file_name="big.csv",
    )
    page.goto(f"{live_server.url}/imports/{batch.pk}/")
    assert page.locator("#import-panel progress").get_attribute("value") == "40"
    page.screenshot(path=str(SHOTS / "import-progress-desktop.png"), full_page=True)

    ImportBatch.objects.filter(pk=batch.pk).update(progress=75)
    # (A locator, not wait_for_function: that evaluates a string, which the CSP forbids.)
    page.locator('#import-panel progress[value="75"]').wait_for(timeout=5_000)
    ImportBatch.objects.filter(pk=batch.pk).update(
        status="succeeded", progress=100, rows_total=5, inserted=5, finished_at=timezone.now())
    page.get_by_text("All 5 rows were imported").wait_for(timeout=5_000)
    assert page.locator("#import-panel[hx-trigger]").count() == 0
    assert page.problems == []


def test_tokens_page_shows_a_new_key_once_and_a_viewer_is_told_why_not(
    page, live_server, acme_viewer, django_user_model, acme
):
    from partnerships.models import Role
    from tests.conftest import make_user

    SHOTS.mkdir(exist_ok=True)
    make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)
    log_in(page, live_server, "acme-editor", "pw-acme-editor")
    page.goto(live_server.url + "/account/api-tokens/")
    page.get_by_label("Name").fill("ERP nightly export")
    page.get_by_role("button", name="Make a token").click()
    key = page.locator("#new-token-key").inner_text()
    assert key.startswith("pp_")
    page.screenshot(path=str(SHOTS / "api-tokens-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SHOTS / "api-tokens-phone.png"), full_page=True)
    assert horizontal_overflow(page) <= 0
    page.reload()  # a GET: the key is not shown again
    assert page.locator("#new-token-key").count() == 0
    assert page.get_by_text(key).count() == 0
    page.get_by_role("button", name="Revoke ERP nightly export").click()
    page.get_by_role("group", name="Revoke the token “ERP nightly export”").get_by_role(
        "button", name="Revoke").click()
    page.get_by_text("is revoked").wait_for()
    assert page.problems == []

    page.context.clear_cookies()
    log_in(page, live_server, "acme-viewer", "pw-acme-viewer")
    page.get_by_role("link", name="Imports", exact=True).click()
    assert page.get_by_role("link", name="Import a file").count() == 0
    page.goto(live_server.url + "/imports/upload/")
    assert page.get_by_text("Partner viewers may not import metrics").is_visible()
    page.screenshot(path=str(SHOTS / "import-forbidden-phone.png"), full_page=True)
    # The 403 answer itself is expected here (and Chromium logs it as a console error).
    page.problems = [problem for problem in page.problems if "403" not in problem]
    assert page.problems == []
