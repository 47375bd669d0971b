"""E-mail that is sent once: every message to a recipient is recorded before it is sent.

`mail_send_once` claims a `SentMessage` row keyed by (kind, key, user) in its own transaction;
a task that runs twice, or two workers racing, find the row and send nothing. The message has
a plain-text part and an HTML part, both rendered from templates (`<template>.txt` and
`<template>.html`), and goes through Django's default mailer (settings.MAILERS).

A message that did not go is not lost: a failed hand-over is recorded in the row's `error`, and
a later call with the same kind, key and user takes the row over and sends it, as it does a row
left without `sent_at` or error for MAIL_CLAIM_STALE (a worker that died mid-send). The
take-over is one conditional UPDATE, so of two callers only one sends. Tasks that send run the
service through `mail_failures_raised`, which raises `MailNotSent` once the others are sent, and
retry with backoff (`MAIL_TASK_RETRY`).

Nothing goes to an inactive user or to one who turned the kind of message off
(`partnerships.mail_preferences`); every message whose kind a preference turns off carries a
one-click unsubscribe link, in its text (the context's `unsubscribe_url`) and in the
`List-Unsubscribe` and `List-Unsubscribe-Post` headers (RFC 8058) that mail programs offer."""

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from .mail_preferences import mail_wanted, preference_field, preference_name, unsubscribe_url
from .models import SentMessage

logger = logging.getLogger(__name__)

# A claimed row with neither `sent_at` nor an error after this long had its sender die mid-send:
# a later call takes it over. Far longer than a hand-over takes (the mailer's timeout must stay
# well below it, or a slow send could go twice).
MAIL_CLAIM_STALE = dt.timedelta(minutes=10)


class MailNotSent(Exception):
    """Messages of a sending service that failed to go (each recorded with its error)."""

    def __init__(self, failed: list[str]):
        super().__init__(f"{len(failed)} message(s) not handed over, the first: {failed[0]}")
        self.failed = failed


# The Celery options of a task that sends mail: when a hand-over failed the task runs again,
# up to 4 times, after at most 1, 2, 4 and 8 minutes (jittered, so that retries of many tasks
# do not all hit the mail server at once); what was sent already is not sent again.
MAIL_TASK_RETRY = {"autoretry_for": (MailNotSent,), "retry_backoff": 60, "retry_backoff_max": 900,
                   "retry_jitter": True, "max_retries": 4}


# The failures of the service running under mail_failures_raised, in this context.
_failures: ContextVar[list[str] | None] = ContextVar("mail_failures", default=None)


@dataclass(frozen=True)
class MailOutcome:
    sent: bool
    # Why nothing was sent: "no address", "inactive", "turned off", "already sent", or the error.
    reason: str = ""


def site_link(path: str) -> str:
    """An absolute link to a path of the site, for messages sent without a request."""
    return f"{settings.SITE_URL}{path}"


def _unwanted(*, user, kind: str) -> MailOutcome | None:
    if not user.email:
        return MailOutcome(sent=False, reason="no address")
    if not user.is_active:
        return MailOutcome(sent=False, reason="inactive")
    if not mail_wanted(user=user, kind=kind):
        return MailOutcome(sent=False, reason="turned off")
    return None


def _claim(*, kind: str, key: str, user, subject: str) -> SentMessage | None:
    """The message's row, taken now: new, or one whose send failed or was left unfinished;
    None when it was sent, or another caller is sending it."""
    try:
        with transaction.atomic():
            return SentMessage.objects.create(
                kind=kind, key=key[:200], user=user, email=user.email, subject=subject[:300]
            )
    except IntegrityError:
        pass
    now = timezone.now()
    # One conditional UPDATE, never a read then a write: it clears the error and renews
    # created_at, so of two callers racing for the row the second matches nothing.
    taken = SentMessage.objects.filter(
        Q(error__gt="") | Q(created_at__lt=now - MAIL_CLAIM_STALE),
        kind=kind, key=key[:200], user=user, sent_at__isnull=True,
    ).update(error="", created_at=now, email=user.email, subject=subject[:300])
    if not taken:
        return None
    return SentMessage.objects.get(kind=kind, key=key[:200], user=user)


def _send(*, messages: list[SentMessage], kind: str, user, subject: str, template: str,
          context: dict) -> MailOutcome:
    unsubscribe = unsubscribe_url(user=user, kind=kind)
    field = preference_field(kind)
    context = {**context, "user": user, "site_url": settings.SITE_URL, "subject": subject,
               "unsubscribe_url": unsubscribe,
               "unsubscribe_what": preference_name(field) if field else ""}
    text = render_to_string(f"{template}.txt", context)
    html = render_to_string(f"{template}.html", context)
    headers = ({"List-Unsubscribe": f"<{unsubscribe}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"} if unsubscribe else {})
    mail = EmailMultiAlternatives(subject=subject, body=text, to=[user.email], headers=headers)
    mail.attach_alternative(html, "text/html")
    rows = SentMessage.objects.filter(pk__in=[message.pk for message in messages])
    try:
        mail.send()
    except OSError as error:
        reason = str(error) or type(error).__name__
        # Recorded, not sent: the next call with this kind, key and user takes the row over.
        rows.update(error=reason[:2000])
        logger.warning("E-mail %s to user %s not handed over: %s", kind, user.pk, reason)
        failures = _failures.get()
        if failures is not None:
            failures.append(reason)
        return MailOutcome(sent=False, reason=reason)
    rows.update(sent_at=timezone.now())
    return MailOutcome(sent=True)


@contextmanager
def mail_failures_raised() -> Iterator[None]:
    """Around a service that sends several messages: raise MailNotSent at the end when any
    failed to go (the others are sent), so that a task retries; the retry sends only those."""
    failures: list[str] = []
    token = _failures.set(failures)
    try:
        yield
    finally:
        _failures.reset(token)
    if failures:
        raise MailNotSent(failures)


def mail_send_once(*, kind: str, key: str, user, subject: str, template: str,
                   context: dict) -> MailOutcome:
    """Send `template` to `user` unless a message of this kind and key already went to them.

    The context gets `user`, `site_url` and `unsubscribe_url`. A failed hand-over is recorded
    in the row's `error` (the outcome's reason); a later call sends it, once."""
    unwanted = _unwanted(user=user, kind=kind)
    if unwanted is not None:
        return unwanted
    message = _claim(kind=kind, key=key, user=user, subject=subject)
    if message is None:
        return MailOutcome(sent=False, reason="already sent")
    return _send(messages=[message], kind=kind, user=user, subject=subject, template=template,
                 context=context)


def mail_send_once_each(*, kind: str, keys: list[str], user, subject: Callable[[list], str],
                        template: str, context: Callable[[list], dict]) -> MailOutcome:
    """One message about those of `keys` (each a thing to tell once: an action, an overdue
    review) not told to `user` before: each key is recorded as its own `SentMessage`, and
    `subject` and `context` are built from the keys taken now (with those whose message failed
    before). Nothing new: nothing sent."""
    unwanted = _unwanted(user=user, kind=kind)
    if unwanted is not None:
        return unwanted
    # The subject is known once the keys are: the rows are claimed first, then named.
    claimed = [message for key in keys
               if (message := _claim(kind=kind, key=key, user=user, subject="")) is not None]
    if not claimed:
        return MailOutcome(sent=False, reason="already sent")
    taken = [message.key for message in claimed]
    title = subject(taken)
    SentMessage.objects.filter(pk__in=[message.pk for message in claimed]).update(
        subject=title[:300])
    return _send(messages=claimed, kind=kind, user=user, subject=title, template=template,
                 context=context(taken))
