"""Provenance both sides see: a KPI's history panel on the agreement dashboard (both sides'
values, how they arrived, replaced values, disputes, 13 months, scoping), and partner users
seeing every import that wrote their agreements' values, the host's included, limited to
their own rows."""

import datetime as dt
import re

import pandas as pd
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from partnerships.models import (
    Dispute,
    ImportBatch,
    ObservationChange,
    Role,
)
from partnerships.services import observations_write
from scoring.services import scoring_run_inline
from tests.conftest import make_agreement, make_user, write_observations

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def host_batch(rows: list[tuple], *, user, file_name: str = "host-march.csv") -> ImportBatch:
    """A host upload that wrote (agreement, kpi, side, 'YYYY-MM-DD', value) rows."""
    batch = ImportBatch.objects.create(source="upload", side="host", status="succeeded",
                                       user=user, file_name=file_name)
    frame = pd.DataFrame(
        [(agreement.id, kpi.id, side, dt.date.fromisoformat(day), float(value))
         for agreement, kpi, side, day, value in rows],
        columns=["agreement_id", "kpi_id", "side", "date", "value"])
    counts = observations_write(rows=frame, batch=batch, user=user)
    ImportBatch.objects.filter(pk=batch.pk).update(
        inserted=counts.inserted, updated=counts.updated, unchanged=counts.unchanged,
        rows_total=len(rows))
    batch.refresh_from_db()
    return batch


@pytest.fixture
def history(host_manager, acme, acme_agreement, globex_agreement, kpis):
    """Defect rate (the partner's KPI) of Acme reported by both sides, one value replaced by a
    host upload that also wrote Globex's rows, a value 13 months back, and a dispute."""
    editor = make_user(host_manager.__class__, "acme-editor", Role.PARTNER_EDITOR, acme)
    defect = kpis["defect_rate"]
    first, _ = write_observations([
        (acme_agreement, defect, "partner", "2025-03-10", 4),
        (acme_agreement, defect, "partner", "2024-03-10", 9),   # 13 months before 2025-04
        (acme_agreement, defect, "partner", "2024-04-10", 8),   # the window's first month
    ], side="partner", user=editor)
    ImportBatch.objects.filter(pk=first.pk).update(partner=acme, source="upload",
                                                   file_name="acme-own.csv")
    replacing = host_batch([
        (acme_agreement, defect, "host", "2025-03-12", 6),
        (acme_agreement, defect, "partner", "2025-03-10", 5),  # replaces the partner's 4
        (globex_agreement, defect, "host", "2025-03-12", 7.25),
    ], user=host_manager, file_name="globex-and-acme.csv")
    dispute = Dispute.objects.create(
        agreement=acme_agreement, kpi=defect, month="2025-03", opened_side="partner",
        opened_by=editor, reason="Our defect count was 4, not 5.", proposed_value=4)
    scoring_run_inline()
    return {"editor": editor, "first": first, "replacing": replacing, "dispute": dispute}


def panel(client: Client, code: str = "ACME-CM-2025", kpi: str = "defect_rate",
          month: str = "2025-04", htmx: bool = True):
    return client.get(f"/agreements/{code}/kpis/{kpi}/history/", {"month": month},
                      headers=HTMX if htmx else {})


def test_the_panel_shows_both_sides_values_how_they_arrived_and_the_replaced_values(
    history, host_manager
):
    response = panel(logged_in(host_manager))
    body = response.text
    assert response.status_code == 200 and "<html" not in body
    assert 'id="kpi-history"' in body and "2024-04 to 2025-04" in body
    march = body.split('id="kpi-history-2025-03"')[1].split("</section>")[0]
    rows = re.findall(r'data-label="Date" class="nowrap">([\d-]+)</td>\s*'
                      r'<td data-label="Side">(\w+).*?data-label="Value" class="num">([\d.]+)',
                      march, re.S)
    assert rows == [("2025-03-12", "host", "6.0"), ("2025-03-10", "partner", "5.0")]
    assert f'href="/imports/{history["replacing"].pk}/"' in march
    assert "File upload" in march and "globex-and-acme.csv" in march  # the host sees all
    # The replaced value: old → new, when, through which batch, and where the old one came from.
    assert re.search(r"2025-03-10, partner: <span class=\"num\">4.0 → 5.0</span>", march)
    assert f"file upload #{history['replacing'].pk}</a> by manager" in march
    assert f'href="/imports/{history["first"].pk}/">#{history["first"].pk}</a>' in march
    # The dispute marks the month.
    assert "⚑ Disputed" in march and "Our defect count was 4, not 5." in march
    assert f'href="/disputes/{history["dispute"].pk}/"' in march
    # The panel ends with a way back to the table it was opened from.
    assert '<a href="#kpi-heading">↑ Back to the KPI table</a>' in body


def test_the_window_is_the_month_and_the_12_before(history, host_manager):
    body = panel(logged_in(host_manager)).text
    assert 'id="kpi-history-2024-04"' in body
    assert "2024-03" not in body  # 13 months back: outside the window
    assert "No value of either side in 2024-05, 2024-06" in body
    earlier = panel(logged_in(host_manager), month="2024-03").text
    assert 'id="kpi-history-2024-03"' in earlier and "2025-03" not in earlier


def test_without_javascript_the_panel_is_a_page(history, host_manager):
    response = panel(logged_in(host_manager), htmx=False)
    assert response.status_code == 200 and "<html" in response.text
    assert 'href="/agreements/ACME-CM-2025/?month=2025-04"' in response.text
    assert "← Back to the dashboard of ACME-CM-2025" in response.text


def test_partner_users_see_their_agreements_history_with_the_host_as_host_team(
    history, acme_viewer, globex_viewer
):
    body = panel(logged_in(acme_viewer)).text
    assert "6.0" in body and "5.0" in body
    assert "by host team" in body and "manager" not in body
    assert "globex-and-acme.csv" not in body  # the host's file names are not shown
    assert "7.25" not in body  # Globex's value written by the same batch
    # Another partner's agreement answers exactly as a missing one.
    globex = logged_in(globex_viewer)
    other, missing = panel(globex), panel(globex, code="NO-SUCH-AGREEMENT")
    assert other.status_code == missing.status_code == 404
    def same(text: str, code: str) -> str:
        # Nonces and CSRF tokens differ on every answer.
        return re.sub(r"[A-Za-z0-9_-]{20,}", "", text.replace(code, "CODE"))

    assert same(other.text, "ACME-CM-2025") == same(missing.text, "NO-SUCH-AGREEMENT")
    # A KPI that is not the agreement's: 404 too.
    assert panel(logged_in(acme_viewer), kpi="no_such_kpi").status_code == 404


def test_the_dashboard_links_each_kpi_to_its_history(history, acme_viewer):
    body = logged_in(acme_viewer).get("/agreements/ACME-CM-2025/", {"month": "2025-03"}).text
    url = "/agreements/ACME-CM-2025/kpis/defect_rate/history/?month=2025-03"
    assert f'href="{url}"' in body and f'hx-get="{url}"' in body
    assert 'hx-target="#kpi-history-slot"' in body and 'id="kpi-history-slot"' in body


def test_the_panel_reads_a_fixed_number_of_queries(history, host_manager, kpis, globex):
    client = logged_in(host_manager)
    panel(client)
    with CaptureQueriesContext(connection) as few:
        panel(client)
    for number in range(5):
        make_agreement(globex, f"GLOBEX-MORE-{number}", kpis)
    with CaptureQueriesContext(connection) as more:
        panel(client)
    assert len(more) == len(few)


def test_partner_users_see_the_host_imports_of_their_agreements_limited_to_their_rows(
    history, acme_viewer
):
    client = logged_in(acme_viewer)
    replacing = history["replacing"]
    listing = client.get("/imports/").text
    assert f'href="/imports/{replacing.pk}/"' in listing and "Import by the host team" in listing
    assert "globex-and-acme.csv" not in listing
    row = listing.split(f'href="/imports/{replacing.pk}/"')[1].split("</tr>")[0]
    # Two values of Acme's agreement (one new, one replacing), not the batch's three.
    assert re.findall(r'class="num[^"]*"[^>]*>([\d,—]+)</td>', row)[:4] == ["2", "1", "1", "—"]

    page = client.get(f"/imports/{replacing.pk}/").text
    assert "It wrote 2 values of your agreements" in page
    assert "globex" not in page.lower() and "7.25" not in page
    assert "host team" in page and "manager" not in page
    assert f"/imports/{replacing.pk}/file/" not in page and "Not offered" in page
    refused = client.get(f"/imports/{replacing.pk}/file/")
    assert refused.status_code == 302 and refused["Location"] == f"/imports/{replacing.pk}/"

    dashboard = client.get("/agreements/ACME-CM-2025/").text
    assert f"Import {replacing.pk}</a>" in dashboard and "by the host team" in dashboard
    assert "by your side" not in dashboard


def test_a_host_import_of_another_partner_only_stays_hidden(
    host_manager, acme_viewer, globex_agreement, kpis
):
    only_globex = host_batch([(globex_agreement, kpis["revenue"], "host", "2025-03-12", 3)],
                             user=host_manager)
    client = logged_in(acme_viewer)
    assert client.get(f"/imports/{only_globex.pk}/").status_code == 404
    assert f"/imports/{only_globex.pk}/" not in client.get("/imports/").text


def test_an_import_whose_values_were_all_replaced_stays_visible_with_its_counts(
    history, acme_agreement, kpis, host_manager, acme_viewer
):
    first = history["first"]
    later = host_batch([(acme_agreement, kpis["defect_rate"], "partner", day, 1)
                        for day in ("2025-03-10", "2024-03-10", "2024-04-10")],
                       user=host_manager)
    assert ObservationChange.objects.filter(old_batch=first).count() == 3
    assert later.updated == 3
    client = logged_in(acme_viewer)
    assert client.get(f"/imports/{first.pk}/").status_code == 200
