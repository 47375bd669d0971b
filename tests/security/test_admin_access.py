"""The Django admin answers host staff only (is_staff and a host membership), behind the second
factor when it is required. Anyone else signed in gets a 404; anonymous visitors are sent to the
one log-in page, which is throttled."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from partnerships.models import Role
from tests.conftest import make_user

from .conftest import confirmed_device, totp_code

pytestmark = pytest.mark.django_db

ADMIN = reverse("admin:index")


def staff(user):
    user.is_staff = True
    user.save()
    return user


def test_anonymous_visitor_is_sent_to_the_site_log_in(client):
    response = client.get(ADMIN, follow=True)

    assert response.redirect_chain[-1][0] == reverse("login") + "?next=" + ADMIN
    assert response.status_code == 200


def test_admin_log_in_page_is_the_site_log_in(client):
    response = client.get(reverse("admin:login") + "?next=/admin/partnerships/")

    assert response.status_code == 302
    assert response.url == reverse("login") + "?next=/admin/partnerships/"


def test_host_staff_reach_the_admin(client, host_manager, django_user_model):
    client.force_login(staff(host_manager))
    assert client.get(ADMIN).status_code == 200

    host_admin = make_user(django_user_model, "host-admin", Role.HOST_ADMIN)
    host_admin.is_staff = host_admin.is_superuser = True
    host_admin.save()
    client.force_login(host_admin)
    assert client.get(reverse("admin:partnerships_auditevent_changelist")).status_code == 200


def test_host_manager_without_staff_flag_gets_not_found(client, host_manager):
    client.force_login(host_manager)

    assert client.get(ADMIN).status_code == 404
    assert client.get(reverse("admin:partnerships_partner_changelist")).status_code == 404


def test_partner_user_with_staff_flag_gets_not_found(client, acme_viewer):
    client.force_login(staff(acme_viewer))

    assert client.get(ADMIN).status_code == 404
    assert client.get(reverse("admin:partnerships_membership_changelist")).status_code == 404


def test_superuser_without_a_host_membership_gets_not_found(client, db):
    root = get_user_model().objects.create_superuser("root", password="pw-root-long-enough")
    client.force_login(root)

    assert client.get(ADMIN).status_code == 404


def test_admin_link_shows_for_host_staff_only(client, acme_viewer, django_user_model):
    client.force_login(staff(acme_viewer))
    assert f'href="{ADMIN}"' not in client.get(reverse("home")).content.decode()

    host_admin = staff(make_user(django_user_model, "host-admin", Role.HOST_ADMIN))
    client.force_login(host_admin)
    assert f'href="{ADMIN}"' in client.get(reverse("home")).content.decode()


def test_admin_needs_the_second_factor_when_it_is_required(client, host_manager,
                                                           two_factor_on):
    client.force_login(staff(host_manager))

    response = client.get(ADMIN)
    assert response.status_code == 302
    assert response.url == reverse("two_factor_setup") + "?next=%2Fadmin%2F"

    device = confirmed_device(host_manager)
    assert client.get(ADMIN).url.startswith(reverse("two_factor_verify"))
    client.post(reverse("two_factor_verify"), {"token": totp_code(device.bin_key)})
    assert client.get(ADMIN).status_code == 200


def test_host_admins_manage_totp_devices_in_the_admin(client, django_user_model, acme_viewer):
    confirmed_device(acme_viewer)
    host_admin = make_user(django_user_model, "host-admin", Role.HOST_ADMIN)
    host_admin.is_staff = host_admin.is_superuser = True
    host_admin.save()
    client.force_login(host_admin)

    response = client.get(reverse("admin:otp_totp_totpdevice_changelist"))

    assert response.status_code == 200
    assert "acme-viewer" in response.content.decode()


def superuser_of_host(django_user_model, username="host-admin"):
    user = make_user(django_user_model, username, Role.HOST_ADMIN)
    user.is_staff = user.is_superuser = True
    user.save()
    return user


def test_scoring_settings_saved_in_the_admin_keep_their_history_and_audit(
        client, django_user_model):
    from partnerships.models import AuditEvent, ProgramChange, ProgramSettings

    host_admin = superuser_of_host(django_user_model)
    client.force_login(host_admin)
    ProgramSettings.objects.create(pk=1)
    url = reverse("admin:partnerships_programsettings_change", args=[1])
    response = client.post(url, {"tier_policy": "threshold", "strategic_threshold": "85",
                                 "growth_threshold": "65", "hysteresis": "2",
                                 "stale_after_days": "45"},
                           REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 302
    assert ProgramSettings.objects.get().growth_threshold == 65
    change = ProgramChange.objects.get()
    assert change.user == host_admin and change.object_type == "program settings"
    assert change.fields["Tier policy"][1].startswith("Threshold")
    assert change.fields["Growth threshold"] == ["70", "65"]
    event = AuditEvent.objects.get(action="program_changed")
    assert (event.user, event.ip_address) == (host_admin, "198.51.100.7")
    assert event.detail["change"] == change.pk
    # Django's own record of the admin action is audited as well.
    assert AuditEvent.objects.filter(action="admin_change", detail__action="changed").exists()


def test_scoring_settings_the_model_refuses_are_not_saved_from_the_admin(
        client, django_user_model):
    from partnerships.models import ProgramChange, ProgramSettings

    client.force_login(superuser_of_host(django_user_model))
    ProgramSettings.objects.create(pk=1)
    response = client.post(
        reverse("admin:partnerships_programsettings_change", args=[1]),
        {"tier_policy": "threshold", "strategic_threshold": "60", "growth_threshold": "80",
         "hysteresis": "2"})
    assert response.status_code == 200  # the form again, with the error
    assert ProgramSettings.objects.get().growth_threshold == 70
    assert not ProgramChange.objects.exists()


PROGRAM_MODELS_READ_ONLY = [
    "partner", "kpidefinition", "agreement", "agreementkpi", "objective", "incentiveplan",
    "importbatch", "membership", "apitoken", "programchange", "stagetransition", "review",
    "actionitem", "partnerassessment", "kpitemplateitem", "auditevent",
]


@pytest.mark.parametrize("model", PROGRAM_MODELS_READ_ONLY)
def test_the_program_is_read_only_in_the_admin(model, client, django_user_model):
    client.force_login(superuser_of_host(django_user_model))
    assert client.get(reverse(f"admin:partnerships_{model}_changelist")).status_code == 200
    assert client.get(reverse(f"admin:partnerships_{model}_add")).status_code == 403


def test_a_partner_cannot_be_changed_or_deleted_in_the_admin(client, django_user_model, acme):
    from partnerships.models import Partner, ProgramChange

    client.force_login(superuser_of_host(django_user_model))
    url = reverse("admin:partnerships_partner_change", args=[acme.pk])
    page = client.get(url)
    assert page.status_code == 200 and 'name="_save"' not in page.text
    refused = client.post(url, {"slug": "acme", "name": "Acme Renamed", "website": "",
                                "industry": "", "status": "active"})
    assert refused.status_code == 403
    deleted = client.post(reverse("admin:partnerships_partner_delete", args=[acme.pk]),
                          {"post": "yes"})
    assert deleted.status_code == 403
    assert Partner.objects.get(pk=acme.pk).name == "Acme Corp"
    assert not ProgramChange.objects.exists()


@pytest.mark.parametrize("model", ["scoringrun", "scorecard", "kpiscore"])
def test_scoring_runs_and_results_are_read_only_in_the_admin(model, client, django_user_model):
    client.force_login(superuser_of_host(django_user_model))
    assert client.get(reverse(f"admin:scoring_{model}_changelist")).status_code == 200
    assert client.get(reverse(f"admin:scoring_{model}_add")).status_code == 403


def test_a_published_scorecard_cannot_be_deleted_in_the_admin(
        client, django_user_model, acme_agreement, kpis):
    from scoring.models import Scorecard
    from scoring.services import scoring_run_inline
    from tests.conftest import write_observations

    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-01-05", 10)])
    scoring_run_inline()
    card = Scorecard.objects.first()
    client.force_login(superuser_of_host(django_user_model))
    response = client.post(reverse("admin:scoring_scorecard_delete", args=[card.pk]),
                           {"post": "yes"})
    assert response.status_code == 403
    assert Scorecard.objects.filter(pk=card.pk).exists()


def test_observations_their_history_and_the_audit_log_are_read_only_in_the_admin(
        client, django_user_model, acme_agreement, kpis):
    from partnerships.models import MetricObservation, ObservationChange
    from tests.conftest import write_observations

    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-01-05", 10)])
    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-01-05", 12)])
    observation = MetricObservation.objects.get()
    change = ObservationChange.objects.get()
    superuser = make_user(django_user_model, "root", Role.HOST_ADMIN)
    superuser.is_staff = superuser.is_superuser = True
    superuser.save()
    client.force_login(superuser)

    for model, row in (("metricobservation", observation), ("observationchange", change)):
        assert client.get(reverse(f"admin:partnerships_{model}_changelist"),
                          {"q": "ACME"}).status_code == 200
        page = client.get(reverse(f"admin:partnerships_{model}_change", args=[row.pk]))
        assert page.status_code == 200 and 'name="_save"' not in page.text
        assert client.get(reverse(f"admin:partnerships_{model}_add")).status_code == 403
        assert client.post(reverse(f"admin:partnerships_{model}_delete", args=[row.pk]),
                           {"post": "yes"}).status_code == 403
    # A superuser's edit of a value is refused, so an absurd value cannot get in this way.
    refused = client.post(reverse("admin:partnerships_metricobservation_change",
                                  args=[observation.pk]),
                          {"agreement": acme_agreement.pk, "kpi": kpis["revenue"].pk,
                           "side": "host", "date": "2025-01-05", "value": "1.7e308"})
    assert refused.status_code == 403
    observation.refresh_from_db()
    assert observation.value == 12
    assert ObservationChange.objects.count() == 1


def test_users_are_read_only_in_the_admin_and_groups_are_not_there(
        client, django_user_model, acme_viewer):
    from django.urls import NoReverseMatch

    client.force_login(superuser_of_host(django_user_model))
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 200
    assert client.get(reverse("admin:auth_user_add")).status_code == 403
    url = reverse("admin:auth_user_change", args=[acme_viewer.pk])
    assert client.post(url, {"username": "acme-viewer", "is_active": ""}).status_code == 403
    acme_viewer.refresh_from_db()
    assert acme_viewer.is_active
    with pytest.raises(NoReverseMatch):
        reverse("admin:auth_group_changelist")
