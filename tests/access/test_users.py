"""Access management: who has access to each partner, role changes, deactivation, and who may
manage users at all. Changes take effect on the affected user's next request."""

import pytest
from django.contrib.sessions.models import Session

from partnerships.models import AuditEvent, Membership
from tests.access.conftest import csrf_client

pytestmark = pytest.mark.django_db


def session_user_ids() -> list[str]:
    return [str(s.get_decoded().get("_auth_user_id")) for s in Session.objects.all()]


def test_users_page_shows_who_has_access_to_each_partner(
    host_admin_client, host_admin, host_manager, acme_viewer, acme_editor, globex, acme
):
    response = host_admin_client.get("/access/users/")

    assert response.status_code == 200
    body = response.text
    host_section = body.split('id="host-heading"')[1].split("</section>")[0]
    assert "admin-ann" in host_section and "manager" in host_section
    acme_section = body.split('id="partner-acme-heading"')[1].split("</section>")[0]
    assert "acme-viewer" in acme_section and "acme-editor" in acme_section
    assert "see only Acme Corp" in acme_section
    # Globex has nobody yet: named, with a way to invite someone.
    no_access = body.split('id="no-access-heading"')[1].split("</section>")[0]
    assert "Globex" in no_access and "/access/invite/?partner=globex" in no_access


def test_users_page_filtered_to_one_partner(host_admin_client, acme_viewer, globex_viewer):
    body = host_admin_client.get("/access/users/?partner=globex").text
    assert "globex-viewer" in body and "acme-viewer" not in body
    assert host_admin_client.get("/access/users/?partner=nope").status_code == 404


def test_only_host_admins_manage_users(client, host_manager, acme_viewer, acme_editor):
    urls = ["/access/users/", f"/access/users/{acme_viewer.pk}/", "/access/invite/",
            "/access/audit/"]
    posts = [f"/access/users/{acme_viewer.pk}/role/",
             f"/access/users/{acme_viewer.pk}/deactivate/",
             f"/access/users/{acme_viewer.pk}/reactivate/"]
    for url in urls + posts:
        response = client.get(url) if url in urls else client.post(url, {"role": "host_admin"})
        assert response.status_code == 302 and response.url.startswith("/login/"), url
    client.force_login(host_manager)
    for url in urls:
        assert client.get(url).status_code == 403, url
    for url in posts:
        assert client.post(url, {"role": "host_admin"}).status_code == 403, url
    for partner_user in (acme_viewer, acme_editor):
        client.force_login(partner_user)
        for url in urls:
            assert client.get(url).status_code == 404, url
        for url in posts:
            assert client.post(url, {"role": "host_admin"}).status_code == 404, url
    acme_viewer.refresh_from_db()
    assert acme_viewer.is_active and acme_viewer.membership.role == "partner_viewer"
    assert not AuditEvent.objects.filter(action="role_changed").exists()


def test_role_change_is_audited_and_applies_on_the_next_request(
    host_admin_client, host_admin, client, acme_editor, acme
):
    client.force_login(acme_editor)
    assert "Partner editor" in client.get("/").text

    response = host_admin_client.post(
        f"/access/users/{acme_editor.pk}/role/", {"role": "partner_viewer", "partner": "acme"}
    )

    assert response.status_code == 302
    assert Membership.objects.get(user=acme_editor).role == "partner_viewer"
    # The same session, the next click: the new role.
    assert "Partner viewer" in client.get("/").text
    event = AuditEvent.objects.get(action="role_changed")
    assert (event.user, event.partner) == (host_admin, acme)
    assert event.detail == {"from": {"role": "partner_editor", "partner": "acme"},
                            "to": {"role": "partner_viewer", "partner": "acme"}}


def test_demoted_admin_loses_the_users_page_on_the_next_request(
    host_admin_client, client, django_user_model
):
    from tests.conftest import make_user

    other_admin = make_user(django_user_model, "admin-bob", "host_admin")
    client.force_login(other_admin)
    assert client.get("/access/users/").status_code == 200

    host_admin_client.post(f"/access/users/{other_admin.pk}/role/", {"role": "host_manager"})

    assert client.get("/access/users/").status_code == 403
    assert client.get("/scoring/runs/").status_code == 200


def test_moving_a_user_to_the_host_needs_the_users_page_form(host_admin_client, acme_viewer):
    response = host_admin_client.post(
        f"/access/users/{acme_viewer.pk}/role/", {"role": "host_manager", "partner": "acme"}
    )
    assert response.status_code == 200 and "Host roles belong to no partner" in response.text
    assert Membership.objects.get(user=acme_viewer).role == "partner_viewer"
    host_admin_client.post(f"/access/users/{acme_viewer.pk}/role/",
                           {"role": "host_manager", "partner": ""})
    membership = Membership.objects.get(user=acme_viewer)
    assert (membership.role, membership.partner) == ("host_manager", None)


def test_a_revoked_membership_takes_effect_on_the_next_request(client, acme_viewer,
                                                              acme_agreement):
    client.force_login(acme_viewer)
    assert "You see the agreements of Acme Corp." in client.get("/").text
    Membership.objects.filter(user=acme_viewer).delete()

    body = client.get("/").text
    assert "not linked to the host or to a partner" in body
    assert client.get("/scoring/runs/").status_code == 404


def test_deactivation_logs_out_at_once_and_blocks_the_next_request(
    host_admin_client, host_admin, client, acme_viewer, acme
):
    client.force_login(acme_viewer)
    assert client.get("/").status_code == 200
    assert str(acme_viewer.pk) in session_user_ids()

    response = host_admin_client.post(f"/access/users/{acme_viewer.pk}/deactivate/",
                                      {"confirm": "yes"})

    assert response.status_code == 302
    # Their session is gone at once, not at its expiry.
    assert str(acme_viewer.pk) not in session_user_ids()
    assert str(host_admin.pk) in session_user_ids()
    acme_viewer.refresh_from_db()
    assert not acme_viewer.is_active
    answer = client.get("/")
    assert answer.status_code == 302 and answer.url.startswith("/login/")
    event = AuditEvent.objects.get(action="user_deactivated")
    assert (event.user, event.partner, event.target) == (host_admin, acme, "user acme-viewer")
    assert event.detail == {"from": {"active": True}, "to": {"active": False},
                            "sessions_ended": 1}


def test_deactivated_user_is_refused_even_with_a_surviving_session(client, acme_viewer):
    # Django's ModelBackend refuses an inactive user when it loads the session's user.
    client.force_login(acme_viewer)
    type(acme_viewer).objects.filter(pk=acme_viewer.pk).update(is_active=False)

    response = client.get("/")
    assert response.status_code == 302 and response.url.startswith("/login/")
    refused = client.post("/login/", {"username": "acme-viewer", "password": "pw-acme-viewer"})
    assert refused.status_code == 200 and "correct username and password" in refused.text
    assert client.get("/").status_code == 302


def test_reactivation_lets_the_user_log_in_again(host_admin_client, host_admin, acme_viewer):
    host_admin_client.post(f"/access/users/{acme_viewer.pk}/deactivate/", {"confirm": "yes"})
    response = host_admin_client.post(f"/access/users/{acme_viewer.pk}/reactivate/")

    assert response.status_code == 302
    acme_viewer.refresh_from_db()
    assert acme_viewer.is_active
    event = AuditEvent.objects.get(action="user_reactivated", user=host_admin)
    assert event.detail == {"from": {"active": False}, "to": {"active": True}}


def test_the_audit_page_shows_a_deactivation_as_old_and_new_value(
    host_admin_client, acme_viewer
):
    host_admin_client.post(f"/access/users/{acme_viewer.pk}/deactivate/", {"confirm": "yes"})

    page = host_admin_client.get("/access/audit/?action=user_deactivated").text
    assert "active: yes → no" in page


def test_an_admin_cannot_demote_or_deactivate_themselves(host_admin_client, host_admin):
    response = host_admin_client.post(f"/access/users/{host_admin.pk}/deactivate/", follow=True)
    assert "You cannot change your own access" in response.text
    host_admin_client.post(f"/access/users/{host_admin.pk}/role/", {"role": "host_manager"})
    host_admin.refresh_from_db()
    assert host_admin.is_active and host_admin.membership.role == "host_admin"


def test_htmx_row_actions_answer_with_the_changed_row(host_admin_client, acme_viewer, acme):
    # The confirmation names the row as its target (HX-Target), as the users page does.
    response = host_admin_client.post(
        f"/access/users/{acme_viewer.pk}/deactivate/", {"confirm": "yes"},
        headers={"HX-Request": "true", "HX-Target": f"user-{acme_viewer.pk}"},
    )
    assert response.status_code == 200
    row = response.text.strip()
    assert row.startswith(f'<tr id="user-{acme_viewer.pk}"') and row.endswith("</tr>")
    assert "Deactivated" in row and "Reactivate" in row and "logged out everywhere" in row

    response = host_admin_client.post(
        f"/access/users/{acme_viewer.pk}/role/", {"role": "partner_editor", "partner": "acme"},
        headers={"HX-Request": "true", "HX-Target": f"user-{acme_viewer.pk}"},
    )
    assert 'value="partner_editor" selected' in response.text
    assert "is now partner editor for Acme Corp" in response.text


def test_htmx_posts_need_the_csrf_token(host_admin, acme_viewer, acme):
    client = csrf_client(host_admin)
    url = f"/access/users/{acme_viewer.pk}/deactivate/"

    refused = client.post(url, headers={"HX-Request": "true"})
    assert refused.status_code == 403
    acme_viewer.refresh_from_db()
    assert acme_viewer.is_active

    # As htmx sends it: the token from the page in the X-CSRFToken header.
    accepted = client.post(url, {"confirm": "yes"},
                           headers={"HX-Request": "true", "X-CSRFToken": client.csrf_token})
    assert accepted.status_code in (200, 204)
    acme_viewer.refresh_from_db()
    assert not acme_viewer.is_active


def test_pages_carry_the_token_htmx_sends(host_admin_client):
    body = host_admin_client.get("/access/users/").text
    assert "hx-headers='{\"x-csrftoken\": \"" in body


def test_nav_links_only_for_host_admins(host_admin_client, client, host_manager, acme_viewer):
    body = host_admin_client.get("/").text
    assert 'href="/access/users/"' in body and 'href="/access/audit/"' in body
    for user in (host_manager, acme_viewer):
        client.force_login(user)
        body = client.get("/").text
        assert "/access/users/" not in body and "/access/audit/" not in body


def test_user_page_shows_role_form_and_recent_activity(host_admin_client, acme_viewer, acme):
    host_admin_client.post(f"/access/users/{acme_viewer.pk}/role/",
                           {"role": "partner_editor", "partner": "acme"})
    body = host_admin_client.get(f"/access/users/{acme_viewer.pk}/").text
    assert "Partner editor for Acme Corp" in body
    assert "partner viewer (acme)" not in body  # details are on the audit page
    assert "Role changed" in body
    assert host_admin_client.get("/access/users/999999/").status_code == 404
