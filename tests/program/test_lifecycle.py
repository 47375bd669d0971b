"""Stage moves: only the moves of STAGE_TRANSITIONS, each with who, when and why, in one go."""

import datetime as dt

import pytest

from partnerships.lifecycle import StageMoveRefused, agreement_stage_move
from partnerships.models import (
    STAGE_TRANSITIONS,
    ChangeKind,
    ProgramChange,
    Stage,
    StageTransition,
)
from tests.conftest import make_agreement, write_observations

pytestmark = pytest.mark.django_db

ALLOWED = [(a, b) for a, targets in STAGE_TRANSITIONS.items() for b in targets]
REFUSED = [(a, b) for a in Stage.values for b in Stage.values
           if b not in STAGE_TRANSITIONS[a]]


@pytest.mark.parametrize(("from_stage", "to_stage"), ALLOWED)
def test_every_allowed_move_is_made_and_recorded(acme, kpis, host_manager, from_stage,
                                                 to_stage):
    agreement = make_agreement(acme, "ACME-1", kpis, stage=from_stage)
    transition = agreement_stage_move(agreement=agreement, to_stage=to_stage,
                                      user=host_manager, reason="Agreed in the review.")
    agreement.refresh_from_db()
    assert agreement.stage == to_stage
    assert (transition.from_stage, transition.to_stage, transition.by, transition.reason) == (
        from_stage, to_stage, host_manager, "Agreed in the review.")
    assert transition.at is not None
    change = ProgramChange.objects.get()
    assert change.kind == ChangeKind.STAGE
    assert change.agreement == agreement and change.user == host_manager
    assert change.fields["Stage"] == [Stage(from_stage).label, Stage(to_stage).label]
    assert change.fields["Reason"] == ["", "Agreed in the review."]


@pytest.mark.parametrize(("from_stage", "to_stage"), REFUSED)
def test_every_other_move_is_refused_and_writes_nothing(acme, kpis, host_manager, from_stage,
                                                        to_stage):
    agreement = make_agreement(acme, "ACME-1", kpis, stage=from_stage)
    with pytest.raises(StageMoveRefused, match="cannot move from"):
        agreement_stage_move(agreement=agreement, to_stage=to_stage, user=host_manager,
                             reason="Why not.")
    agreement.refresh_from_db()
    assert agreement.stage == from_stage
    assert not StageTransition.objects.exists()
    assert not ProgramChange.objects.exists()


def test_a_move_is_checked_against_the_stage_in_the_database(acme, kpis, host_manager):
    # The page showed "prospect", but someone else has ended the agreement since.
    agreement = make_agreement(acme, "ACME-1", kpis, stage="prospect")
    stale = type(agreement).objects.get(pk=agreement.pk)
    agreement_stage_move(agreement=agreement, to_stage="ended", user=host_manager,
                         reason="Not going ahead.")
    with pytest.raises(StageMoveRefused, match="ended agreement stays ended"):
        agreement_stage_move(agreement=stale, to_stage="pilot", user=host_manager,
                             reason="Try a pilot.")
    assert StageTransition.objects.count() == 1


def test_a_move_needs_a_reason(acme_agreement, host_manager):
    with pytest.raises(StageMoveRefused, match="Say why"):
        agreement_stage_move(agreement=acme_agreement, to_stage="under_review",
                             user=host_manager, reason="   ")
    acme_agreement.refresh_from_db()
    assert acme_agreement.stage == "active"
    assert not StageTransition.objects.exists()


def test_promoting_a_pilot_keeps_the_agreement_and_its_observations(acme, kpis, host_manager):
    pilot = make_agreement(acme, "ACME-PILOT", kpis, stage="pilot")
    write_observations([(pilot, kpis["revenue"], "host", "2025-01-10", 40)])
    agreement_stage_move(agreement=pilot, to_stage="active", user=host_manager,
                         reason="Pilot met its targets.")
    promoted = type(pilot).objects.get(code="ACME-PILOT")
    assert (promoted.pk, promoted.stage) == (pilot.pk, "active")
    assert promoted.observations.count() == 1
    assert promoted.agreement_kpis.count() == 2
    assert type(pilot).objects.count() == 1


@pytest.mark.parametrize(("end", "expected"), [
    (None, dt.date(2026, 3, 1)),
    (dt.date(2027, 1, 1), dt.date(2026, 3, 1)),
    (dt.date(2025, 6, 30), dt.date(2025, 6, 30)),
])
def test_ending_sets_the_end_date_when_empty_or_later(acme, kpis, host_manager, end,
                                                      expected):
    agreement = make_agreement(acme, "ACME-1", kpis, stage="exiting")
    agreement.end_date = end
    agreement.save()
    agreement_stage_move(agreement=agreement, to_stage="ended", user=host_manager,
                         reason="Exit completed.", today=dt.date(2026, 3, 1))
    agreement.refresh_from_db()
    assert agreement.end_date == expected
    change = ProgramChange.objects.get()
    if end != expected:
        assert change.fields["End"] == [end.isoformat() if end else "", expected.isoformat()]
    else:
        assert "End" not in change.fields


@pytest.mark.django_db(transaction=True)
def test_two_managers_moving_at_once_cannot_both_succeed(acme, kpis, host_manager):
    """From pilot, one asks for active and the other for ended; whichever commits first, the
    second is checked against the stage the first left (active ↛ ended, ended ↛ active)."""
    import os
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":  # SQLite locks the whole file: no row locks to test
        if os.environ.get("CI"):
            pytest.fail("CI must run the concurrency tests on PostgreSQL")
        pytest.skip("needs PostgreSQL (set DATABASE_URL=postgres://...)")
    pilot = make_agreement(acme, "ACME-RACE", kpis, stage="pilot")
    barrier = threading.Barrier(2)
    outcomes = []

    def move(to_stage: str) -> None:
        try:
            agreement = type(pilot).objects.get(pk=pilot.pk)
            barrier.wait(timeout=10)
            agreement_stage_move(agreement=agreement, to_stage=to_stage, user=host_manager,
                                 reason=f"To {to_stage}.")
            outcomes.append(("moved", to_stage))
        except StageMoveRefused:
            outcomes.append(("refused", to_stage))
        finally:
            connection.close()

    threads = [threading.Thread(target=move, args=(stage,)) for stage in ("active", "ended")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(kind for kind, _ in outcomes) == ["moved", "refused"]
    moved = next(stage for kind, stage in outcomes if kind == "moved")
    assert type(pilot).objects.get(pk=pilot.pk).stage == moved
    assert StageTransition.objects.count() == 1
    assert ProgramChange.objects.count() == 1
