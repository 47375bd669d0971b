"""A manager sets up an agreement's KPIs, objectives and incentive plan in a real browser:
inline validation as they type, a row edited in place, a standard set copied, under the CSP,
at desktop and phone widths. Screenshots go to /tmp/pp-shots/ for a human to look at."""

import datetime as dt
from collections.abc import Callable

import pytest

from partnerships.models import AgreementKPI, IncentivePlan, KPIDefinition, KPITemplateItem
from scoring.services import scoring_run_inline
from tests.browser import (
    DESKTOP,
    PHONE,
    SHOTS,
    horizontal_overflow,
    log_in,
    postgresql_only_mark,
    run_in_browser,
)
from tests.conftest import write_observations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), postgresql_only_mark()]


def in_browser(scenario: Callable) -> None:
    """Play `scenario(page)` in Debian's Chromium (see tests.browser.run_in_browser)."""
    run_in_browser(scenario)


def too_wide(page) -> list[str]:
    """The innermost elements that reach past the right edge of the window."""
    return page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5
                && ![...el.children].some(child =>
                    child.getBoundingClientRect().right > window.innerWidth + 0.5))
        .slice(0, 8)
        .map(el => `${el.tagName.toLowerCase()}.${el.className} ${el.textContent.trim()
            .slice(0, 40)}`)""")


def shoot(page, name: str) -> None:
    """Screenshots at both widths; the phone layout must not scroll sideways."""
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(100)
    page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=True)
    assert horizontal_overflow(page) <= 0, (f"{name} scrolls sideways at 375 px: "
                                            f"{too_wide(page)}")
    page.set_viewport_size(DESKTOP)


def test_manager_sets_up_kpis_objectives_and_an_incentive_plan(
        live_server, host_manager, acme_agreement, kpis):
    SHOTS.mkdir(exist_ok=True)
    leads = KPIDefinition.objects.create(
        code="qualified_leads", name="Qualified leads", unit="leads", category="strategic",
        aggregation="sum", source="partner")
    csat = KPIDefinition.objects.create(
        code="csat", name="Partner satisfaction", unit="points", category="relationship",
        aggregation="last", source="partner")
    KPITemplateItem.objects.create(agreement_type="co_marketing", kpi=csat, target=9, floor=5)
    KPITemplateItem.objects.create(agreement_type="co_marketing", kpi=kpis["revenue"],
                                   target=500, floor=0)
    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-01-10", 60),
                        (acme_agreement, kpis["revenue"], "host", "2025-02-10", 75)])
    scoring_run_inline()
    in_browser(lambda page: manager_sets_up(page, live_server, acme_agreement, kpis, leads, csat))


def manager_sets_up(page, live_server, acme_agreement, kpis, leads, csat) -> None:
    code = acme_agreement.code
    log_in(page, live_server, "manager", "pw-manager")

    # The library, from the main navigation.
    page.get_by_role("link", name="KPIs", exact=True).click()
    page.get_by_role("heading", name="KPI library").wait_for()
    page.get_by_label("Search KPIs").fill("lead")
    page.locator("#kpi-results").get_by_text("1 of 4 KPIs match").wait_for()
    shoot(page, "kpi-library")

    page.goto(f"{live_server.url}/program/kpis/revenue/edit/")
    page.get_by_label("Aggregation").select_option("mean")
    page.locator("#id_aggregation_feedback").get_by_text("scores change on the next").wait_for()
    shoot(page, "kpi-edit")
    page.goto(f"{live_server.url}/program/kpis/templates/")
    shoot(page, "kpi-templates")

    # Add a KPI: the floor equal to the target is refused as soon as the field is left.
    page.goto(f"{live_server.url}/program/agreements/{code}/kpis/")
    add = page.locator("#kpi-add")
    add.get_by_label("KPI", exact=True).select_option("qualified_leads")
    add.get_by_label("Monthly target").fill("40")
    add.get_by_label("Floor", exact=True).fill("40")
    add.get_by_label("Floor", exact=True).press("Tab")
    error = page.locator("#kpi-add .field-errors")
    error.get_by_text("The floor must differ from the target").wait_for()
    assert page.locator("#kpi-add").get_by_label("Monthly target").input_value() == "40"
    assert AgreementKPI.objects.filter(agreement=acme_agreement).count() == 2
    shoot(page, "agreement-kpis-invalid")
    page.locator("#kpi-add").get_by_label("Floor", exact=True).fill("5")
    page.locator("#kpi-add").get_by_label("Floor", exact=True).press("Tab")
    page.locator("#kpi-add .field-errors").wait_for(state="detached")
    page.locator("#kpi-add").get_by_role("button", name="Add the KPI").click()
    page.get_by_text("Qualified leads added to").wait_for()
    assert AgreementKPI.objects.get(agreement=acme_agreement, kpi=leads).floor == 5

    # Edit a row in place.
    revenue = AgreementKPI.objects.get(agreement=acme_agreement, kpi=kpis["revenue"])
    row = page.locator(f"#kpi-row-{revenue.pk}")
    row.get_by_role("link", name="Edit").click()
    page.locator(f"#kpi-row-{revenue.pk} input[name=target]").fill("150")
    page.locator(f"#kpi-row-{revenue.pk}").get_by_role("button", name="Save").click()
    page.locator(f"#kpi-row-{revenue.pk}").get_by_text("Partner-sourced revenue saved.").wait_for()
    assert page.locator(f"#kpi-row-{revenue.pk} td").first.inner_text() == "150"
    shoot(page, "agreement-kpis")

    # Copy the standard set of co-marketing agreements, keeping the KPIs it already has.
    page.get_by_role("link", name="Copy a KPI set").click()
    template = page.get_by_role("region", name="From the standard set")
    template.get_by_role("button", name="Preview the copy").click()
    preview = page.locator("#copy-preview")
    preview.get_by_text("existing KPIs kept").wait_for()
    assert preview.locator(".change-added").count() == 1
    shoot(page, "agreement-kpis-copy")
    preview.get_by_role("button", name="Copy: 1 added, 0 changed, 0 removed").click()
    page.get_by_text("Copied from the standard set").wait_for()
    assert AgreementKPI.objects.filter(agreement=acme_agreement, kpi=csat).exists()
    assert AgreementKPI.objects.get(pk=revenue.pk).target == 150  # kept

    # An objective linked to revenue: its progress comes from February's score (75 of 150).
    page.get_by_role("navigation", name=f"Agreement {code}").get_by_role(
        "link", name="Objectives").click()
    form = page.locator("#objective-form")
    form.get_by_label("Objective and success metric").fill("Revenue of 150 a month")
    form.get_by_label("Goal type").select_option("revenue_growth")
    form.get_by_label("Linked KPI").select_option(label="Partner-sourced revenue (revenue)")
    form.get_by_label("Target value").fill("150")
    form.get_by_label("Deadline").fill((dt.date.today() + dt.timedelta(days=90)).isoformat())
    form.get_by_role("button", name="Add the objective").click()
    page.get_by_text("Objective “Revenue of 150 a month” added.").wait_for()
    progress = page.locator(".objective-list progress")
    assert progress.get_attribute("value") == "50"
    shoot(page, "objectives")

    # The incentive plan: the example follows the values typed.
    page.get_by_role("navigation", name=f"Agreement {code}").get_by_role(
        "link", name="Incentive plan").click()
    panel = page.locator("#plan-panel")
    panel.get_by_label("Base amount per month").fill("1000")
    panel.get_by_label("Currency").fill("eur")
    panel.get_by_label("Currency").press("Tab")
    page.locator("#plan-panel").get_by_text("1,000.00 EUR × 1.25 × 90 ÷ 100").wait_for()
    page.locator("#plan-panel").get_by_role("button", name="Create the plan").click()
    page.get_by_text("Incentive plan created.").wait_for()
    assert IncentivePlan.objects.get(agreement=acme_agreement).currency == "EUR"
    shoot(page, "incentive-plan")

    # The dashboard shows the objective with its progress bar.
    page.goto(f"{live_server.url}/agreements/{code}/")
    page.get_by_role("heading", name="Objectives").wait_for()
    section = page.locator(".objectives-section")
    assert section.locator("progress").get_attribute("value") == "50"
    page.screenshot(path=str(SHOTS / "agreement-dashboard-objectives-desktop.png"),
                    full_page=True)
    # The rest of the dashboard is another page's; the objectives section must fit a phone.
    page.set_viewport_size(PHONE)
    section.screenshot(path=str(SHOTS / "agreement-dashboard-objectives-phone.png"))
    box = section.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert section.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert page.problems == []
