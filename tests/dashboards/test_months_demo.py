"""The demo shows every kind of month: closed and approved, closed and awaiting approval, open."""

import io

import pytest
from django.core.management import call_command

from dashboards.selectors.months import CLOSED, OPEN, month_states, months_overview
from partnerships.demo import demo_generate
from partnerships.models import ProgramMonth
from scoring.models import ScoringRun, StatementApproval, StatementLine
from scoring.services import scoring_run_inline

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_scored():
    demo_generate(partners=3, agreements=6, months=6, kpis_per_agreement=4,
                  observations_per_month=1, seed=11, password="pw-demo")
    scoring_run_inline()
    return ScoringRun.objects.current()


def test_the_demo_closes_all_but_two_months_and_approves_all_closed_but_the_last(demo_scored):
    out = io.StringIO()
    call_command("close_demo_months", stdout=out)
    months = demo_scored.periods
    assert ProgramMonth.objects.last_closed() == months[-3]
    rows = {row.month: row for row in months_overview(run=demo_scored, states=month_states())}
    approved = [month for month in months if rows[month].approval is not None]
    assert approved == months[:-3]
    assert rows[months[-3]].state == CLOSED and rows[months[-3]].approval is None
    assert [rows[month].state for month in months[-2:]] == [OPEN, OPEN]
    # Closed by one host admin, approved by another.
    assert {row.closing.username for row in rows.values() if row.closing} == {"finance"}
    assert set(StatementApproval.objects.values_list("approved_by__username", flat=True)) \
        == {"admin"}
    assert StatementLine.objects.exists()
    text = out.getvalue()
    assert f"Closed {months[0]} to {months[-3]} as finance." in text
    assert f"{months[-3]} is closed and awaits approval." in text
    assert f"Open: {months[-2]} to {months[-1]}." in text


def test_closing_the_demo_again_changes_nothing(demo_scored):
    call_command("close_demo_months", stdout=io.StringIO())
    out = io.StringIO()
    call_command("close_demo_months", stdout=out)
    assert "already closed" in out.getvalue()
    assert StatementApproval.objects.count() == len(demo_scored.periods) - 3
