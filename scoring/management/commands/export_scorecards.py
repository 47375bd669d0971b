import io

from django.core.management.base import BaseCommand, CommandError

from partnerships.audit import audit_record
from partnerships.models import AuditAction
from partnerships.months import MONTH_PATTERN
from scoring.exports import EXPORT_HEADER, scorecard_export_rows, write_csv
from scoring.models import ScoringRun


class Command(BaseCommand):
    help = "Write the scorecards of the last published scoring run as CSV."

    def add_arguments(self, parser):
        parser.add_argument("--period", help="Only this month (YYYY-MM).")
        parser.add_argument("--output", help="File to write (default: standard output).")

    def handle(self, *args, period=None, output=None, **options):
        if period and not MONTH_PATTERN.fullmatch(period):
            raise CommandError(f"--period must be a month as YYYY-MM, not {period!r}")
        run = ScoringRun.objects.current()
        if run is None:
            self.stderr.write("No published scoring run yet: run `manage.py score` first.")
        rows = scorecard_export_rows(run=run, period=period)
        audit_record(action=AuditAction.EXPORT, username="manage.py export_scorecards",
                     target="scorecards", detail={"period": period or "", "rows": len(rows)})
        if output:
            with open(output, "w", encoding="utf-8", newline="") as stream:
                write_csv(stream=stream, header=EXPORT_HEADER, rows=rows)
            self.stderr.write(f"Wrote {len(rows)} scorecards to {output}")
        else:
            buffer = io.StringIO()
            write_csv(stream=buffer, header=EXPORT_HEADER, rows=rows)
            self.stdout.write(buffer.getvalue(), ending="")
