"""The Reconciliation page in a real browser, for a host manager at a desktop's width and a
partner viewer on a phone: the filters swap the results and push the URL, sorting by a column,
no console error, no page wider than the window, no serious or critical axe-core violation
(checked after every navigation and before every screenshot). Screenshots go to /tmp/pp-shots/
for a human to look at."""

import pytest

from partnerships.models import KPIDefinition
from scoring.services import scoring_run_inline
from tests.browser import DESKTOP, PHONE, SHOTS, horizontal_overflow
from tests.conftest import write_observations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def disagreeing_program(settings, acme_agreement, globex_agreement, kpis, host_manager,
                        acme_viewer):
    """March: ACME's revenue 100 (host) against 112.5 (partner), its defect rate reported by
    the host only; GLOBEX's defect rate 5 against 6.5 (± 0.5)."""
    settings.TWO_FACTOR_REQUIRED_FOR_HOST = False
    KPIDefinition.objects.filter(code="defect_rate").update(tolerance_kind="absolute",
                                                            tolerance=0.5)
    rev, defect = kpis["revenue"], kpis["defect_rate"]
    write_observations([
        (acme_agreement, rev, "host", "2025-03-10", 100),
        (acme_agreement, rev, "partner", "2025-03-10", 112.5),
        (acme_agreement, defect, "host", "2025-03-10", 4),
        (globex_agreement, rev, "host", "2025-03-10", 80),
        (globex_agreement, defect, "partner", "2025-03-10", 5),
        (globex_agreement, defect, "host", "2025-03-10", 6.5),
    ])
    scoring_run_inline()


def log_in(page, live_server, username: str) -> None:
    page.context.clear_cookies()
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-" + username)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/")


def shoot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"reconciliation-{name}-{page.viewport_size['width']}.png"),
                    full_page=True)
    assert horizontal_overflow(page) <= 0, f"{page.url} scrolls sideways"


def test_host_filters_and_sorts_the_disagreements(page, live_server, disagreeing_program):
    log_in(page, live_server, "manager")
    page.set_viewport_size(DESKTOP)
    page.get_by_role("navigation", name="Main").get_by_role("link",
                                                            name="Reconciliation").click()
    results = page.locator("#reconciliation-results")
    assert "3 disagreements in 2025-03" in results.locator("h2").inner_text()
    assert "+12.5 %" in results.inner_text()
    shoot(page, "host")

    page.get_by_label("Kind").select_option("only_other")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/reconciliation/?*kind=only_other*")
    assert results.locator("tbody tr").count() == 1
    assert "not reported" in results.inner_text()

    page.goto(live_server.url + "/reconciliation/?month=2025-03")
    results.get_by_role("link", name="Partner", exact=True).click()
    page.wait_for_url("**sort=partner*")
    assert results.locator("tbody th > a").all_inner_texts() == [
        "ACME-CM-2025", "ACME-CM-2025", "GLOBEX-REF-2025"]
    results.get_by_role("link", name="Partner ↑", exact=True).click()
    page.wait_for_url("**sort=-partner*")
    assert results.locator("tbody th > a").first.inner_text() == "GLOBEX-REF-2025"
    shoot(page, "host-sorted")
    assert page.problems == []


def test_partner_viewer_sees_their_own_disagreements_on_a_phone(page, live_server,
                                                                 disagreeing_program):
    log_in(page, live_server, "acme-viewer")
    page.set_viewport_size(PHONE)
    page.goto(live_server.url + "/reconciliation/")
    text = page.locator("#reconciliation-results").inner_text()
    assert "ACME-CM-2025" in text and "GLOBEX" not in text
    assert "2 disagreements in 2025-03" in text
    shoot(page, "partner")
    page.goto(live_server.url + "/agreements/ACME-CM-2025/?month=2025-03")
    page.get_by_role("link", name="2 disagreements between the two sides in 2025-03").click()
    page.wait_for_url("**/reconciliation/?month=2025-03&agreement=ACME-CM-2025")
    shoot(page, "partner-agreement")
    assert page.problems == []
