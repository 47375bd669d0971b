"""Two-factor set-up in a real browser, under the CSP: a host manager logs in, reads the key from
the page, enters the code, reaches home, and at the next log-in is asked for a code first.
Same Chromium set-up as tests/dashboards; screenshots go to /tmp/pp-shots/ for a human to look
at."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.browser import (
    DESKTOP,
    PHONE,
    SHOTS,
    horizontal_overflow,
    launch,
    playwright_sync_api,
)
from tests.browser import (
    watch as record_problems,
)

from .conftest import secret_key, totp_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sync_api():
    return playwright_sync_api()


def in_own_thread(scenario, *args):
    """Run a Playwright scenario in a thread of its own: the sync API refuses to start while
    another sync Playwright (tests/dashboards keeps one open for the session) owns this thread's
    event loop. Assertions raised there are re-raised here."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(scenario, *args).result()


def watch(page) -> list[str]:
    """The shared recorder, plus CSP violations reported as they happen, in case a browser
    only fires the event."""
    problems = record_problems(page)
    page.add_init_script("""document.addEventListener("securitypolicyviolation", e =>
        console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI));""")
    return problems


def log_in(page, base_url: str) -> None:
    page.get_by_label("Username").fill("manager")
    page.get_by_label("Password").fill("pw-manager")
    page.get_by_role("button", name="Log in").click()


def set_up_and_verify(sync_api, base_url: str) -> list[str]:
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_context(viewport=DESKTOP).new_page()
            problems = watch(page)

            page.goto(base_url + "/")
            log_in(page, base_url)
            page.wait_for_url(base_url + "/account/two-factor/setup/?next=%2F")
            qr = page.locator("svg.qr-code")
            assert qr.is_visible()
            box = qr.bounding_box()
            assert box["width"] >= 150 and abs(box["width"] - box["height"]) < 1
            assert page.locator("#otpauth-uri").text_content().startswith("otpauth://totp/")
            assert page.get_by_role("navigation", name="Main").count() == 0
            page.screenshot(path=str(SHOTS / "two-factor-setup-desktop.png"), full_page=True)

            page.set_viewport_size(PHONE)
            page.reload()
            assert horizontal_overflow(page) <= 0
            page.screenshot(path=str(SHOTS / "two-factor-setup-phone.png"), full_page=True)

            page.set_viewport_size(DESKTOP)
            key = secret_key(page.locator("#totp-secret").text_content())
            page.get_by_label("Six-digit code").fill(totp_code(key))
            page.get_by_role("button", name="Turn on two-factor authentication").click()
            page.wait_for_url(base_url + "/")
            assert page.get_by_text("Two-factor authentication is on.").is_visible()
            page.wait_for_selector("[data-plotly] .main-svg", timeout=15_000)

            page.get_by_role("link", name="Security").click()
            page.wait_for_url(base_url + "/account/security/")
            page.screenshot(path=str(SHOTS / "two-factor-security-desktop.png"), full_page=True)

            # The next log-in asks for a code first (the next period's: a code works once).
            page.get_by_role("button", name="Log out").click()
            page.wait_for_url(base_url + "/login/")
            page.set_viewport_size(PHONE)
            log_in(page, base_url)
            page.wait_for_url(base_url + "/account/two-factor/verify/?next=%2F")
            assert horizontal_overflow(page) <= 0
            page.screenshot(path=str(SHOTS / "two-factor-verify-phone.png"), full_page=True)
            page.get_by_label("Six-digit code").fill(totp_code(key, steps_ahead=1))
            page.get_by_role("button", name="Verify").click()
            page.wait_for_url(base_url + "/")
            page.wait_for_selector("[data-plotly] .main-svg", timeout=15_000)
            return problems
        finally:
            browser.close()


def test_host_manager_sets_up_totp_and_reaches_home_without_errors(
    sync_api, live_server, host_manager, acme_agreement, settings
):
    settings.TWO_FACTOR_REQUIRED_FOR_HOST = True
    SHOTS.mkdir(exist_ok=True)

    problems = in_own_thread(set_up_and_verify, sync_api, live_server.url)

    assert problems == []
