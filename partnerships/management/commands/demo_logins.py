from django.core.management.base import BaseCommand

from partnerships.demo import DEMO_PASSWORD, DEMO_URL
from partnerships.models import Membership

# The demo cast (partnerships/demo.py): "finance" closes the months, "admin" approves them.
DEMO_LOGINS = ["manager", "admin", "finance", "viewer"]


class Command(BaseCommand):
    help = "Print the demo logins (the users generate_demo creates) and where to open the site."

    def handle(self, *args, **options):
        memberships = {
            membership.user.get_username(): membership
            for membership in Membership.objects.select_related("user", "partner").filter(
                user__username__in=DEMO_LOGINS, user__is_active=True
            )
        }
        if not memberships:
            self.stdout.write("No demo users: run `python manage.py generate_demo` first.")
            return
        lines = [f"Open {DEMO_URL} and log in as (password {DEMO_PASSWORD!r} unless changed):"]
        for username in DEMO_LOGINS:
            membership = memberships.get(username)
            if membership is None:
                continue
            sees = (
                "every partner" if membership.is_host
                else f"only {membership.partner.name}'s agreements"
            )
            lines.append(f"  {username:<8} {membership.get_role_display():<15} sees {sees}")
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))
