"""Invitations: a host admin invites someone by e-mail; the link creates their account, once.

The link carries a random token; the database keeps only its hash (`tokens.token_hash`), so
neither a database dump nor the admin who sent it can accept an invitation. A link works once
(claimed by a conditional UPDATE, so two submissions cannot both create an account) and until
it expires (`INVITATION_MAX_AGE_HOURS`).
"""

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from .audit import audit_record
from .models import PARTNER_ROLES, AuditAction, Invitation, Membership, Partner, Role
from .tokens import token_hash

TOKEN_BYTES = 32


class InvitationRefused(Exception):
    """An invitation that may not be sent (bad role/partner, the address already has a user)."""


class InvitationUnusable(Exception):
    """The link is unknown, used, withdrawn or expired; `state` says which."""

    def __init__(self, state: str):
        super().__init__(state)
        self.state = state


@dataclass(frozen=True)
class SentInvitation:
    invitation: Invitation
    url: str


def invitation_max_age() -> dt.timedelta:
    return dt.timedelta(hours=settings.INVITATION_MAX_AGE_HOURS)


def _mail_text(*, invitation: Invitation, url: str, inviter_name: str) -> tuple[str, str]:
    where = invitation.partner.name if invitation.partner else "the host team"
    subject = f"You are invited to Partnership Performance ({where})"
    expires = timezone.localtime(invitation.expires_at).strftime("%Y-%m-%d %H:%M %Z")
    body = (
        f"{inviter_name} has invited you to Partnership Performance as "
        f"{invitation.get_role_display().lower()} for {where}.\n\n"
        f"Open this link to choose your user name and password:\n\n{url}\n\n"
        f"The link works once and until {expires}. If you did not expect this invitation, "
        "ignore this message.\n"
    )
    return subject, body


@transaction.atomic
def invitation_send(
    *,
    actor,
    email: str,
    role: str,
    partner: Partner | None,
    link_for: Callable[[str], str],
    request: HttpRequest | None = None,
) -> SentInvitation:
    """Create an invitation, withdraw earlier pending ones to the same address, e-mail the
    one-time link (built by `link_for(token)`) and audit `invitation_sent`."""
    email = email.strip()
    if role not in Role.values:
        raise InvitationRefused(f"Unknown role {role!r}.")
    if role in PARTNER_ROLES:
        if partner is None:
            raise InvitationRefused("Choose the partner the new user belongs to.")
    else:
        partner = None
    if get_user_model().objects.filter(email__iexact=email).exists():
        raise InvitationRefused(
            f"{email} already has an account: change its role on the users page instead."
        )
    now = timezone.now()
    # One working link per address: the newest invitation replaces the earlier ones.
    Invitation.objects.pending(now=now).filter(email__iexact=email).update(revoked_at=now)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    invitation = Invitation.objects.create(
        email=email, role=role, partner=partner, token_hash=token_hash(token),
        invited_by=actor, expires_at=now + invitation_max_age(),
    )
    url = link_for(token)
    subject, body = _mail_text(
        invitation=invitation, url=url,
        inviter_name=actor.get_full_name() or actor.get_username(),
    )
    # Inside the transaction: if the mail cannot be handed over, no invitation exists.
    send_mail(subject, body, None, [email])
    audit_record(
        action=AuditAction.INVITATION_SENT, request=request, user=actor, partner=partner,
        target=f"invitation {invitation.pk} to {email}",
        detail={"role": role, "expires_at": invitation.expires_at.isoformat()},
    )
    return SentInvitation(invitation=invitation, url=url)


def invitation_for_token(*, token: str) -> Invitation:
    """The invitation the link's token opens, if it still works; else InvitationUnusable."""
    invitation = (
        Invitation.objects.select_related("partner", "invited_by")
        .filter(token_hash=token_hash(token))
        .first()
    )
    if invitation is None:
        raise InvitationUnusable("unknown")
    state = invitation.state(now=timezone.now())
    if state != "pending":
        raise InvitationUnusable(state)
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user, request: HttpRequest | None = None):
    """Create the account `user` (unsaved, password set) with the invitation's role; once.

    Audits `invitation_accepted`. Raises InvitationUnusable when the link no longer works."""
    invitation = invitation_for_token(token=token)
    now = timezone.now()
    # Claim the invitation: of two concurrent submissions only one updates the row.
    claimed = Invitation.objects.pending(now=now).filter(pk=invitation.pk).update(accepted_at=now)
    if claimed != 1:
        raise InvitationUnusable("accepted")
    user.email = invitation.email
    user.is_active = True
    user.save()
    Membership.objects.create(user=user, role=invitation.role, partner=invitation.partner)
    Invitation.objects.filter(pk=invitation.pk).update(accepted_user=user)
    audit_record(
        action=AuditAction.INVITATION_ACCEPTED, request=request, user=user,
        partner=invitation.partner, target=f"invitation {invitation.pk}",
        detail={"role": invitation.role},
    )
    return user


def invitation_withdraw(*, invitation: Invitation) -> bool:
    """Make a pending invitation's link stop working; False if it no longer worked anyway."""
    return bool(
        Invitation.objects.pending(now=timezone.now())
        .filter(pk=invitation.pk)
        .update(revoked_at=timezone.now())
    )
