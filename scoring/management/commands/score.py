from django.core.management.base import BaseCommand, CommandError

from partnerships.audit import audit_record
from partnerships.models import AuditAction
from scoring.services import ScoringAlreadyRunning, scoring_run_inline


class Command(BaseCommand):
    help = "Run the scoring job in this process and print a summary."

    def add_arguments(self, parser):
        parser.add_argument(
            "--chunk-size", type=int, default=None,
            help="Agreements per chunk (default: the SCORING_CHUNK_SIZE setting).",
        )

    def handle(self, *args, chunk_size=None, **options):
        try:
            summary = scoring_run_inline(chunk_size=chunk_size)
        except ScoringAlreadyRunning as refused:
            raise CommandError(str(refused)) from None
        audit_record(action=AuditAction.SCORING_RUN, username="manage.py score",
                     target=f"scoring run {summary.run_id}",
                     detail={"trigger": "command", "status": summary.status})
        months = (
            f"{summary.months} ({summary.first_period} to {summary.last_period})"
            if summary.months else "0 (no observations yet)"
        )
        self.stdout.write(
            f"Scoring run {summary.run_id} {summary.status}\n"
            f"  months:       {months}\n"
            f"  agreements:   {summary.agreements}\n"
            f"  scorecards:   {summary.scorecards}\n"
            f"  tier changes: {summary.tier_changes}\n"
            f"  time:         {summary.seconds:.2f} s (old results removed in "
            f"{summary.cleanup_seconds:.2f} s)\n"
            f"  fingerprint:  {summary.fingerprint}"
        )
        if summary.status != "succeeded":
            # Callers (scripts, the demo set-up) must not carry on as if the scores were current.
            raise CommandError(f"Scoring run {summary.run_id} {summary.status}: "
                               f"{summary.error or 'see the scoring runs page'}")
