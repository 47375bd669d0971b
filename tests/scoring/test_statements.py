"""Payout statements of closed months: lines at close, adjustments after a reopening, the sum
of an agreement's lines equal to what is due, approval, and the CSV of DOMAIN.md."""

import io
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.db.models import Sum

from partnerships.models import AgreementKPI, AuditEvent, IncentivePlan, Role
from scoring import services
from scoring.closing import (
    ClosingRefused,
    month_reopen,
    months_close,
    statement_approve,
    statement_approved,
)
from scoring.models import Scorecard, ScoringRun, StatementLine
from scoring.statements import STATEMENT_HEADER, payout_amount, statements_csv
from tests.conftest import make_user, write_observations

pytestmark = pytest.mark.django_db


@pytest.fixture
def host_admin(django_user_model):
    return make_user(django_user_model, "admin", Role.HOST_ADMIN)


@pytest.fixture
def second_admin(django_user_model):
    return make_user(django_user_model, "admin2", Role.HOST_ADMIN)


@pytest.fixture
def paid_program(acme_agreement, globex_agreement, kpis):
    """Two agreements with incentive plans of 1,000 a month, scored over 2025-01 to 2025-03.

    globex: overall 95, 100, 110 (revenue 90, 100, 130 of 100; defect rate on target), acme:
    56.25, 71.25, 91.25. Two candidates a month from February: globex strategic (×1.5), acme
    transactional (×1.0); no tier in January, so nothing is due then.
    """
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


def lines(agreement, period):
    return list(StatementLine.objects.filter(agreement=agreement, period=period).order_by("id")
                .values_list("kind", "tier", "multiplier", "base_amount", "currency", "amount",
                             "reason"))


def due(agreement, period) -> Decimal:
    card = Scorecard.objects.of_run(ScoringRun.objects.current()).get(
        agreement=agreement, period=period)
    return payout_amount(card.payout)


def line_sum(agreement, period) -> Decimal:
    return StatementLine.objects.filter(agreement=agreement, period=period).aggregate(
        total=Sum("amount"))["total"]


def test_closing_writes_a_line_per_agreement_with_a_plan_and_a_scorecard(paid_program):
    acme, globex = paid_program
    months_close(through="2025-02", user=None)
    assert lines(globex, "2025-01") == [
        ("payout", "", None, Decimal("1000.00"), "EUR", Decimal("0.00"), "")]
    assert lines(acme, "2025-01") == [
        ("payout", "", None, Decimal("1000.00"), "USD", Decimal("0.00"), "")]
    # globex February: 1000 × 1.5 × 100 / 100; acme: 1000 × 1.0 × 71.25 / 100.
    assert lines(globex, "2025-02") == [
        ("payout", "strategic", Decimal("1.500"), Decimal("1000.00"), "EUR",
         Decimal("1500.00"), "")]
    assert lines(acme, "2025-02") == [
        ("payout", "transactional", Decimal("1.000"), Decimal("1000.00"), "USD",
         Decimal("712.50"), "")]
    assert not StatementLine.objects.filter(period="2025-03").exists()


def test_an_agreement_without_a_plan_gets_no_line(paid_program):
    acme, _ = paid_program
    IncentivePlan.objects.filter(agreement=acme).delete()
    services.scoring_run_inline()
    months_close(through="2025-02", user=None)
    assert not StatementLine.objects.filter(agreement=acme).exists()


@pytest.mark.parametrize(("payout", "amount"), [
    (None, "0.00"), (0.0, "0.00"), (712.5, "712.50"), (1.005, "1.01"), (2.675, "2.68"),
    (0.004999, "0.00"), (float("nan"), "0.00"), (1234.5649, "1234.56"),
])
def test_a_payout_is_rounded_half_up_to_cents(payout, amount):
    assert payout_amount(payout) == Decimal(amount)


def test_reclosing_a_changed_month_adds_an_adjustment_with_the_reason(paid_program, host_admin,
                                                                       kpis):
    acme, globex = paid_program
    months_close(through="2025-03", user=None)
    month_reopen(month="2025-02", reason="acme's late February deals", user=host_admin)
    write_observations([(acme, kpis["revenue"], "host", "2025-02-25", 20)])
    services.scoring_run_inline()
    assert months_close(through="2025-03", user=None) == ["2025-02", "2025-03"]
    # acme February: revenue 100 → overall 81.25, payout 812.50: 100.00 more than paid.
    assert lines(acme, "2025-02") == [
        ("payout", "transactional", Decimal("1.000"), Decimal("1000.00"), "USD",
         Decimal("712.50"), ""),
        ("adjustment", "transactional", Decimal("1.000"), Decimal("1000.00"), "USD",
         Decimal("100.00"), "acme's late February deals"),
    ]
    # globex did not change: no adjustment.
    assert [kind for kind, *_ in lines(globex, "2025-02")] == ["payout"]
    for agreement in (acme, globex):
        for period in ("2025-01", "2025-02", "2025-03"):
            assert line_sum(agreement, period) == due(agreement, period)


def test_a_lower_amount_at_a_later_close_is_a_negative_adjustment(paid_program, host_admin):
    acme, _ = paid_program
    months_close(through="2025-02", user=None)
    month_reopen(month="2025-02", reason="target corrected", user=host_admin)
    AgreementKPI.objects.filter(agreement=acme, kpi__code="revenue").update(target=160)
    services.scoring_run_inline()
    months_close(through="2025-02", user=None)
    adjustment = StatementLine.objects.get(agreement=acme, period="2025-02", kind="adjustment")
    assert adjustment.amount < 0
    assert adjustment.reason == "target corrected"
    assert line_sum(acme, "2025-02") == due(acme, "2025-02")


def test_a_month_closed_again_unchanged_writes_no_line(paid_program, host_admin):
    months_close(through="2025-02", user=None)
    count = StatementLine.objects.count()
    month_reopen(month="2025-01", reason="checking", user=host_admin)
    months_close(through="2025-02", user=None)
    assert StatementLine.objects.count() == count


def test_a_line_is_never_changed(paid_program):
    months_close(through="2025-02", user=None)
    line = StatementLine.objects.first()
    line.amount = Decimal("1.00")
    with pytest.raises(ValueError, match="never changed"):
        line.save()


def test_a_statement_is_approved_by_a_host_admin_other_than_its_closer(
        paid_program, host_admin, second_admin, host_manager):
    months_close(through="2025-02", user=host_admin)
    with pytest.raises(ClosingRefused, match="another host admin"):
        statement_approve(month="2025-02", user=host_admin)
    with pytest.raises(PermissionDenied):
        statement_approve(month="2025-02", user=host_manager)
    with pytest.raises(ClosingRefused, match="not closed"):
        statement_approve(month="2025-03", user=second_admin)
    assert not statement_approved("2025-02")
    statement_approve(month="2025-02", user=second_admin)
    assert statement_approved("2025-02")
    assert AuditEvent.objects.filter(action="statement_approved", user=second_admin).count() == 1
    with pytest.raises(ClosingRefused, match="approved already"):
        statement_approve(month="2025-02", user=second_admin)


def test_a_month_closed_again_needs_a_new_approval(paid_program, host_admin, second_admin):
    months_close(through="2025-02", user=None)
    statement_approve(month="2025-02", user=second_admin)
    month_reopen(month="2025-02", reason="late data", user=host_admin)
    assert not statement_approved("2025-02")
    months_close(through="2025-02", user=host_admin)
    assert not statement_approved("2025-02")
    statement_approve(month="2025-02", user=second_admin)
    assert statement_approved("2025-02")


def test_the_statement_csv_is_the_domain_format(paid_program, host_admin, kpis):
    acme, _ = paid_program
    months_close(through="2025-02", user=None)
    month_reopen(month="2025-02", reason="late deals", user=host_admin)
    write_observations([(acme, kpis["revenue"], "host", "2025-02-25", 20)])
    services.scoring_run_inline()
    months_close(through="2025-02", user=None)
    stream = io.StringIO()
    assert statements_csv(stream=stream) == 5
    assert STATEMENT_HEADER == ["agreement", "partner", "period", "kind", "tier", "overall",
                                "rolling", "multiplier", "base", "currency", "amount", "reason"]
    assert stream.getvalue() == (
        "agreement,partner,period,kind,tier,overall,rolling,multiplier,base,currency,amount,"
        "reason\n"
        "ACME-CM-2025,acme,2025-01,payout,,56.2500,,,1000.00,USD,0.00,\n"
        "ACME-CM-2025,acme,2025-02,payout,transactional,71.2500,63.7500,1.0,1000.00,USD,712.50,"
        "\n"
        "ACME-CM-2025,acme,2025-02,adjustment,transactional,81.2500,68.7500,1.0,1000.00,USD,"
        "100.00,late deals\n"
        "GLOBEX-REF-2025,globex,2025-01,payout,,95.0000,,,1000.00,EUR,0.00,\n"
        "GLOBEX-REF-2025,globex,2025-02,payout,strategic,100.0000,97.5000,1.5,1000.00,EUR,"
        "1500.00,\n"
    )


def test_export_statements_command_filters_by_month_and_writes_a_file(paid_program, tmp_path):
    months_close(through="2025-02", user=None)
    out = io.StringIO()
    call_command("export_statements", "--period", "2025-02", stdout=out)
    assert [line.split(",")[:4] for line in out.getvalue().splitlines()[1:]] == [
        ["ACME-CM-2025", "acme", "2025-02", "payout"],
        ["GLOBEX-REF-2025", "globex", "2025-02", "payout"]]
    target = tmp_path / "statements.csv"
    call_command("export_statements", "--output", str(target), stderr=io.StringIO())
    assert len(target.read_text(encoding="utf-8").splitlines()) == 5
