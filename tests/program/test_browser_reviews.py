"""Reviews in a real browser: a manager records a review with an action for the partner side;
the partner's viewer sees it on their agreement and marks it done; phones get no sideways
scrolling and the console stays clean.

Needs Debian's Chromium (`apt-get install -y chromium`); skipped without it, except on CI where
a missing browser is a failure. Screenshots go to /tmp/pp-shots/ for a human to look at.
"""

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.utils import timezone

from partnerships.models import ActionItem, ProgramChange, Review
from scoring.services import scoring_run_inline
from tests.browser import (
    DESKTOP,
    PHONE,
    SHOTS,
    horizontal_overflow,
    launch,
    playwright_sync_api,
    postgresql_only_mark,
    watch,
)
from tests.conftest import write_observations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), postgresql_only_mark()]


@pytest.fixture(scope="module")
def in_browser():
    """Runs a test's browser steps on one worker thread that owns Playwright for the module.

    Playwright's sync API refuses to start in a thread where another Playwright (such as the
    dashboards' session-wide browser) already runs its event loop; a thread of our own has
    none. The steps get a fresh page (`page.problems` records console errors, CSP violations,
    failed requests and error answers); the thread's database connection is closed after."""
    playwright_sync_api()
    from playwright.sync_api import sync_playwright

    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright")
    started = {}

    def start():
        started["manager"] = sync_playwright()
        started["browser"] = launch(started["manager"].start())

    worker.submit(start).result()

    def run(steps, *args):
        def task():
            context = started["browser"].new_context(viewport=DESKTOP)
            page = context.new_page()
            page.problems = watch(page)
            try:
                return steps(page, *args)
            finally:
                context.close()
                connections.close_all()

        return worker.submit(task).result()

    yield run

    def stop():
        started["browser"].close()
        started["manager"].__exit__(None, None, None)

    worker.submit(stop).result()
    worker.shutdown()


def log_in(page, live_server, username: str) -> None:
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-" + username)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/")


def _partner_marks_done(
        page, live_server, host_manager, acme_viewer, acme_agreement, globex_agreement):
    today = timezone.localdate()
    reviews = f"{live_server.url}/agreements/{acme_agreement.code}/reviews/"

    # The manager records a review, then its action for the partner side (due yesterday).
    log_in(page, live_server, "manager")
    page.goto(reviews)
    page.get_by_role("link", name="Record a review").click()
    page.get_by_label("Kind").select_option("quarterly_strategy")
    page.get_by_label("Held on").fill(today.isoformat())
    page.get_by_label("Attendees (host)").fill("Jo Doe (partner manager)")
    page.get_by_label("Attendees (partner)").fill("Ann Lee (alliances)")
    page.get_by_label("Notes").fill("Pipeline grew 20 % but the lead form loses leads.")
    page.get_by_label("Decisions").fill("Fix the lead form before the webinar.")
    page.get_by_role("button", name="Record the review").click()
    page.wait_for_url("**/actions/new/?review=*")
    page.get_by_label("Action").fill("Fix the lead form on the partner site")
    page.get_by_label("Owner (required)").fill("Ann Lee")
    page.get_by_label("Owner's side").select_option("partner")
    page.get_by_label("RACI role").select_option("responsible")
    page.get_by_label("Due date").fill((today - dt.timedelta(days=1)).isoformat())
    page.get_by_role("button", name="Add the action", exact=True).click()
    page.wait_for_url(reviews + "#review-*")
    assert page.locator("#open-actions").get_by_text("1 day overdue").is_visible()
    page.screenshot(path=str(SHOTS / "reviews-manager-desktop.png"), full_page=True)
    action = ActionItem.objects.get()
    assert (action.owner_side, action.review, action.status) == (
        "partner", Review.objects.get(), "open")
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()

    # The partner's viewer finds the action on their home page and on the reviews page.
    log_in(page, live_server, "acme-viewer")
    assert page.get_by_role("heading", name="Your overdue actions").is_visible()
    assert page.locator("#overdue-actions").get_by_text(
        "Fix the lead form on the partner site", exact=True).is_visible()
    page.goto(reviews)
    assert page.get_by_text("Fix the lead form before the webinar.").is_visible()
    assert page.get_by_text("Ann Lee (alliances)").is_visible()
    row = page.locator(f"#action-{action.pk}-open")
    row.get_by_role("combobox").select_option("done")
    row.get_by_role("button", name="Save").click()
    page.wait_for_selector(f"#action-{action.pk}-open >> text=Status: done.")
    assert "overdue" not in page.locator(f"#action-{action.pk}-open").inner_text()
    # The same action under its review is redrawn too (out of band).
    assert page.locator(f"#action-{action.pk}-review select").input_value() == "done"
    action.refresh_from_db()
    assert action.status == "done" and action.completed_at is not None
    assert ProgramChange.objects.filter(username="acme-viewer", object_id=action.pk).exists()
    page.screenshot(path=str(SHOTS / "reviews-partner-desktop.png"), full_page=True)

    # On a phone: the reviews page, the agreement dashboard and home fit the width.
    page.set_viewport_size(PHONE)
    for name, url in (("reviews", reviews),
                      ("agreement", f"{live_server.url}/agreements/{acme_agreement.code}/"),
                      ("home", live_server.url + "/")):
        page.goto(url)
        page.screenshot(path=str(SHOTS / f"reviews-partner-{name}-phone.png"), full_page=True)
        assert horizontal_overflow(page) <= 0, name
    # Globex's agreement is not found, like one that does not exist.
    response = page.goto(f"{live_server.url}/agreements/{globex_agreement.code}/reviews/")
    assert response.status == 404
    problems = [p for p in page.problems if "404" not in p]
    assert problems == []


def _manager_pages_on_a_phone(page, live_server, host_manager, acme_agreement):
    review = Review.objects.create(agreement=acme_agreement, kind="monthly_results",
                                   held_on=timezone.localdate(), notes="Monthly numbers")
    ActionItem.objects.create(agreement=acme_agreement, review=review,
                              description="Send the campaign results to both teams",
                              owner_name="Jo Doe", owner_side="host", raci="accountable",
                              due_date=timezone.localdate() - dt.timedelta(days=12))
    page.set_viewport_size(PHONE)
    log_in(page, live_server, "manager")
    base = f"{live_server.url}/agreements/{acme_agreement.code}/reviews/"
    for name, url in (("reviews", base),
                      ("review-form", f"{live_server.url}/program/agreements/"
                                      f"{acme_agreement.code}/reviews/new/"),
                      ("action-form", f"{live_server.url}/program/agreements/"
                                      f"{acme_agreement.code}/actions/new/"),
                      ("home", live_server.url + "/")):
        page.goto(url)
        page.screenshot(path=str(SHOTS / f"reviews-manager-{name}-phone.png"), full_page=True)
        assert horizontal_overflow(page) <= 0, name
    # An invalid form comes back (by htmx) with the error next to the field.
    page.goto(f"{live_server.url}/program/agreements/{acme_agreement.code}/reviews/new/")
    page.get_by_label("Kind").select_option("tactical_sync")
    page.get_by_label("Held on").fill((timezone.localdate() + dt.timedelta(days=3)).isoformat())
    page.get_by_label("Notes").fill("Kept after the error")
    page.get_by_role("button", name="Record the review").click()
    page.wait_for_selector("#id_held_on_error")
    assert "cannot be in the future" in page.locator("#id_held_on_error").inner_text()
    assert page.get_by_label("Notes").input_value() == "Kept after the error"
    page.screenshot(path=str(SHOTS / "reviews-manager-form-error-phone.png"), full_page=True)
    assert page.problems == []


def _overdue_figures(
        page, live_server, host_manager, acme_agreement, globex_agreement, kpis):
    rows = []
    for agreement in (acme_agreement, globex_agreement):
        for month in (1, 2, 3):
            rows += [(agreement, kpis["revenue"], "host", f"2025-{month:02d}-10", 90),
                     (agreement, kpis["defect_rate"], "partner", f"2025-{month:02d}-10", 4)]
    write_observations(rows)
    scoring_run_inline()
    # Neither agreement has had a review since it started in 2025: both are overdue.
    ActionItem.objects.create(agreement=acme_agreement, description="Publish the case study",
                              owner_name="Ann Lee", owner_side="partner",
                              due_date=timezone.localdate() - dt.timedelta(days=5))
    log_in(page, live_server, "manager")
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        suffix = "phone" if viewport is PHONE else "desktop"
        page.goto(live_server.url + "/portfolio/")
        cards = page.locator(".kpi-card", has_text="overdue review")
        assert cards.locator(".kpi-card__value").inner_text() == "2"
        assert page.locator(".kpi-card", has_text="overdue action").locator(
            ".kpi-card__value").inner_text() == "1"
        page.screenshot(path=str(SHOTS / f"reviews-portfolio-{suffix}.png"), full_page=True)
        assert horizontal_overflow(page) <= 0
        page.goto(f"{live_server.url}/agreements/{acme_agreement.code}/")
        section = page.locator("#reviews-and-actions")
        assert "review overdue" in section.inner_text()
        assert section.get_by_text("5 days overdue").is_visible()
        page.screenshot(path=str(SHOTS / f"reviews-agreement-{suffix}.png"), full_page=True)
        # The section itself fits (the rest of the dashboard is tested with its page).
        assert page.evaluate("""() => Math.max(...[...document.querySelectorAll(
            '#reviews-and-actions, #reviews-and-actions *')].map(
            element => element.getBoundingClientRect().right))""") <= viewport["width"]
    assert page.problems == []


def test_a_partner_viewer_marks_done_the_action_a_manager_recorded(
        in_browser, live_server, host_manager, acme_viewer, acme_agreement, globex_agreement):
    in_browser(_partner_marks_done, live_server, host_manager, acme_viewer, acme_agreement,
               globex_agreement)


def test_the_manager_pages_fit_a_phone(
        in_browser, live_server, host_manager, acme_agreement):
    in_browser(_manager_pages_on_a_phone, live_server, host_manager, acme_agreement)


def test_overdue_figures_on_the_portfolio_and_the_agreement_dashboard(
        in_browser, live_server, host_manager, acme_agreement, globex_agreement, kpis):
    in_browser(_overdue_figures, live_server, host_manager, acme_agreement, globex_agreement,
               kpis)
