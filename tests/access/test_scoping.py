"""The one scoping layer: what each user may see, and how the view decorators answer."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.test import RequestFactory

from partnerships import access
from partnerships.models import ImportBatch, Membership
from tests.conftest import make_user, write_observations

pytestmark = pytest.mark.django_db


@pytest.fixture
def program(acme_agreement, globex_agreement, kpis, acme, globex, acme_viewer):
    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-01-10", 5),
                        (globex_agreement, kpis["revenue"], "host", "2025-01-10", 7)])
    ImportBatch.objects.create(source="upload", side="partner", partner=acme, user=acme_viewer)
    ImportBatch.objects.create(source="upload", side="partner", partner=globex)


def test_host_users_see_everything(program, host_manager):
    assert access.agreements_for(user=host_manager).count() == 2
    assert access.partners_for(user=host_manager).count() == 2
    assert access.observations_for(user=host_manager).count() == 2
    assert access.import_batches_for(user=host_manager).count() == 3


def test_partner_users_see_only_their_partner(program, acme_viewer, acme):
    assert [a.code for a in access.agreements_for(user=acme_viewer)] == ["ACME-CM-2025"]
    assert list(access.partners_for(user=acme_viewer)) == [acme]
    assert {o.agreement.partner for o in access.observations_for(user=acme_viewer)} == {acme}
    # Their side's batches, and the host's that wrote their agreements' values; never
    # another partner's.
    batches = access.import_batches_for(user=acme_viewer)
    assert {batch.partner for batch in batches} <= {acme, None}
    assert batches.filter(partner=acme).count() == 1
    assert all(batch.partner == acme or batch.observations.filter(
        agreement__partner=acme).exists() for batch in batches)


def test_nobody_else_sees_anything(program, acme_viewer, django_user_model):
    sideless = django_user_model.objects.create_user("sideless", password="x")
    acme_viewer.is_active = False
    for user in (AnonymousUser(), sideless, acme_viewer):
        assert access.membership_of(user) is None
        for scoped in (access.agreements_for, access.partners_for, access.observations_for,
                       access.import_batches_for, access.memberships_for, access.users_for,
                       access.invitations_for, access.audit_events_for):
            assert not scoped(user=user).exists(), (user, scoped.__name__)


def test_only_host_admins_see_users_and_the_audit_log(host_manager, django_user_model):
    admin = make_user(django_user_model, "admin-ann", "host_admin")
    assert access.users_for(user=admin).count() == 2
    assert access.memberships_for(user=admin).count() == 2
    assert not access.users_for(user=host_manager).exists()
    assert not access.audit_events_for(user=host_manager).exists()
    assert access.invitations_for(user=host_manager).query.is_empty()
    assert access.audit_events_for(user=admin).query.is_empty() is False


def call(decorator, user):
    request = RequestFactory().get("/somewhere/?x=1")
    request.user = user
    return decorator(lambda request: HttpResponse("ok"))(request)


@pytest.mark.parametrize("decorator", [access.host_required, access.manager_required,
                                       access.admin_required])
def test_decorators_send_anonymous_visitors_to_log_in(decorator):
    response = call(decorator, AnonymousUser())
    assert response.status_code == 302
    assert response.url == "/login/?next=/somewhere/%3Fx%3D1"


@pytest.mark.parametrize("decorator", [access.host_required, access.manager_required,
                                       access.admin_required])
def test_decorators_hide_host_pages_from_partner_users(decorator, acme_viewer, django_user_model):
    sideless = django_user_model.objects.create_user("sideless", password="x")
    for user in (acme_viewer, sideless):
        with pytest.raises(Http404):
            call(decorator, user)


def test_decorators_let_the_right_host_roles_act(host_manager, django_user_model):
    admin = make_user(django_user_model, "admin-ann", "host_admin")
    for decorator in (access.host_required, access.manager_required, access.admin_required):
        assert call(decorator, admin).content == b"ok"
    assert call(access.host_required, host_manager).content == b"ok"
    assert call(access.manager_required, host_manager).content == b"ok"
    with pytest.raises(PermissionDenied):
        call(access.admin_required, host_manager)


def test_manager_required_refuses_a_host_user_who_may_not_act(host_manager, monkeypatch):
    monkeypatch.setattr(Membership, "can_manage", property(lambda self: False))
    with pytest.raises(PermissionDenied):
        call(access.manager_required, host_manager)


def test_decisions_of_each_kind_of_user(host_manager, acme, acme_viewer, django_user_model):
    admin = make_user(django_user_model, "admin-ann", "host_admin")
    editor = make_user(django_user_model, "acme-editor", "partner_editor", acme)
    sideless = django_user_model.objects.create_user("sideless", password="x")
    decisions = (access.is_host, access.may_manage, access.is_host_admin,
                 access.may_see_imports, access.may_upload)

    def answers(user):
        return [decide(user) for decide in decisions]

    assert answers(admin) == [True, True, True, True, True]
    assert answers(host_manager) == [True, True, False, True, True]
    assert answers(editor) == [False, False, False, True, True]
    assert answers(acme_viewer) == [False, False, False, True, False]
    assert answers(sideless) == [False] * 5
    assert answers(AnonymousUser()) == [False] * 5


def test_a_deactivated_account_may_do_nothing(host_manager):
    host_manager.is_active = False
    assert not access.is_host(host_manager)
    assert not access.may_manage(host_manager)
    assert not access.may_upload(host_manager)
