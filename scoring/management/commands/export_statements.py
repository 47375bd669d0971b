import io

from django.core.management.base import BaseCommand, CommandError

from partnerships.audit import audit_record
from partnerships.models import AuditAction
from partnerships.months import MONTH_PATTERN
from scoring.statements import statements_csv


class Command(BaseCommand):
    help = "Write the payout statement lines of the closed months as CSV."

    def add_arguments(self, parser):
        parser.add_argument("--period", help="Only this month (YYYY-MM).")
        parser.add_argument("--output", help="File to write (default: standard output).")

    def handle(self, *args, period=None, output=None, **options):
        if period and not MONTH_PATTERN.fullmatch(period):
            raise CommandError(f"--period must be a month as YYYY-MM, not {period!r}")
        buffer = io.StringIO()
        count = statements_csv(stream=buffer, period=period)
        audit_record(action=AuditAction.EXPORT, username="manage.py export_statements",
                     target="statements", detail={"period": period or "", "rows": count})
        if output:
            try:
                with open(output, "w", encoding="utf-8", newline="") as stream:
                    stream.write(buffer.getvalue())
            except OSError as error:
                raise CommandError(f"{output}: cannot be written ({error.strerror})") from None
            self.stderr.write(f"Wrote {count} statement lines to {output}")
        else:
            self.stdout.write(buffer.getvalue(), ending="")
