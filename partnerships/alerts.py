"""E-mail alerts that need nothing of the scores: an action assigned to the recipient's side.

Found by a periodic scan (beat, every MAIL_ACTION_SCAN_MINUTES) rather than from the services
that write actions: actions come from pages, the program file, the admin and recorded reviews,
and a scan sees them all, survives a lost task, and tells each side once per action
(`mail_send_once_each`, key: the action and its side), however often it runs."""

import datetime as dt
from collections import defaultdict

from django.urls import reverse
from django.utils import timezone

from .mail import mail_send_once_each, site_link
from .mail_preferences import ACTION, users_not_wanting
from .models import ActionItem, Side
from .recipients import recipients_by_agreement
from .reviews import OPEN_STATUSES

# Actions created or changed this long ago at most are new enough to tell (a scan that did
# not run for a while still catches up; older ones are in the weekly digest).
ACTION_ALERT_WINDOW = dt.timedelta(days=2)


def action_key(action: ActionItem) -> str:
    return f"{action.pk}:{action.owner_side}"


def action_alerts_send(*, now: dt.datetime | None = None) -> int:
    """Tell each side of its open actions created or reassigned lately; messages sent."""
    now = now or timezone.now()
    actions = list(
        ActionItem.objects.filter(status__in=OPEN_STATUSES,
                                  updated_at__gte=now - ACTION_ALERT_WINDOW)
        .select_related("agreement", "agreement__partner").order_by("due_date", "pk"))
    if not actions:
        return 0
    agreements = {action.agreement_id: action.agreement for action in actions}
    recipients = recipients_by_agreement(agreements=agreements.values())
    off = users_not_wanting(kind=ACTION)
    by_user: dict[int, tuple] = {}
    for action in actions:
        side_members = [user for user in recipients[action.agreement_id]
                        if user.membership.side == action.owner_side and user.pk not in off]
        for user in side_members:
            by_user.setdefault(user.pk, (user, []))[1].append(action)
    sent = 0
    for user, items in by_user.values():
        by_key = {action_key(action): action for action in items}
        outcome = mail_send_once_each(
            kind=ACTION, keys=list(by_key), user=user, template="mail/action_assigned",
            subject=lambda keys, by_key=by_key: _subject(keys, by_key),
            context=lambda keys, by_key=by_key: {"rows": _rows(keys, by_key)},
        )
        sent += outcome.sent
    return sent


def _subject(keys: list[str], by_key: dict[str, ActionItem]) -> str:
    if len(keys) == 1:
        action = by_key[keys[0]]
        return f"New action for your side: {action.agreement.code}, due {action.due_date}"
    return f"{len(keys)} new actions for your side"


def _rows(keys: list[str], by_key: dict[str, ActionItem]) -> list[dict]:
    grouped = defaultdict(list)
    for key in keys:
        action = by_key[key]
        grouped[action.agreement].append(action)
    return [
        {"agreement": agreement, "partner": agreement.partner.name, "actions": actions,
         "side": Side(actions[0].owner_side).label.lower(),
         "link": site_link(reverse("agreement_reviews", args=[agreement.code]))}
        for agreement, actions in grouped.items()
    ]
