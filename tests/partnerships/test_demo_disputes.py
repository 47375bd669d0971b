"""The demo's disputes: one open and one resolved, with short threads, on the demo partner's
agreements in a month the demo leaves open; its closed months still close, the resolved value
is scored, and generating the demo again replaces them."""

from io import StringIO

from django.core.management import call_command

from partnerships.models import Dispute, ProgramMonth
from scoring.models import ScoringRun
from scoring.services import scoring_inputs_fingerprint


def test_the_demo_has_one_open_and_one_resolved_dispute_in_an_open_month(db):
    arguments = ["--agreements", "6", "--months", "6", "--no-next-steps"]
    out = StringIO()
    call_command("generate_demo", *arguments, stdout=out)
    disputes = {dispute.status: dispute for dispute in Dispute.objects.all()}
    assert set(disputes) == {"open", "resolved"} and Dispute.objects.count() == 2
    for dispute in disputes.values():
        assert dispute.agreement.partner.memberships.filter(user__username="viewer").exists()
        assert dispute.events.count() >= 2
        assert not ProgramMonth.objects.filter(month=dispute.month, closed=True).exists()
    assert ProgramMonth.objects.closed().exists()
    # The resolved value was written before the run: the published scores are current.
    assert ScoringRun.objects.current().fingerprint == scoring_inputs_fingerprint()
    assert "open, " in out.getvalue() and " resolved " in out.getvalue()
    call_command("generate_demo", *arguments, "--reset", "--seed", "7", stdout=StringIO())
    assert Dispute.objects.count() == 2
