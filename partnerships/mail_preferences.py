"""What e-mail each user wants, and the one-click unsubscribe link every message carries.

A user without a `MailPreference` row gets everything. Each kind of message maps to one switch
(`PREFERENCE_OF_KIND`); the unsubscribe link is a signed, expiring token naming the user and
that switch, so it works without signing in and turns off exactly what the message was."""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse

from .audit import audit_record
from .models import AuditAction, MailPreference

# The kinds of message, each with the switch that turns it off.
DIGEST, AT_RISK, TIER, ACTION, REVIEW_OVERDUE, DISPUTE = (
    "digest", "at_risk", "tier", "action", "review_overdue", "dispute")
PREFERENCE_OF_KIND = {
    DIGEST: "digest",
    AT_RISK: "alert_at_risk",
    TIER: "alert_tier",
    ACTION: "alert_action",
    REVIEW_OVERDUE: "alert_review_overdue",
    DISPUTE: "alert_dispute",
}
PREFERENCE_FIELDS = tuple(PREFERENCE_OF_KIND.values())
# What an unsubscribe link turns off, as messages and the unsubscribe page say it.
PREFERENCE_NAMES = {
    "digest": "the weekly digest",
    "alert_at_risk": "at-risk alerts",
    "alert_tier": "tier change alerts",
    "alert_action": "new action alerts",
    "alert_review_overdue": "overdue review alerts",
    "alert_dispute": "dispute e-mail",
}
UNSUBSCRIBE_SALT = "partnerships.mail.unsubscribe"


def preference_field(kind: str) -> str | None:
    """The switch of a kind of message; every dispute message (opened, answered, resolved)
    shares the dispute switch. None: a message no preference turns off."""
    if kind in PREFERENCE_OF_KIND:
        return PREFERENCE_OF_KIND[kind]
    if kind.startswith(DISPUTE):
        return PREFERENCE_OF_KIND[DISPUTE]
    return None


def preference_name(field: str) -> str:
    return PREFERENCE_NAMES[field]


def mail_preference_of(*, user) -> MailPreference:
    """The user's preferences: the stored row, or the defaults (everything on), unsaved."""
    return MailPreference.objects.filter(user=user).first() or MailPreference(user=user)


def mail_wanted(*, user, kind: str) -> bool:
    """Whether the user wants messages of this kind (no row: yes)."""
    field = preference_field(kind)
    if field is None:
        return True
    return bool(MailPreference.objects.filter(user=user).values_list(field, flat=True).first()
                is not False)


def users_not_wanting(*, kind: str) -> set[int]:
    """Ids of the users who turned this kind of message off (one query for a whole batch)."""
    field = preference_field(kind)
    if field is None:
        return set()
    return set(MailPreference.objects.filter(**{field: False}).values_list("user_id", flat=True))


def mail_preferences_save(*, user, request: HttpRequest | None = None,
                          via: str = "account page", **fields: bool) -> MailPreference:
    """Set the given switches of the user's preferences; audited when anything changed."""
    unknown = sorted(set(fields) - set(PREFERENCE_FIELDS))
    if unknown:
        raise TypeError(f"MailPreference has no switch {', '.join(unknown)}")
    with transaction.atomic():
        # Locks the user's row: two saves at once (a page and a link) apply one after the other.
        get_user_model().objects.select_for_update().filter(pk=user.pk).exists()
        preference = mail_preference_of(user=user)
        changes = {name: [getattr(preference, name), bool(value)]
                   for name, value in fields.items() if getattr(preference, name) != bool(value)}
        if not changes:
            return preference
        for name, (_old, new) in changes.items():
            setattr(preference, name, new)
        preference.save()
        audit_record(action=AuditAction.MAIL_PREFERENCES, request=request, user=user,
                     target=f"e-mail preferences of {user.get_username()}",
                     detail={"via": via, "changes": changes})
    return preference


# ---- The unsubscribe link ----------------------------------------------------------------------


class UnsubscribeRefused(Exception):
    """The link cannot be used: `state` is "expired" or "invalid"."""

    def __init__(self, state: str):
        self.state = state
        super().__init__(state)


@dataclass(frozen=True)
class Unsubscribe:
    user: object
    field: str

    @property
    def name(self) -> str:
        return preference_name(self.field)


def unsubscribe_token(*, user, kind: str) -> str | None:
    """A signed token that turns this kind of message off for this user; None when no switch
    turns the kind off."""
    field = preference_field(kind)
    if field is None:
        return None
    return signing.TimestampSigner(salt=UNSUBSCRIBE_SALT).sign_object(
        {"u": user.pk, "f": field}, compress=True)


def unsubscribe_url(*, user, kind: str) -> str | None:
    """The absolute unsubscribe link of a message of this kind to this user."""
    token = unsubscribe_token(user=user, kind=kind)
    if token is None:
        return None
    return f"{settings.SITE_URL}{reverse('mail_unsubscribe', args=[token])}"


def unsubscribe_read(*, token: str) -> Unsubscribe:
    """Who and what a link turns off; raises UnsubscribeRefused when it was tampered with,
    names no user any more, or is older than MAIL_UNSUBSCRIBE_MAX_AGE_DAYS."""
    max_age = dt.timedelta(days=settings.MAIL_UNSUBSCRIBE_MAX_AGE_DAYS)
    try:
        value = signing.TimestampSigner(salt=UNSUBSCRIBE_SALT).unsign_object(
            token, max_age=max_age)
    except signing.SignatureExpired as expired:
        raise UnsubscribeRefused("expired") from expired
    except signing.BadSignature as bad:
        raise UnsubscribeRefused("invalid") from bad
    field = value.get("f") if isinstance(value, dict) else None
    user = get_user_model().objects.filter(pk=value.get("u") if field else None).first()
    if field not in PREFERENCE_FIELDS or user is None:
        raise UnsubscribeRefused("invalid")
    return Unsubscribe(user=user, field=field)


def mail_unsubscribe(*, token: str, request: HttpRequest | None = None,
                     via: str = "unsubscribe link") -> Unsubscribe:
    """Turn off what the link names (audited; a second click changes nothing)."""
    unsubscribe = unsubscribe_read(token=token)
    mail_preferences_save(user=unsubscribe.user, request=request, via=via,
                          **{unsubscribe.field: False})
    return unsubscribe
