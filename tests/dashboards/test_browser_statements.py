"""The Statements page and the agreement dashboard's payouts in a real browser, for a host
manager and a partner viewer, at a desktop's and a phone's width: the filters swap the results
and push the URL, no console error, no page wider than the window, no serious or critical
axe-core violation. Screenshots go to /tmp/pp-shots/ for a human to look at."""

import pytest

from partnerships.models import IncentivePlan, Role
from scoring.closing import months_close, statement_approve
from scoring.services import scoring_run_inline
from tests.browser import DESKTOP, SHOTS, horizontal_overflow
from tests.conftest import make_user, write_observations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE_390 = {"width": 390, "height": 844}


@pytest.fixture
def statements_program(settings, django_user_model, acme_agreement, globex_agreement, kpis,
                       host_manager, acme_viewer):
    """January and February closed by the manager, January approved by an admin; March open."""
    settings.TWO_FACTOR_REQUIRED_FOR_HOST = False
    rows = []
    for month, (acme_rev, globex_rev) in enumerate([(50, 90), (80, 100), (120, 130)], start=1):
        rows += [
            (acme_agreement, kpis["revenue"], "host", f"2025-{month:02d}-10", acme_rev),
            (acme_agreement, kpis["defect_rate"], "partner", f"2025-{month:02d}-10", 5),
            (globex_agreement, kpis["revenue"], "host", f"2025-{month:02d}-15", globex_rev),
            (globex_agreement, kpis["defect_rate"], "partner", f"2025-{month:02d}-15", 2),
        ]
    write_observations(rows)
    IncentivePlan.objects.create(agreement=acme_agreement, base_amount=1000)
    IncentivePlan.objects.create(agreement=globex_agreement, base_amount=1000, currency="EUR")
    scoring_run_inline()
    months_close(through="2025-02", user=host_manager)
    statement_approve(month="2025-01",
                      user=make_user(django_user_model, "admin", Role.HOST_ADMIN))


def log_in(page, live_server, username: str) -> None:
    page.context.clear_cookies()
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-" + username)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/")


def shoot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"statements-{name}-{page.viewport_size['width']}.png"),
                    full_page=True)
    assert horizontal_overflow(page) <= 0, f"{page.url} scrolls sideways"


def test_host_filters_the_statements_with_htmx_at_desktop_and_phone_width(
        page, live_server, statements_program):
    log_in(page, live_server, "manager")
    page.goto(live_server.url + "/statements/")
    results = page.locator("#statement-results")
    assert results.get_by_text("GLOBEX-REF-2025").count() == 2
    shoot(page, "host")
    page.get_by_label("Status").select_option("awaiting")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/statements/?*status=awaiting*")
    assert results.locator("h3").all_inner_texts() == ["2025-02 · Awaiting approval"]
    assert "1,500.00 EUR" in results.inner_text()
    shoot(page, "host-awaiting")
    page.set_viewport_size(PHONE_390)
    page.goto(live_server.url + "/statements/")
    shoot(page, "host")
    page.goto(live_server.url + "/agreements/ACME-CM-2025/?month=2025-03")
    payouts = page.locator("#payouts-heading").locator("..")
    assert "Paid up to 2025-01" in payouts.inner_text()
    assert "estimate, open month" in payouts.inner_text()
    shoot(page, "agreement")
    payouts.screenshot(path=str(SHOTS / "statements-agreement-payouts-390.png"))
    page.set_viewport_size(DESKTOP)
    page.goto(live_server.url + "/agreements/ACME-CM-2025/?month=2025-03")
    shoot(page, "agreement")
    payouts.screenshot(path=str(SHOTS / "statements-agreement-payouts-1280.png"))
    assert page.problems == []


def test_partner_viewer_sees_their_own_statements_on_a_phone(page, live_server,
                                                             statements_program):
    log_in(page, live_server, "acme-viewer")
    for viewport in (DESKTOP, PHONE_390):
        page.set_viewport_size(viewport)
        page.goto(live_server.url + "/statements/")
        text = page.locator("#statement-results").inner_text()
        assert "ACME-CM-2025" in text and "GLOBEX" not in text
        assert "Approved for payment by admin" in text
        shoot(page, "partner")
    assert page.problems == []
