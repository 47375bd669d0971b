"""Invitations: a host admin invites by e-mail; the one-time, expiring link creates the user."""

import datetime as dt
import hashlib
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from partnerships.invitations import InvitationRefused, invitation_send
from partnerships.models import AuditEvent, Invitation, Membership
from partnerships.tokens import token_hash

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://testserver(/invitations/[A-Za-z0-9_-]+/)")
GOOD_PASSWORD = "orange-Kettle-91-harbour"


@pytest.fixture(autouse=True)
def _partner_acme(acme):
    """Every invitation here is to Acme unless it says otherwise."""


def invite(client, email="new.person@acme.example", role="partner_viewer", partner="acme"):
    return client.post("/access/invite/", {"email": email, "role": role, "partner": partner})


def sent_link() -> str:
    assert len(mail.outbox) == 1
    match = LINK.search(mail.outbox[0].body)
    assert match, mail.outbox[0].body
    return match.group(1)


def accept(client, link, username="newperson", password=GOOD_PASSWORD):
    return client.post(link, {"username": username, "password1": password,
                              "password2": password})


def test_admin_invites_a_partner_viewer_and_the_mail_carries_a_one_time_link(
    host_admin_client, host_admin, acme
):
    response = invite(host_admin_client)

    assert response.status_code == 302 and response.url == "/access/users/#invitations"
    message = mail.outbox[0]
    assert message.to == ["new.person@acme.example"]
    assert "partner viewer for Acme Corp" in message.body
    link = sent_link()
    token = link.rstrip("/").rsplit("/", 1)[1]
    invitation = Invitation.objects.get()
    # Only the hash is stored: the token itself exists in the e-mail alone.
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest() == token_hash(token)
    assert token not in str(Invitation.objects.values().get())
    assert (invitation.role, invitation.partner, invitation.invited_by) == (
        "partner_viewer", acme, host_admin)
    assert invitation.expires_at - invitation.created_at == pytest.approx(
        dt.timedelta(hours=72), abs=dt.timedelta(seconds=5))
    event = AuditEvent.objects.get(action="invitation_sent")
    assert (event.user, event.partner) == (host_admin, acme)
    assert "new.person@acme.example" in event.target


def test_accepting_creates_the_user_with_the_role_and_they_can_log_in(
    host_admin_client, client, host_admin, acme, django_user_model
):
    invite(host_admin_client)
    link = sent_link()
    host_admin_client.logout()

    page = client.get(link)
    assert page.status_code == 200
    assert "Create your account" in page.text and "Acme Corp" in page.text
    response = accept(client, link)

    assert response.status_code == 302 and response.url == "/login/"
    user = django_user_model.objects.get(username="newperson")
    assert user.email == "new.person@acme.example" and user.is_active
    assert user.check_password(GOOD_PASSWORD)
    membership = Membership.objects.get(user=user)
    assert (membership.role, membership.partner) == ("partner_viewer", acme)
    invitation = Invitation.objects.get()
    assert invitation.accepted_at is not None and invitation.accepted_user == user
    event = AuditEvent.objects.get(action="invitation_accepted")
    assert (event.user, event.partner) == (user, acme)

    client.force_login(user)
    assert "You see the agreements of Acme Corp." in client.get("/").text


def test_a_used_link_is_refused_with_a_clear_message(host_admin_client, client):
    invite(host_admin_client)
    link = sent_link()
    host_admin_client.logout()
    accept(client, link)

    again = client.get(link)
    assert again.status_code == 410
    assert "This invitation has already been used" in again.text
    # Nothing of the invitation is shown to whoever holds a used link.
    assert "Acme Corp" not in again.text and "new.person" not in again.text
    second = accept(client, link, username="someone-else")
    assert second.status_code == 410
    assert not get_user_model().objects.filter(username="someone-else").exists()


def test_an_expired_link_is_refused(host_admin_client, client, settings):
    invite(host_admin_client)
    link = sent_link()
    host_admin_client.logout()
    Invitation.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    page = client.get(link)
    assert page.status_code == 410 and "This invitation has expired" in page.text
    assert accept(client, link).status_code == 410
    assert not get_user_model().objects.filter(username="newperson").exists()


def test_expiry_follows_the_setting(host_admin, acme, settings):
    settings.INVITATION_MAX_AGE_HOURS = 2
    sent = invitation_send(actor=host_admin, email="x@acme.example", role="partner_editor",
                           partner=acme, link_for=lambda token: f"/invitations/{token}/")
    invitation = sent.invitation
    assert invitation.expires_at - invitation.created_at == pytest.approx(
        dt.timedelta(hours=2), abs=dt.timedelta(seconds=5))


def test_an_unknown_link_is_not_found(client):
    response = client.get("/invitations/not-a-real-token/")
    assert response.status_code == 404
    assert "This invitation link is not valid" in response.text


def test_a_new_invitation_to_the_same_address_withdraws_the_old_link(host_admin_client, client):
    invite(host_admin_client)
    first = sent_link()
    mail.outbox.clear()
    invite(host_admin_client, role="partner_editor")
    second = sent_link()
    host_admin_client.logout()

    assert client.get(first).status_code == 410
    assert "withdrawn" in client.get(first).text
    accept(client, second)
    assert Membership.objects.get(user__username="newperson").role == "partner_editor"


def test_the_admin_can_withdraw_a_pending_invitation(host_admin_client, client):
    invite(host_admin_client)
    link = sent_link()
    invitation = Invitation.objects.get()

    response = host_admin_client.post(f"/access/invitations/{invitation.pk}/withdraw/",
                                      {"confirm": "yes"})

    assert response.status_code == 302
    withdrawn = AuditEvent.objects.get(action="invitation_withdrawn")
    assert (withdrawn.username, withdrawn.target) == ("admin-ann", invitation.email)
    host_admin_client.logout()
    assert client.get(link).status_code == 410


def test_weak_passwords_are_refused_by_the_project_validators(host_admin_client, client):
    invite(host_admin_client)
    link = sent_link()
    host_admin_client.logout()

    for weak in ("password", "12345678", "newperson1"):
        response = accept(client, link, password=weak)
        assert response.status_code == 200
        assert 'class="field-errors"' in response.text
    assert not get_user_model().objects.filter(username="newperson").exists()
    assert Invitation.objects.get().accepted_at is None


def test_a_taken_user_name_is_refused_and_the_link_still_works(host_admin_client, client,
                                                               acme_viewer):
    invite(host_admin_client)
    link = sent_link()
    host_admin_client.logout()

    response = accept(client, link, username="ACME-viewer")
    assert response.status_code == 200 and "already exists" in response.text
    assert accept(client, link).status_code == 302


def test_host_roles_are_invited_without_a_partner(host_admin_client, client, host_admin):
    response = invite(host_admin_client, email="colleague@host.example", role="host_manager",
                      partner="")
    assert response.status_code == 302
    link = sent_link()
    host_admin_client.logout()
    accept(client, link, username="colleague")
    membership = Membership.objects.get(user__username="colleague")
    assert membership.role == "host_manager" and membership.partner is None


def test_a_partner_role_needs_a_partner_and_a_host_role_has_none(host_admin_client, acme):
    response = invite(host_admin_client, role="partner_viewer", partner="")
    assert response.status_code == 200 and "Choose the partner" in response.text
    response = invite(host_admin_client, role="host_admin", partner="acme")
    assert response.status_code == 200 and "Host roles belong to no partner" in response.text
    assert not Invitation.objects.exists() and not mail.outbox


def test_an_address_that_already_has_an_account_is_refused(host_admin_client, acme_viewer):
    acme_viewer.email = "viewer@acme.example"
    acme_viewer.save()
    response = invite(host_admin_client, email="Viewer@Acme.example")
    assert response.status_code == 200 and "already has an account" in response.text
    assert not mail.outbox


def test_the_service_refuses_a_partner_role_without_partner(host_admin):
    with pytest.raises(InvitationRefused):
        invitation_send(actor=host_admin, email="a@b.example", role="partner_viewer",
                        partner=None, link_for=str)


def test_a_signed_in_user_is_told_to_log_out_first(host_admin_client, client, acme_viewer):
    invite(host_admin_client)
    link = sent_link()
    client.force_login(acme_viewer)

    response = client.get(link)
    assert "log out first" in response.text
    assert "Create your account" not in response.text and "new.person" not in response.text
    assert accept(client, link, username="sneaky").status_code == 200
    assert not get_user_model().objects.filter(username="sneaky").exists()


def test_the_invite_form_over_htmx_answers_with_its_panel(host_admin_client):
    response = host_admin_client.post(
        "/access/invite/", {"email": "p@acme.example", "role": "partner_viewer",
                            "partner": "acme"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="invite-panel"')
    assert "Invitation sent to p@acme.example" in response.text
    assert response.headers["Vary"].count("HX-Request") == 1
