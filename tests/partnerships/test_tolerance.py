"""The one rule of "beyond tolerance" (partnerships/tolerance.py) and the KPI tolerance in the
program file."""

import pytest

from partnerships.models import KPIDefinition
from partnerships.program import ProgramError, program_load, program_parse
from partnerships.tolerance import beyond_tolerance, difference_percent


@pytest.mark.parametrize(("source", "other", "beyond"), [
    (100, 104.9, False),
    (100, 105, False),  # exactly at the tolerance: within
    (100, 105.0001, True),
    (100, 94.9, True),  # below the source by more than 5 %
    (-200, -210, False),  # a percent of |source|
    (-200, -211, True),
    (0, 0, False),  # no difference, even of nothing
    (0, 0.0001, True),  # against a source of 0 any other value is beyond
    (0, -3, True),
])
def test_percent_tolerance_is_taken_of_the_source_of_truths_value(source, other, beyond):
    assert beyond_tolerance(source_value=source, other_value=other, kind="percent",
                            tolerance=5) is beyond


@pytest.mark.parametrize(("source", "other", "beyond"), [
    (10, 12, False),  # exactly 2 apart: within
    (10, 12.01, True),
    (10, 7.5, True),
    (0, 2, False),  # an absolute tolerance needs no source value
    (0, -2.5, True),
])
def test_absolute_tolerance_is_an_amount_in_the_kpis_unit(source, other, beyond):
    assert beyond_tolerance(source_value=source, other_value=other, kind="absolute",
                            tolerance=2) is beyond


def test_zero_tolerance_lists_every_difference():
    assert beyond_tolerance(source_value=10, other_value=10, kind="percent", tolerance=0) is False
    assert beyond_tolerance(source_value=10, other_value=10.001, kind="percent", tolerance=0)
    assert beyond_tolerance(source_value=10, other_value=9.999, kind="absolute", tolerance=0)


def test_difference_percent_has_no_value_against_a_source_of_zero():
    assert difference_percent(source_value=200, other_value=230) == pytest.approx(15)
    assert difference_percent(source_value=-200, other_value=-230) == pytest.approx(-15)
    assert difference_percent(source_value=0, other_value=5) is None
    assert difference_percent(source_value=None, other_value=5) is None


PROGRAM = """
partners: []
agreements: []
kpis:
  - {code: revenue, name: Revenue, unit: USD, category: financial, aggregation: sum,
     source: host}
  - {code: csat, name: CSAT, unit: points, category: relationship, aggregation: last,
     source: partner, tolerance_kind: absolute, tolerance: 0.5}
  - {code: leads, name: Leads, unit: leads, category: strategic, aggregation: sum,
     source: partner, tolerance: 10}
"""


@pytest.mark.django_db
def test_program_file_sets_tolerances_with_five_percent_by_default():
    program_load(document=PROGRAM)

    assert {kpi.code: (kpi.tolerance_kind, kpi.tolerance)
            for kpi in KPIDefinition.objects.all()} == {
        "revenue": ("percent", 5.0), "csat": ("absolute", 0.5), "leads": ("percent", 10.0)}


@pytest.mark.django_db
def test_program_file_refuses_a_negative_tolerance_or_an_unknown_kind():
    document = PROGRAM.replace("tolerance: 10", "tolerance: -1").replace(
        "tolerance_kind: absolute", "tolerance_kind: relative")

    with pytest.raises(ProgramError) as refused:
        program_load(document=document)

    text = "\n".join(refused.value.problems)
    assert "kpis[2] (leads).tolerance: must be 0 or more" in text
    assert "tolerance_kind: unknown tolerance kind 'relative'" in text
    assert not KPIDefinition.objects.exists()
    assert program_parse(text=PROGRAM)["kpis"][1]["tolerance"] == 0.5
