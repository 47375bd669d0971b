"""Destructive actions ask first, in a real browser: with htmx the question takes the place of
the button (Keep or Escape puts the button back, focus included), by keyboard as by mouse; with
JavaScript off the same button leads to a confirmation page. Never a browser popup.
Screenshots go to /tmp/pp-shots/ at 1366 and 390 px."""

import datetime as dt

import pytest

from partnerships.models import AgreementKPI, Objective
from tests.browser import SHOTS, horizontal_overflow, log_in, postgresql_only_mark, run_in_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), postgresql_only_mark()]

WIDE, NARROW = {"width": 1366, "height": 900}, {"width": 390, "height": 844}


def no_popups(page) -> None:
    page.on("dialog", lambda dialog: pytest.fail(f"a browser dialog: {dialog.message}"))


def focused(page) -> str:
    return page.evaluate("document.activeElement.id || document.activeElement.textContent")


def asked(page, question) -> None:
    """The question is shown and has the focus (htmx moves it there once the swap settles)."""
    question.wait_for()
    page.locator("[data-confirm]:focus").wait_for()


def test_removing_a_kpi_asks_in_place_and_keep_or_escape_leaves_it(
        live_server, host_manager, acme_agreement):
    SHOTS.mkdir(exist_ok=True)
    url = f"{live_server.url}/program/agreements/{acme_agreement.code}/kpis/"

    def scenario(page):
        no_popups(page)
        log_in(page, live_server, "manager", "pw-manager")
        page.goto(url)
        row = page.locator("tr", has_text="Defect rate")
        remove = row.get_by_role("button", name="Remove Defect rate")

        # Click: the question replaces the button, in the row, and takes the focus.
        remove.click()
        question = row.get_by_role("group", name="Remove “Defect rate” from ACME-CM-2025?")
        asked(page, question)
        assert question.get_by_text("Its history stays").is_visible()
        page.screenshot(path=str(SHOTS / "confirm-in-place-1366.png"), full_page=True)
        page.set_viewport_size(NARROW)
        page.screenshot(path=str(SHOTS / "confirm-in-place-390.png"), full_page=True)
        assert horizontal_overflow(page) <= 0
        page.set_viewport_size(WIDE)

        # Keep: the button is back, focused, and works again; nothing was removed.
        question.get_by_role("link", name="Keep").click()
        assert question.count() == 0
        assert remove.is_visible() and "Remove" in focused(page)
        assert AgreementKPI.objects.filter(agreement=acme_agreement).count() == 2

        # By keyboard: Enter asks, Escape keeps, focus back on the button.
        remove.focus()
        page.keyboard.press("Enter")
        asked(page, question)
        page.keyboard.press("Escape")
        assert question.count() == 0 and "Remove" in focused(page)
        assert row.is_visible()

        # Enter asks, Tab reaches the confirming button, Enter removes: the page reloads
        # without the row and says what happened.
        page.keyboard.press("Enter")
        asked(page, question)
        page.keyboard.press("Tab")
        assert focused(page) == "Remove"
        page.keyboard.press("Enter")
        page.get_by_text("Defect rate removed from ACME-CM-2025").wait_for()
        assert page.locator("tr", has_text="Defect rate").count() == 0
        assert page.problems == []

    run_in_browser(scenario, viewport=WIDE)
    assert list(AgreementKPI.objects.filter(agreement=acme_agreement)
                .values_list("kpi__code", flat=True)) == ["revenue"]


def test_without_javascript_the_button_leads_to_a_confirmation_page(
        live_server, host_manager, acme_agreement):
    objective = Objective.objects.create(
        agreement=acme_agreement, goal_type="capability", success_metric="Certify 10 engineers",
        target_value=10, deadline=dt.date(2026, 6, 30))
    url = f"{live_server.url}/program/agreements/{acme_agreement.code}/objectives/"

    def scenario(page):
        log_in(page, live_server, "manager", "pw-manager")
        page.goto(url)
        page.get_by_role("button", name="Delete Certify 10 engineers").click()
        page.get_by_role("heading", name="Delete the objective “Certify 10 engineers” of "
                                         "ACME-CM-2025?").wait_for()
        page.screenshot(path=str(SHOTS / "confirm-page-390.png"), full_page=True)
        assert horizontal_overflow(page) <= 0
        page.get_by_role("link", name="Keep").click()
        page.wait_for_url(url)
        assert Objective.objects.filter(pk=objective.pk).exists()

        page.get_by_role("button", name="Delete Certify 10 engineers").click()
        page.get_by_role("button", name="Delete", exact=True).click()
        page.get_by_text("Objective “Certify 10 engineers” deleted.").wait_for()
        assert page.problems == []

    run_in_browser(scenario, viewport=NARROW, javascript=False)
    assert not Objective.objects.filter(pk=objective.pk).exists()
