"""`generate_demo` scores the demo and closes its months, so a newcomer sees every state."""

from io import StringIO

from django.core.management import call_command

from partnerships.models import ProgramMonth
from scoring.models import ScoringRun, StatementApproval, StatementLine


def test_the_demo_is_scored_with_months_closed_approved_and_open(db):
    out = StringIO()
    call_command("generate_demo", "--agreements", "6", "--months", "6", "--no-next-steps",
                 stdout=out)
    run = ScoringRun.objects.current()
    months = run.periods
    closed = list(ProgramMonth.objects.closed().values_list("month", flat=True))
    assert closed == months[:-2]
    approved = set(StatementApproval.objects.values_list("month", flat=True))
    assert approved == set(closed[:-1])
    assert StatementLine.objects.filter(period=closed[-1]).exists()
    assert f"{closed[-1]} is closed and awaits approval." in out.getvalue()


def test_the_demo_generated_again_replaces_its_closed_months_and_statements(db):
    arguments = ["--agreements", "4", "--months", "5", "--no-next-steps"]
    call_command("generate_demo", *arguments, stdout=StringIO())
    call_command("generate_demo", *arguments, "--reset", "--seed", "7", stdout=StringIO())
    assert ProgramMonth.objects.closed().count() == 3
    assert StatementLine.objects.exists()


def test_without_closing_the_demo_is_only_written(db):
    call_command("generate_demo", "--agreements", "3", "--months", "4", "--no-close",
                 "--no-next-steps", stdout=StringIO())
    assert not ScoringRun.objects.exists()
    assert not ProgramMonth.objects.exists()
