"""The Statements page and its CSV, and the agreement dashboard's payouts from the statements:
the host sees the program's lines, a partner user only theirs; filters, status (approved,
awaiting approval, reopened), sums, the CSV of `export_statements`; closed months from their
statement lines, open months as estimates, "paid up to" only for approved months."""

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse

from partnerships.models import AuditEvent, IncentivePlan, Role
from scoring import services
from scoring.closing import month_reopen, months_close, statement_approve
from scoring.models import Scorecard, ScoringRun, StatementLine
from scoring.statements import statements_csv
from tests.conftest import make_user, write_observations

pytestmark = pytest.mark.django_db

STATEMENTS = reverse("statements")
CSV = reverse("statements_csv")


@pytest.fixture
def host_admin(django_user_model):
    return make_user(django_user_model, "admin", Role.HOST_ADMIN)


@pytest.fixture
def second_admin(django_user_model):
    return make_user(django_user_model, "admin2", Role.HOST_ADMIN)


@pytest.fixture
def paid_program(acme_agreement, globex_agreement, kpis):
    """Two agreements with incentive plans of 1,000 a month (acme in USD, globex in EUR),
    scored over 2025-01 to 2025-03: nothing due in January (no tier yet); in February globex
    1,500.00 EUR (strategic, overall 100) and acme 712.50 USD (transactional, overall 71.25)."""
    rev, defect = kpis["revenue"], kpis["defect_rate"]
    rows = []
    for month, (acme_rev, globex_rev) in enumerate([(50, 90), (80, 100), (120, 130)], start=1):
        rows += [
            (acme_agreement, rev, "host", f"2025-{month:02d}-10", acme_rev),
            (acme_agreement, defect, "partner", f"2025-{month:02d}-10", 5),
            (globex_agreement, rev, "host", f"2025-{month:02d}-15", globex_rev),
            (globex_agreement, defect, "partner", f"2025-{month:02d}-15", 2),
        ]
    write_observations(rows)
    IncentivePlan.objects.create(agreement=acme_agreement, base_amount=1000)
    IncentivePlan.objects.create(agreement=globex_agreement, base_amount=1000, currency="EUR")
    services.scoring_run_inline()
    return acme_agreement, globex_agreement


@pytest.fixture
def closed(paid_program, host_manager, host_admin):
    """January and February closed by the host manager; January's statement approved."""
    months_close(through="2025-02", user=host_manager)
    statement_approve(month="2025-01", user=host_admin)
    return paid_program


def lines_shown(response) -> list[tuple[str, str, str, Decimal]]:
    return [(month.month, statement.agreement_code, line.kind, line.amount)
            for month in response.context["months"]
            for statement in month.agreements for line in statement.lines]


def csv_text(response) -> str:
    return b"".join(response.streaming_content).decode()


def command_output(*args: str) -> str:
    out = io.StringIO()
    call_command("export_statements", *args, stdout=out)
    return out.getvalue()


# ---- The page ----------------------------------------------------------------------------


def test_host_sees_every_line_newest_month_first_with_the_sums(client, host_manager, closed):
    client.force_login(host_manager)
    response = client.get(STATEMENTS)
    assert response.status_code == 200
    assert lines_shown(response) == [
        ("2025-02", "ACME-CM-2025", "payout", Decimal("712.50")),
        ("2025-02", "GLOBEX-REF-2025", "payout", Decimal("1500.00")),
        ("2025-01", "ACME-CM-2025", "payout", Decimal("0.00")),
        ("2025-01", "GLOBEX-REF-2025", "payout", Decimal("0.00")),
    ]
    february = response.context["months"][0]
    assert february.totals == [("EUR", Decimal("1500.00")), ("USD", Decimal("712.50"))]
    assert [statement.total for statement in february.agreements] == [
        Decimal("712.50"), Decimal("1500.00")]
    assert "1,500.00 EUR" in response.text and "712.50 USD" in response.text
    assert "× 1.50" in response.text  # globex's strategic multiplier


def test_status_says_approved_with_who_and_when_or_awaiting_approval(client, host_manager,
                                                                      closed):
    client.force_login(host_manager)
    response = client.get(STATEMENTS)
    statuses = {month.month: month.status for month in response.context["months"]}
    assert statuses["2025-01"].status == "approved"
    assert statuses["2025-01"].approved_by == "admin"
    assert statuses["2025-02"].status == "awaiting"
    assert statuses["2025-02"].closed_by == "manager"
    assert "Approved for payment by admin on" in response.text
    assert "awaiting approval for payment by a host admin other than manager" in response.text
    totals = {item["status"]: item["totals"] for item in response.context["totals"]}
    assert totals == {"approved": [("EUR", Decimal("0.00")), ("USD", Decimal("0.00"))],
                      "awaiting": [("EUR", Decimal("1500.00")), ("USD", Decimal("712.50"))]}


@pytest.mark.parametrize(("query", "expected"), [
    ({"month": "2025-02"}, {("2025-02", "ACME-CM-2025"), ("2025-02", "GLOBEX-REF-2025")}),
    ({"agreement": "GLOBEX-REF-2025"},
     {("2025-02", "GLOBEX-REF-2025"), ("2025-01", "GLOBEX-REF-2025")}),
    ({"status": "approved"}, {("2025-01", "ACME-CM-2025"), ("2025-01", "GLOBEX-REF-2025")}),
    ({"status": "awaiting", "agreement": "ACME-CM-2025"}, {("2025-02", "ACME-CM-2025")}),
    ({"status": "reopened"}, set()),
])
def test_filters_select_by_month_agreement_and_status(client, host_manager, closed, query,
                                                       expected):
    client.force_login(host_manager)
    response = client.get(STATEMENTS, query)
    assert {(month, code) for month, code, _, _ in lines_shown(response)} == expected


def test_htmx_swaps_the_results_only_and_keeps_the_filters_in_the_links(client, host_manager,
                                                                        closed):
    client.force_login(host_manager)
    response = client.get(STATEMENTS, {"month": "2025-02"}, headers={"HX-Request": "true"})
    assert response.text.lstrip().startswith('<section id="statement-results"')
    assert "<form" not in response.text
    assert f'href="{CSV}?month=2025-02"' in response.text
    assert "HX-Request" in response["Vary"]


def test_a_long_list_is_paged_by_agreement_month_with_whole_month_totals(
        client, host_manager, closed, monkeypatch):
    monkeypatch.setattr("dashboards.selectors.statements.GROUPS_PER_PAGE", 1)
    client.force_login(host_manager)
    response = client.get(STATEMENTS, {"page": "2"})
    assert lines_shown(response) == [("2025-02", "GLOBEX-REF-2025", "payout", Decimal("1500.00"))]
    assert response.context["months"][0].totals == [
        ("EUR", Decimal("1500.00")), ("USD", Decimal("712.50"))]
    assert response.context["page"].paginator.num_pages == 4
    assert "page=3" in response.text and "page=1" in response.text


def test_partner_user_sees_only_their_own_agreements_lines(client, acme_viewer, closed):
    client.force_login(acme_viewer)
    response = client.get(STATEMENTS)
    assert {code for _, code, _, _ in lines_shown(response)} == {"ACME-CM-2025"}
    assert "GLOBEX" not in response.text and "EUR" not in response.text
    # The agreement filter offers their own agreements only.
    assert [agreement.code for agreement in
            response.context["form"].fields["agreement"].queryset] == ["ACME-CM-2025"]


def test_another_partners_agreement_reads_as_one_that_does_not_exist(client, acme_viewer,
                                                                     closed):
    client.force_login(acme_viewer)
    # The results as htmx swaps them in (the whole page differs by its nonces only).
    htmx = {"HX-Request": "true"}
    other = client.get(STATEMENTS, {"agreement": "GLOBEX-REF-2025"}, headers=htmx)
    missing = client.get(STATEMENTS, {"agreement": "NO-SUCH-1"}, headers=htmx)
    assert other.status_code == missing.status_code == 200
    assert lines_shown(other) == lines_shown(missing) == []
    assert "There is no statement of yours for that agreement." in other.text
    assert other.text.replace("GLOBEX-REF-2025", "X") == missing.text.replace("NO-SUCH-1", "X")
    csv_other = client.get(CSV, {"agreement": "GLOBEX-REF-2025"})
    assert csv_other.status_code == client.get(CSV, {"agreement": "NO-SUCH-1"}).status_code == 400


def test_a_reopened_month_shows_its_lines_as_reopened_and_the_adjustment_with_its_reason(
        client, host_manager, second_admin, closed, kpis):
    acme, _ = closed
    month_reopen(month="2025-02", reason="late February deals", user=second_admin)
    client.force_login(host_manager)
    reopened = client.get(STATEMENTS, {"status": "reopened"})
    assert {month for month, _, _, _ in lines_shown(reopened)} == {"2025-02"}
    assert "Reopened for correction" in reopened.text
    write_observations([(acme, kpis["revenue"], "host", "2025-02-25", 20)])
    services.scoring_run_inline()
    months_close(through="2025-02", user=host_manager)
    response = client.get(STATEMENTS, {"month": "2025-02", "agreement": acme.code})
    # acme February: revenue 100 → overall 81.25, payout 812.50: 100.00 more than paid.
    assert lines_shown(response) == [
        ("2025-02", "ACME-CM-2025", "payout", Decimal("712.50")),
        ("2025-02", "ACME-CM-2025", "adjustment", Decimal("100.00")),
    ]
    assert response.context["months"][0].agreements[0].total == Decimal("812.50")
    assert "late February deals" in response.text
    assert "Due to ACME-CM-2025 for 2025-02" in response.text
    assert response.context["months"][0].status.status == "awaiting"


def test_without_statements_the_page_says_when_they_are_written(client, host_manager,
                                                                paid_program):
    client.force_login(host_manager)
    response = client.get(STATEMENTS)
    assert "No statement yet: statements are written when a month closes." \
        in response.text


# ---- The CSV -------------------------------------------------------------------------------


def test_host_csv_is_what_export_statements_writes(client, host_manager, closed):
    client.force_login(host_manager)
    assert csv_text(client.get(CSV)) == command_output()
    assert csv_text(client.get(CSV, {"month": "2025-02"})) == command_output(
        "--period", "2025-02")


def test_filtered_csv_holds_the_lines_of_the_page_in_the_same_format(client, host_manager,
                                                                     closed):
    client.force_login(host_manager)
    text = csv_text(client.get(CSV, {"status": "awaiting", "agreement": "GLOBEX-REF-2025"}))
    header, *rows = text.splitlines()
    assert header == command_output().splitlines()[0]
    assert rows == [line for line in command_output().splitlines()[1:]
                    if line.startswith("GLOBEX-REF-2025,") and ",2025-02," in line]
    assert len(rows) == 1


def test_partner_csv_holds_only_their_lines(client, acme_viewer, closed):
    acme, _ = closed
    client.force_login(acme_viewer)
    response = client.get(CSV)
    expected = io.StringIO()
    statements_csv(stream=expected, agreement_ids=[acme.pk])
    text = csv_text(response)
    assert text == expected.getvalue()
    assert "GLOBEX" not in text and len(text.splitlines()) == 3
    assert 'filename="statements-acme.csv"' in response["Content-Disposition"]


def test_csv_download_is_audited_as_an_export(client, acme_viewer, closed):
    client.force_login(acme_viewer)
    csv_text(client.get(CSV, {"month": "2025-02"}))
    event = AuditEvent.objects.filter(action="export", target="statements").get()
    assert event.detail == {"rows": 1, "scope": "partner", "month": "2025-02"}
    assert event.partner.slug == "acme"


# ---- The agreement dashboard's tier-and-payout table ----------------------------------------


def payout_rows(client, code: str, month: str = "2025-03") -> tuple[dict, dict]:
    response = client.get(reverse("agreement_dashboard", args=[code]), {"month": month})
    return {row["period"]: row for row in response.context["month_rows"]}, response


def test_closed_months_show_their_statement_and_open_months_an_estimate(client, host_manager,
                                                                        closed):
    acme, _ = closed
    client.force_login(host_manager)
    rows, response = payout_rows(client, acme.code)
    march = Scorecard.objects.of_run(ScoringRun.objects.current()).get(agreement=acme,
                                                                        period="2025-03")
    assert (rows["2025-03"]["payout_status"], rows["2025-03"]["payout"]) == (
        "estimate", march.payout)
    assert (rows["2025-02"]["payout_status"], rows["2025-02"]["payout"]) == (
        "awaiting", Decimal("712.50"))
    assert (rows["2025-01"]["payout_status"], rows["2025-01"]["payout"]) == (
        "approved", Decimal("0.00"))
    assert "estimate, open month" in response.text
    assert "closed, awaiting approval" in response.text


def test_paid_up_to_counts_only_approved_months(client, host_manager, second_admin, closed):
    acme, _ = closed
    client.force_login(host_manager)
    _, response = payout_rows(client, acme.code)
    assert (response.context["paid_through"], response.context["paid_total"]) == (
        "2025-01", Decimal("0.00"))
    assert "Paid up to <strong>2025-01</strong>: <strong>0.00 USD</strong>" in response.text
    statement_approve(month="2025-02", user=second_admin)
    _, response = payout_rows(client, acme.code)
    assert (response.context["paid_through"], response.context["paid_total"]) == (
        "2025-02", Decimal("712.50"))
    assert "Paid up to <strong>2025-02</strong>: <strong>712.50 USD</strong>" in response.text


def test_with_no_approved_month_the_dashboard_says_nothing_is_paid(client, acme_viewer,
                                                                   paid_program):
    months_close(through="2025-02", user=None)
    client.force_login(acme_viewer)
    _, response = payout_rows(client, paid_program[0].code)
    assert response.context["paid_through"] == ""
    assert "Not paid for any month yet: no statement of this agreement is approved" \
        in response.text


def test_a_closed_month_shows_the_sum_of_its_lines_after_an_adjustment(
        client, host_manager, second_admin, closed, kpis):
    acme, _ = closed
    month_reopen(month="2025-02", reason="late February deals", user=second_admin)
    client.force_login(host_manager)
    rows, _ = payout_rows(client, acme.code)
    assert rows["2025-02"]["payout_status"] == "estimate"  # reopened: open again
    write_observations([(acme, kpis["revenue"], "host", "2025-02-25", 20)])
    services.scoring_run_inline()
    months_close(through="2025-02", user=host_manager)
    rows, _ = payout_rows(client, acme.code)
    assert StatementLine.objects.filter(agreement=acme, period="2025-02").count() == 2
    assert (rows["2025-02"]["payout_status"], rows["2025-02"]["payout"]) == (
        "awaiting", Decimal("812.50"))


def test_paid_up_to_stops_at_a_month_still_awaiting_approval(client, host_manager, host_admin,
                                                            paid_program):
    acme, _ = paid_program
    months_close(through="2025-02", user=host_manager)
    # February approved before January: nothing is paid up to February while January waits.
    statement_approve(month="2025-02", user=host_admin)
    client.force_login(host_manager)
    _, response = payout_rows(client, acme.code)
    assert response.context["paid_through"] == ""
    statement_approve(month="2025-01", user=host_admin)
    _, response = payout_rows(client, acme.code)
    assert (response.context["paid_through"], response.context["paid_total"]) == (
        "2025-02", Decimal("712.50"))
