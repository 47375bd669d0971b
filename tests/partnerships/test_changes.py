"""The counter of program changes that pages name in the keys of figures they keep: the write
services move it explicitly (no signal), at once and again at commit."""

import datetime as dt

import pytest
from django.db import connection, transaction

from partnerships import governance_services
from partnerships.changes import program_version
from partnerships.lifecycle import agreement_stage_move
from partnerships.models import ActionItem, Review

# Real commits: what happens at commit is the point.
pytestmark = pytest.mark.django_db(transaction=True)


def pending() -> int:
    return len(connection.run_on_commit)


def action_fields(index: int = 0) -> dict:
    return {"description": f"Task {index}", "owner_name": "Ann", "owner_side": "partner",
            "raci": "responsible", "due_date": dt.date(2025, 3, 1)}


def test_a_service_change_moves_it_on_at_once_and_once_more_at_commit(acme_agreement,
                                                                       host_manager):
    before = program_version()
    with transaction.atomic():
        review = governance_services.review_create(
            agreement=acme_agreement, user=host_manager, kind="monthly_results",
            held_on=dt.date(2025, 3, 1))
        assert program_version() == before + 1  # at once: reads in this transaction
        assert pending() == 1
    assert program_version() == before + 2  # and at commit
    with transaction.atomic():
        governance_services.review_delete(review=review, user=host_manager)
        transaction.set_rollback(True)
    assert program_version() == before + 3  # a rolled back change moves it on once only


def test_many_changes_in_one_transaction_move_it_on_at_commit_once(acme_agreement,
                                                                   host_manager):
    before = program_version()
    with transaction.atomic():
        for index in range(30):
            governance_services.action_item_create(agreement=acme_agreement,
                                                   user=host_manager, **action_fields(index))
        assert pending() == 1
        during = program_version()
    assert during == before + 30  # each change at once
    assert program_version() == during + 1  # the commit once


def test_a_stage_move_moves_it_on(acme_agreement, host_manager):
    before = program_version()
    agreement_stage_move(agreement=acme_agreement, to_stage="under_review", user=host_manager,
                         reason="Quarterly numbers missed")
    assert program_version() == before + 2


def test_a_bare_orm_write_does_not_move_it(acme_agreement):
    before = program_version()
    Review.objects.create(agreement=acme_agreement, kind="monthly_results",
                          held_on=dt.date(2025, 3, 1))
    ActionItem.objects.create(agreement=acme_agreement, **action_fields())
    acme_agreement.save()
    acme_agreement.delete()
    assert program_version() == before
