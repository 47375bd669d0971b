from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from partnerships.access import is_host_admin
from scoring.closing import ClosingRefused, month_reopen


def host_user(username: str | None, *, allowed: Callable, role: str):
    """The active user named `username` when `allowed(user)`; None (the system) without a name."""
    if username is None:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"no user named {username!r}")
    if not allowed(user):
        raise CommandError(f"{username} is not {role} (or the account is inactive)")
    return user


class Command(BaseCommand):
    help = (
        "Reopen a closed month, and every later closed month, with a reason. Their frozen "
        "results stay shown until scoring computes them again."
    )

    def add_arguments(self, parser):
        parser.add_argument("month", help="The month to reopen (YYYY-MM).")
        parser.add_argument("--reason", required=True, help="Why the month is reopened.")
        parser.add_argument("--user", help="Reopen as this host admin (default: the system).")

    def handle(self, *args, month: str, reason: str, user: str | None, **options):
        admin = host_user(user, allowed=is_host_admin, role="a host admin")
        try:
            months = month_reopen(month=month, reason=reason, user=admin)
        except (ClosingRefused, PermissionDenied) as refused:
            raise CommandError(f"Cannot reopen {month}: {refused}") from None
        if len(months) == 1:
            self.stdout.write(f"Reopened {months[0]}.")
        else:
            self.stdout.write(f"Reopened {len(months)} months, {months[0]} to {months[-1]}.")
