"""The page shell in a real browser: log-in, the chart pipeline under the CSP, small screens.

Needs Debian's Chromium (`apt-get install -y chromium`); skipped without it, except on CI where
a missing browser is a failure. Screenshots go to /tmp/pp-shots/ for a human to look at.
"""


import pytest

from tests.browser import (
    PHONE,
    SHOTS,
    horizontal_overflow,
    log_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_host_logs_in_and_the_chart_draws_without_errors(
    page, live_server, host_manager, acme_agreement, globex_agreement
):
    SHOTS.mkdir(exist_ok=True)

    log_in(page, live_server, "manager", "pw-manager")

    page.wait_for_selector("[data-plotly] .main-svg", timeout=15_000)
    assert page.get_by_text("Host manager", exact=True).is_visible()
    assert page.locator("[data-plotly] .main-svg .bars .point").count() == 6
    # Hover labels exercise more of Plotly under the CSP (styles, text measurement).
    # Plotly's drag layer covers the bars, so move the mouse rather than hover the element.
    bar = page.locator("[data-plotly] .bars .point path").nth(2).bounding_box()
    page.mouse.move(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)
    page.wait_for_selector("[data-plotly] .hoverlayer .hovertext")
    assert page.locator("[data-plotly] .hoverlayer").text_content() == "Active: 2 agreements"
    page.screenshot(path=str(SHOTS / "home-desktop.png"), full_page=True)

    page.set_viewport_size(PHONE)
    page.reload()
    page.wait_for_selector("[data-plotly] .main-svg", timeout=15_000)
    # Plotly's responsive config redraws to the new width after a resize.
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "home-phone.png"), full_page=True)

    assert horizontal_overflow(page) <= 0
    chart_width = page.locator("[data-plotly]").bounding_box()["width"]
    assert chart_width <= PHONE["width"]
    assert page.problems == []


def test_a_chart_swapped_in_by_htmx_draws_and_the_old_one_is_purged(
    page, live_server, host_manager, acme_agreement
):
    log_in(page, live_server, "manager", "pw-manager")
    page.wait_for_selector("#chart-stages .main-svg", timeout=15_000)

    # The new chart is the swapped root itself: the case querySelectorAll alone would miss.
    purged = page.evaluate("""() => new Promise(resolve => {
        const old = document.getElementById("chart-stages");
        htmx.swap(old, '<div class="chart" id="chart-swapped" data-plotly="chart-stages-data">'
                       + '</div>', {swapStyle: "outerHTML"});
        setTimeout(() => resolve(old._fullLayout === undefined), 100);
    })""")

    page.wait_for_selector("#chart-swapped .main-svg", timeout=15_000)
    assert purged
    assert page.problems == []


def test_login_page_fits_a_phone(page, live_server):
    SHOTS.mkdir(exist_ok=True)
    page.set_viewport_size(PHONE)

    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("[role=alert]")
    page.screenshot(path=str(SHOTS / "login-phone.png"), full_page=True)

    assert horizontal_overflow(page) <= 0
    assert page.problems == []


def test_home_without_charts_loads_no_plotly_and_no_errors(page, live_server, acme_viewer):
    log_in(page, live_server, "acme-viewer", "pw-acme-viewer")

    assert page.get_by_text("No agreements of Acme Corp are recorded yet.").is_visible()
    assert page.evaluate("typeof window.Plotly") == "undefined"
    assert page.evaluate("typeof window.htmx") == "object"
    assert page.problems == []
