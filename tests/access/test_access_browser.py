"""The users and audit pages in a real browser: htmx row actions under the CSP, and layouts
that fit a phone. Screenshots go to /tmp/pp-shots/ for a human to look at.

Each scenario runs Playwright in a thread of its own: the sync API refuses to start in a thread
where another sync Playwright (tests/dashboards keeps one open for the session) owns the loop.
"""

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.utils import timezone

from partnerships.audit import audit_record
from partnerships.models import AuditEvent, Invitation, Partner, Role
from tests.browser import (
    DESKTOP,
    PHONE,
    SHOTS,
    horizontal_overflow,
    launch,
    playwright_sync_api,
    watch,
)
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def in_browser(live_server):
    """Run `scenario(page, base_url)` in Chromium (in its own thread); fail on any console
    error, uncaught exception, failed request or error response of the page."""
    sync_api = playwright_sync_api()

    def run(scenario) -> None:
        with sync_api.sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                page = browser.new_context(viewport=DESKTOP).new_page()
                problems = watch(page)
                scenario(page, live_server.url)
                assert problems == []
            finally:
                browser.close()

    def start(scenario) -> None:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(run, scenario).result()

    return start


@pytest.fixture
def people(django_user_model, acme, globex):
    initech = Partner.objects.create(slug="initech", name="Initech")
    Partner.objects.create(slug="umbrella", name="Umbrella Corporation")
    admin = make_user(django_user_model, "admin-ann", Role.HOST_ADMIN)
    admin.email = "ann@host.example"
    admin.save()
    make_user(django_user_model, "manager-mo", Role.HOST_MANAGER)
    viewer = make_user(django_user_model, "acme-viewer", Role.PARTNER_VIEWER, acme)
    viewer.email = "viewer.with.a.long.address@acme-corporation.example"
    viewer.last_login = timezone.now()
    viewer.save()
    make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)
    gone = make_user(django_user_model, "globex-former", Role.PARTNER_VIEWER, globex)
    gone.is_active = False
    gone.save()
    make_user(django_user_model, "initech-editor", Role.PARTNER_EDITOR, initech)
    Invitation.objects.create(
        email="new.person@initech.example", role=Role.PARTNER_VIEWER, partner=initech,
        token_hash="a" * 64, invited_by=admin, expires_at=timezone.now() + dt.timedelta(days=3))
    for number in range(60):
        event = audit_record(action="login", user=viewer, detail={"number": number})
        AuditEvent.objects.filter(pk=event.pk).update(
            at=timezone.now() - dt.timedelta(hours=number), ip_address="203.0.113.7")
    audit_record(action="role_changed", user=admin, partner=acme, target="user acme-editor",
                 detail={"from": {"role": "partner_viewer", "partner": "acme"},
                         "to": {"role": "partner_editor", "partner": "acme"}})
    return admin


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base_url + "/")


def shoot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_users_page_deactivates_over_htmx_and_fits_a_phone(in_browser, people):
    def scenario(page, base_url):
        log_in(page, base_url, "admin-ann", "pw-admin-ann")
        page.get_by_role("link", name="Users").click()
        page.wait_for_selector("h1:has-text('Users and access')")
        shoot(page, "access-users-desktop")

        # The question replaces the button in the row (no browser popup); confirming answers
        # with the changed row.
        page.on("dialog", lambda dialog: pytest.fail(f"a browser dialog: {dialog.message}"))
        row = page.locator("tr", has_text="acme-editor")
        row.get_by_role("button", name="Deactivate acme-editor").click()
        question = row.get_by_role("group", name="Deactivate acme-editor?")
        question.wait_for()
        question.get_by_role("button", name="Deactivate").click()
        page.wait_for_selector("tr:has-text('acme-editor') >> role=button[name='Reactivate']")
        badge = page.locator("tr:has-text('acme-editor') .badge").text_content()
        assert badge == "Deactivated"
        assert page.get_by_text("is deactivated and was logged out everywhere").is_visible()

        row = page.locator("tr", has_text="acme-viewer")
        row.get_by_label("Role of acme-viewer", exact=True).select_option("partner_editor")
        row.get_by_role("button", name="Save the role of acme-viewer").click()
        page.wait_for_selector("text=acme-viewer is now partner editor for Acme Corp.")

        page.set_viewport_size(PHONE)
        page.reload()
        shoot(page, "access-users-phone")
        assert horizontal_overflow(page) <= 0

    in_browser(scenario)


def test_audit_page_filters_over_htmx_and_fits_a_phone(in_browser, people):
    def scenario(page, base_url):
        log_in(page, base_url, "admin-ann", "pw-admin-ann")
        page.goto(base_url + "/access/audit/")
        assert page.get_by_text("page 1 of 2").is_visible()
        shoot(page, "audit-desktop")

        page.get_by_label("Action").select_option("role_changed")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_selector("text=1 event matches")
        assert "action=role_changed" in page.url
        assert page.get_by_text("partner viewer (acme) → partner editor (acme)").is_visible()

        page.set_viewport_size(PHONE)
        page.goto(base_url + "/access/audit/")
        shoot(page, "audit-phone")
        assert horizontal_overflow(page) <= 0

    in_browser(scenario)


def test_invite_and_user_pages_fit_a_phone(in_browser, people):
    def scenario(page, base_url):
        log_in(page, base_url, "admin-ann", "pw-admin-ann")
        page.set_viewport_size(PHONE)
        page.goto(base_url + "/access/invite/?partner=initech")
        shoot(page, "access-invite-phone")
        assert horizontal_overflow(page) <= 0
        page.goto(base_url + "/access/users/")
        page.get_by_role("link", name="acme-viewer").click()
        page.wait_for_selector("h1:has-text('acme-viewer')")
        shoot(page, "access-user-phone")
        assert horizontal_overflow(page) <= 0
        page.set_viewport_size(DESKTOP)
        shoot(page, "access-user-desktop")

    in_browser(scenario)


def test_invitation_link_creates_the_account_in_a_browser(in_browser, people, live_server):
    from partnerships.invitations import invitation_send

    sent = invitation_send(
        actor=people, email="new.person@acme.example", role=Role.PARTNER_VIEWER,
        partner=Partner.objects.get(slug="acme"),
        link_for=lambda token: f"{live_server.url}/invitations/{token}/")

    def scenario(page, base_url):
        page.set_viewport_size(PHONE)
        page.goto(sent.url)
        assert page.get_by_text("Acme Corp").first.is_visible()
        page.get_by_label("Username").fill("new-person")
        page.get_by_label("Password", exact=True).fill("short")
        page.get_by_label("Password confirmation").fill("short")
        page.get_by_role("button", name="Create my account").click()
        page.wait_for_selector(".field-errors")
        shoot(page, "invitation-accept-phone")
        assert horizontal_overflow(page) <= 0
        page.get_by_label("Password", exact=True).fill("orange-Kettle-91-harbour")
        page.get_by_label("Password confirmation").fill("orange-Kettle-91-harbour")
        page.get_by_role("button", name="Create my account").click()
        page.wait_for_selector("text=Your account new-person is ready")
        log_in(page, base_url, "new-person", "orange-Kettle-91-harbour")
        assert page.get_by_text("You see the agreements of Acme Corp.").is_visible()

    in_browser(scenario)
