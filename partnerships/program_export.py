"""The whole program as a program file (docs/program-file.md), the text `program_load` reads.

Keys come in a fixed order and lists are sorted by their keys (partners by slug, KPIs and
agreements by code in code-point order, objectives by their content), so the same program
always gives the same bytes: exporting, loading into an empty program and exporting again
gives an identical file, and loading an export into the program it came from writes nothing.
"""

import datetime as dt
from decimal import Decimal
from typing import Any

import yaml

from .models import (
    CATEGORY_WEIGHT_FIELDS,
    DEFAULT_TOLERANCE_PERCENT,
    STALE_AFTER_DAYS_DEFAULT,
    Agreement,
    IncentivePlan,
    KPIDefinition,
    KPITemplateItem,
    Objective,
    Partner,
    ProgramSettings,
    ToleranceKind,
)
from .program import (
    MULTIPLIER_DEFAULTS,
    TERM_FIELDS,
    _ProgramYamlLoader,
)


class _Flow(dict):
    """A short mapping written on one line: {kpi: revenue, target: 50000, floor: 0, weight: 2}."""


class _ProgramYamlDumper(yaml.SafeDumper):
    """Quotes text exactly where the program file's reader would read something else, and
    indents lists under their key as docs/program-file.md writes them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


# The reader takes 1e5 for a number where YAML 1.1 reads text: such text must be quoted.
_ProgramYamlDumper.yaml_implicit_resolvers = {
    first: list(resolvers)
    for first, resolvers in _ProgramYamlLoader.yaml_implicit_resolvers.items()
}
for _first in "-+0123456789":
    _ProgramYamlDumper.yaml_implicit_resolvers.setdefault(_first, [])
    for _tag, _regexp in yaml.SafeLoader.yaml_implicit_resolvers.get(_first, []):
        if _tag == "tag:yaml.org,2002:timestamp":
            # Quoted anyway, so that a text such as a title "2025-01-01" stays text for YAML
            # readers other than ours.
            _ProgramYamlDumper.yaml_implicit_resolvers[_first].append((_tag, _regexp))


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    # Text of several lines (contacts, terms) reads best as a block.
    style = "|" if "\n" in text else None
    # str(): a choice's default on a model is its TextChoices member, written as its value.
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(text), style=style)


def _represent_flow(dumper: yaml.SafeDumper, mapping: _Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", mapping.items(), flow_style=True)


_ProgramYamlDumper.add_representer(str, _represent_text)
_ProgramYamlDumper.add_multi_representer(str, _represent_text)  # TextChoices members
_ProgramYamlDumper.add_representer(_Flow, _represent_flow)


def _number(value: float | int | Decimal) -> float | int:
    """50000 rather than 50000.0; a decimal as the shortest number the reader takes back."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _optional(**values: Any) -> dict:
    """The keys whose value is not empty: an optional key left out means its default."""
    return {key: value for key, value in values.items() if value not in (None, "")}


def _settings(settings: ProgramSettings) -> dict:
    return {
        "tier_policy": settings.tier_policy,
        "thresholds": _Flow(strategic=_number(settings.strategic_threshold),
                            growth=_number(settings.growth_threshold)),
        "hysteresis": settings.hysteresis,
        # Written only when not the default, so files that never set it stay as they were.
        **_optional(stale_after_days=settings.stale_after_days
                    if settings.stale_after_days != STALE_AFTER_DAYS_DEFAULT else None),
    }


def _partner(partner: Partner) -> dict:
    return {"slug": partner.slug, "name": partner.name,
            **_optional(website=partner.website, industry=partner.industry),
            "status": partner.status}


def _kpi(kpi: KPIDefinition) -> dict:
    return {
        "code": kpi.code, "name": kpi.name, "unit": kpi.unit, "category": kpi.category,
        "aggregation": kpi.aggregation, "source": kpi.source,
        **_optional(description=kpi.description), "value_type": kpi.value_type,
        **_optional(minimum=None if kpi.minimum is None else _number(kpi.minimum),
                    maximum=None if kpi.maximum is None else _number(kpi.maximum)),
        **_tolerance(kpi),
    }


def _tolerance(kpi: KPIDefinition) -> dict:
    """A KPI's tolerance, left out when it is the default (5 % of the source's value)."""
    if (kpi.tolerance_kind == ToleranceKind.PERCENT
            and kpi.tolerance == DEFAULT_TOLERANCE_PERCENT):
        return {}
    return {"tolerance_kind": kpi.tolerance_kind, "tolerance": _number(kpi.tolerance)}


def _kpi_numbers(item) -> dict:
    return {"target": _number(item.target), "floor": _number(item.floor),
            "weight": _number(item.weight)}


def _template_item(item: KPITemplateItem) -> dict:
    return _Flow(type=item.agreement_type, kpi=item.kpi.code, **_kpi_numbers(item))


def _objective(objective: Objective) -> dict:
    return _Flow(
        goal_type=objective.goal_type, success_metric=objective.success_metric,
        **_optional(kpi=objective.kpi.code if objective.kpi_id else None),
        target_value=_number(objective.target_value), set_on=objective.set_on,
        deadline=objective.deadline, priority=objective.priority,
    )


def _objective_order(objective: Objective) -> tuple:
    return (objective.deadline, objective.set_on, objective.goal_type, objective.success_metric,
            objective.kpi.code if objective.kpi_id else "", objective.target_value,
            objective.priority)


def _incentive(plan: IncentivePlan | None) -> dict | None:
    if plan is None:
        return None  # the file is the truth: no plan in the program, none after loading
    return {
        "base_amount": _number(plan.base_amount), "currency": plan.currency,
        "baseline": _number(plan.baseline_score),
        "multipliers": _Flow({tier: _number(getattr(plan, f"multiplier_{tier}"))
                              for tier in MULTIPLIER_DEFAULTS}),
    }


def _agreement(agreement: Agreement) -> dict:
    terms = _optional(**{name: getattr(agreement, name) for name in TERM_FIELDS})
    plan = getattr(agreement, "incentive_plan", None)
    return {
        "code": agreement.code, "partner": agreement.partner.slug,
        **_optional(title=agreement.title), "type": agreement.type, "stage": agreement.stage,
        "start": agreement.start_date, **_optional(end=agreement.end_date),
        **_optional(owner=agreement.owner.get_username() if agreement.owner_id else None,
                    partner_contacts=agreement.partner_contacts),
        "review_cadence": agreement.review_cadence,
        "weights": _Flow({category: getattr(agreement, name)
                          for category, name in CATEGORY_WEIGHT_FIELDS.items()}),
        **({"terms": terms} if terms else {}),
        "kpis": [_Flow(kpi=item.kpi.code, **_kpi_numbers(item))
                 for item in sorted(agreement.agreement_kpis.all(), key=lambda i: i.kpi.code)],
        "objectives": [_objective(objective) for objective in
                       sorted(agreement.objectives.all(), key=_objective_order)],
        "incentive": _incentive(plan),
    }


def program_document() -> dict:
    """The whole program as the mapping a program file holds, keys and lists in a fixed order."""
    agreements = (Agreement.objects.select_related("partner", "owner", "incentive_plan")
                  .prefetch_related("agreement_kpis__kpi", "objectives__kpi"))
    settings = ProgramSettings.objects.filter(pk=1).first()
    return {
        # A program whose settings were never written exports none, so that loading the export
        # leaves them unwritten too (the defaults apply either way).
        **({"scoring": _settings(settings)} if settings is not None else {}),
        "partners": [_partner(p) for p in sorted(Partner.objects.all(), key=lambda p: p.slug)],
        "kpis": [_kpi(k) for k in sorted(KPIDefinition.objects.all(), key=lambda k: k.code)],
        "kpi_templates": [
            _template_item(item) for item in sorted(
                KPITemplateItem.objects.select_related("kpi"),
                key=lambda item: (item.agreement_type, item.kpi.code))
        ],
        "agreements": [_agreement(a) for a in sorted(agreements, key=lambda a: a.code)],
    }


def program_export() -> str:
    """The whole program as program-file YAML (docs/program-file.md), the same bytes for the
    same program."""
    return yaml.dump(program_document(), Dumper=_ProgramYamlDumper, sort_keys=False,
                     allow_unicode=True, default_flow_style=False, width=100)


def program_export_filename(*, today: dt.date) -> str:
    """The name of a downloaded export: program-2026-03-31.yaml."""
    return f"program-{today.isoformat()}.yaml"
