"""The Months page in a real browser, at a desktop's and a phone's width: a manager closes a
month after the confirmation says what it freezes, a host admin sees whom a statement awaits,
and the month selectors say which months are closed. No console error, no page wider than the
window, no serious or critical axe-core violation (tests/browser.py `watch`). Screenshots go to
/tmp/pp-shots/."""

import pytest

from partnerships.models import Agreement, Membership, ProgramMonth
from scoring.models import ScoringRun
from tests.browser import DESKTOP, SHOTS, horizontal_overflow, postgresql_only_mark

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              postgresql_only_mark()]

PHONE_390 = {"width": 390, "height": 844}


@pytest.fixture
def demo_closed(transactional_db):
    from partnerships.demo import demo_generate
    from scoring.demo import demo_months_close
    from scoring.services import scoring_run_inline

    demo_generate(partners=4, agreements=10, months=8, kpis_per_agreement=4,
                  observations_per_month=1, seed=5, password="pw-demo")
    scoring_run_inline()
    return demo_months_close()


def log_in(page, live_server, username: str) -> None:
    page.context.clear_cookies()
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/")


def shot(page, name: str) -> None:
    width = page.viewport_size["width"]
    page.screenshot(path=str(SHOTS / f"months-{name}-{width}.png"), full_page=True)
    assert horizontal_overflow(page) <= 0, f"{name} scrolls sideways at {width} px"


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE_390], ids=["desktop", "phone"])
def test_a_manager_closes_the_next_month_after_seeing_what_it_freezes(
        page, live_server, demo_closed, viewport):
    SHOTS.mkdir(exist_ok=True)
    page.set_viewport_size(viewport)
    log_in(page, live_server, "manager")
    page.goto(live_server.url + "/months/")
    next_month = demo_closed.open[0]
    assert page.locator(f"#month-{demo_closed.closed[-1]} .month-state").inner_text() \
        == "closed"
    shot(page, "manager")

    page.get_by_label("Close every open month through").select_option(next_month)
    page.get_by_role("button", name="Close…").click()
    question = page.locator(".confirm")
    question.wait_for()
    assert f"Close {next_month}?" in question.inner_text()
    assert "It freezes" in question.inner_text() and "scorecards" in question.inner_text()
    shot(page, "confirm")
    page.get_by_role("button", name="Close", exact=True).click()
    page.wait_for_url(live_server.url + "/months/")
    page.locator(".message--success").wait_for()
    assert ProgramMonth.objects.last_closed() == next_month
    shot(page, "closed")
    assert page.problems == []


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE_390], ids=["desktop", "phone"])
def test_admins_see_whom_a_statement_awaits_and_both_sides_see_month_states(
        page, live_server, demo_closed, viewport):
    SHOTS.mkdir(exist_ok=True)
    page.set_viewport_size(viewport)
    awaiting = demo_closed.closed[-1]
    log_in(page, live_server, "finance")
    page.goto(live_server.url + "/months/")
    assert "another host admin approves" in page.locator(f"#month-{awaiting}").inner_text()
    shot(page, "closer")
    log_in(page, live_server, "admin")
    page.goto(live_server.url + "/months/")
    approve = page.get_by_role("button", name=f"Approve for payment the statement of {awaiting}")
    assert approve.is_visible()
    shot(page, "approver")

    log_in(page, live_server, "viewer")
    partner = Membership.objects.get(user__username="viewer").partner
    code = Agreement.objects.filter(partner=partner).order_by("code").first().code
    page.goto(f"{live_server.url}/agreements/{code}/")
    options = page.locator("#month-choice option").all_inner_texts()
    run = ScoringRun.objects.current()
    assert f"{awaiting} · closed" in options and f"{run.last_period} · open" in options
    shot(page, "viewer-agreement")
    assert page.problems == []
