"""Secret tokens: one hash for API tokens and invitation links; API tokens made, limited,
revoked and checked by their services, each change in the audit log."""

import hashlib
import re

import pytest
from django.core import mail

from partnerships.invitations import invitation_send
from partnerships.models import ApiToken, AuditEvent, Invitation, Role
from partnerships.tokens import (
    MAX_ACTIVE_TOKENS,
    TokenRefused,
    api_token_authenticate,
    api_token_create,
    api_token_revoke,
    token_hash,
)
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme_editor(django_user_model, acme):
    return make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)


def test_token_hash_is_the_sha256_of_the_token():
    assert token_hash("pp_abc") == hashlib.sha256(b"pp_abc").hexdigest()


def test_an_api_token_is_stored_as_the_helpers_hash_of_its_key(host_manager):
    token, key = api_token_create(user=host_manager, name="CRM")

    assert ApiToken.objects.get(pk=token.pk).key_hash == token_hash(key)
    assert key not in str(ApiToken.objects.values().get())


def test_an_invitation_is_stored_as_the_helpers_hash_of_its_link_token(django_user_model):
    admin = make_user(django_user_model, "admin-ann", Role.HOST_ADMIN)
    sent = invitation_send(actor=admin, email="new@host.example", role=Role.HOST_MANAGER,
                           partner=None, link_for=lambda token: f"/invitations/{token}/")

    token = re.search(r"/invitations/([^/]+)/", mail.outbox[0].body).group(1)
    assert Invitation.objects.get(pk=sent.invitation.pk).token_hash == token_hash(token)


def test_making_and_revoking_a_token_are_audited_with_its_prefix(acme_editor, acme):
    token, _key = api_token_create(user=acme_editor, name="CRM nightly export")
    api_token_revoke(user=acme_editor, token_id=token.pk)

    events = AuditEvent.objects.filter(action="api_token").order_by("pk")
    assert [event.detail["step"] for event in events] == ["token created", "token revoked"]
    for event in events:
        assert (event.user, event.partner) == (acme_editor, acme)
        assert event.detail["token"] == token.prefix
        assert event.detail["name"] == "CRM nightly export"


def test_a_user_with_the_most_live_tokens_may_not_make_another(host_manager):
    for number in range(MAX_ACTIVE_TOKENS):
        api_token_create(user=host_manager, name=f"token {number}")

    with pytest.raises(TokenRefused, match=f"{MAX_ACTIVE_TOKENS} live tokens"):
        api_token_create(user=host_manager, name="one more")
    assert ApiToken.objects.count() == MAX_ACTIVE_TOKENS
    assert AuditEvent.objects.filter(detail__step="token created").count() == MAX_ACTIVE_TOKENS


def test_revoking_anothers_token_changes_nothing_and_records_nothing(host_manager, acme_editor):
    token, key = api_token_create(user=acme_editor, name="CRM")

    assert api_token_revoke(user=host_manager, token_id=token.pk) is None
    assert api_token_authenticate(authorization=f"Bearer {key}") == token
    assert not AuditEvent.objects.filter(detail__step="token revoked").exists()


def test_a_revoked_key_no_longer_authenticates(host_manager):
    token, key = api_token_create(user=host_manager, name="CRM")
    api_token_revoke(user=host_manager, token_id=token.pk)

    assert api_token_authenticate(authorization=f"Bearer {key}") is None
