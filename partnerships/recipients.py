"""Who receives the e-mail about an agreement, scoped as the pages are.

The host side: the agreement's owner when it has an active host manager or admin as owner,
otherwise every active host manager and admin. The partner side: the active users of the
agreement's partner (editors and viewers), and nobody else's."""

from collections import defaultdict
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from .models import HOST_ROLES, Agreement, Side


def _active_members() -> QuerySet:
    return (get_user_model().objects.filter(is_active=True, membership__isnull=False)
            .exclude(email="").select_related("membership"))


def host_staff() -> list:
    """Active host managers and admins with an address."""
    return list(_active_members().filter(membership__role__in=HOST_ROLES).order_by("pk"))


def recipients_by_agreement(*, agreements: Iterable[Agreement],
                            sides: tuple[str, ...] = (Side.HOST, Side.PARTNER),
                            ) -> dict[int, list]:
    """Each agreement's recipients of the given sides, by agreement id (three queries)."""
    agreements = list(agreements)
    staff = host_staff() if Side.HOST in sides else []
    staff_by_id = {user.pk: user for user in staff}
    partner_users: dict[int, list] = defaultdict(list)
    if Side.PARTNER in sides:
        partner_ids = {agreement.partner_id for agreement in agreements}
        for user in _active_members().filter(membership__partner_id__in=partner_ids):
            partner_users[user.membership.partner_id].append(user)
    result = {}
    for agreement in agreements:
        users = []
        if Side.HOST in sides:
            owner = staff_by_id.get(agreement.owner_id)
            users += [owner] if owner is not None else staff
        if Side.PARTNER in sides:
            users += partner_users.get(agreement.partner_id, [])
        result[agreement.pk] = users
    return result

