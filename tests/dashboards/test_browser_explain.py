"""The agreement dashboard's breakdown and path to the next tier in a real browser, for a host
manager and a partner viewer, at a laptop's and a phone's width: shown, not wider than the
window, no console error and no serious or critical axe-core violation (tests/browser.py audits
every page reached); and still there after a month change by htmx."""

import pytest

from partnerships.models import Agreement, Membership
from tests.browser import PHONE, SHOTS

from .test_browser_main_pages import LAPTOP, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_program(transactional_db):
    from partnerships.demo import demo_generate
    from scoring.services import scoring_run_inline

    demo_generate(partners=4, agreements=12, months=12, kpis_per_agreement=5,
                  observations_per_month=2, seed=7, password="pw-demo")
    scoring_run_inline()


@pytest.mark.parametrize("username", ["manager", "viewer"])
def test_both_sides_see_the_breakdown_and_the_path_at_laptop_and_phone_widths(
        page, live_server, demo_program, username):
    SHOTS.mkdir(exist_ok=True)
    viewer_partner = Membership.objects.get(user__username="viewer").partner
    code = Agreement.objects.filter(partner=viewer_partner).order_by("code").first().code
    log_in(page, live_server, username)
    for viewport in (LAPTOP, PHONE):
        page.set_viewport_size(viewport)
        page.goto(f"{live_server.url}/agreements/{code}/")
        section = page.locator("#explain")
        section.wait_for()
        assert section.get_by_role("heading", name="Where the score comes from").is_visible()
        table = section.locator(".explain-table")
        assert table.locator("tfoot").get_by_text("Overall").is_visible()
        assert table.evaluate("el => el.getBoundingClientRect().right <= window.innerWidth")
        section.screenshot(path=str(SHOTS / f"explain-{username}-{viewport['width']}.png"))
        # A month change by htmx swaps in the section of that month.
        previous = page.locator(".month-nav a").first
        month = previous.get_attribute("href").split("=")[-1]
        previous.click()
        page.get_by_role("heading", name=f"Where the score comes from, {month}").wait_for()
        page.screenshot(path=str(SHOTS / f"explain-{username}-{viewport['width']}-htmx.png"))
    assert page.problems == []
