"""The change history records who changed which field of what, and nothing for no change."""

import pytest

from partnerships.history import history_for_agreement, history_record, history_snapshot
from partnerships.models import ChangeKind, ProgramChange

pytestmark = pytest.mark.django_db


def test_an_update_records_the_changed_fields_as_displayed(acme_agreement, host_manager):
    before = history_snapshot(acme_agreement)
    acme_agreement.stage = "under_review"
    acme_agreement.exit_criteria = "Two quarters below 50."
    acme_agreement.save()
    change = history_record(user=host_manager, obj=acme_agreement, kind=ChangeKind.UPDATED,
                            before=before)
    assert change.fields == {
        "Stage": ["Active", "Under review"],
        "Exit criteria": ["", "Two quarters below 50."],
    }
    assert (change.username, change.agreement, change.partner) == (
        "manager", acme_agreement, acme_agreement.partner)
    assert list(history_for_agreement(acme_agreement)) == [change]


def test_saving_without_a_change_records_nothing(acme_agreement, host_manager):
    before = history_snapshot(acme_agreement)
    acme_agreement.save()
    assert history_record(user=host_manager, obj=acme_agreement, kind=ChangeKind.UPDATED,
                          before=before) is None
    assert not ProgramChange.objects.exists()


def test_a_creation_records_every_filled_field(acme, host_manager):
    change = history_record(user=host_manager, obj=acme, kind=ChangeKind.CREATED)
    assert change.fields["Name"] == ["", "Acme Corp"]
    assert change.partner == acme and change.agreement is None
