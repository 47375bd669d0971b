"""The services that change the program's structure: partners and their assessments, the KPI
library and the standard KPI sets, agreements and their KPIs, and the scoring settings.

Every one is keyword-only and takes the acting `user`, the `request` when there is one (its
audit event keeps the address) and the field values as keywords. It checks the rules a manager
reads as sentences, then writes with `change_save` / `change_delete` (partnerships/history.py),
which validate with the model's own rules and record, in one transaction, the change history,
a `program_changed` audit event and the page notice. A refused input raises
django.core.exceptions.ValidationError (by field where it has one) and writes nothing.

Creating returns the new object; updating returns the recorded change, or None when nothing
changed (then nothing is written at all); deleting returns the recorded change.
"""

import math

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, transaction
from django.db.models.functions import Floor
from django.http import HttpRequest

from .history import SKIPPED_FIELDS, change_delete, change_save, history_snapshot
from .models import (
    CATEGORY_WEIGHT_FIELDS,
    Agreement,
    AgreementKPI,
    AgreementType,
    KPIDefinition,
    KPITemplateItem,
    MetricObservation,
    Partner,
    PartnerAssessment,
    ProgramChange,
    ProgramSettings,
)
from .months import last_closed_month, month_after, month_first_day

WEIGHT_FIELDS = tuple(CATEGORY_WEIGHT_FIELDS.values())

PARTNER_FIELDS = ("name", "slug", "website", "industry", "status")
ASSESSMENT_FIELDS = tuple(
    field.name for field in PartnerAssessment._meta.concrete_fields
    if field.name not in {*SKIPPED_FIELDS, "partner", "assessed_by"})
KPI_DEFINITION_FIELDS = ("code", "name", "unit", "value_type", "minimum", "maximum", "category",
                         "aggregation", "source", "description", "tolerance_kind", "tolerance")
AGREEMENT_FIELDS = tuple(
    field.name for field in Agreement._meta.concrete_fields if field.name not in SKIPPED_FIELDS)
# Fixed once the agreement exists: scores, imports and the history are tied to them; the stage
# changes by a recorded move (partnerships.lifecycle.agreement_stage_move).
AGREEMENT_FIXED_FIELDS = ("partner", "code", "stage")
TARGET_FIELDS = ("target", "floor", "weight")
TEMPLATE_ITEM_FIELDS = ("agreement_type", "kpi", *TARGET_FIELDS)
SETTINGS_FIELDS = ("tier_policy", "strategic_threshold", "growth_threshold", "hysteresis",
                   "stale_after_days")


# ---- The write path shared by every service ----------------------------------------------


def _assign(obj: models.Model, fields: dict, editable: tuple[str, ...]) -> None:
    unknown = sorted(set(fields) - set(editable))
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no editable field {', '.join(unknown)}.")
    for name, value in fields.items():
        setattr(obj, name, value)


def _values(obj: models.Model) -> dict:
    return {field.attname: getattr(obj, field.attname) for field in obj._meta.concrete_fields
            if field.name not in SKIPPED_FIELDS}


def _refuse(problems: dict[str, str]) -> None:
    if problems:
        raise ValidationError(problems)


def _locked(obj: models.Model) -> models.Model:
    return type(obj)._default_manager.select_for_update().get(pk=obj.pk)


def _update(obj: models.Model, *, user, request: HttpRequest | None, fields: dict,
            editable: tuple[str, ...], check=None, stored: models.Model | None = None
            ) -> ProgramChange | None:
    """Give the object's row the `fields` and save it when that changes it, once
    `check(row, old_values)` found nothing wrong; `obj` then holds what was saved."""
    with transaction.atomic():
        # Two managers saving the same object: the second changes what the first wrote, and
        # only the fields it was given.
        row = stored if stored is not None else _locked(obj)
        before, old_values = history_snapshot(row), _values(row)
        _assign(row, fields, editable)
        if _values(row) == old_values:
            return None
        if check is not None:
            check(row, old_values)
        change = change_save(user=user, obj=row, before=before, request=request)
    for field in row._meta.concrete_fields:
        setattr(obj, field.attname, getattr(row, field.attname))
    return change


# ---- Partners and their assessments ------------------------------------------------------


def partner_create(*, user, request: HttpRequest | None = None, **fields) -> Partner:
    """Create a partner (name, slug, website, industry, status)."""
    partner = Partner()
    _assign(partner, fields, PARTNER_FIELDS)
    change_save(user=user, obj=partner, request=request)
    return partner


def partner_update(*, partner: Partner, user, request: HttpRequest | None = None,
                   **fields) -> ProgramChange | None:
    """Change a partner's name, slug, website, industry or status."""
    return _update(partner, user=user, request=request, fields=fields, editable=PARTNER_FIELDS,
                   check=_check_partner)


def _check_partner(partner: Partner, old_values: dict) -> None:
    # A closed month's exports name the partner by its slug, and they never change.
    last_closed = last_closed_month()
    if partner.slug != old_values["slug"] and last_closed and partner.agreements.filter(
            start_date__lt=month_first_day(month_after(last_closed))).exists():
        raise ValidationError({"slug": "The slug names this partner in the exports of closed "
                                       "months, which never change: it stays as it is."})


def assessment_create(*, partner: Partner, user, request: HttpRequest | None = None,
                      **fields) -> PartnerAssessment:
    """Record an assessment of the partner by `user` (fit scores, alignment, horizons)."""
    assessment = PartnerAssessment(
        partner=partner, assessed_by=user if user is not None and user.is_authenticated else None)
    _assign(assessment, fields, ASSESSMENT_FIELDS)
    change_save(user=user, obj=assessment, request=request)
    return assessment


# ---- The KPI library -----------------------------------------------------------------------


def kpi_definition_create(*, user, request: HttpRequest | None = None,
                          **fields) -> KPIDefinition:
    """Add a KPI definition to the program's library."""
    kpi = KPIDefinition()
    _assign(kpi, fields, KPI_DEFINITION_FIELDS)
    change_save(user=user, obj=kpi, request=request)
    return kpi


def kpi_definition_update(*, kpi: KPIDefinition, user, request: HttpRequest | None = None,
                          **fields) -> ProgramChange | None:
    """Change a KPI definition; its observations stay and are scored the new way next run."""
    return _update(kpi, user=user, request=request, fields=fields,
                   editable=KPI_DEFINITION_FIELDS)


def kpi_definition_deletion_refusal(*, kpi: KPIDefinition) -> str:
    """Why the KPI cannot leave the library (agreements use it, observations of it are
    recorded), or "" when it can."""
    agreements = list(AgreementKPI.objects.filter(kpi=kpi).order_by("agreement__code")
                      .values_list("agreement__code", flat=True)[:6])
    observations = MetricObservation.objects.filter(kpi=kpi).count()
    reasons = []
    if agreements:
        shown = ", ".join(agreements[:5]) + (" and more" if len(agreements) > 5 else "")
        reasons.append(f"agreements use it ({shown}): remove it from them first")
    if observations:
        reasons.append(f"{observations} observation{'s' if observations != 1 else ''} "
                       "of it are recorded and would lose their meaning")
    if not reasons:
        return ""
    return f"{kpi.name} ({kpi.code}) cannot be deleted: {'; '.join(reasons)}."


def kpi_definition_delete(*, kpi: KPIDefinition, user,
                          request: HttpRequest | None = None) -> ProgramChange:
    """Delete a KPI definition that no agreement uses and nothing of is recorded (it also
    leaves the standard KPI sets)."""
    with transaction.atomic():
        _locked(kpi)
        if refusal := kpi_definition_deletion_refusal(kpi=kpi):
            raise ValidationError(refusal)
        return change_delete(user=user, obj=kpi, request=request)


def kpi_observations_outside(*, kpi: KPIDefinition) -> int:
    """Recorded observations of the KPI that its allowed values would refuse today."""
    outside = models.Q()
    if kpi.minimum is not None:
        outside |= models.Q(value__lt=kpi.minimum)
    if kpi.maximum is not None:
        outside |= models.Q(value__gt=kpi.maximum)
    if kpi.value_type == KPIDefinition.ValueType.COUNT:
        outside |= models.Q(value__lt=0) | ~models.Q(value=Floor("value"))
    if not outside:
        return 0
    return MetricObservation.objects.filter(kpi=kpi).filter(outside).count()


# ---- Target, floor and weight (agreement KPIs and template items) ------------------------


def target_floor_weight_problems(*, target: float | None, floor: float | None,
                                 weight: float | None) -> dict[str, str]:
    """What is wrong with a KPI's target, floor and weight, by field name."""
    problems = {}
    for name, value in (("target", target), ("floor", floor), ("weight", weight)):
        if value is not None and not math.isfinite(value):
            problems[name] = "Enter a finite number."
    if target is not None and floor is not None and target == floor:
        problems.setdefault("floor", "The floor must differ from the target: a floor above the "
                                     "target means lower is better, below it higher is better.")
    if weight is not None and weight <= 0:
        problems.setdefault("weight", "The weight must be greater than 0.")
    return problems


def _check_targets(obj: models.Model, old_values: dict | None = None) -> None:
    _refuse(target_floor_weight_problems(target=obj.target, floor=obj.floor, weight=obj.weight))


# ---- The KPIs of an agreement --------------------------------------------------------------


def agreement_kpi_duplicate_problem(*, agreement: Agreement, kpi: KPIDefinition) -> str:
    """"" unless the KPI is already on the agreement."""
    if AgreementKPI.objects.filter(agreement=agreement, kpi=kpi).exists():
        return f"{kpi.name} is already on this agreement: edit its row instead."
    return ""


def agreement_kpi_add(*, agreement: Agreement, user, request: HttpRequest | None = None,
                      **fields) -> AgreementKPI:
    """Apply a KPI of the library to the agreement with its target, floor and weight."""
    row = AgreementKPI(agreement=agreement)
    _assign(row, fields, ("kpi", *TARGET_FIELDS))
    with transaction.atomic():
        if row.kpi_id is not None and (
                problem := agreement_kpi_duplicate_problem(agreement=agreement, kpi=row.kpi)):
            raise ValidationError({"kpi": problem})
        _check_targets(row)
        change_save(user=user, obj=row, request=request)
    return row


def agreement_kpi_update(*, agreement_kpi: AgreementKPI, user,
                         request: HttpRequest | None = None, **fields) -> ProgramChange | None:
    """Change the target, floor or weight of one KPI of an agreement."""
    return _update(agreement_kpi, user=user, request=request, fields=fields,
                   editable=TARGET_FIELDS, check=_check_targets)


def agreement_kpi_removal_refusal(*, agreement_kpi: AgreementKPI) -> str:
    """Why the KPI must stay on its agreement (an objective measures progress with it), or ""."""
    objectives = list(agreement_kpi.agreement.objectives.filter(kpi=agreement_kpi.kpi_id)
                      .values_list("success_metric", flat=True)[:1])
    if not objectives:
        return ""
    return (f"{agreement_kpi.kpi.name} stays: the objective “{objectives[0]}” measures its "
            "progress with it. Unlink the objective first.")


def agreement_kpi_remove(*, agreement_kpi: AgreementKPI, user,
                         request: HttpRequest | None = None) -> ProgramChange:
    """Remove a KPI from its agreement; its recorded observations are kept."""
    with transaction.atomic():
        _locked(agreement_kpi)
        if refusal := agreement_kpi_removal_refusal(agreement_kpi=agreement_kpi):
            raise ValidationError(refusal)
        return change_delete(user=user, obj=agreement_kpi, request=request)


# ---- The standard KPI set of each agreement type ---------------------------------------------


def kpi_template_item_duplicate_problem(*, agreement_type: str, kpi: KPIDefinition,
                                        item_id: int | None = None) -> str:
    """"" unless the KPI is already in the standard set of the type (as another item)."""
    clash = KPITemplateItem.objects.filter(agreement_type=agreement_type, kpi=kpi)
    if item_id is not None:
        clash = clash.exclude(pk=item_id)
    if not clash.exists():
        return ""
    return f"{kpi.name} is already in the {AgreementType(agreement_type).label} set."


def _check_template_item(item: KPITemplateItem, old_values: dict | None = None) -> None:
    problems = target_floor_weight_problems(target=item.target, floor=item.floor,
                                            weight=item.weight)
    if item.kpi_id is not None and item.agreement_type in AgreementType.values and (
            problem := kpi_template_item_duplicate_problem(
                agreement_type=item.agreement_type, kpi=item.kpi, item_id=item.pk)):
        problems.setdefault("kpi", problem)
    _refuse(problems)


def kpi_template_item_create(*, user, request: HttpRequest | None = None,
                             **fields) -> KPITemplateItem:
    """Add a KPI (with target, floor and weight) to the standard set of an agreement type."""
    item = KPITemplateItem()
    _assign(item, fields, TEMPLATE_ITEM_FIELDS)
    with transaction.atomic():
        _check_template_item(item)
        change_save(user=user, obj=item, request=request)
    return item


def kpi_template_item_update(*, item: KPITemplateItem, user,
                             request: HttpRequest | None = None,
                             **fields) -> ProgramChange | None:
    """Change an item of a standard KPI set; agreements that copied it keep their values."""
    return _update(item, user=user, request=request, fields=fields,
                   editable=TEMPLATE_ITEM_FIELDS, check=_check_template_item)


def kpi_template_item_remove(*, item: KPITemplateItem, user,
                             request: HttpRequest | None = None) -> ProgramChange:
    """Remove a KPI from a standard set; agreements that have it keep it."""
    return change_delete(user=user, obj=item, request=request)


# ---- Agreements ----------------------------------------------------------------------------


def weights_sum_message(total: int) -> str:
    """What to say about the sum of the four category weights."""
    if total == 100:
        return "The weights add up to 100."
    if total < 100:
        return f"The weights add up to {total}: {100 - total} short of 100."
    return f"The weights add up to {total}: {total - 100} over 100."


def agreement_problems(*, start_date, end_date, weights) -> dict[str, str]:
    """What is wrong with an agreement's dates and its four category weights (they must add up
    to 100), by field name ("__all__" for the weights together)."""
    problems = {}
    if start_date and end_date and end_date < start_date:
        problems["end_date"] = "The end date is before the start date."
    if all(weight is not None for weight in weights) and sum(weights) != 100:
        problems[NON_FIELD_ERRORS] = (weights_sum_message(sum(weights))
                                      + " Change them so that they add up to exactly 100.")
    return problems


def _check_agreement(agreement: Agreement, old_values: dict | None = None) -> None:
    problems = agreement_problems(
        start_date=agreement.start_date, end_date=agreement.end_date,
        weights=[getattr(agreement, name) for name in WEIGHT_FIELDS])
    if old_values is not None:
        for name in AGREEMENT_FIXED_FIELDS:
            field = Agreement._meta.get_field(name)
            if getattr(agreement, field.attname) != old_values[field.attname]:
                problems[name] = ("The stage changes by a stage move, with a reason."
                                  if name == "stage" else "Fixed once the agreement exists.")
    _refuse(problems)


def agreement_create(*, user, request: HttpRequest | None = None, **fields) -> Agreement:
    """Create an agreement (its partner, code, type, stage, dates, owner, weights and terms)."""
    agreement = Agreement()
    _assign(agreement, fields, AGREEMENT_FIELDS)
    with transaction.atomic():
        _check_agreement(agreement)
        change_save(user=user, obj=agreement, request=request)
    return agreement


def agreement_update(*, agreement: Agreement, user, request: HttpRequest | None = None,
                     **fields) -> ProgramChange | None:
    """Change an agreement's basics, weights or terms; never its partner, code or stage."""
    return _update(agreement, user=user, request=request, fields=fields,
                   editable=AGREEMENT_FIELDS, check=_check_agreement)


# ---- The scoring settings ------------------------------------------------------------------


def _check_settings(settings: ProgramSettings, old_values: dict | None = None) -> None:
    problems = {}
    for name in ("strategic_threshold", "growth_threshold"):
        value = getattr(settings, name)
        if isinstance(value, int | float) and not math.isfinite(value):
            problems[name] = "Enter a finite number."
    if not problems and settings.growth_threshold > settings.strategic_threshold:
        problems["growth_threshold"] = ("The growth threshold is above the strategic one: "
                                        "a growth tier needs the lower score.")
    _refuse(problems)


def program_settings_update(*, user, request: HttpRequest | None = None,
                            **fields) -> ProgramChange | None:
    """Change the program settings (tier policy, thresholds, hysteresis, the days before data is
    stale), the one row there is."""
    with transaction.atomic():
        # No row yet: the defaults are in force, so values equal to them change nothing.
        row = (ProgramSettings.objects.select_for_update().filter(pk=1).first()
               or ProgramSettings())
        return _update(row, stored=row, user=user, request=request, fields=fields,
                       editable=SETTINGS_FIELDS, check=_check_settings)
