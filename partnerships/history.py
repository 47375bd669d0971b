"""The program's change history, and the two functions every write of the program goes through.

The services of each concept (`partner_update`, `objective_delete`, …) validate their input,
then save or delete with `change_save` / `change_delete`, which in one transaction

- validate the object with its model's rules (`full_clean`), whatever path the change came by;
- write it;
- record its history: who, when, which object (type, id, label, its agreement and partner) and,
  for each field that changed, its old and new value as the page shows them ("Active", not
  "active"); saving without a change records nothing;
- record an audit event (`program_changed`), unless the caller records one for a whole batch
  (the program file records one `program_loaded` per load);
- tell the pages that the program changed (`partnerships.changes.program_changed`).

A caller that writes many objects for one purpose opens `with change_reason("What-if: …"):`
around the service calls: every change recorded inside carries that reason in its history
and audit event, without the services taking it as an argument.

Both sides read the history of an agreement; only the host edits, so only host users appear in
it, apart from partner users updating their actions. A change made without a user (a command
run without --user) is recorded under a named system actor.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal

from django.db import models, transaction
from django.http import HttpRequest

from .audit import audit_record
from .changes import program_changed
from .models import Agreement, AuditAction, ChangeKind, Partner, ProgramChange, number_text

# The name recorded for changes made by the system rather than by a user.
SYSTEM_ACTOR = "system"

# Never shown in a history: bookkeeping, not content.
SKIPPED_FIELDS = {"id", "created_at", "updated_at"}

# A context variable, not an argument: the services between the caller and the history stay
# as they are, and a task or request in another thread or coroutine never sees this one's.
_reason: ContextVar[str] = ContextVar("change_reason", default="")


@contextmanager
def change_reason(reason: str) -> Iterator[None]:
    """Every change recorded inside the block carries `reason` in its history and audit event."""
    token = _reason.set(reason.strip())
    try:
        yield
    finally:
        _reason.reset(token)


def _display(obj: models.Model, field: models.Field) -> str:
    value = getattr(obj, field.attname)
    if value is None or value == "":
        return ""
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(field, models.ForeignKey):
        related = getattr(obj, field.name)
        return str(related) if related is not None else ""
    if isinstance(field, models.BooleanField):
        return "yes" if value else "no"
    if isinstance(value, float):
        # Every digit: a change in the seventh digit is a change (`:g` would hide it).
        return number_text(value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def history_snapshot(obj: models.Model) -> dict[str, str]:
    """The object's editable fields as displayed, keyed by their label."""
    snapshot = {}
    for field in obj._meta.concrete_fields:
        if field.name in SKIPPED_FIELDS or field.auto_created:
            continue
        label = str(field.verbose_name)
        snapshot[label[:1].upper() + label[1:]] = _display(obj, field)
    return snapshot


def _owners(obj: models.Model) -> tuple[Partner | None, Agreement | None]:
    if isinstance(obj, Partner):
        return obj, None
    if isinstance(obj, Agreement):
        return obj.partner, obj
    agreement = getattr(obj, "agreement", None)
    if isinstance(agreement, Agreement):
        return agreement.partner, agreement
    partner = getattr(obj, "partner", None)
    return (partner if isinstance(partner, Partner) else None), None


def history_record(*, user, obj: models.Model, kind: str,
                   before: dict[str, str] | None = None,
                   fields: dict[str, list[str]] | None = None,
                   actor: str = SYSTEM_ACTOR) -> ProgramChange | None:
    """Record one change of `obj` by `user`.

    `kind` is a ChangeKind. For an update pass `before` (a `history_snapshot` taken before the
    change); the fields that differ are recorded and nothing is recorded when none does. For a
    creation every non-empty field is recorded as new; for a deletion call this before deleting.
    `fields` ({label: [old, new]}) overrides the computed fields, e.g. for a stage move.
    Without an authenticated `user` the change is recorded under `actor`; inside a
    `change_reason` block the change carries its reason.
    """
    if fields is None:
        after = history_snapshot(obj)
        if kind == ChangeKind.DELETED:
            fields = {label: [value, ""] for label, value in after.items() if value}
        elif kind == ChangeKind.CREATED or before is None:
            fields = {label: ["", value] for label, value in after.items() if value}
        else:
            fields = {
                label: [before.get(label, ""), value]
                for label, value in after.items() if before.get(label, "") != value
            }
            if not fields:
                return None
    partner, agreement = _owners(obj)
    authenticated = user is not None and user.is_authenticated
    return ProgramChange.objects.create(
        user=user if authenticated else None,
        username=(user.get_username() if authenticated else actor)[:150],
        kind=kind,
        object_type=str(obj._meta.verbose_name),
        object_id=obj.pk,
        object_label=str(obj)[:200],
        partner=partner,
        agreement=agreement,
        fields=fields,
        reason=_reason.get(),
    )


def _audit(*, change: ProgramChange, user, request: HttpRequest | None, actor: str) -> None:
    authenticated = user is not None and user.is_authenticated
    audit_record(
        action=AuditAction.PROGRAM_CHANGED, request=request,
        user=user if authenticated else None,
        username="" if authenticated else actor,
        partner=change.partner, target=f"{change.object_type}: {change.object_label}",
        detail={"change": change.pk, "kind": change.kind, "fields": sorted(change.fields),
                **({"reason": change.reason} if change.reason else {})},
    )


def change_save(*, user, obj: models.Model, before: dict[str, str] | None = None,
                request: HttpRequest | None = None, audit: bool = True,
                actor: str = SYSTEM_ACTOR, validate: bool = True,
                exclude: list[str] | None = None) -> ProgramChange | None:
    """Validate and save `obj` (created when new), with its history, audit event and page notice.

    For an update pass `before`, a `history_snapshot` taken before the object was changed in
    memory; without it an existing object's change is recorded as if every field were new.
    Returns the recorded change, or None when nothing changed (then nothing is written at all).
    Raises django.core.exceptions.ValidationError, with nothing written, when the model refuses.
    """
    creating = obj._state.adding or obj.pk is None
    if not creating and before is not None and history_snapshot(obj) == before:
        return None  # nothing to write: not even the time of the last change moves
    with transaction.atomic():
        if validate:
            obj.full_clean(exclude=exclude)
        obj.save()
        change = history_record(
            user=user, obj=obj, kind=ChangeKind.CREATED if creating else ChangeKind.UPDATED,
            before=None if creating else (before if before is not None else {}), actor=actor)
        if change is None:
            return None
        if audit:
            _audit(change=change, user=user, request=request, actor=actor)
        program_changed()
    return change


def change_record(*, user, obj: models.Model, kind: str, fields: dict[str, list[str]] | None = None,
                  before: dict[str, str] | None = None, request: HttpRequest | None = None,
                  audit: bool = True, actor: str = SYSTEM_ACTOR) -> ProgramChange | None:
    """Record a change a service wrote itself (a stage move, a bulk update): its history, audit
    event and page notice. Call it inside the service's transaction."""
    change = history_record(user=user, obj=obj, kind=kind, before=before, fields=fields,
                            actor=actor)
    if change is not None:
        if audit:
            _audit(change=change, user=user, request=request, actor=actor)
        program_changed()
    return change


def change_delete(*, user, obj: models.Model, request: HttpRequest | None = None,
                  audit: bool = True, actor: str = SYSTEM_ACTOR) -> ProgramChange:
    """Delete `obj`, with its history (every field, old → empty), audit event and page notice."""
    with transaction.atomic():
        change = history_record(user=user, obj=obj, kind=ChangeKind.DELETED, actor=actor)
        if audit:
            _audit(change=change, user=user, request=request, actor=actor)
        obj.delete()
        program_changed()
    return change


def history_for_agreement(agreement: Agreement):
    """The agreement's history, newest first (its terms, KPIs, objectives, reviews, …)."""
    return ProgramChange.objects.filter(agreement=agreement).select_related("user")


def history_for_partner(partner: Partner):
    """The partner's own history (the partner record and its assessments), newest first."""
    return ProgramChange.objects.filter(partner=partner, agreement__isnull=True)
