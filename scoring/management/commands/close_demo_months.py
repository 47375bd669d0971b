from django.core.management.base import BaseCommand, CommandError

from scoring.closing import ClosingRefused
from scoring.demo import DEMO_APPROVER, DEMO_CLOSER, demo_months_close, demo_months_summary


class Command(BaseCommand):
    help = (
        "After a scoring run of the demo: close every month but the last two (as the demo's "
        f"host admin {DEMO_CLOSER!r}) and approve the statements of all the closed months but "
        f"the last (as {DEMO_APPROVER!r}). Does nothing when a month is closed. generate_demo "
        "does this itself unless given --no-close."
    )

    def handle(self, *args, **options):
        try:
            closing = demo_months_close()
        except ClosingRefused as refused:
            raise CommandError(str(refused)) from None
        self.stdout.write(demo_months_summary(closing))
