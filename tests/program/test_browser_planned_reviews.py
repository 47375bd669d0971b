"""Reviews planned ahead, in a real browser: a manager plans a review, both sides see it as
upcoming and download it for their calendars, the manager records it as held; and the QBR pack
page. Every page visited is checked with axe-core and for a phone's width (tests/browser.py
`watch`), and the console stays clean.

Needs Debian's Chromium; skipped without it, except on CI. Screenshots go to /tmp/pp-shots/.
"""

import datetime as dt

import pytest
from django.utils import timezone

from partnerships.models import Review, ReviewStatus
from scoring.services import scoring_run_inline
from tests.browser import PHONE, SHOTS, postgresql_only_mark, run_in_browser
from tests.conftest import write_observations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), postgresql_only_mark()]


def log_in(page, live_server, username: str) -> None:
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-" + username)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/")


def log_out(page) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()


def test_a_review_planned_ahead_reaches_both_sides_and_is_recorded_as_held(
        live_server, host_manager, acme_viewer, acme_agreement, kpis):
    write_observations([(acme_agreement, kpis["revenue"], "host", f"2025-{month:02d}-10", 90)
                        for month in (4, 5, 6)])
    scoring_run_inline()
    day = timezone.localdate() + dt.timedelta(days=9)
    reviews = f"{live_server.url}/agreements/{acme_agreement.code}/reviews/"

    def scenario(page):
        log_in(page, live_server, "manager")
        page.goto(reviews)
        page.get_by_role("link", name="Plan a review").click()
        page.wait_for_url("**/reviews/plan/")
        page.get_by_label("Kind").select_option("quarterly_strategy")
        page.get_by_label("Date").fill(day.isoformat())
        page.get_by_label("Starts at").fill("14:30")
        page.get_by_label("Duration (minutes)").fill("90")
        page.get_by_label("Agenda").fill("Pipeline, Q3 targets; renewal\nEMEA launch")
        page.get_by_label("Attendees (host)").fill("Jo Doe")
        page.get_by_label("Attendees (partner)").fill("Ann Lee")
        page.screenshot(path=str(SHOTS / "planned-review-form-desktop.png"), full_page=True)
        page.get_by_role("button", name="Plan the review").click()
        page.wait_for_url(reviews + "#review-*")
        upcoming = page.locator("#upcoming-reviews")
        assert f"{day:%Y-%m-%d} 14:30" in upcoming.inner_text()
        page.screenshot(path=str(SHOTS / "planned-review-manager-desktop.png"), full_page=True)
        review = Review.objects.get()
        assert review.status == ReviewStatus.PLANNED
        log_out(page)

        # The partner's viewer, on a phone: upcoming on the dashboard and the reviews page,
        # and the calendar file.
        page.set_viewport_size(PHONE)
        log_in(page, live_server, "acme-viewer")
        page.goto(f"{live_server.url}/agreements/{acme_agreement.code}/")
        section = page.locator("#reviews-and-actions")
        assert "Upcoming reviews" in section.inner_text()
        page.goto(reviews)
        assert page.get_by_text("EMEA launch").is_visible()
        with page.expect_download() as download:
            page.locator("#upcoming-reviews").get_by_role(
                "link", name=f"Add the review of {day:%Y-%m-%d} to a calendar (.ics)").click()
        ics = open(download.value.path(), "rb").read().decode()
        assert "BEGIN:VEVENT\r\n" in ics and f"UID:review-{review.pk}@" in ics
        assert "Pipeline\\, Q3 targets\\; renewal\\nEMEA launch" in ics.replace("\r\n ", "")
        page.screenshot(path=str(SHOTS / "planned-review-partner-phone.png"), full_page=True)
        page.goto(f"{live_server.url}/agreements/{acme_agreement.code}/qbr/?quarter=2025-Q2")
        assert page.get_by_role("heading", name="KPIs, both sides' values").is_visible()
        page.screenshot(path=str(SHOTS / "qbr-pack-partner-phone.png"), full_page=True)
        page.goto(live_server.url + "/")  # the pack, a page to print, has no navigation
        log_out(page)

        # The day came (moved here to today): the manager records it as held.
        Review.objects.filter(pk=review.pk).update(held_on=timezone.localdate())
        log_in(page, live_server, "manager")
        page.goto(reviews)
        page.get_by_role("link", name=f"Record the review of {timezone.localdate():%Y-%m-%d}"
                                      " as held").click()
        page.get_by_label("Notes").fill("Pipeline grew.")
        page.get_by_label("Decisions").fill("Launch in EMEA in Q4.")
        page.get_by_role("button", name="Record as held").click()
        page.wait_for_url("**/actions/new/?review=*")
        return page.problems

    problems = run_in_browser(scenario)
    review = Review.objects.get()
    assert review.status == ReviewStatus.HELD and review.decisions == "Launch in EMEA in Q4."
    assert review.agenda == "Pipeline, Q3 targets; renewal\nEMEA launch"
    assert problems == []
