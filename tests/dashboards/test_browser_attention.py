"""Needs attention in a real browser, on a phone (375 px) and a desktop: the reasons ticked
filter the list through htmx and push the URL, each reason links where it is dealt with, the
home page counts them; no console error, nothing wider than the window, no serious or critical
axe-core violation. Screenshots go to /tmp/pp-shots/ for a human to look at."""

import datetime as dt

import pytest
from django.utils import timezone

from partnerships.models import ActionItem, Agreement, Review
from scoring.models import Scorecard, ScoringRun
from scoring.services import scoring_run_inline
from tests.browser import DESKTOP, PHONE, SHOTS, horizontal_overflow
from tests.conftest import make_agreement, write_observations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def attention_program(settings, acme, globex, kpis, host_manager, acme_viewer):
    """Acme's two agreements: one at risk with an overdue action of the partner, one clean
    but ending soon; Globex's at risk (never to be seen by Acme's users)."""
    settings.TWO_FACTOR_REQUIRED_FOR_HOST = False
    today = timezone.localdate()
    risky = make_agreement(acme, "ACME-CM-2025", kpis)
    ending = make_agreement(acme, "ACME-REF-2026", kpis)
    other = make_agreement(globex, "GLOBEX-REF-2025", kpis)
    months = [(today.replace(day=1) - dt.timedelta(days=31 * back)).strftime("%Y-%m")
              for back in (3, 2, 1)]
    rows = []
    for agreement in (risky, ending, other):
        for month in months:
            rows += [(agreement, kpis["revenue"], "host", f"{month}-10", 60),
                     (agreement, kpis["defect_rate"], "partner", f"{month}-12", 4)]
    write_observations(rows)
    scoring_run_inline()
    Scorecard.objects.filter(run=ScoringRun.objects.current(), agreement__in=[risky, other],
                             period=months[-1]).update(at_risk=True)
    for agreement in (risky, ending, other):
        Review.objects.create(agreement=agreement, kind="tactical_sync", held_on=today)
    ActionItem.objects.create(agreement=risky, description="Send the pipeline list",
                              owner_name="Jane Roe", owner_side="partner",
                              due_date=today - dt.timedelta(days=5))
    Agreement.objects.filter(pk=ending.pk).update(end_date=today + dt.timedelta(days=40))
    Agreement.objects.filter(pk__in=[risky.pk, ending.pk]).update(owner=host_manager)


def log_in(page, live_server, username: str) -> None:
    page.context.clear_cookies()
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-" + username)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/")


def shoot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"attention-{name}-{page.viewport_size['width']}.png"),
                    full_page=True)
    assert horizontal_overflow(page) <= 0, f"{page.url} scrolls sideways"


def test_worklist_on_a_phone_filters_by_reasons(page, live_server, attention_program):
    page.set_viewport_size(PHONE)
    log_in(page, live_server, "manager")
    home = page.locator("#attention")
    assert "2 of 2 agreements you own need attention" in home.inner_text()
    shoot(page, "home")
    home.get_by_role("link", name="need attention").click()
    page.wait_for_url("**/attention/?scope=mine")
    results = page.locator("#attention-results")
    assert results.locator("tbody tr").count() == 2
    shoot(page, "host")
    page.get_by_label("Renewal due").check()
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/attention/?*reason=renewal_due*")
    assert results.locator("tbody tr").count() == 1
    assert "ACME-REF-2026" in results.inner_text()
    shoot(page, "host-renewal")
    page.get_by_label("Actions overdue").check()
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/attention/?*reason=actions_overdue*")
    assert results.locator("tbody tr").count() == 2
    results.get_by_role("link", name="Actions overdue: 1 partner").click()
    page.wait_for_url("**/agreements/ACME-CM-2025/reviews/")
    assert page.problems == []


def test_partner_viewer_sees_their_own_worklist(page, live_server, attention_program):
    for viewport in (PHONE, DESKTOP):
        page.set_viewport_size(viewport)
        log_in(page, live_server, "acme-viewer")
        page.goto(live_server.url + "/attention/")
        results = page.locator("#attention-results")
        text = results.inner_text()
        assert "ACME-CM-2025" in text and "GLOBEX" not in page.content()
        assert "At risk in" in text
        shoot(page, "partner")
    page.get_by_role("link", name="Download this list (CSV)").is_visible()
    assert page.problems == []
