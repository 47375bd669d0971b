"""Every model of the program changes only with its history row and an audit event.

The paths that write the program: the pages and the admin (every request of every test is
watched by tests/write_guard.py, so each view test is a check of its path), the program file and
the services (watched here), the API (observations only: their own history, tested with it).
"""

from pathlib import Path

import pytest
from django.apps import apps
from django.urls import reverse

from partnerships.models import AuditEvent, ProgramChange, ProgramSettings, Role
from partnerships.program import program_load
from tests import write_guard
from tests.conftest import make_user

PROGRAMS = Path(__file__).parent / "partnerships" / "programs"


def test_every_model_of_the_partnerships_app_is_either_history_kept_or_recorded_elsewhere():
    models = set(apps.get_app_config("partnerships").get_models())
    assert models == set(write_guard.HISTORY_MODELS) | set(write_guard.OTHER_MODELS)
    assert not set(write_guard.HISTORY_MODELS) & set(write_guard.OTHER_MODELS)


def test_the_guard_fails_a_write_that_skips_the_history(db):
    from partnerships.models import Partner

    with pytest.raises(AssertionError, match="Partner .* saved without a history row"):
        with write_guard.every_write_recorded():
            Partner.objects.create(name="Initech", slug="initech")


def test_the_guard_fails_a_request_that_writes_unrecorded(client, django_user_model, acme):
    from partnerships.models import Partner

    def rename(sender, **kwargs):
        Partner.objects.filter(pk=acme.pk).first().save()

    from django.core.signals import request_started
    request_started.connect(rename, dispatch_uid="test-write-guard-rename")
    try:
        with pytest.raises(AssertionError, match="A request wrote the program unrecorded"):
            client.get(reverse("login"))
    finally:
        request_started.disconnect(dispatch_uid="test-write-guard-rename")


def test_a_program_file_records_every_write_and_one_load_event(host_manager):
    text = (PROGRAMS / "full.yaml").read_text()
    with write_guard.every_write_recorded() as writes:
        program_load(document=text)
    assert writes, "the load wrote nothing"
    assert AuditEvent.objects.filter(action="program_loaded").count() == 1
    written = {model for model, _pk, _what in writes}
    assert written >= {model for model in write_guard.HISTORY_MODELS
                       if model.objects.exists()}


def test_a_second_program_file_changes_a_target_with_its_history(host_manager):
    program_load(document=(PROGRAMS / "full.yaml").read_text())
    changed = (PROGRAMS / "full.yaml").read_text().replace("target: 50000", "target: 150000")
    before = ProgramChange.objects.count()
    with write_guard.every_write_recorded() as writes:
        program_load(document=changed)
    assert len(writes) == 1
    change = ProgramChange.objects.order_by("-id").first()
    assert ProgramChange.objects.count() == before + 1
    assert change.object_type == "agreement KPI"
    assert ["50000", "150000"] in change.fields.values()


def test_the_scoring_settings_in_the_admin_are_recorded(client, django_user_model):
    user = make_user(django_user_model, "root", Role.HOST_ADMIN)
    user.is_staff = user.is_superuser = True
    user.save()
    client.force_login(user)
    ProgramSettings.objects.create(pk=1)
    # Watched by the guard like every request: it fails the request if a write went unrecorded.
    response = client.post(reverse("admin:partnerships_programsettings_change", args=[1]),
                           {"tier_policy": "threshold", "strategic_threshold": "90",
                            "growth_threshold": "70", "hysteresis": "3",
                            "stale_after_days": "30"})
    assert response.status_code == 302
    assert ProgramChange.objects.filter(object_type="program settings").count() == 1
    assert ProgramSettings.objects.get().stale_after_days == 30
