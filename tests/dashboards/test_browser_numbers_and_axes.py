"""What a reader sees in a real browser: a new agreement's chart writes each of its months once
on the axis, at 1366 and 390 px, and its KPI table writes money with separators.

Needs Debian's Chromium; skipped without it, except on CI where a missing browser is a failure.
Screenshots go to /tmp/pp-shots/ for a human to look at.
"""

import datetime as dt

import pytest

from partnerships.models import Agreement, AgreementKPI
from scoring.services import scoring_run_inline
from tests.browser import SHOTS, horizontal_overflow
from tests.conftest import write_observations
from tests.dashboards.test_browser_layout import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def new_agreement(acme, kpis):
    """Two months of revenue, in October and November 2026."""
    agreement = Agreement.objects.create(
        partner=acme, code="ACME-NEW-2026", type="referral", stage="active",
        start_date=dt.date(2026, 10, 1), weight_financial=100, weight_strategic=0,
        weight_operational=0, weight_relationship=0)
    AgreementKPI.objects.create(agreement=agreement, kpi=kpis["revenue"], target=50000,
                                floor=0)
    write_observations([(agreement, kpis["revenue"], "host", "2026-10-15", 36429.3),
                        (agreement, kpis["revenue"], "host", "2026-11-15", 41000)])
    scoring_run_inline()
    return agreement


@pytest.mark.parametrize("width", [1366, 390])
def test_a_new_agreements_chart_writes_each_month_once(page, live_server, host_manager,
                                                         new_agreement, width):
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, live_server, "manager", "pw-manager")
    page.goto(f"{live_server.url}/agreements/ACME-NEW-2026/?month=2026-11")
    page.wait_for_selector("#chart-history .main-svg .xtick text", timeout=15_000)
    ticks = page.locator("#chart-history .xtick text").all_text_contents()
    assert ticks == ["2026-10", "2026-11"]
    actual = page.locator(".kpi-table td[data-label=Actual]").first.text_content()
    assert actual == "41,000.00"
    page.locator("#chart-history").screenshot(path=str(SHOTS / f"month-axis-{width}.png"))
    assert horizontal_overflow(page) <= 0
    assert page.problems == []
