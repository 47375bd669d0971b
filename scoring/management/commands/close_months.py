from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from partnerships.access import may_manage
from scoring.closing import ClosingRefused, months_close

from .reopen_month import host_user


class Command(BaseCommand):
    help = (
        "Close every open month up to and including --through (YYYY-MM): its scorecards, KPI "
        "scores and payouts are frozen and its statement lines written. Refused, with the "
        "reason, unless the month has ended and the last published scoring run is current. "
        "An open dispute of a month to close holds the close unless --override-disputes says "
        "why to close anyway."
    )

    def add_arguments(self, parser):
        parser.add_argument("--through", required=True, help="The last month to close (YYYY-MM).")
        parser.add_argument("--user", help="Close as this host manager or admin (default: the "
                            "system).")
        parser.add_argument("--override-disputes", metavar="REASON", default="",
                            help="Close even though disputes of these months are open, for "
                                 "this reason (recorded with the close).")

    def handle(self, *args, through: str, user: str | None, override_disputes: str = "",
               **options):
        closer = host_user(user, allowed=may_manage, role="a host manager or admin")
        try:
            months = months_close(through=through, user=closer,
                                  override_disputes=override_disputes)
        except (ClosingRefused, PermissionDenied) as refused:
            raise CommandError(f"Cannot close {through}: {refused}") from None
        if not months:
            self.stdout.write(f"Nothing to close: {through} is closed already.")
        elif len(months) == 1:
            self.stdout.write(f"Closed {months[0]}.")
        else:
            self.stdout.write(f"Closed {len(months)} months, {months[0]} to {months[-1]}.")
