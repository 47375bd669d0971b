"""The import preview in a real browser: the per-KPI check and the side to choose for a file
without a side column, and a file with errors refused before any confirmation, at desktop and
phone widths, passing axe-core. Screenshots go to /tmp/pp-shots/."""

import pytest

from partnerships.models import MetricObservation
from tests.browser import (
    DESKTOP,
    PHONE,
    SHOTS,
    accessibility_violations,
    horizontal_overflow,
    log_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def choose(page, name: str, text: str) -> None:
    page.set_input_files("input[type=file]", files=[
        {"name": name, "mimeType": "text/csv", "buffer": text.encode()}])


def look(page, name: str) -> None:
    """Screenshots at both widths; the page fits a phone and passes axe-core at each."""
    assert accessibility_violations(page) == []
    page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    assert horizontal_overflow(page) <= 0
    assert accessibility_violations(page) == []
    page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def test_the_preview_checks_every_row_and_offers_the_side(
    page, live_server, host_manager, acme_agreement
):
    SHOTS.mkdir(exist_ok=True)
    log_in(page, live_server, "manager", "pw-manager")
    page.goto(live_server.url + "/imports/upload/")
    choose(page, "defects.csv", "agreement,kpi,date,value\n"
                                "ACME-CM-2025,defect_rate,2025-01-15,3\n"
                                "ACME-CM-2025,defect_rate,2025-02-15,4\n"
                                "ACME-CM-2025,revenue,2025-02-15,40\n")
    page.get_by_role("button", name="Upload and preview").click()
    page.get_by_role("heading", name="Check defects.csv before importing").wait_for()
    panel = page.locator("#import-panel").inner_text()
    assert "no problem found" in panel
    assert "2 values of defect_rate are host values; the partner's count." in panel
    assert page.get_by_label("Host values").is_checked()
    look(page, "import-preview-side")

    page.get_by_label("Partner values").check()
    page.get_by_role("button", name="Import 3 rows").click()
    page.get_by_text("All 3 rows were imported").wait_for()
    assert set(MetricObservation.objects.values_list("side", flat=True)) == {"partner"}


def test_a_file_with_errors_is_refused_before_confirm(
    page, live_server, host_manager, acme_agreement
):
    SHOTS.mkdir(exist_ok=True)
    log_in(page, live_server, "manager", "pw-manager")
    page.goto(live_server.url + "/imports/upload/")
    choose(page, "six.csv", "agreement,kpi,date,value\n"
                            "ACME-CM-2025,revenue,2025-13-45,10\n"
                            "NO-SUCH-AGREEMENT,revenue,2025-02-15,10\n"
                            "ACME-CM-2025,revenue,2099-01-15,10\n"
                            "ACME-CM-2025,revenue,2025-03-15,\"12,5%\"\n"
                            "ACME-CM-2025,revenue,2025-04-15,\n"
                            "ACME-CM-2025,no_such_kpi,2025-05-15,10\n")
    page.get_by_role("button", name="Upload and preview").click()
    page.get_by_role("heading", name="Nothing was imported from six.csv").wait_for()
    assert page.locator(".error-table tbody tr").count() == 6
    refused = page.get_by_role("button", name="Import refused: 6 problems")
    assert refused.is_disabled()
    look(page, "import-preview-errors")
