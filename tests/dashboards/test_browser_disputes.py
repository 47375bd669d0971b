"""The end-to-end dispute in a real browser, at a desktop's and a phone's width (issue 14, "Done
when"): the partner's user finds the disagreements of the last closed month on the
reconciliation page, disputes one with the value it believes right; a host manager answers;
a host admin resolves it with a corrected value, reopening the closed month with the dispute as
the reason; a scoring run follows; and the partner's user sees the corrected value and score on
the agreement's dashboard. No console error, no page wider than the window, no serious or
critical axe-core violation (tests/browser.py `watch`). Screenshots go to /tmp/pp-shots/."""

import pytest

from dashboards.templatetags.numbers import kpi_value_text, score_text
from partnerships.disputes import month_days, month_value
from partnerships.models import Dispute, MetricObservation, MonthEvent, ProgramMonth
from partnerships.months import month_before, month_of
from scoring.models import KPIScore, ScoringRun
from scoring.services import scoring_run_inline
from tests.browser import DESKTOP, PHONE, SHOTS, horizontal_overflow, postgresql_only_mark
from tests.conftest import write_observations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              postgresql_only_mark()]


@pytest.fixture
def disagreement(transactional_db):
    """The demo, with the partner's count of one of the viewer's KPIs 50 % above the host's in
    the month that will be the last closed one; scored, and its months closed but two."""
    from partnerships.demo import demo_generate
    from scoring.demo import demo_months_close

    demo_generate(partners=3, agreements=8, months=6, kpis_per_agreement=4,
                  observations_per_month=1, seed=5, password="pw-demo")
    latest = MetricObservation.objects.order_by("-date").values_list("date", flat=True)[0]
    month = month_before(month_before(month_of(latest)))
    first, last = month_days(month)
    source_values = MetricObservation.objects.filter(
        agreement__partner__memberships__user__username="viewer", kpi__source="host",
        kpi__aggregation="sum", side="host", date__gte=first, date__lte=last,
    ).select_related("agreement", "kpi").order_by("agreement__code", "kpi__code")
    observation = source_values[0]
    agreement, kpi = observation.agreement, observation.kpi
    MetricObservation.objects.filter(agreement=agreement, kpi=kpi, side="partner",
                                     date__gte=first, date__lte=last).delete()
    host_value = month_value(agreement=agreement, kpi=kpi, side="host", month=month)
    write_observations([(agreement, kpi, "partner", observation.date.isoformat(),
                         round(host_value * 1.5) + 1)], side="partner")
    scoring_run_inline()
    closing = demo_months_close()
    assert closing.closed[-1] == month
    return agreement, kpi, month, host_value


def log_in(page, live_server, username: str) -> None:
    page.context.clear_cookies()
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/")


def shot(page, name: str) -> None:
    width = page.viewport_size["width"]
    page.screenshot(path=str(SHOTS / f"disputes-{name}-{width}.png"), full_page=True)
    assert horizontal_overflow(page) <= 0, f"{name} scrolls sideways at {width} px"


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_disagreement_is_disputed_answered_corrected_and_scored(page, live_server,
                                                                   disagreement, viewport):
    agreement, kpi, month, host_value = disagreement
    SHOTS.mkdir(exist_ok=True)
    page.set_viewport_size(viewport)
    corrected = host_value + 7
    before = KPIScore.objects.get(run=ScoringRun.objects.current(), agreement=agreement,
                                  kpi=kpi, period=month)

    # The partner's user finds the disagreements of the last closed month and disputes one.
    log_in(page, live_server, "viewer")
    page.goto(f"{live_server.url}/reconciliation/?month={month}")
    row = page.locator(".reconciliation-table tbody tr", has_text=agreement.code).filter(
        has_text=kpi.name)
    assert row.count() == 1
    shot(page, "reconciliation")
    row.get_by_role("link", name="Dispute").click()
    page.wait_for_url("**/disputes/new/**")
    assert page.get_by_label("Month").input_value() == month
    assert page.get_by_text(f"{month} is closed").count() == 1
    page.get_by_label("Reason").fill("Our CRM counts seven more than the host's figure.")
    page.get_by_label("Value you believe right (optional)").fill(f"{corrected:g}")
    shot(page, "new")
    page.get_by_role("button", name="Open the dispute").click()
    page.wait_for_url("**/disputes/*/")
    dispute = Dispute.objects.get()
    assert (dispute.agreement, dispute.kpi, dispute.month, dispute.opened_side) == (
        agreement, kpi, month, "partner")
    assert page.locator(".dispute-state").first.inner_text() == "Open"
    shot(page, "opened")

    # A host manager answers in the thread; resolving needs the closed month reopened first.
    log_in(page, live_server, "manager")
    page.goto(f"{live_server.url}/disputes/")
    shot(page, "list")
    page.get_by_role("link", name=f"Dispute {dispute.pk}").click()
    page.wait_for_url(f"**/disputes/{dispute.pk}/")
    assert page.get_by_text(f"{month} is closed").count() >= 1
    page.get_by_label("Your answer").fill("We checked the CRM: seven were missing.")
    page.get_by_role("button", name="Add the answer").click()
    page.wait_for_url(f"**/disputes/{dispute.pk}/#thread")
    assert page.locator(".dispute-thread__step").count() == 2
    shot(page, "answered")

    # A host admin resolves it with the corrected value, reopening the month for it.
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/disputes/{dispute.pk}/")
    page.get_by_label("Enter a corrected value").check()
    page.get_by_label("Corrected value", exact=True).fill(f"{corrected:g}")
    page.get_by_label("Reopen the month first, with this dispute as the reason").check()
    page.get_by_label("Note to both sides (optional)").fill("Corrected to the CRM's count.")
    page.get_by_role("button", name="Resolve the dispute").click()
    page.wait_for_url(f"**/disputes/{dispute.pk}/#resolution")
    assert page.locator(".dispute-state").first.inner_text() == "Resolved"
    assert "Corrected to the CRM's count." in page.locator(".dispute-thread").inner_text()
    shot(page, "resolved")
    dispute.refresh_from_db()
    assert (dispute.status, dispute.resolution, dispute.resolved_value) == (
        "resolved", "corrected", corrected)
    assert not ProgramMonth.objects.get(month=month).closed
    assert f"Dispute {dispute.pk}" in MonthEvent.objects.filter(
        month=month, action="reopened").latest("at").reason

    # The next run scores the corrected value; the partner sees it.
    scoring_run_inline()
    after = KPIScore.objects.get(run=ScoringRun.objects.current(), agreement=agreement, kpi=kpi,
                                 period=month)
    assert after.actual == corrected and before.actual == host_value
    log_in(page, live_server, "viewer")
    page.goto(f"{live_server.url}/agreements/{agreement.code}/?month={month}")
    kpi_row = page.locator(".kpi-table tbody tr", has_text=kpi.name)
    actual = kpi_row.locator("td[data-label='Actual']").inner_text()
    assert kpi_value_text(corrected, kpi) in actual
    assert "dispute resolved" in actual
    assert kpi_row.locator("td[data-label='Score']").inner_text() == score_text(after.score)
    shot(page, "dashboard")
    assert page.problems == []

