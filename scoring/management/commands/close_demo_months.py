from django.core.management.base import BaseCommand, CommandError

from scoring.closing import ClosingRefused
from scoring.demo import DEMO_APPROVER, DEMO_CLOSER, demo_months_close


def _span(months: list[str]) -> str:
    return months[0] if len(months) == 1 else f"{months[0]} to {months[-1]}"


class Command(BaseCommand):
    help = (
        "After the demo's first scoring run: close every month but the last two (as the "
        f"demo's host admin {DEMO_CLOSER!r}) and approve the statements of all the closed "
        f"months but the last (as {DEMO_APPROVER!r}). Does nothing when a month is closed."
    )

    def handle(self, *args, **options):
        try:
            closing = demo_months_close()
        except ClosingRefused as refused:
            raise CommandError(str(refused)) from None
        if closing.kept:
            self.stdout.write(f"Months already closed (through {closing.kept}); kept.")
            return
        lines = [f"Closed {_span(closing.closed)} as {DEMO_CLOSER}."]
        if closing.approved:
            lines.append(f"Approved the statements of {_span(closing.approved)} as "
                         f"{DEMO_APPROVER}.")
        lines.append(f"{closing.closed[-1]} is closed and awaits approval.")
        if closing.open:
            lines.append(f"Open: {_span(closing.open)}.")
        self.stdout.write("\n".join(lines))
