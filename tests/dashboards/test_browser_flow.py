"""The main flow in a real browser (Debian's Chromium through Playwright): a manager filters the
portfolio, opens an agreement, changes the month, sees the charts, prints, starts a scoring run
and watches it finish; a partner viewer sees only their own agreements.

Screenshots of every step go to /tmp/pp-shots/ for a human to look at."""

import re

import pytest

from partnerships.models import Agreement, Partner
from scoring.models import ScoringRun
from scoring.services import scoring_run_inline
from tests.browser import DESKTOP, PHONE, SHOTS, horizontal_overflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_program(transactional_db):
    from partnerships.demo import demo_generate

    demo_generate(partners=4, agreements=12, months=12, kpis_per_agreement=5,
                  observations_per_month=2, seed=7, password="pw-demo")
    scoring_run_inline()


def log_in(page, live_server, username: str) -> None:
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/")


def chart_drawn(page, chart_id: str) -> None:
    page.wait_for_selector(f"#{chart_id} .main-svg", timeout=15_000)


def test_manager_filters_opens_an_agreement_changes_month_and_runs_scoring(
    page, live_server, demo_program
):
    log_in(page, live_server, "manager")

    # Filter the portfolio: the stage select submits by htmx on change.
    page.goto(live_server.url + "/portfolio/")
    page.get_by_label("Stage").select_option("active")
    page.wait_for_url(re.compile(r".*stage=active.*"))
    page.wait_for_timeout(300)
    active = set(Agreement.objects.filter(stage="active").values_list("code", flat=True))
    shown = page.locator(".portfolio-table tbody a[href^='/agreements/']").all_inner_texts()
    assert shown and {code.strip() for code in shown} <= active
    page.screenshot(path=str(SHOTS / "flow-portfolio-filtered.png"), full_page=True)

    # Open the first agreement of the filtered list.
    code = shown[0].strip()
    page.locator(".portfolio-table tbody a", has_text=code).first.click()
    page.wait_for_url(f"**/agreements/{code}/**")
    chart_drawn(page, "chart-history")
    chart_drawn(page, "chart-categories")
    last_month = page.locator("#month-choice").input_value()

    # Change the month with the selector: htmx swaps the panel, the URL follows, charts redraw.
    # The options read "2026-05 · closed"; their values are the months.
    options = page.locator("#month-choice option").evaluate_all(
        "options => options.map(option => option.value)")
    earlier = options[3]
    page.locator("#month-choice").select_option(earlier)
    page.wait_for_url(f"**month={earlier}")
    chart_drawn(page, "chart-history")
    assert page.locator(".month-nav__month").inner_text() == earlier
    assert page.locator("#kpi-heading").inner_text() == f"KPIs in {earlier}"
    assert earlier != last_month
    # Only one history chart: the old one was swapped out, not duplicated.
    assert page.locator("#chart-history").count() == 1
    # And the arrows still work after the swap.
    page.get_by_label(re.compile("^Previous month")).click()
    page.wait_for_url(f"**month={options[4]}")
    chart_drawn(page, "chart-history")
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "flow-agreement-desktop.png"), full_page=True)

    page.set_viewport_size(PHONE)
    page.reload()
    chart_drawn(page, "chart-history")
    page.wait_for_timeout(400)
    assert horizontal_overflow(page) <= 0
    page.screenshot(path=str(SHOTS / "flow-agreement-phone.png"), full_page=True)

    # The print view: every section, static charts, no navigation.
    page.set_viewport_size(DESKTOP)
    page.goto(live_server.url + f"/agreements/{code}/print/?month={options[4]}")
    assert page.locator(".site-nav").count() == 0
    assert page.locator("[data-plotly]").count() == 0
    assert page.locator(".history-svg svg polyline").count() >= 1
    for heading in ("KPIs in", "Flags in", "Tier and payouts by month",
                    "Data behind these numbers"):
        assert page.get_by_role("heading", name=re.compile(heading)).count() == 1
    page.emulate_media(media="print")
    page.screenshot(path=str(SHOTS / "flow-agreement-print.png"), full_page=True)
    page.emulate_media(media="screen")

    # Start a scoring run and watch the panel until it says the run succeeded.
    runs_before = ScoringRun.objects.count()
    page.goto(live_server.url + "/scoring/runs/")
    shown_before = page.locator("#run-panel h2").inner_text()
    page.get_by_role("button", name="Start a scoring run").click()
    # The panel polls while the run is active and stops once it has finished.
    page.wait_for_function(
        """before => {
          const heading = document.querySelector('#run-panel h2');
          return heading && heading.textContent !== before
            && heading.textContent.includes('Succeeded');
        }""", arg=shown_before, timeout=60_000)
    assert page.locator("#run-panel[hx-trigger]").count() == 0
    assert ScoringRun.objects.count() == runs_before + 1
    page.screenshot(path=str(SHOTS / "flow-runs-finished.png"), full_page=True)
    assert page.problems == []


def test_partner_viewer_sees_only_their_agreements(page, live_server, demo_program):
    own = Partner.objects.order_by("pk").first()  # the demo viewer's partner
    own_codes = set(Agreement.objects.filter(partner=own).values_list("code", flat=True))
    other = Agreement.objects.exclude(partner=own).order_by("code").first()
    log_in(page, live_server, "viewer")

    hrefs = page.eval_on_selector_all("a[href^='/agreements/']",
                                      "links => links.map(link => link.pathname)")
    linked = {href.split("/")[2] for href in hrefs}
    assert linked and linked <= own_codes

    code = sorted(own_codes)[0]
    page.goto(live_server.url + f"/agreements/{code}/")
    chart_drawn(page, "chart-history")
    assert other.partner.name not in page.content()
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "flow-partner-agreement.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.reload()
    chart_drawn(page, "chart-history")
    assert horizontal_overflow(page) <= 0
    page.screenshot(path=str(SHOTS / "flow-partner-agreement-phone.png"), full_page=True)
    assert page.problems == []

    # Another partner's agreement and the host's pages answer 404.
    assert page.goto(live_server.url + f"/agreements/{other.code}/").status == 404
    assert page.goto(live_server.url + "/portfolio/").status == 404
