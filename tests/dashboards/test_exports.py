"""CSV downloads: the agreement dashboard's tables and the scorecard export of DOMAIN.md."""

import csv
import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from partnerships.models import (
    AgreementKPI,
    AuditAction,
    AuditEvent,
    IncentivePlan,
    KPIDefinition,
)
from scoring.exports import format_number, scorecard_export_rows
from scoring.models import KPIScore, Scorecard, ScoringRun
from scoring.services import scoring_run_inline
from tests.conftest import make_agreement, write_observations
from tests.test_isolation import normalised

pytestmark = pytest.mark.django_db

BOM = "\ufeff"


@pytest.fixture
def scored(acme, globex, acme_agreement, globex_agreement, kpis):
    IncentivePlan.objects.create(agreement=acme_agreement, base_amount=1000)
    rev, defect = kpis["revenue"], kpis["defect_rate"]
    rows = []
    for month, value in ((1, 50), (2, 80), (3, 120), (4, 90)):
        day = f"2025-{month:02d}"
        rows += [
            (acme_agreement, rev, "host", f"{day}-10", value),
            (acme_agreement, rev, "partner", f"{day}-11", value * 1.2),
            (acme_agreement, defect, "partner", f"{day}-05", 3),
            (globex_agreement, rev, "host", f"{day}-15", 95),
            (globex_agreement, defect, "partner", f"{day}-15", 2),
        ]
    write_observations(rows)
    scoring_run_inline()
    return acme_agreement, globex_agreement


def command_output(*args: str) -> str:
    out = io.StringIO()
    call_command("export_scorecards", *args, stdout=out)
    return out.getvalue()


def body(response) -> str:
    return b"".join(response.streaming_content).decode("utf-8")


def test_host_download_is_byte_for_byte_the_command_output(client, host_manager, scored):
    client.force_login(host_manager)
    response = client.get(reverse("scorecard_export"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="scorecards.csv"' in response["Content-Disposition"]
    assert body(response) == command_output()
    period = client.get(reverse("scorecard_export"), {"period": "2025-02"})
    assert body(period) == command_output("--period", "2025-02")
    assert 'filename="scorecards-2025-02.csv"' in period["Content-Disposition"]


def test_partner_download_holds_only_their_own_agreements(client, acme_viewer, scored):
    client.force_login(acme_viewer)
    text = body(client.get(reverse("scorecard_export")))
    lines = command_output().splitlines(keepends=True)
    expected = lines[0] + "".join(line for line in lines[1:] if line.startswith("ACME-CM-2025,"))
    assert text == expected
    assert "GLOBEX" not in text and "globex" not in text
    assert len(text.splitlines()) == 1 + 4


def test_bad_period_is_refused_with_a_message(client, host_manager, scored):
    client.force_login(host_manager)
    response = client.get(reverse("scorecard_export"), {"period": "2025-13"})
    assert response.status_code == 400
    assert b"YYYY-MM" in response.content


def test_anonymous_visitors_are_sent_to_log_in(client, scored):
    for name, args in (("scorecard_export", []), ("agreement_kpis_csv", ["ACME-CM-2025"]),
                       ("agreement_months_csv", ["ACME-CM-2025"])):
        response = client.get(reverse(name, args=args))
        assert response.status_code == 302
        assert "/login/" in response["Location"]


def test_kpi_table_csv_has_the_stored_values_a_bom_and_a_named_file(
    client, host_manager, scored, kpis
):
    acme = scored[0]
    client.force_login(host_manager)
    response = client.get(reverse("agreement_kpis_csv", args=[acme.code]), {"month": "2025-02"})
    assert response.status_code == 200
    assert 'filename="ACME-CM-2025-kpis-2025-02.csv"' in response["Content-Disposition"]
    text = body(response)
    assert text.startswith(BOM + "agreement,period,kpi,")
    rows = {row["kpi"]: row for row in csv.DictReader(io.StringIO(text.removeprefix(BOM)))}
    stored = KPIScore.objects.get(run=ScoringRun.objects.current(), agreement=acme,
                                  kpi=kpis["revenue"], period="2025-02")
    revenue = rows["revenue"]
    assert revenue["actual"] == format_number(stored.actual) == "80.0000"
    assert revenue["score"] == format_number(stored.score)
    assert revenue["other_side_value"] == "96.0000"
    assert revenue["difference_percent"] == "20.0000"
    assert revenue["source_side"] == "host"
    assert rows["defect_rate"]["source_side"] == "partner"


def test_months_csv_matches_the_scorecard_export_and_has_payouts(client, acme_viewer, scored):
    acme = scored[0]
    client.force_login(acme_viewer)
    text = body(client.get(reverse("agreement_months_csv", args=[acme.code])))
    rows = {row["period"]: row for row in csv.DictReader(io.StringIO(text.removeprefix(BOM)))}
    export = {row[2]: row for row in scorecard_export_rows(run=ScoringRun.objects.current())
              if row[0] == acme.code}
    assert set(rows) == set(export)
    for period, row in rows.items():
        assert [row[name] for name in ("financial", "strategic", "operational", "relationship",
                                       "overall", "coverage", "rolling", "tier", "flags")] \
            == export[period][3:12]
        card = Scorecard.objects.get(run=ScoringRun.objects.current(), agreement=acme,
                                     period=period)
        assert row["payout"] == f"{card.payout:.2f}"


def test_other_partners_agreement_is_a_404_like_a_missing_one(client, acme_viewer, scored):
    client.force_login(acme_viewer)
    for name in ("agreement_kpis_csv", "agreement_months_csv"):
        other = client.get(reverse(name, args=["GLOBEX-REF-2025"]))
        missing = client.get(reverse(name, args=["NO-SUCH-CODE"]))
        assert other.status_code == missing.status_code == 404
        # The same page but for its one-time tokens (nonce, CSRF), new on every answer.
    assert normalised(other.text, []) == normalised(missing.text, [])


def test_every_download_is_audited(client, acme_viewer, scored):
    client.force_login(acme_viewer)
    before = AuditEvent.objects.filter(action=AuditAction.EXPORT).count()
    body(client.get(reverse("scorecard_export")))
    body(client.get(reverse("agreement_kpis_csv", args=["ACME-CM-2025"])))
    body(client.get(reverse("agreement_months_csv", args=["ACME-CM-2025"])))
    events = AuditEvent.objects.filter(action=AuditAction.EXPORT).order_by("pk")[before:]
    assert [event.user for event in events] == [acme_viewer] * 3
    assert all(event.partner.slug == "acme" for event in events)
    assert events[0].detail["scope"] == "partner"
    assert events[1].detail == {"agreement": "ACME-CM-2025", "period": "2025-04", "rows": 2}


def test_text_cells_that_spreadsheets_would_run_are_escaped(client, host_manager, acme, kpis):
    formula = KPIDefinition.objects.create(
        code="leads", name='=HYPERLINK("http://example.com","x")', unit="+1",
        category="strategic", aggregation="sum", source="host")
    agreement = make_agreement(acme, "-ACME-2", kpis, weights=(50, 25, 25, 0))
    AgreementKPI.objects.create(agreement=agreement, kpi=formula, target=10, floor=0)
    write_observations([(agreement, formula, "host", "2025-01-10", 5),
                        (agreement, kpis["revenue"], "host", "2025-01-10", -5)])
    scoring_run_inline()
    client.force_login(host_manager)
    text = body(client.get(reverse("agreement_kpis_csv", args=[agreement.code])))
    rows = list(csv.reader(io.StringIO(text.removeprefix(BOM))))
    leads = next(row for row in rows if row[2] == "leads")
    assert leads[0] == "'-ACME-2"
    assert leads[3] == "'=HYPERLINK(\"http://example.com\",\"x\")"
    assert leads[5] == "'+1"
    revenue = next(row for row in rows if row[2] == "revenue")
    # A negative number stays a number.
    assert revenue[6] == "-5.0000"
    months = body(client.get(reverse("agreement_months_csv", args=[agreement.code])))
    assert "\n'-ACME-2,2025-01," in months


def test_scorecard_export_streams_a_partners_rows_chosen_by_agreement_not_by_text(
        client, acme_viewer, acme, globex, kpis):
    # Acme's code escaped for spreadsheets reads exactly as Globex's code does: a filter that
    # compared the escaped text would hand Acme the other partner's row.
    mine = make_agreement(acme, "-A1", kpis)
    theirs = make_agreement(globex, "'-A1", kpis)
    write_observations([(mine, kpis["revenue"], "host", "2025-01-10", 50),
                        (theirs, kpis["revenue"], "host", "2025-01-10", 70)])
    scoring_run_inline()
    client.force_login(acme_viewer)
    response = client.get(reverse("scorecard_export"))
    assert isinstance(response, StreamingHttpResponse)
    # The rows are read while the body streams, not before the response is returned.
    with CaptureQueriesContext(connection) as queries:
        rows = list(csv.reader(io.StringIO(body(response))))
    assert any("scoring_scorecard" in query["sql"] for query in queries.captured_queries)
    assert [row[:3] for row in rows[1:]] == [["'-A1", "acme", "2025-01"]]


def test_portfolio_export_streams_and_partner_users_get_none_of_it(
        client, host_manager, acme_viewer, scored):
    client.force_login(host_manager)
    response = client.get(reverse("portfolio_export"))
    assert isinstance(response, StreamingHttpResponse)
    with CaptureQueriesContext(connection) as queries:
        rows = list(csv.reader(io.StringIO(body(response).removeprefix(BOM))))
    assert any("partnerships_agreement" in query["sql"] for query in queries.captured_queries)
    assert [row[2] for row in rows[1:]] == ["ACME-CM-2025", "GLOBEX-REF-2025"]
    # The portfolio is the host's page: a partner user has no export of it at all.
    client.force_login(acme_viewer)
    assert client.get(reverse("portfolio_export")).status_code == 404
