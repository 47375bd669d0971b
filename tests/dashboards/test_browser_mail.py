"""The e-mail settings page and the unsubscribe link in a real browser, on a phone: saved with
its tick boxes, unsubscribed without signing in; axe-core and the page width checked after
every navigation (tests/browser.py). Screenshots go to /tmp/pp-shots/."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from partnerships.mail_preferences import unsubscribe_url
from partnerships.models import MailPreference
from tests.browser import PHONE, SHOTS, horizontal_overflow, launch, log_in, playwright_sync_api
from tests.browser import watch as watch_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def run_in_browser(scenario) -> None:
    sync_api = playwright_sync_api()

    def run() -> None:
        with sync_api.sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                page = browser.new_context(viewport=PHONE).new_page()
                problems = watch_page(page)
                scenario(page)
                assert problems == []
            finally:
                browser.close()

    # Playwright's sync API in a thread of its own (another may own this thread's loop).
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(run).result()


def test_settings_saved_and_unsubscribed_on_a_phone(live_server, acme_viewer, settings):
    settings.SITE_URL = live_server.url
    acme_viewer.email = "viewer@acme.example"
    acme_viewer.save()
    link = unsubscribe_url(user=acme_viewer, kind="at_risk")

    def scenario(page):
        log_in(page, live_server, "acme-viewer", "pw-acme-viewer")
        page.goto(live_server.url + "/account/security/")
        page.get_by_role("link", name="choose what you receive").click()
        page.get_by_label("A review is overdue").uncheck()
        page.screenshot(path=str(SHOTS / "mail-settings-phone.png"), full_page=True)
        assert horizontal_overflow(page) <= 0
        page.get_by_role("button", name="Save").click()
        page.wait_for_selector("text=Your e-mail settings are saved.")
        assert not page.get_by_label("A review is overdue").is_checked()
        page.get_by_role("button", name="Log out").click()
        page.goto(link)
        page.screenshot(path=str(SHOTS / "mail-unsubscribe-phone.png"), full_page=True)
        page.get_by_role("button", name="Unsubscribe from at-risk alerts").click()
        page.wait_for_selector("text=You are unsubscribed")
        assert horizontal_overflow(page) <= 0

    run_in_browser(scenario)
    saved = MailPreference.objects.get(user=acme_viewer)
    assert (saved.alert_review_overdue, saved.alert_at_risk, saved.digest) == (False, False, True)
