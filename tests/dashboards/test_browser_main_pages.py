"""Every main page of a host manager and of a partner viewer, at a laptop's and a phone's width,
in a real browser: no console error, no page wider than the window, no serious or critical
axe-core violation. And the print view on A4 portrait: no column cut off, axes on its chart.

One browser and one log-in per user; screenshots go to /tmp/pp-shots/ for a human to look at.
"""

import re

import pytest

from partnerships.models import Agreement, Membership, Partner
from tests.browser import SHOTS, audit, horizontal_overflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1366, "height": 900}
PHONE_390 = {"width": 390, "height": 844}
# A4 portrait between the 12 mm margins of app.css's @page rule: 186 mm at 96 px per inch.
A4_CONTENT = {"width": round((210 - 2 * 12) / 25.4 * 96), "height": 1000}


@pytest.fixture
def demo_program(transactional_db):
    from partnerships.demo import demo_generate
    from scoring.services import scoring_run_inline

    demo_generate(partners=4, agreements=12, months=12, kpis_per_agreement=5,
                  observations_per_month=2, seed=7, password="pw-demo")
    scoring_run_inline()


def log_in(page, live_server, username: str) -> None:
    page.context.clear_cookies()
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/")


def host_pages(code: str, slug: str) -> list[str]:
    return [
        "/", "/portfolio/", f"/agreements/{code}/", f"/agreements/{code}/print/",
        "/ecosystem/", "/imports/", "/imports/upload/", "/program/partners/",
        f"/program/partners/{slug}/", f"/program/agreements/{code}/edit/",
        f"/program/agreements/{code}/kpis/", f"/program/agreements/{code}/objectives/",
        f"/program/agreements/{code}/incentive-plan/", f"/agreements/{code}/history/",
        f"/agreements/{code}/reviews/", "/program/kpis/", "/program/kpis/templates/",
        "/scoring/runs/", "/account/security/", "/account/api-tokens/",
    ]


def partner_pages(code: str) -> list[str]:
    return [
        "/", f"/agreements/{code}/", f"/agreements/{code}/print/", "/imports/",
        f"/agreements/{code}/reviews/", f"/agreements/{code}/history/", "/account/security/",
    ]


def visit(page, live_server, paths: list[str], who: str) -> list[str]:
    """Each page at both widths; what the audit finds, and each page's own errors."""
    found = []
    for viewport in (LAPTOP, PHONE_390):
        page.set_viewport_size(viewport)
        for path in paths:
            page.problems.clear()
            response = page.goto(live_server.url + path)
            assert response.status == 200, f"{path}: HTTP {response.status}"
            for chart in page.locator("[data-plotly]").all():
                chart.locator(".main-svg").first.wait_for(timeout=15_000)
            name = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"
            page.screenshot(path=str(SHOTS / f"main-{who}-{name}-{viewport['width']}.png"),
                            full_page=True)
            assert horizontal_overflow(page) <= 0, f"{path} scrolls sideways"
            found += [f"{who} {path} {viewport['width']} px: {problem}"
                      for problem in page.problems]
    return found


def test_main_pages_of_a_manager_and_a_partner_viewer_pass_at_laptop_and_phone_widths(
        page, live_server, demo_program):
    SHOTS.mkdir(exist_ok=True)
    viewer_partner = Membership.objects.get(user__username="viewer").partner
    own = Agreement.objects.filter(partner=viewer_partner).order_by("code").first()
    partner = Partner.objects.order_by("pk").first()

    log_in(page, live_server, "manager")
    found = visit(page, live_server, host_pages(own.code, partner.slug), "manager")
    log_in(page, live_server, "viewer")
    found += visit(page, live_server, partner_pages(own.code), "viewer")

    assert found == []


def test_the_portfolio_shows_score_flags_and_payout_on_a_phone_without_scrolling(
        page, live_server, demo_program):
    log_in(page, live_server, "manager")
    page.set_viewport_size(PHONE_390)
    page.goto(live_server.url + "/portfolio/")

    card = page.locator(".portfolio-table tbody tr").first
    for label in ("Overall", "Rolling", "Payout"):
        cell = card.locator(f'td[data-label="{label}"]')
        box = cell.bounding_box()
        assert cell.is_visible() and box["x"] >= 0 and box["x"] + box["width"] <= 390, label
    assert page.locator(".portfolio-table tbody .badge.flag-at-risk").first.is_visible()
    wrap = page.locator(".portfolio-table").locator("xpath=..")
    assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth")
    # The header leaves most of the screen to the page.
    assert page.locator(".site-header").bounding_box()["height"] < 100
    assert page.problems == []


def test_a_partner_program_page_shows_its_whole_agreements_table_on_a_laptop(
        page, live_server, demo_program):
    partner = Partner.objects.order_by("pk").first()
    log_in(page, live_server, "manager")
    page.set_viewport_size(LAPTOP)
    page.goto(f"{live_server.url}/program/partners/{partner.slug}/")

    wrap = page.locator("section[aria-labelledby=agreements-heading] .table-wrap")
    assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth")
    manage = page.get_by_role("link", name=re.compile("^Manage ")).first
    box, frame = manage.bounding_box(), wrap.bounding_box()
    assert box["x"] + box["width"] <= frame["x"] + frame["width"]
    assert page.problems == []


def test_the_print_view_fits_a4_portrait_with_every_column_and_an_axed_chart(
        page, live_server, demo_program):
    code = Agreement.objects.filter(stage="active").order_by("code").first().code
    log_in(page, live_server, "manager")
    page.set_viewport_size(A4_CONTENT)
    page.goto(f"{live_server.url}/agreements/{code}/print/")
    page.emulate_media(media="print")

    tables = page.evaluate("""() => [...document.querySelectorAll('table')].map(table => ({
        caption: table.className, fits: table.scrollWidth <= table.parentElement.clientWidth,
        right: table.getBoundingClientRect().right}))""")
    assert tables and all(table["fits"] for table in tables), tables
    assert all(table["right"] <= A4_CONTENT["width"] for table in tables), tables
    assert horizontal_overflow(page) <= 0
    last = page.locator(".kpi-table thead th").last
    assert "Other side's value" in last.inner_text()
    box = last.bounding_box()
    assert last.is_visible() and box["x"] + box["width"] <= A4_CONTENT["width"]
    chart = page.locator("figure.history-svg svg")
    for title in ("Score (points, 0–120)", "Month (YYYY-MM)"):
        assert chart.get_by_text(title).count() == 1
    assert chart.locator("text", has_text=re.compile(r"^\d{4}-\d{2}$")).count() >= 2
    assert audit(page) == []

    pdf = page.pdf(format="A4")
    (SHOTS / "print-view-a4.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    page.emulate_media(media="screen")
    assert page.problems == []
