"""One number formatter at the template edge (dashboards/templatetags/numbers.py): thousands
separators everywhere, one decimal for scores, two for money, KPI values by their unit, "—" for
what is missing or not finite; pages show it, exports keep their raw 4 decimals."""

import math
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.urls import reverse

from dashboards.templatetags.numbers import count, kpi_value, money, percent, score, share
from dashboards.templatetags.numbers import score_text as one_decimal
from partnerships.models import Agreement, AgreementKPI, IncentivePlan, KPIDefinition
from scoring.models import ScoringRun
from scoring.services import scoring_run_inline
from tests.conftest import write_observations

MISSING = [None, math.inf, -math.inf, math.nan, "12.5", True]


@pytest.mark.parametrize(("value", "shown"), [
    (74.34, "74.3"), (1234567.891, "1,234,567.9"), (-1234.56, "-1,234.6"), (0, "0.0"),
    (0.0, "0.0"), (-0.04, "0.0"), (120, "120.0"),
    # Half cases round away from zero, from the 4 decimals the export writes: 74.25 is exact
    # in binary (Python's own rounding would give 74.2), 74.35 is 74.3499… in binary but the
    # export writes 74.3500.
    (74.25, "74.3"), (74.35, "74.4"), (-74.25, "-74.3"), (0.05, "0.1"), (-0.05, "-0.1"),
    (99.94, "99.9"), (99.95, "100.0"),
    # The export writes 99.94999 as 99.9500: the screen rounds what the CSV says.
    (99.94999, "100.0"),
    # Values stored before imports were bounded: three digits, not three hundred.
    (1.7e308, "1.7e+308"), (-1.9e255, "-1.9e+255"),
])
def test_scores_have_one_decimal_and_thousands_separators(value, shown):
    assert score(value) == shown


@pytest.mark.parametrize("value", MISSING)
def test_missing_or_non_finite_numbers_read_as_a_dash(value):
    assert {score(value), money(value), share(value), percent(value), count(value),
            kpi_value(value, None)} == {"—"}


@pytest.mark.parametrize(("value", "shown"), [
    (7492.46, "7,492.46"), (36429.3, "36,429.30"), (-1500, "-1,500.00"), (0, "0.00"),
    (1234567.005, "1,234,567.00"),  # as the payout columns of the CSV write it (.2f)
    (Decimal("2500.5"), "2,500.50"), (Decimal("0.125"), "0.13"), (Decimal("-0.125"), "-0.13"),
    (Decimal("-0.001"), "0.00"),
])
def test_money_has_two_decimals_and_thousands_separators(value, shown):
    assert money(value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    (0.875, "87.5"), (1.0, "100.0"), (0, "0.0"), (1 / 3, "33.3"), (0.00044, "0.0"),
    (0.00051, "0.1"),
])
def test_coverage_is_a_percentage_with_one_decimal(value, shown):
    assert share(value) == shown


@pytest.mark.parametrize(("value", "shown"), [(12345, "12,345"), (0, "0"), (-3, "-3"),
                                              (2.5, "3")])
def test_counts_are_whole_numbers(value, shown):
    assert count(value) == shown


@pytest.mark.parametrize(("unit", "value_type", "value", "shown"), [
    ("USD", "number", 36429.3, "36,429.30"),  # a currency unit is money
    ("", "money", 1234.5, "1,234.50"),
    ("%", "number", 25.64, "25.6"),
    ("%", "percentage", 100, "100.0"),
    ("count", "number", 41.0, "41"),
    ("leads", "count", 12.5, "12.5"),  # a mean of counts
    ("days", "number", 45.0, "45"),
    ("hours", "number", 4.256, "4.26"),
    ("points", "number", 12345.6, "12,345.6"),
    ("", "number", -0.001, "0"),
])
def test_kpi_values_follow_their_unit(unit, value_type, value, shown):
    kpi = KPIDefinition(code="k", name="K", unit=unit, value_type=value_type)
    assert kpi_value(value, kpi) == shown


def test_one_decimal_is_the_formatter_without_the_dash():
    assert one_decimal(36429.25) == "36,429.3"
    assert one_decimal(None) == one_decimal(math.nan) == ""


def test_templates_load_the_filters():
    template = Template("{% load numbers %}{{ a|score }} {{ b|money }} {{ c|share }} %"
                        " {{ d|kpi_value:kpi }}")
    kpi = KPIDefinition(unit="USD")
    text = template.render(Context({"a": 36429.3, "b": 7492.46, "c": 0.5, "d": None,
                                    "kpi": kpi}))
    assert text == "36,429.3 7,492.46 50.0 % —"


@pytest.fixture
def big_numbers(acme, kpis, host_manager):
    """One agreement scored on revenue in USD (target 50,000) with a plan of 10,000 a month:
    two complete months, so it is ranked (strategic, alone) and paid in February."""
    agreement = Agreement.objects.create(
        partner=acme, code="ACME-BIG", type="referral", stage="active",
        start_date="2025-01-01", weight_financial=100, weight_strategic=0,
        weight_operational=0, weight_relationship=0)
    AgreementKPI.objects.create(agreement=agreement, kpi=kpis["revenue"], target=50000,
                                floor=0)
    IncentivePlan.objects.create(agreement=agreement, base_amount=Decimal("10000"))
    write_observations([(agreement, kpis["revenue"], "host", "2025-01-15", 36429.3),
                        (agreement, kpis["revenue"], "host", "2025-02-15", 41250.5)])
    assert scoring_run_inline().status == ScoringRun.Status.SUCCEEDED
    return agreement


def test_the_kpi_table_writes_values_by_their_unit_with_separators(client, host_manager,
                                                                    big_numbers):
    client.force_login(host_manager)
    response = client.get(reverse("agreement_dashboard", args=["ACME-BIG"]),
                          {"month": "2025-01"})
    table = response.content.decode().split('id="kpi-heading"')[1].split("</table>")[0]
    assert '<td class="num" data-label="Actual">36,429.30</td>' in table
    assert '<td class="num" data-label="Target">50,000.00</td>' in table
    assert '<td class="num" data-label="Floor">0.00</td>' in table
    assert '<td class="num" data-label="Score">72.9</td>' in table  # 72.8586
    assert "36429" not in table


def test_the_portfolio_writes_scores_and_payouts_with_separators(client, host_manager,
                                                                 big_numbers):
    client.force_login(host_manager)
    page = client.get(reverse("portfolio"), {"month": "2025-02"}).content.decode()
    # overall 82.501, rolling (72.8586 + 82.501) / 2, payout 10,000 × 1.5 × 82.501 / 100
    assert ">82.5</td>" in page and ">77.7</td>" in page and ">100.0 %</td>" in page
    assert ">12,375.15</td>" in page
    assert '<span class="kpi-card__value kpi-card__value--long">12,375.15</span>' in page


def test_the_program_pages_write_targets_and_money_with_the_one_formatter():
    from decimal import Decimal

    from dashboards.program.incentives import _money
    from dashboards.program.kpis import number

    assert number(50000.0) == "50,000"
    assert number(0.125) == "0.125"
    assert number(2.5) == "2.5"
    assert number(float("inf")) == ""
    assert _money(Decimal("1234567.005"), "USD") == "1,234,567.01 USD"


@pytest.mark.parametrize(("values", "total", "places", "expected"), [
    # 32 + 20.8333 + 32 = 84.8333, shown 84.8: each part rounded as it is adds up already.
    ([32.0, 20.833333333333332, 32.0], 84.83333333333333, 1, [32.0, 20.8, 32.0]),
    # Three thirds of 100 %: one of them takes the last tenth of a percent.
    ([1 / 3, 1 / 3, 1 / 3], 1.0, 3, [0.334, 0.333, 0.333]),
    # 10.04 three times is 30.12, shown 30.1: each rounded alone would make 30.0.
    ([10.04, 10.04, 10.04], 30.12, 1, [10.1, 10.0, 10.0]),
    # A negative part (points left above target) and a total rounded half away from zero.
    ([-5.333333333333333, 8.0, 12.5], 15.166666666666668, 1, [-5.3, 8.0, 12.5]),
    ([], 0.0, 1, []),
])
def test_apportioned_parts_add_up_to_the_total_as_written(values, total, places, expected):
    from dashboards.templatetags.numbers import apportioned, number_text

    parts = apportioned(values, total=total, places=places)
    assert parts == expected
    written = sum(Decimal(number_text(part, places=places)) for part in parts)
    assert written == Decimal(number_text(total, places=places) or "0")
    assert all(abs(part - value) < 10 ** -places for part, value in zip(parts, values,
                                                                        strict=True))
