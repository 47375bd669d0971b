"""Running the program in a real browser: a manager creates a partner, assesses it, drafts an
agreement while the weight check reacts, and moves it prospect → pilot → active; under the
CSP, without console errors, and without sideways scrolling on a 375 px phone.

Screenshots go to /tmp/pp-shots/ for a human to look at.
"""

import re
from collections.abc import Callable

import pytest

from partnerships.models import Agreement, PartnerAssessment, StageTransition
from tests.browser import (
    DESKTOP,
    PHONE,
    SHOTS,
    horizontal_overflow,
    log_in,
    postgresql_only_mark,
    run_in_browser,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), postgresql_only_mark()]


def in_browser(scenario: Callable, *, viewport: dict = DESKTOP, javascript: bool = True):
    """Play `scenario(page)` in Debian's Chromium (see tests.browser.run_in_browser)."""
    run_in_browser(scenario, viewport=viewport, javascript=javascript)


def look(page, name: str) -> None:
    """Screenshots at desktop and phone width; the phone must not scroll sideways."""
    page.screenshot(path=str(SHOTS / f"program-{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SHOTS / f"program-{name}-phone.png"), full_page=True)
    page.screenshot(path=str(SHOTS / f"program-{name}-phone-top.png"))
    assert horizontal_overflow(page) <= 0, f"{name} scrolls sideways at 375 px"
    page.set_viewport_size(DESKTOP)


def test_manager_runs_a_partnership_from_first_contact_to_active(live_server, host_manager,
                                                                 acme):
    in_browser(lambda page: first_contact_to_active(page, live_server))


def first_contact_to_active(page, live_server) -> None:
    SHOTS.mkdir(exist_ok=True)
    log_in(page, live_server, "manager", "pw-manager")

    # A new partner.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Partners").click()
    page.wait_for_url(live_server.url + "/program/partners/")
    page.get_by_role("link", name="New partner").click()
    page.get_by_label("Name").fill("Hooli")
    page.get_by_label("Slug").fill("hooli")
    page.get_by_label("Website").fill("not a web address")
    page.get_by_role("button", name="Create partner").click()
    page.get_by_text("Enter a full web address").wait_for()  # swapped in by htmx, kept input
    assert page.get_by_label("Name").input_value() == "Hooli"
    page.get_by_label("Website").fill("https://hooli.example")
    page.get_by_label("Industry").fill("Search")
    page.get_by_role("button", name="Create partner").click()
    page.wait_for_url(live_server.url + "/program/partners/hooli/")
    page.get_by_text("Partner Hooli created.").wait_for()

    # The list's search narrows as one types, and the URL follows.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Partners").click()
    page.get_by_label("Search").fill("sear")
    page.wait_for_url(re.compile(r".*\?q=sear.*"))
    page.locator("#partner-results", has_text="1 partner match").wait_for()
    assert page.locator("#partner-results tbody tr").count() == 1
    look(page, "partners")
    page.get_by_role("link", name="Hooli").click()

    # An assessment.
    page.get_by_role("link", name="Record an assessment").click()
    page.get_by_label("Assessed on").fill("2026-01-15")
    for label, value in (("Strategic fit", "4"), ("Cultural compatibility", "4"),
                         ("Operational capability", "3"), ("Market position", "5"),
                         ("Resource contribution", "3"), ("Implementation complexity", "2")):
        page.get_by_label(label, exact=True).fill(value)
    for label in ("Decision-making speed", "Communication style", "Risk tolerance",
                  "Customer focus"):
        page.get_by_label(label).check()
    page.get_by_label("H1: value today").fill("Three shared enterprise customers.")
    look(page, "assessment-form")
    page.get_by_role("button", name="Record the assessment").click()
    page.wait_for_url(re.compile(r".*/program/partners/hooli/#assessments$"))
    assessments = page.locator("#assessments")
    assessments.get_by_text("Aligned on 4 of 5 → good cultural fit").wait_for()
    assert "value 6.0" in assessments.inner_text()
    assert PartnerAssessment.objects.get().partnership_value == 6.0

    # An agreement, with the weights checked while they are typed.
    page.get_by_role("link", name="New agreement").first.click()
    assert page.get_by_label("Partner", exact=True).input_value() == "hooli"
    page.get_by_label("Code").fill("HOOLI-TI-2026")
    page.get_by_label("Type").select_option("technology_integration")
    page.get_by_label("Start date").fill("2026-02-01")
    page.get_by_label("Host-side owner").select_option(label="manager")
    check = page.locator("#weights-check")
    assert "add up to 100" in check.inner_text()
    page.get_by_label("Relationship", exact=True).fill("15")
    page.locator("#weights-check", has_text="95: 5 short of 100").wait_for()
    look(page, "agreement-form")
    page.get_by_label("Financial", exact=True).fill("35")
    page.locator("#weights-check", has_text="The weights add up to 100.").wait_for()
    page.get_by_label("Attribution method").fill("Deal registration before first contact.")
    page.get_by_role("button", name="Create the agreement").click()
    page.wait_for_url(live_server.url + "/program/agreements/HOOLI-TI-2026/edit/")
    page.get_by_text("created as a prospect").wait_for()
    agreement = Agreement.objects.get(code="HOOLI-TI-2026")
    assert (agreement.stage, agreement.weight_financial, agreement.weight_relationship) == (
        "prospect", 35, 15)

    # prospect → pilot → active, each with a reason; the panel is swapped in place.
    panel = page.locator("#stage-panel")
    panel.get_by_label("Move to pilot").check()
    panel.get_by_label("Why").fill("Scope agreed for a three-month pilot.")
    panel.get_by_role("button", name="Move the stage").click()
    page.locator("#stage-panel", has_text="moved from prospect to pilot").wait_for()
    page.get_by_label("Promote to full agreement (active)").check()
    page.locator("#stage-panel").get_by_label("Why").fill("Pilot met its targets.")
    page.locator("#stage-panel").get_by_role("button", name="Move the stage").click()
    page.locator("#stage-panel", has_text="moved from pilot to active").wait_for()
    assert page.locator("#stage-panel .transition-list li").count() == 2
    look(page, "agreement-edit")
    promoted = Agreement.objects.get(code="HOOLI-TI-2026")
    assert (promoted.pk, promoted.stage) == (agreement.pk, "active")
    assert [t.to_stage for t in StageTransition.objects.order_by("at", "id")] == [
        "pilot", "active"]

    # The history, and the partner's page with everything on it.
    page.get_by_role("link", name="History", exact=True).click()
    page.locator(".transition-list__why", has_text="Pilot met its targets.").wait_for()
    look(page, "agreement-history")
    page.goto(live_server.url + "/program/partners/hooli/")
    page.get_by_role("link", name="HOOLI-TI-2026", exact=True).wait_for()
    look(page, "partner")
    assert page.problems == []


def test_without_javascript_forms_post_and_redirect(live_server, host_manager,
                                                    acme_agreement):
    in_browser(lambda page: without_javascript(page, live_server), viewport=PHONE,
               javascript=False)
    acme_agreement.refresh_from_db()
    assert acme_agreement.stage == "under_review"


def without_javascript(page, live_server) -> None:
    log_in(page, live_server, "manager", "pw-manager")
    page.goto(live_server.url + "/program/partners/new/")
    page.get_by_label("Name").fill("Acme again")
    page.get_by_label("Slug").fill("acme")
    page.get_by_role("button", name="Create partner").click()
    page.get_by_text("Another partner already has this slug").wait_for()
    assert page.get_by_label("Name").input_value() == "Acme again"
    page.get_by_label("Slug").fill("acme-two")
    page.get_by_role("button", name="Create partner").click()
    page.wait_for_url(live_server.url + "/program/partners/acme-two/")

    page.goto(live_server.url + "/program/partners/?q=acme")
    assert page.locator("#partner-results tbody tr").count() == 2

    page.goto(live_server.url + "/program/agreements/ACME-CM-2025/edit/")
    page.get_by_label("Move to under review").check()
    page.get_by_role("button", name="Move the stage").click()
    page.get_by_text("Say why the stage changes").wait_for()  # refused, choice kept
    assert page.get_by_label("Move to under review").is_checked()
    page.get_by_label("Why").fill("Two weak months.")
    page.get_by_role("button", name="Move the stage").click()
    page.get_by_text("moved from active to under review").wait_for()
    assert horizontal_overflow(page) <= 0
    assert page.problems == []
