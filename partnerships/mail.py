"""E-mail that is sent once: every message to a recipient is recorded before it is sent.

`mail_send_once` claims a `SentMessage` row keyed by (kind, key, user) in its own transaction;
a task that runs twice, or two workers racing, find the row and send nothing. The message has
a plain-text part and an HTML part, both rendered from templates (`<template>.txt` and
`<template>.html`), and goes through Django's default mailer (settings.MAILERS).

Nothing goes to an inactive user or to one who turned the kind of message off
(`partnerships.mail_preferences`); every message whose kind a preference turns off carries a
one-click unsubscribe link, in its text (the context's `unsubscribe_url`) and in the
`List-Unsubscribe` and `List-Unsubscribe-Post` headers (RFC 8058) that mail programs offer."""

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from .mail_preferences import mail_wanted, preference_field, preference_name, unsubscribe_url
from .models import SentMessage


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
    """The message's row, taken now; None when another message took the key before."""
    try:
        with transaction.atomic():
            return SentMessage.objects.create(
                kind=kind, key=key[:200], user=user, email=user.email, subject=subject[:300]
            )
    except IntegrityError:
        return None


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
        rows.update(error=str(error)[:2000])
        return MailOutcome(sent=False, reason=str(error))
    rows.update(sent_at=timezone.now())
    return MailOutcome(sent=True)


def mail_send_once(*, kind: str, key: str, user, subject: str, template: str,
                   context: dict) -> MailOutcome:
    """Send `template` to `user` unless a message of this kind and key already went to them.

    The context gets `user`, `site_url` and `unsubscribe_url`. A failed hand-over is recorded
    in the row's `error` and not retried (the row keeps the key taken): the next digest says
    it again."""
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
    `subject` and `context` are built from the keys taken now. Nothing new: nothing sent."""
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
