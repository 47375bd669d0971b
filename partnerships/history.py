"""The program's change history: one function every editing page calls after it saves.

    before = history_snapshot(agreement)          # before the form is applied
    ... save ...
    history_record(user=request.user, obj=agreement, kind=ChangeKind.UPDATED, before=before)

A change records who, when, which object (type, id, label, its agreement and partner) and, for
each field that changed, its old and new value as the page shows them ("Active", not "active").
Saving without a change records nothing. Both sides read the history of an agreement; only the
host edits, so only host users appear in it, apart from partner users updating their actions.
"""

from decimal import Decimal

from django.db import models

from .models import Agreement, ChangeKind, Partner, ProgramChange

# Never shown in a history: bookkeeping, not content.
SKIPPED_FIELDS = {"id", "created_at", "updated_at"}


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
        return f"{value:g}"
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
                   fields: dict[str, list[str]] | None = None) -> ProgramChange | None:
    """Record one change of `obj` by `user`.

    `kind` is a ChangeKind. For an update pass `before` (a `history_snapshot` taken before the
    change); the fields that differ are recorded and nothing is recorded when none does. For a
    creation every non-empty field is recorded as new; for a deletion call this before deleting.
    `fields` ({label: [old, new]}) overrides the computed fields, e.g. for a stage move.
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
        username=user.get_username()[:150] if authenticated else "",
        kind=kind,
        object_type=str(obj._meta.verbose_name),
        object_id=obj.pk,
        object_label=str(obj)[:200],
        partner=partner,
        agreement=agreement,
        fields=fields,
    )


def history_for_agreement(agreement: Agreement):
    """The agreement's history, newest first (its terms, KPIs, objectives, reviews, …)."""
    return ProgramChange.objects.filter(agreement=agreement).select_related("user")


def history_for_partner(partner: Partner):
    """The partner's own history (the partner record and its assessments), newest first."""
    return ProgramChange.objects.filter(partner=partner, agreement__isnull=True)
