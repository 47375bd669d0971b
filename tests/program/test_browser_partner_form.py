"""The new-partner form in a real browser: the slug follows the name as it is typed until it is
edited by hand, and the Website field looks like the other fields. Screenshots go to
/tmp/pp-shots/ at 1366 and 390 px."""

import pytest

from partnerships.models import Partner
from tests.browser import SHOTS, horizontal_overflow, log_in, postgresql_only_mark, run_in_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), postgresql_only_mark()]

WIDE, NARROW = {"width": 1366, "height": 900}, {"width": 390, "height": 844}
LOOK = ("border-top-width", "border-top-color", "border-radius", "padding-left", "font-size",
        "width", "background-color")


def type_on(field, text: str) -> None:
    """Type at the end of the field's text, key by key, as a user would."""
    field.focus()
    field.press("End")
    field.press_sequentially(text)


def look_of(locator) -> dict:
    return locator.evaluate(
        "(el, names) => Object.fromEntries(names.map(n => [n, getComputedStyle(el)[n.replace("
        "/-(.)/g, (_, c) => c.toUpperCase())]]))", list(LOOK))


def test_the_slug_follows_the_name_until_edited_by_hand(live_server, host_manager):
    SHOTS.mkdir(exist_ok=True)

    def scenario(page):
        log_in(page, live_server, "manager", "pw-manager")
        page.goto(live_server.url + "/program/partners/new/")
        name, slug = page.get_by_label("Name"), page.get_by_label("Slug")

        type_on(name, "Société Générale & Fils")
        assert slug.input_value() == "societe-generale-fils"
        name.fill("")
        type_on(name, "Initech Ltd.")
        assert slug.input_value() == "initech-ltd"

        # Edited by hand: the slug stays as typed while the name changes.
        slug.fill("initech")
        type_on(name, " (Europe)")
        assert slug.input_value() == "initech"
        # Emptied: it follows the name again.
        slug.fill("")
        type_on(name, " Services")
        assert slug.input_value() == "initech-ltd-europe-services"

        # The Website field is drawn like the Name and Industry fields.
        website = page.get_by_label("Website")
        name.blur()  # a focused field has the accent's border
        assert website.get_attribute("type") == "url"
        assert look_of(website) == look_of(name) == look_of(page.get_by_label("Industry"))
        page.screenshot(path=str(SHOTS / "partner-form-1366.png"), full_page=True)
        page.set_viewport_size(NARROW)
        assert look_of(website) == look_of(name)
        page.screenshot(path=str(SHOTS / "partner-form-390.png"), full_page=True)
        assert horizontal_overflow(page) <= 0

        # A refused form comes back by htmx; the slug as shown is still the name's.
        website.fill("not a web address")
        page.get_by_role("button", name="Create partner").click()
        page.get_by_text("Enter a full web address").wait_for()
        type_on(name, "!")
        assert slug.input_value() == "initech-ltd-europe-services"
        page.get_by_label("Website").fill("https://initech.example")
        page.get_by_role("button", name="Create partner").click()
        page.wait_for_url(live_server.url + "/program/partners/initech-ltd-europe-services/")
        assert page.problems == []

    run_in_browser(scenario, viewport=WIDE)
    assert Partner.objects.get(slug="initech-ltd-europe-services").name == \
        "Initech Ltd. (Europe) Services!"


def test_an_existing_partners_slug_is_not_changed_with_its_name(live_server, host_manager,
                                                               acme):
    def scenario(page):
        log_in(page, live_server, "manager", "pw-manager")
        page.goto(live_server.url + "/program/partners/acme/edit/")
        type_on(page.get_by_label("Name"), " Worldwide")
        assert page.get_by_label("Slug").input_value() == "acme"
        assert page.problems == []

    run_in_browser(scenario, viewport=WIDE)
