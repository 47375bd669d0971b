"""A KPI's history opens in the agreement dashboard by HTMX, in a real browser, under the CSP,
at desktop and phone widths, and passes axe-core. Screenshots go to /tmp/pp-shots/."""

import pytest

from partnerships.models import Role
from scoring.services import scoring_run_inline
from tests.browser import (
    DESKTOP,
    PHONE,
    SHOTS,
    accessibility_violations,
    horizontal_overflow,
    log_in,
)
from tests.conftest import make_user, write_observations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_kpi_history_opens_as_a_panel_of_the_dashboard(
    page, live_server, django_user_model, acme, acme_agreement, kpis
):
    SHOTS.mkdir(exist_ok=True)
    viewer = make_user(django_user_model, "acme-viewer", Role.PARTNER_VIEWER, acme)
    host = make_user(django_user_model, "manager", Role.HOST_MANAGER)
    defect = kpis["defect_rate"]
    write_observations([(acme_agreement, defect, "partner", "2025-03-10", 4),
                        (acme_agreement, kpis["revenue"], "host", "2025-03-10", 80)],
                       side="partner", user=viewer)
    write_observations([(acme_agreement, defect, "host", "2025-03-12", 6),
                        (acme_agreement, defect, "partner", "2025-03-10", 5)], user=host)
    scoring_run_inline()

    log_in(page, live_server, "acme-viewer", "pw-acme-viewer")
    dashboard = f"{live_server.url}/agreements/ACME-CM-2025/?month=2025-03"
    page.goto(dashboard)
    page.get_by_role("link", name="Defect rate", exact=True).click()
    panel = page.locator("#kpi-history")
    panel.wait_for()
    assert page.url == dashboard  # a panel of the page, not another page
    text = panel.inner_text()
    assert "Where the values of Defect rate came from" in text
    assert "4.0 → 5.0" in text and "host team" in text and "manager" not in text
    assert panel.locator("tbody tr").count() == 2
    assert accessibility_violations(page) == []
    panel.screenshot(path=str(SHOTS / "kpi-history-desktop.png"))

    page.set_viewport_size(PHONE)
    page.goto(dashboard)
    page.get_by_role("link", name="Defect rate", exact=True).click()
    page.locator("#kpi-history").wait_for()
    assert horizontal_overflow(page) <= 0
    assert accessibility_violations(page) == []
    page.locator("#kpi-history").screenshot(path=str(SHOTS / "kpi-history-phone.png"))
    page.set_viewport_size(DESKTOP)
    assert page.problems == []


def test_a_partner_user_sees_the_hosts_import_of_their_agreement(
    page, live_server, django_user_model, acme, acme_agreement, kpis
):
    SHOTS.mkdir(exist_ok=True)
    make_user(django_user_model, "acme-viewer", Role.PARTNER_VIEWER, acme)
    host = make_user(django_user_model, "manager", Role.HOST_MANAGER)
    batch, _ = write_observations([(acme_agreement, kpis["revenue"], "host", "2025-03-10", 80),
                                   (acme_agreement, kpis["revenue"], "host", "2025-02-10", 70)],
                                  user=host)
    log_in(page, live_server, "acme-viewer", "pw-acme-viewer")
    page.goto(f"{live_server.url}/imports/")
    page.get_by_role("link", name="Import by the host team").click()
    page.wait_for_url(f"{live_server.url}/imports/{batch.pk}/")
    text = page.locator("main").inner_text()
    assert "It wrote 2 values of your agreements" in text and "Not offered" in text
    assert "manager" not in text
    for viewport, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page.set_viewport_size(viewport)
        assert accessibility_violations(page) == []
        assert horizontal_overflow(page) <= 0
        page.screenshot(path=str(SHOTS / f"import-host-batch-partner-{name}.png"),
                        full_page=True)
    assert page.problems == []
