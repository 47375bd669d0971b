"""Numbers as pages show them: a missing or non-finite value is "—" (an empty text the
templates show as a dash), an absurd magnitude three digits, never "inf" or 300 digits."""

import math

import pytest

from dashboards.program.kpis import number
from dashboards.templatetags.numbers import score_text as one_decimal
from scoring.exports import format_number


@pytest.mark.parametrize(("value", "shown"), [
    (None, ""), (math.inf, ""), (-math.inf, ""), (math.nan, ""),
    (12.34, "12.3"), (-0.04, "0.0"), (999_999_999_999.99, "1,000,000,000,000.0"),
    (-1.9e255, "-1.9e+255"), (1.7e308, "1.7e+308"),
])
def test_one_decimal_shows_nothing_for_non_finite_and_short_absurd_values(value, shown):
    assert one_decimal(value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    (None, ""), (math.inf, ""), (-math.inf, ""), (math.nan, ""), (2.5, "2.5000"),
    (-0.00001, "0.0000"),
])
def test_exports_leave_non_finite_cells_empty(value, shown):
    assert format_number(value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    (None, ""), (math.inf, ""), (math.nan, ""), (50000.0, "50,000"), (0.125, "0.125"),
    (1e300, "1e+300"),
])
def test_targets_and_floors_show_nothing_for_non_finite(value, shown):
    assert number(value) == shown
