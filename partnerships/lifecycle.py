"""An agreement's life: the moves of its stage (prospect → pilot → active → … → ended).

A move is one transaction: the agreement row is locked, the move is checked against
`STAGE_TRANSITIONS` from the stage the row has *now* (not the one a page showed), and the
new stage, a `StageTransition` and a `ProgramChange` are written together or not at all.
"""

import datetime as dt

from django.db import transaction
from django.utils import timezone

from .history import SYSTEM_ACTOR, change_record
from .models import STAGE_TRANSITIONS, Agreement, ChangeKind, Stage, StageTransition


class StageMoveRefused(Exception):
    """A stage move that the rules do not allow (or that lacks a reason)."""


def stage_moves_from(stage: str) -> tuple[str, ...]:
    """The stages an agreement in `stage` may move to."""
    return STAGE_TRANSITIONS.get(stage, ())


def stage_move_label(*, from_stage: str, to_stage: str) -> str:
    """How a move reads on a button: promoting a pilot keeps the same agreement."""
    if from_stage == Stage.PILOT and to_stage == Stage.ACTIVE:
        return "Promote to full agreement (active)"
    return f"Move to {Stage(to_stage).label.lower()}"


def agreement_stage_move(*, agreement: Agreement, to_stage: str, user, reason: str,
                         today: dt.date | None = None, request=None, audit: bool = True,
                         actor: str = SYSTEM_ACTOR) -> StageTransition:
    """Move the agreement to `to_stage` if STAGE_TRANSITIONS allows it from its current stage;
    record who, when and why (StageTransition, ProgramChange and the audit event). Moving to
    ended sets the end date to today when it is empty or later. Raises StageMoveRefused and
    writes nothing otherwise."""
    reason = (reason or "").strip()
    if not reason:
        raise StageMoveRefused("Say why the stage changes: the reason is kept in the history.")
    if to_stage not in Stage.values:
        raise StageMoveRefused(f"“{to_stage}” is not a stage.")
    today = today or timezone.localdate()
    with transaction.atomic():
        # Two managers moving the same agreement at once: the second waits here and then
        # checks its move against the stage the first one left.
        locked = Agreement.objects.select_for_update().get(pk=agreement.pk)
        from_stage = locked.stage
        if to_stage not in stage_moves_from(from_stage):
            allowed = ", ".join(Stage(s).label.lower() for s in stage_moves_from(from_stage))
            raise StageMoveRefused(
                f"An agreement cannot move from {Stage(from_stage).label.lower()} to "
                f"{Stage(to_stage).label.lower()}. "
                + (f"From {Stage(from_stage).label.lower()} it may move to {allowed}."
                   if allowed else "An ended agreement stays ended.")
            )
        fields = {"Stage": [Stage(from_stage).label, Stage(to_stage).label]}
        update = ["stage", "updated_at"]
        locked.stage = to_stage
        if to_stage == Stage.ENDED and (locked.end_date is None or locked.end_date > today):
            old_end = locked.end_date.isoformat() if locked.end_date else ""
            # The end may not precede the start (a constraint): an agreement ended before it
            # began ends on its start date.
            locked.end_date = max(today, locked.start_date)
            fields["End"] = [old_end, locked.end_date.isoformat()]
            update.append("end_date")
        locked.save(update_fields=update)
        transition = StageTransition.objects.create(
            agreement=locked, from_stage=from_stage, to_stage=to_stage,
            by=user if user is not None and user.is_authenticated else None, reason=reason,
        )
        fields["Reason"] = ["", reason]
        change_record(user=user, obj=locked, kind=ChangeKind.STAGE, fields=fields,
                      request=request, audit=audit, actor=actor)
    agreement.stage, agreement.end_date = locked.stage, locked.end_date
    return transition
