"""The counter of program changes that pages name in the keys of figures they keep."""

import datetime as dt

import pytest
from django.db import connection, transaction

from partnerships.changes import program_version
from partnerships.models import ActionItem, Review

# Real commits: what happens at commit is the point.
pytestmark = pytest.mark.django_db(transaction=True)


def pending() -> int:
    return len(connection.run_on_commit)


def test_a_change_moves_it_on_at_once_and_once_more_at_commit(acme_agreement):
    before = program_version()
    with transaction.atomic():
        review = Review.objects.create(agreement=acme_agreement, kind="monthly_results",
                                       held_on=dt.date(2025, 3, 1))
        assert program_version() == before + 1  # at once: reads in this transaction
        assert pending() == 1
    assert program_version() == before + 2  # and at commit
    with transaction.atomic():
        review.delete()
        transaction.set_rollback(True)
    assert program_version() == before + 3  # a rolled back change moves it on once only


def test_a_cascade_of_deletes_moves_it_on_at_commit_once(acme_agreement):
    for index in range(30):
        ActionItem.objects.create(agreement=acme_agreement, description=f"Task {index}",
                                  owner_name="Ann", owner_side="partner", raci="responsible",
                                  due_date=dt.date(2025, 3, 1))
    before = program_version()
    with transaction.atomic():
        acme_agreement.delete()  # the agreement and its 30 actions
        assert pending() == 1
        during = program_version()
    assert during == before + 31  # each row at once
    assert program_version() == during + 1  # the commit once
