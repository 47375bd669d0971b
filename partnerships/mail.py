"""E-mail that is sent once: every message to a recipient is recorded before it is sent.

`mail_send_once` claims a `SentMessage` row keyed by (kind, key, user) in its own transaction;
a task that runs twice, or two workers racing, find the row and send nothing. The message has
a plain-text part and an HTML part, both rendered from templates (`<template>.txt` and
`<template>.html`), and goes through Django's default mailer (settings.MAILERS)."""

from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from .models import SentMessage


@dataclass(frozen=True)
class MailOutcome:
    sent: bool
    reason: str = ""  # why nothing was sent: "no address", "already sent", or the error


def site_link(path: str) -> str:
    """An absolute link to a path of the site, for messages sent without a request."""
    return f"{settings.SITE_URL}{path}"


def mail_send_once(*, kind: str, key: str, user, subject: str, template: str,
                   context: dict) -> MailOutcome:
    """Send `template` to `user` unless a message of this kind and key already went to them.

    The context gets `user` and `site_url`. A failed hand-over is recorded in the row's
    `error` and not retried (the row keeps the key taken): the next digest says it again."""
    if not user.email:
        return MailOutcome(sent=False, reason="no address")
    try:
        with transaction.atomic():
            message = SentMessage.objects.create(
                kind=kind, key=key[:200], user=user, email=user.email, subject=subject[:300]
            )
    except IntegrityError:
        return MailOutcome(sent=False, reason="already sent")
    context = {**context, "user": user, "site_url": settings.SITE_URL, "subject": subject}
    text = render_to_string(f"{template}.txt", context)
    html = render_to_string(f"{template}.html", context)
    mail = EmailMultiAlternatives(subject=subject, body=text, to=[user.email])
    mail.attach_alternative(html, "text/html")
    try:
        mail.send()
    except OSError as error:
        SentMessage.objects.filter(pk=message.pk).update(error=str(error)[:2000])
        return MailOutcome(sent=False, reason=str(error))
    SentMessage.objects.filter(pk=message.pk).update(sent_at=timezone.now())
    return MailOutcome(sent=True)
