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


def test_history_names_a_review_and_an_incentive_plan_by_the_agreements_code(
        acme_agreement, host_manager):
    import datetime as dt

    from partnerships.models import IncentivePlan, Review

    review = Review.objects.create(agreement=acme_agreement, kind="quarterly_strategy",
                                   held_on=dt.date(2026, 12, 4))
    plan = IncentivePlan.objects.create(agreement=acme_agreement, base_amount=1000)
    labels = [history_record(user=host_manager, obj=obj, kind=ChangeKind.CREATED).object_label
              for obj in (review, plan)]

    assert labels[0] == "Quarterly strategy review of ACME-CM-2025 on 2026-12-04"
    assert labels[1] == "Incentive plan of ACME-CM-2025"
    assert all(f" {acme_agreement.pk} " not in f" {label} " for label in labels)
