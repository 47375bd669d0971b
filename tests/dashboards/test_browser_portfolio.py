"""The portfolio, the ecosystem page and the partner home in a real browser: filters through
the form change the URL, charts draw under the CSP (also after HTMX swaps), phones do not
scroll sideways, and a partner's viewer sees only their own cards.

Needs Debian's Chromium; skipped without it, except on CI. Screenshots go to /tmp/pp-shots/.
"""

import re

import pytest

from scoring.models import Scorecard, ScoringRun
from scoring.services import scoring_run_inline
from tests.browser import PHONE, SHOTS, horizontal_overflow, log_in
from tests.conftest import make_agreement, write_observations
from tests.dashboards.test_portfolio import observations_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scored_program(acme, globex, kpis):
    agreements = [make_agreement(acme if index % 2 else globex, f"P-{index:02d}", kpis)
                  for index in range(8)]
    write_observations(observations_for(agreements, kpis, months=4))
    scoring_run_inline()
    return agreements


def test_manager_filters_the_portfolio_by_tier_and_the_charts_draw(
        page, live_server, host_manager, scored_program):
    run = ScoringRun.objects.current()
    tier = Scorecard.objects.filter(run=run, period="2025-04").exclude(tier="") \
        .values_list("tier", flat=True).first()
    expected = Scorecard.objects.filter(run=run, period="2025-04", tier=tier).count()
    assert tier and 0 < expected < len(scored_program)
    log_in(page, live_server, "manager", "pw-manager")

    page.goto(live_server.url + "/portfolio/")
    page.wait_for_selector("#chart-tiers .main-svg", timeout=15_000)
    page.wait_for_selector("#chart-scores .main-svg", timeout=15_000)
    assert page.locator("#chart-tiers .bars .point").count() > 0
    assert page.locator("table.portfolio-table svg.sparkline").count() == len(scored_program)
    page.screenshot(path=str(SHOTS / "portfolio-charts-desktop.png"), full_page=True)

    page.get_by_label("Tier", exact=True).select_option(tier)
    page.wait_for_url(re.compile(rf"tier={tier}"))
    page.wait_for_function(
        f"document.querySelectorAll('table.portfolio-table tbody tr').length === {expected}")
    badges = page.locator("table.portfolio-table tbody .badge[class*='tier-']")
    assert badges.count() == expected
    assert all(tier in cls for cls in badges.evaluate_all("els => els.map(e => e.className)"))
    # The swapped-in body has new charts: charts.js draws them too.
    page.wait_for_selector("#chart-scores .main-svg", timeout=15_000)
    assert page.get_by_label("Tier", exact=True).input_value() == tier
    assert f"{expected} of {len(scored_program)} agreements" in page.locator(
        "#portfolio-body").inner_text()
    # The export link carries the filter.
    assert f"tier={tier}" in page.get_by_role("link", name=re.compile("Export CSV")) \
        .get_attribute("href")

    page.set_viewport_size(PHONE)
    page.reload()
    page.wait_for_selector("#chart-scores .main-svg", timeout=15_000)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "portfolio-charts-phone.png"), full_page=True)
    assert horizontal_overflow(page) <= 0
    assert page.problems == []


def test_ecosystem_page_draws_its_charts_on_desktop_and_phone(
        page, live_server, host_manager, scored_program):
    log_in(page, live_server, "manager", "pw-manager")
    page.get_by_role("link", name="Ecosystem", exact=True).click()
    page.wait_for_url(live_server.url + "/ecosystem/")
    page.goto(live_server.url + "/ecosystem/?end=2025-04&span=6")
    page.wait_for_selector("#chart-new-agreements .main-svg", timeout=15_000)
    page.wait_for_selector("#chart-revenue-0 .main-svg", timeout=15_000)
    page.wait_for_selector("#chart-types .main-svg", timeout=15_000)
    assert page.locator("table.tier-matrix").count() == 1
    page.screenshot(path=str(SHOTS / "ecosystem-page-desktop.png"), full_page=True)

    page.get_by_label("Range").select_option("12")
    page.wait_for_url(re.compile(r"span=12"))
    page.wait_for_selector("#chart-types .main-svg", timeout=15_000)
    assert "2024-05 to 2025-04 (12 months)" in page.locator("#ecosystem-body").inner_text()

    page.set_viewport_size(PHONE)
    page.reload()
    page.wait_for_selector("#chart-revenue-0 .main-svg", timeout=15_000)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "ecosystem-page-phone.png"), full_page=True)
    assert horizontal_overflow(page) <= 0
    assert page.problems == []


def test_partner_viewer_sees_only_their_own_cards(
        page, live_server, acme_viewer, scored_program):
    log_in(page, live_server, "acme-viewer", "pw-acme-viewer")
    cards = page.locator(".agreement-card")
    acme_codes = sorted(a.code for a in scored_program if a.partner.slug == "acme")
    assert sorted(cards.locator(".agreement-card__title").all_inner_texts()) == acme_codes
    body = page.locator("body").inner_text()
    assert "Globex" not in body and "P-00" not in body
    assert page.locator(".agreement-card svg.sparkline").count() == len(acme_codes)

    page.set_viewport_size(PHONE)
    page.reload()
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "partner-home-cards-phone.png"), full_page=True)
    assert horizontal_overflow(page) <= 0
    assert page.problems == []
