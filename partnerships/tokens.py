"""Secret tokens: API tokens for the metrics API, and the one hash every stored token goes by.

A token's key (and an invitation link's token) is shown once, when it is made; the database
keeps its SHA-256 only, so neither a database dump nor an admin can use one. A presented key is
found by the hash it has (no secret is compared in Python, so there is nothing to time).
"""

import hashlib
import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from .access import membership_of_any
from .audit import audit_record
from .models import ApiToken, AuditAction

KEY_PREFIX = "pp_"
# Shown in lists so a user can tell their tokens apart; never enough to use one.
SHOWN_PREFIX_LENGTH = 12
MAX_KEY_LENGTH = 200
MAX_ACTIVE_TOKENS = 20


class TokenRefused(Exception):
    """A token that may not be made (the user has too many live ones)."""


def token_hash(token: str) -> str:
    """The SHA-256 (hex) a secret token is stored and looked up by."""
    return hashlib.sha256(token.encode()).hexdigest()


def _audit_token(*, step: str, token: ApiToken, request: HttpRequest | None) -> None:
    membership = membership_of_any(token.user)
    audit_record(
        action=AuditAction.API_TOKEN, request=request, user=token.user,
        partner=membership.partner if membership else None,
        target=f"API token {token.prefix}…",
        detail={"step": step, "token": token.prefix, "name": token.name},
    )


@transaction.atomic
def api_token_create(
    *, user, name: str, request: HttpRequest | None = None
) -> tuple[ApiToken, str]:
    """A new token of the user and its key (shown once; only its hash is stored); audited."""
    # The user's row is the lock: two requests at once cannot both make the last allowed token.
    get_user_model().objects.select_for_update().filter(pk=user.pk).exists()
    live = ApiToken.objects.filter(user=user, revoked_at__isnull=True)
    if live.count() >= MAX_ACTIVE_TOKENS:
        raise TokenRefused(f"You have {MAX_ACTIVE_TOKENS} live tokens already: revoke one you "
                           "no longer use first.")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=key[:SHOWN_PREFIX_LENGTH], key_hash=token_hash(key)
    )
    _audit_token(step="token created", token=token, request=request)
    return token, key


@transaction.atomic
def api_token_revoke(
    *, user, token_id: int, request: HttpRequest | None = None
) -> ApiToken | None:
    """Revoke one of the user's own live tokens; None if they have no such token; audited."""
    token = (
        ApiToken.objects.select_for_update()
        .filter(user=user, pk=token_id, revoked_at__isnull=True).first()
    )
    if token is None:
        return None
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    _audit_token(step="token revoked", token=token, request=request)
    return token


def api_token_authenticate(*, authorization: str) -> ApiToken | None:
    """The live token of an active user that the `Authorization: Bearer` value names, or None."""
    scheme, _, key = authorization.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > MAX_KEY_LENGTH:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=token_hash(key), revoked_at__isnull=True).first()
    )
    if token is None or not token.user.is_active:
        return None
    return token


def api_token_used(*, token: ApiToken) -> None:
    """Note when the token was last used: bookkeeping of authentication, not a change."""
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
