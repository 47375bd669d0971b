"""The what-if page in a real browser, at a desktop's and a phone's width: a manager simulates
every target +10 % with a hysteresis of 1, reads the tier moves and the payout difference,
sorts the agreements, and saves after the confirmation. No console error, no page wider than
the window, no serious or critical axe-core violation (tests/browser.py `watch`). Screenshots
go to /tmp/pp-shots/."""

import pytest

from partnerships.models import AuditEvent, ProgramSettings
from tests.browser import DESKTOP, SHOTS, horizontal_overflow, postgresql_only_mark

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              postgresql_only_mark()]

PHONE_375 = {"width": 375, "height": 812}


@pytest.fixture
def demo_scored(transactional_db):
    from partnerships.demo import demo_generate
    from scoring.services import scoring_run_inline

    demo_generate(partners=4, agreements=12, months=8, kpis_per_agreement=4,
                  observations_per_month=1, seed=7, password="pw-demo")
    scoring_run_inline()


def log_in(page, live_server, username: str) -> None:
    page.context.clear_cookies()
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/")


def shot(page, name: str) -> None:
    width = page.viewport_size["width"]
    page.screenshot(path=str(SHOTS / f"whatif-{name}-{width}.png"), full_page=True)
    assert horizontal_overflow(page) <= 0, f"{name} scrolls sideways at {width} px"


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE_375], ids=["desktop", "phone"])
def test_a_manager_simulates_then_saves_after_the_confirmation(page, live_server, demo_scored,
                                                               viewport):
    SHOTS.mkdir(exist_ok=True)
    page.set_viewport_size(viewport)
    log_in(page, live_server, "manager")
    page.get_by_role("link", name="What-if").click()
    page.wait_for_url(live_server.url + "/whatif/")
    shot(page, "form")

    page.get_by_label("Target").fill("+10%")
    page.get_by_label("Hysteresis (months)").fill("1")
    page.get_by_role("button", name="Simulate").click()
    page.locator(".whatif-matrix").wait_for()
    assert "agreements change tier in" in page.locator(".whatif-figures").inner_text()
    assert "target=%2B10%25" in page.url  # the simulation is in the address, to share
    shot(page, "result")

    page.get_by_role("link", name="agreement code").click()
    page.locator("strong[aria-current]", has_text="agreement code").wait_for()
    codes = page.locator(".whatif-table tbody th a").all_inner_texts()
    assert codes == sorted(codes)

    page.get_by_role("button", name="Save these changes…").click()
    question = page.locator(".confirm")
    question.wait_for()
    assert "Save these changes?" in question.inner_text()
    assert "Closed months never change" in question.inner_text()
    shot(page, "confirm")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(live_server.url + "/scoring/runs/")
    page.locator(".message--success").wait_for()
    assert ProgramSettings.current().hysteresis == 1
    assert AuditEvent.objects.filter(target="What-if saved for the whole program").exists()
    assert page.problems == []
