"""The program file: partners, KPI definitions, agreements and their KPIs, loaded from text.

`program_load` checks the whole document first and reports every problem at once, then
upserts in one transaction; see docs/program-file.md for the format.
"""

import datetime as dt
import difflib
import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import yaml
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import connection, models, transaction
from django.utils import timezone

from .audit import audit_record
from .history import SYSTEM_ACTOR, change_delete, change_save, history_snapshot
from .lifecycle import StageMoveRefused, agreement_stage_move, stage_moves_from
from .models import (
    CATEGORY_WEIGHT_FIELDS,
    DEFAULT_CATEGORY_WEIGHTS,
    DEFAULT_TOLERANCE_PERCENT,
    STALE_AFTER_DAYS_DEFAULT,
    STALE_AFTER_DAYS_MAX,
    Aggregation,
    Agreement,
    AgreementKPI,
    AgreementType,
    AuditAction,
    Category,
    GoalType,
    IncentivePlan,
    KPIDefinition,
    KPITemplateItem,
    Objective,
    Partner,
    PartnerStatus,
    Priority,
    ProgramSettings,
    ReviewCadence,
    Side,
    Stage,
    TierPolicy,
    ToleranceKind,
    ValueType,
    kpi_value_rules_problems,
)
from .validators import AGREEMENT_CODE_RULE, agreement_code_validator

# Two loads at once would both find a slug missing and both try to create it; on PostgreSQL
# they queue on this lock (SQLite transactions start IMMEDIATE, so they already queue).
PROGRAM_LOAD_LOCK = 7_240_002

KINDS = (
    "partners", "kpis", "agreements", "agreement_kpis", "objectives", "incentive_plans",
    "kpi_templates", "settings",
)
TERM_FIELDS = (
    "value_financial", "value_strategic", "value_operational", "attribution_method",
    "qualified_lead_definition", "underperformance_consequences", "overperformance_rewards",
    "customer_relationship_owner", "support_responsibilities", "marketing_materials",
    "messaging_approval", "shared_costs", "dispute_resolution", "exit_criteria",
)
TOP_LEVEL_REQUIRED = ("partners", "kpis", "agreements")
TOP_LEVEL_OPTIONAL = ("scoring", "kpi_templates")
PARTNER_REQUIRED = ("slug", "name")
PARTNER_OPTIONAL = ("website", "industry", "status")
KPI_REQUIRED = ("code", "name", "unit", "category", "aggregation", "source")
KPI_OPTIONAL = ("description", "value_type", "minimum", "maximum", "tolerance_kind", "tolerance")
AGREEMENT_REQUIRED = ("code", "partner", "type", "stage", "start", "kpis")
AGREEMENT_OPTIONAL = (
    "title", "end", "weights", "owner", "partner_contacts", "review_cadence", "terms",
    "objectives", "incentive",
)
AGREEMENT_KPI_REQUIRED = ("kpi", "target", "floor", "weight")
KPI_TEMPLATE_REQUIRED = ("type", *AGREEMENT_KPI_REQUIRED)
OBJECTIVE_REQUIRED = ("goal_type", "success_metric", "target_value", "deadline")
OBJECTIVE_OPTIONAL = ("kpi", "priority", "set_on")
INCENTIVE_REQUIRED = ("base_amount",)
INCENTIVE_OPTIONAL = ("currency", "baseline", "multipliers")
MULTIPLIER_DEFAULTS = {
    "transactional": Decimal("1.0"), "growth": Decimal("1.25"), "strategic": Decimal("1.5"),
}
SCORING_OPTIONAL = ("tier_policy", "thresholds", "hysteresis", "stale_after_days")
THRESHOLD_DEFAULTS = {"strategic": 85.0, "growth": 70.0}

# A KPI that does not say its type of value gets the one its unit implies (the migration that
# introduced types gave existing KPIs the same).
CURRENCY_UNITS = frozenset({
    "USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "CNY", "HKD", "SGD", "INR", "KRW",
    "SEK", "NOK", "DKK", "PLN", "CZK", "BRL", "MXN", "ZAR", "$", "€", "£", "¥",
})
COUNT_UNITS = frozenset({
    "count", "#", "number", "leads", "deals", "logos", "customers", "accounts", "users",
    "people", "staff", "campaigns", "events", "tickets", "reviews", "meetings",
})
PERCENT_RANGE = (0.0, 100.0)

SLUG_PATTERN = re.compile(r"[-a-zA-Z0-9_]+")
ISO_DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")
SMALLINT_MAX = 32767


class ProgramError(Exception):
    """A program file that cannot be loaded; `problems` lists every reason, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class KindCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0


@dataclass
class ProgramLoadResult:
    counts: dict[str, KindCounts] = field(
        default_factory=lambda: {kind: KindCounts() for kind in KINDS}
    )

    @property
    def changed(self) -> bool:
        return any(c.created or c.updated or c.deleted for c in self.counts.values())

    def summary_lines(self) -> list[str]:
        width = max(len(kind) for kind in KINDS) + 1
        lines = []
        for kind, counts in self.counts.items():
            line = (
                f"{kind + ':':<{width}} {counts.created} created, {counts.updated} updated, "
                f"{counts.unchanged} unchanged"
            )
            if kind in ("agreement_kpis", "objectives", "incentive_plans", "kpi_templates"):
                line += f", {counts.deleted} deleted"
            lines.append(line)
        return lines


# ----------------------------------------------------------------------------- parsing


class _ProgramYamlLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and keeps dates as text (checked strictly)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue  # an unhashable key: SafeLoader reports it below
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found duplicate key {key!r} (first on line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 reads 2025-1-1 and "2025-01-01 10:00" as dates; the program file wants strict ISO
# dates, so dates stay text and are checked like JSON's.
_ProgramYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# JSON's 1e5 is a number; YAML 1.1 wants a dot (1.0e+5) and would otherwise read text.
_ProgramYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def program_parse(*, text: str, json_format: bool = False) -> dict:
    """Parse program-file text (YAML, or JSON when json_format) into a mapping."""
    try:
        if json_format:
            document = json.loads(text, object_pairs_hook=_json_object_without_duplicates)
        else:
            document = yaml.load(text, Loader=_ProgramYamlLoader)  # a SafeLoader subclass
    except json.JSONDecodeError as error:
        raise ProgramError(
            [f"line {error.lineno}, column {error.colno}: JSON syntax error: {error.msg}"]
        ) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = error.problem or error.context or "invalid document"
        raise ProgramError([f"{where}YAML syntax error: {what}"]) from None
    except (yaml.YAMLError, ValueError) as error:
        raise ProgramError([f"syntax error: {error}"]) from None
    if document is None:
        raise ProgramError(["document: empty; expected a mapping with partners, kpis, agreements"])
    if not isinstance(document, dict):
        raise ProgramError([
            f"document: must be a mapping with partners, kpis and agreements, "
            f"got {_describe(document)}"
        ])
    return document


def _json_object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    document: dict = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"duplicate key {key!r} in one JSON object")
        document[key] = value
    return document


# -------------------------------------------------------------------------- validation

REQUIRED: Any = object()  # a reader's default: the key must be given
INVALID: Any = object()  # a value that was reported as a problem
KEEP: Any = object()  # a section left out: the existing rows stay as they are


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"text {value!r}"
    if isinstance(value, int | float | Decimal):
        return f"number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dt.datetime):
        return f"date and time {value.isoformat()}"
    if isinstance(value, dt.date):
        return f"date {value.isoformat()}"
    return type(value).__name__


def _at(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _label(section: str, index: int, raw: Any, key: str) -> str:
    name = raw.get(key) if isinstance(raw, dict) else None
    position = f"{section}[{index}]"
    return f"{position} ({name})" if isinstance(name, str) and name else position


class _Reader:
    """Reads values out of the document, turning each problem into a message and INVALID."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        # (where, KPI code) of the KPI templates, checked against the KPIs like agreements'.
        self.template_references: list[tuple[str, Any]] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def entry(self, where: str, raw: Any, required: tuple, optional: tuple = ()) -> dict | None:
        if not isinstance(raw, dict):
            self.add(where, f"must be a mapping, got {_describe(raw)}")
            return None
        allowed = (*required, *optional)
        for key in raw:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
                self.add(_at(where, key), f"unknown key ({hint})")
        for key in required:
            if key not in raw:
                self.add(_at(where, key), "missing required key")
        return raw

    def _absent(self, where: str, entry: dict, key: str, default: Any) -> Any:
        if default is REQUIRED:
            if key in entry:  # a missing key was reported by entry()
                self.add(_at(where, key), "is required, got null")
            return INVALID
        return default

    def text(self, where: str, entry: dict, key: str, *, max_length: int | None = None,
             default: Any = REQUIRED, blank: bool = True) -> Any:
        value = entry.get(key)
        if value is None:
            return self._absent(where, entry, key, default)
        if not isinstance(value, str):
            self.add(_at(where, key), f"must be text, got {_describe(value)}")
            return INVALID
        if not blank and not value.strip():
            self.add(_at(where, key), "must not be empty")
            return INVALID
        if max_length is not None and len(value) > max_length:
            self.add(_at(where, key), f"at most {max_length} characters, got {len(value)}")
            return INVALID
        return value

    def slug(self, where: str, entry: dict, key: str, *, what: str) -> Any:
        value = self.text(where, entry, key, max_length=64)
        if value is INVALID:
            return INVALID
        if not SLUG_PATTERN.fullmatch(value):
            self.add(
                _at(where, key),
                f"{what} must be letters, digits, '-' and '_' only, got {value!r}",
            )
            return INVALID
        return value

    def code(self, where: str, entry: dict, key: str) -> Any:
        value = self.text(where, entry, key, max_length=64, blank=False)
        if value is not INVALID and value != value.strip():
            self.add(_at(where, key), f"must not start or end with spaces, got {value!r}")
            return INVALID
        if value is not INVALID:
            try:
                agreement_code_validator(value)
            except ValidationError:
                self.add(_at(where, key), f"agreement code {value!r} cannot be carried by the "
                                          f"pages' addresses: use {AGREEMENT_CODE_RULE}")
                return INVALID
        return value

    def choice(self, where: str, entry: dict, key: str, choices: type[models.TextChoices], *,
               what: str, default: Any = REQUIRED) -> Any:
        value = entry.get(key)
        if value is None:
            return self._absent(where, entry, key, default)
        if value not in choices.values:
            shown = repr(value) if isinstance(value, str) else _describe(value)
            self.add(
                _at(where, key),
                f"unknown {what} {shown} (expected one of: {', '.join(choices.values)})",
            )
            return INVALID
        return str(value)

    def number(self, where: str, entry: dict, key: str, *, default: Any = REQUIRED) -> Any:
        value = entry.get(key)
        if value is None:
            return self._absent(where, entry, key, default)
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            self.add(_at(where, key), f"must be a number, got {_describe(value)}")
            return INVALID
        try:
            number = float(value)
        except OverflowError:
            self.add(_at(where, key), "is too large")
            return INVALID
        if not math.isfinite(number):
            self.add(_at(where, key), f"must be a finite number, got {value}")
            return INVALID
        return number

    def whole(self, where: str, entry: dict, key: str, *, default: Any = REQUIRED) -> Any:
        number = self.number(where, entry, key, default=default)
        if number is INVALID or entry.get(key) is None:
            return number
        if not number.is_integer():
            self.add(_at(where, key), f"must be a whole number, got {entry[key]}")
            return INVALID
        return int(number)

    def decimal(self, where: str, entry: dict, key: str, *, max_digits: int, places: int,
                default: Any = REQUIRED) -> Any:
        value = entry.get(key)
        number = self.number(where, entry, key, default=default)
        if number is INVALID or value is None:
            return number
        # str() of a float is its shortest round-tripping form: 1000.1, not 1000.100000000002
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        if amount < 0:
            self.add(_at(where, key), f"must not be negative, got {value}")
            return INVALID
        if -amount.normalize().as_tuple().exponent > places:
            self.add(_at(where, key), f"at most {places} decimal places, got {value}")
            return INVALID
        if amount >= Decimal(10) ** (max_digits - places):
            self.add(_at(where, key), f"at most {max_digits - places} digits before the point")
            return INVALID
        return amount

    def date(self, where: str, entry: dict, key: str, *, default: Any = REQUIRED) -> Any:
        value = entry.get(key)
        if value is None:
            return self._absent(where, entry, key, default)
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str) and ISO_DATE_PATTERN.fullmatch(value):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                self.add(_at(where, key), f"no such date: {value!r}")
                return INVALID
        self.add(_at(where, key), f"must be a date as YYYY-MM-DD, got {_describe(value)}")
        return INVALID

    def sequence(self, where: str, entry: dict, key: str, *, hint: str = "") -> Any:
        value = entry.get(key)
        if key not in entry:
            return INVALID  # reported by entry()
        if not isinstance(value, list):
            self.add(_at(where, key), f"must be a list{hint}, got {_describe(value)}")
            return INVALID
        return value


@dataclass
class _AgreementKPISpec:
    where: str
    kpi: Any
    fields: dict


@dataclass
class _ObjectiveSpec:
    where: str
    kpi: Any
    fields: dict
    # The day it was set; None: left out (a new objective is set today, an equal existing one
    # keeps its day, so loading the same file again changes nothing).
    set_on: Any = None


@dataclass
class _AgreementSpec:
    where: str
    code: Any
    partner: Any
    owner: Any
    fields: dict
    kpis: list[_AgreementKPISpec]
    objectives: Any  # list[_ObjectiveSpec] or KEEP
    incentive: Any  # dict of fields, None (remove the plan) or KEEP


@dataclass
class _Plan:
    partners: dict[str, dict] = field(default_factory=dict)
    kpis: dict[str, dict] = field(default_factory=dict)
    agreements: list[_AgreementSpec] = field(default_factory=list)
    kpi_templates: Any = KEEP  # {(agreement type, KPI code): fields} or KEEP
    settings: Any = KEEP  # dict of fields or KEEP


def _check_document(document: dict, reader: _Reader) -> _Plan:
    plan = _Plan()
    reader.entry("", document, TOP_LEVEL_REQUIRED, TOP_LEVEL_OPTIONAL)
    if "scoring" in document:
        plan.settings = _check_scoring(document["scoring"], reader)
    if "kpi_templates" in document:
        plan.kpi_templates = _check_kpi_templates(document, reader)
    hint = " (write [] for none)"
    partners = reader.sequence("", document, "partners", hint=hint)
    kpis = reader.sequence("", document, "kpis", hint=hint)
    agreements = reader.sequence("", document, "agreements", hint=hint)

    first_seen: dict[str, str] = {}
    for index, raw in enumerate(partners if partners is not INVALID else []):
        where = _label("partners", index, raw, "slug")
        entry = reader.entry(where, raw, PARTNER_REQUIRED, PARTNER_OPTIONAL)
        if entry is None:
            continue
        slug = reader.slug(where, entry, "slug", what="slug")
        fields = {
            "name": reader.text(where, entry, "name", max_length=200, blank=False),
            "website": _check_website(where, entry, reader),
            "industry": reader.text(where, entry, "industry", max_length=100, default=""),
            "status": reader.choice(
                where, entry, "status", PartnerStatus, what="status",
                default=PartnerStatus.ACTIVE.value,
            ),
        }
        if _is_new(slug, f"partners[{index}]", "slug", first_seen, where, reader):
            plan.partners[slug] = fields

    first_seen = {}
    for index, raw in enumerate(kpis if kpis is not INVALID else []):
        where = _label("kpis", index, raw, "code")
        entry = reader.entry(where, raw, KPI_REQUIRED, KPI_OPTIONAL)
        if entry is None:
            continue
        code = reader.slug(where, entry, "code", what="code")
        fields = {
            "name": reader.text(where, entry, "name", max_length=200, blank=False),
            "unit": reader.text(where, entry, "unit", max_length=32),
            "category": reader.choice(where, entry, "category", Category, what="category"),
            "aggregation": reader.choice(
                where, entry, "aggregation", Aggregation, what="aggregation"
            ),
            "source": reader.choice(where, entry, "source", Side, what="source"),
            "description": reader.text(where, entry, "description", default=""),
            **_check_kpi_values(where, entry, reader),
            **_check_kpi_tolerance(where, entry, reader),
        }
        if _is_new(code, f"kpis[{index}]", "code", first_seen, where, reader):
            plan.kpis[code] = fields

    first_seen = {}
    for index, raw in enumerate(agreements if agreements is not INVALID else []):
        where = _label("agreements", index, raw, "code")
        entry = reader.entry(where, raw, AGREEMENT_REQUIRED, AGREEMENT_OPTIONAL)
        if entry is None:
            continue
        spec = _check_agreement(where, entry, reader)
        _is_new(spec.code, f"agreements[{index}]", "code", first_seen, where, reader)
        plan.agreements.append(spec)  # even a duplicate: its references are checked too
    return plan


def value_type_from_unit(unit: str) -> str:
    """The type of value a unit implies: % a percentage, count-like units a count, currency
    codes money, anything else a number."""
    text = unit.strip()
    if text == "%" or text.lower() in {"percent", "pct"}:
        return ValueType.PERCENTAGE
    if text.lower() in COUNT_UNITS:
        return ValueType.COUNT
    if text.upper() in CURRENCY_UNITS:
        return ValueType.MONEY
    return ValueType.NUMBER


def _check_kpi_values(where: str, entry: dict, reader: _Reader) -> dict:
    """value_type (default: from the unit), minimum and maximum (a percentage: 0 and 100)."""
    unit = entry.get("unit")
    implied = value_type_from_unit(unit) if isinstance(unit, str) else ValueType.NUMBER
    value_type = reader.choice(where, entry, "value_type", ValueType, what="type of value",
                               default=implied.value)
    is_percentage = value_type == ValueType.PERCENTAGE
    fields = {
        "value_type": value_type,
        "minimum": reader.number(where, entry, "minimum",
                                 default=PERCENT_RANGE[0] if is_percentage else None),
        "maximum": reader.number(where, entry, "maximum",
                                 default=PERCENT_RANGE[1] if is_percentage else None),
    }
    if INVALID not in fields.values():
        for name, message in kpi_value_rules_problems(**fields).items():
            reader.add(_at(where, name), message)
            fields[name] = INVALID
    return fields


def _check_kpi_tolerance(where: str, entry: dict, reader: _Reader) -> dict:
    """tolerance_kind (percent | absolute, default percent) and tolerance (≥ 0, default 5)."""
    fields = {
        "tolerance_kind": reader.choice(where, entry, "tolerance_kind", ToleranceKind,
                                        what="tolerance kind",
                                        default=ToleranceKind.PERCENT.value),
        "tolerance": reader.number(where, entry, "tolerance",
                                   default=DEFAULT_TOLERANCE_PERCENT),
    }
    if fields["tolerance"] is not INVALID and fields["tolerance"] < 0:
        reader.add(_at(where, "tolerance"), "must be 0 or more")
        fields["tolerance"] = INVALID
    return fields


def _is_new(key: Any, position: str, name: str, first_seen: dict[str, str], where: str,
            reader: _Reader) -> bool:
    if key is INVALID:
        return False
    if key in first_seen:
        reader.add(_at(where, name), f"duplicate {name} {key!r} (first at {first_seen[key]})")
        return False
    first_seen[key] = position
    return True


def _check_website(where: str, entry: dict, reader: _Reader) -> Any:
    website = reader.text(where, entry, "website", max_length=200, default="")
    if website not in (INVALID, ""):
        try:
            URLValidator()(website)
        except ValidationError:
            reader.add(_at(where, "website"), f"not a valid URL: {website!r}")
            return INVALID
    return website


def _check_agreement(where: str, entry: dict, reader: _Reader) -> _AgreementSpec:
    code = reader.code(where, entry, "code")
    partner = reader.slug(where, entry, "partner", what="partner slug")
    owner = reader.text(where, entry, "owner", max_length=150, default=None, blank=False)
    start = reader.date(where, entry, "start")
    end = reader.date(where, entry, "end", default=None)
    if start is not INVALID and end not in (INVALID, None) and end < start:
        reader.add(_at(where, "end"), f"end {end} is before start {start}")
    fields = {
        "title": reader.text(where, entry, "title", max_length=200, default=""),
        "type": reader.choice(where, entry, "type", AgreementType, what="type"),
        "stage": reader.choice(where, entry, "stage", Stage, what="stage"),
        "start_date": start,
        "end_date": end,
        "partner_contacts": reader.text(where, entry, "partner_contacts", default=""),
        "review_cadence": reader.choice(
            where, entry, "review_cadence", ReviewCadence, what="review cadence",
            default=ReviewCadence.QUARTERLY.value,
        ),
        **_check_weights(where, entry, reader),
        **_check_terms(where, entry, reader),
    }
    kpis = []
    first_seen: dict[str, str] = {}
    raw_kpis = reader.sequence(where, entry, "kpis", hint=" (write [] for none)")
    for index, raw in enumerate(raw_kpis if raw_kpis is not INVALID else []):
        kpi_where = f"{where}.kpis[{index}]"
        kpi_entry = reader.entry(kpi_where, raw, AGREEMENT_KPI_REQUIRED)
        if kpi_entry is None:
            continue
        kpi = reader.slug(kpi_where, kpi_entry, "kpi", what="KPI code")
        numbers = _check_kpi_numbers(kpi_where, kpi_entry, reader)
        if kpi is not INVALID and kpi in first_seen:
            reader.add(
                f"{kpi_where}.kpi",
                f"duplicate KPI {kpi!r} in this agreement (first at kpis[{first_seen[kpi]}])",
            )
            continue
        if kpi is not INVALID:
            first_seen[kpi] = str(index)
        kpis.append(_AgreementKPISpec(where=kpi_where, kpi=kpi, fields=numbers))
    objectives = _check_objectives(where, entry, reader)
    for objective in objectives if objectives is not KEEP else []:
        # Progress is measured from the KPI's scores on this agreement: another's has none.
        if objective.kpi not in (None, INVALID) and objective.kpi not in first_seen:
            reader.add(_at(objective.where, "kpi"),
                       f"KPI {objective.kpi!r} is not one of this agreement's kpis")
    return _AgreementSpec(
        where=where,
        code=code,
        partner=partner,
        owner=owner,
        fields=fields,
        kpis=kpis,
        objectives=objectives,
        incentive=_check_incentive(where, entry, reader),
    )


def _check_kpi_numbers(where: str, entry: dict, reader: _Reader) -> dict:
    """Target, floor and weight of a KPI on an agreement or in a template."""
    target = reader.number(where, entry, "target")
    floor = reader.number(where, entry, "floor")
    weight = reader.number(where, entry, "weight")
    if target is not INVALID and floor is not INVALID and floor == target:
        reader.add(f"{where}.floor", f"floor equals target ({entry['target']})")
    if weight is not INVALID and weight <= 0:
        reader.add(f"{where}.weight", f"must be greater than 0, got {entry['weight']}")
    return {"target": target, "floor": floor, "weight": weight}


def _check_kpi_templates(document: dict, reader: _Reader) -> dict:
    """The standard KPIs of each agreement type, copied onto new agreements of that type."""
    raw = reader.sequence("", document, "kpi_templates", hint=" (write [] for none)")
    items: dict[tuple[str, str], dict] = {}
    first_seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(raw if raw is not INVALID else []):
        where = f"kpi_templates[{index}]"
        entry = reader.entry(where, item, KPI_TEMPLATE_REQUIRED)
        if entry is None:
            continue
        agreement_type = reader.choice(where, entry, "type", AgreementType, what="type")
        kpi = reader.slug(where, entry, "kpi", what="KPI code")
        fields = _check_kpi_numbers(where, entry, reader)
        if INVALID in (agreement_type, kpi):
            continue
        key = (agreement_type, kpi)
        if key in first_seen:
            reader.add(_at(where, "kpi"), f"duplicate KPI {kpi!r} for type {agreement_type} "
                                          f"(first at kpi_templates[{first_seen[key]}])")
            continue
        first_seen[key] = index
        items[key] = fields
        reader.template_references.append((where, kpi))
    return items


def _check_weights(where: str, entry: dict, reader: _Reader) -> dict:
    raw = entry.get("weights")
    if raw is None:
        return {CATEGORY_WEIGHT_FIELDS[c]: w for c, w in DEFAULT_CATEGORY_WEIGHTS.items()}
    weights_where = _at(where, "weights")
    weights = reader.entry(weights_where, raw, tuple(Category.values))
    if weights is None:
        return {}
    values = {}
    for category in Category.values:
        if category not in weights:
            continue
        weight = reader.whole(weights_where, weights, category)
        if weight is INVALID:
            continue
        if weight < 0:
            reader.add(_at(weights_where, category), f"must not be negative, got {weight}")
        elif weight > 100:
            reader.add(_at(weights_where, category), f"at most 100, got {weight}")
        else:
            values[category] = weight
    if len(values) == len(Category.values) and sum(values.values()) != 100:
        reader.add(weights_where, f"must sum to 100, got {sum(values.values())}")
    return {CATEGORY_WEIGHT_FIELDS[c]: values.get(c, INVALID) for c in Category.values}


def _check_terms(where: str, entry: dict, reader: _Reader) -> dict:
    raw = entry.get("terms")
    if raw is None:
        return dict.fromkeys(TERM_FIELDS, "")
    terms_where = _at(where, "terms")
    terms = reader.entry(terms_where, raw, (), TERM_FIELDS)
    if terms is None:
        return {}
    return {name: reader.text(terms_where, terms, name, default="") for name in TERM_FIELDS}


def _check_objectives(where: str, entry: dict, reader: _Reader) -> Any:
    if "objectives" not in entry:
        return KEEP
    raw = reader.sequence(where, entry, "objectives", hint=" (write [] to remove them all)")
    if raw is INVALID:
        return []
    objectives = []
    for index, item in enumerate(raw):
        objective_where = f"{where}.objectives[{index}]"
        objective = reader.entry(objective_where, item, OBJECTIVE_REQUIRED, OBJECTIVE_OPTIONAL)
        if objective is None:
            continue
        kpi = objective.get("kpi")
        objectives.append(_ObjectiveSpec(
            where=objective_where,
            kpi=None if kpi is None else reader.slug(
                objective_where, objective, "kpi", what="KPI code"
            ),
            fields={
                "goal_type": reader.choice(
                    objective_where, objective, "goal_type", GoalType, what="goal type"
                ),
                "success_metric": reader.text(
                    objective_where, objective, "success_metric", max_length=200, blank=False
                ),
                "target_value": reader.number(objective_where, objective, "target_value"),
                "deadline": reader.date(objective_where, objective, "deadline"),
                "priority": reader.choice(
                    objective_where, objective, "priority", Priority, what="priority",
                    default=Priority.MEDIUM.value,
                ),
            },
            set_on=reader.date(objective_where, objective, "set_on", default=None),
        ))
        spec = objectives[-1]
        deadline = spec.fields["deadline"]
        if isinstance(spec.set_on, dt.date) and isinstance(deadline, dt.date) \
                and deadline < spec.set_on:
            reader.add(_at(objective_where, "deadline"),
                       f"comes before set_on ({spec.set_on.isoformat()}): an objective's "
                       "deadline is on or after the day it was set")
    return objectives


def _check_incentive(where: str, entry: dict, reader: _Reader) -> Any:
    if "incentive" not in entry:
        return KEEP
    if entry["incentive"] is None:
        return None
    incentive_where = _at(where, "incentive")
    incentive = reader.entry(
        incentive_where, entry["incentive"], INCENTIVE_REQUIRED, INCENTIVE_OPTIONAL
    )
    if incentive is None:
        return {}
    currency = reader.text(incentive_where, incentive, "currency", default="USD")
    if currency is not INVALID and not CURRENCY_PATTERN.fullmatch(currency):
        reader.add(
            _at(incentive_where, "currency"),
            f"must be a three-letter currency code such as USD, got {currency!r}",
        )
    baseline = reader.number(incentive_where, incentive, "baseline", default=60.0)
    if baseline is not INVALID and not 0 <= baseline <= 120:
        reader.add(
            _at(incentive_where, "baseline"),
            f"must be between 0 and 120, got {incentive['baseline']}",
        )
    fields = {
        "base_amount": reader.decimal(
            incentive_where, incentive, "base_amount", max_digits=12, places=2
        ),
        "currency": currency,
        "baseline_score": baseline,
    }
    raw_multipliers = incentive.get("multipliers")
    multipliers_where = _at(incentive_where, "multipliers")
    multipliers = (
        {} if raw_multipliers is None
        else reader.entry(multipliers_where, raw_multipliers, (), tuple(MULTIPLIER_DEFAULTS))
    )
    for tier, default in MULTIPLIER_DEFAULTS.items():
        fields[f"multiplier_{tier}"] = (
            INVALID if multipliers is None
            else reader.decimal(
                multipliers_where, multipliers, tier, max_digits=5, places=3, default=default
            )
        )
    return fields


def _check_scoring(raw: Any, reader: _Reader) -> dict:
    scoring = reader.entry("scoring", raw, (), SCORING_OPTIONAL)
    if scoring is None:
        return {}
    raw_thresholds = scoring.get("thresholds")
    thresholds = (
        {} if raw_thresholds is None
        else reader.entry("scoring.thresholds", raw_thresholds, (), tuple(THRESHOLD_DEFAULTS))
    ) or {}
    strategic = reader.number(
        "scoring.thresholds", thresholds, "strategic", default=THRESHOLD_DEFAULTS["strategic"]
    )
    growth = reader.number(
        "scoring.thresholds", thresholds, "growth", default=THRESHOLD_DEFAULTS["growth"]
    )
    if strategic is not INVALID and growth is not INVALID and growth > strategic:
        reader.add(
            "scoring.thresholds", f"growth ({growth:g}) is above strategic ({strategic:g})"
        )
    hysteresis = reader.whole("scoring", scoring, "hysteresis", default=2)
    if hysteresis is not INVALID and not 1 <= hysteresis <= SMALLINT_MAX:
        reader.add(
            "scoring.hysteresis",
            f"must be a whole number of months from 1 to {SMALLINT_MAX}, got {hysteresis}",
        )
    stale_after_days = reader.whole("scoring", scoring, "stale_after_days",
                                    default=STALE_AFTER_DAYS_DEFAULT)
    if stale_after_days is not INVALID and not 1 <= stale_after_days <= STALE_AFTER_DAYS_MAX:
        reader.add(
            "scoring.stale_after_days",
            f"must be a whole number of days from 1 to {STALE_AFTER_DAYS_MAX}, "
            f"got {stale_after_days}",
        )
    return {
        "tier_policy": reader.choice(
            "scoring", scoring, "tier_policy", TierPolicy, what="tier policy",
            default=TierPolicy.PERCENTILE.value,
        ),
        "strategic_threshold": strategic,
        "growth_threshold": growth,
        "hysteresis": hysteresis,
        "stale_after_days": stale_after_days,
    }


def _check_references(plan: _Plan, reader: _Reader) -> None:
    """Partners, KPIs and owners named by agreements must be in the file or the database."""
    wanted_partners = {a.partner for a in plan.agreements if a.partner is not INVALID}
    known_partners = set(plan.partners) | set(
        Partner.objects.filter(slug__in=wanted_partners - set(plan.partners))
        .values_list("slug", flat=True)
    )
    references = [
        (kpi.where, kpi.kpi) for a in plan.agreements for kpi in a.kpis
    ] + [
        (objective.where, objective.kpi)
        for a in plan.agreements if a.objectives is not KEEP
        for objective in a.objectives if objective.kpi is not None
    ] + reader.template_references
    wanted_kpis = {code for _, code in references if code is not INVALID}
    known_kpis = set(plan.kpis) | set(
        KPIDefinition.objects.filter(code__in=wanted_kpis - set(plan.kpis))
        .values_list("code", flat=True)
    )
    wanted_owners = {a.owner for a in plan.agreements if a.owner not in (INVALID, None)}
    owners = {
        user.get_username(): user
        for user in get_user_model().objects.filter(username__in=wanted_owners)
        .select_related("membership")
    }
    for agreement in plan.agreements:
        if agreement.partner is not INVALID and agreement.partner not in known_partners:
            reader.add(
                _at(agreement.where, "partner"),
                f"unknown partner {agreement.partner!r} (not in this file nor in the database)",
            )
        if agreement.owner not in (INVALID, None):
            owner = owners.get(agreement.owner)
            membership = getattr(owner, "membership", None)
            if owner is None:
                reader.add(_at(agreement.where, "owner"), f"no user {agreement.owner!r}")
            elif membership is not None and not membership.is_host:
                reader.add(
                    _at(agreement.where, "owner"),
                    f"user {agreement.owner!r} is on the partner side; the owner is host staff",
                )
    for where, code in references:
        if code is not INVALID and code not in known_kpis:
            reader.add(
                _at(where, "kpi"),
                f"unknown KPI {code!r} (not in this file nor in the database)",
            )


# ------------------------------------------------------------------------------ writing


def _lock_program_writes() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PROGRAM_LOAD_LOCK])


def _check_stage_moves(plan: _Plan, reader: _Reader, today: dt.date) -> None:
    """An existing agreement changes stage only by a move the program pages allow."""
    current = dict(
        Agreement.objects.filter(code__in=[a.code for a in plan.agreements if a.code
                                           is not INVALID]).values_list("code", "stage")
    )
    for agreement in plan.agreements:
        from_stage, to_stage = current.get(agreement.code), agreement.fields.get("stage")
        if from_stage is None or to_stage in (INVALID, None, from_stage):
            continue
        if to_stage not in stage_moves_from(from_stage):
            reader.add(_at(agreement.where, "stage"),
                       f"agreement {agreement.code} cannot move from {from_stage} to {to_stage} "
                       f"(the program pages refuse this move)")
        elif to_stage == Stage.ENDED:
            _check_end_of_move(agreement, reader, today)


def _check_end_of_move(agreement: _AgreementSpec, reader: _Reader, today: dt.date) -> None:
    # Moving to ended sets an empty or later end date to today (partnerships.lifecycle): a file
    # that said otherwise would disagree with the database after the load, and every load of
    # it would change the agreement again.
    start, end = agreement.fields["start_date"], agreement.fields["end_date"]
    if start is INVALID or end is INVALID:
        return
    ended_on = end if end is not None and end <= today else max(today, start)
    if end != ended_on:
        reader.add(_at(agreement.where, "end"),
                   f"agreement {agreement.code} moves to ended, which ends it on "
                   f"{ended_on.isoformat()}: write end: {ended_on.isoformat()} (or an earlier day)")


@dataclass
class _Writer:
    """Writes one object at a time through partnerships.history, so that each change gets its
    field-level history; the load records one audit event for all of them."""

    user: Any
    actor: str
    reason: str
    today: dt.date

    def _save(self, obj: models.Model, before: dict | None = None) -> None:
        # The model's rules (fields, clean(), uniqueness) are checked here; its check
        # constraints, each one also a check of the file, are left to the database, which
        # refuses the whole load if one fails: a query per constraint and row would make a
        # program of a few thousand rows take minutes.
        obj.full_clean(validate_constraints=False)
        change_save(user=self.user, obj=obj, before=before, audit=False, actor=self.actor,
                    validate=False)

    def create(self, obj: models.Model) -> None:
        self._save(obj)

    def update(self, obj: models.Model, fields: dict) -> bool:
        """Set the fields that differ and save; an equal object is not saved at all."""
        changed = {name: value for name, value in fields.items() if getattr(obj, name) != value}
        if not changed:
            return False
        before = history_snapshot(obj)
        for name, value in changed.items():
            setattr(obj, name, value)
        self._save(obj, before)
        return True

    def delete(self, obj: models.Model) -> None:
        change_delete(user=self.user, obj=obj, audit=False, actor=self.actor)

    def move(self, agreement: Agreement, to_stage: str) -> None:
        from_stage = agreement.stage
        try:
            agreement_stage_move(agreement=agreement, to_stage=to_stage, user=self.user,
                                 reason=self.reason, audit=False, actor=self.actor)
        except StageMoveRefused as refusal:
            # Checked before writing; a move made on a page meanwhile can still refuse it.
            raise ProgramError([f"agreement {agreement.code} cannot move from {from_stage} "
                                f"to {to_stage}: {refusal}"]) from None

    def upsert(self, obj: models.Model | None, fields: dict, new: Any,
               counts: KindCounts) -> models.Model:
        """Update `obj` with `fields`, or create `new()` when there is none; count which."""
        if obj is None:
            obj = new()
            self.create(obj)
            counts.created += 1
        elif self.update(obj, fields):
            counts.updated += 1
        else:
            counts.unchanged += 1
        return obj


def _write_keyed(writer: _Writer, model: type[models.Model], key_field: str,
                 rows: dict[Any, dict]) -> tuple[KindCounts, dict[Any, models.Model]]:
    counts = KindCounts()
    existing = model.objects.in_bulk(list(rows), field_name=key_field)
    written = {
        key: writer.upsert(existing.get(key), fields,
                           lambda key=key, fields=fields: model(**{key_field: key}, **fields),
                           counts)
        for key, fields in rows.items()
    }
    return counts, written


def _write_agreements(writer: _Writer, plan: _Plan) -> tuple[KindCounts, dict[str, Agreement]]:
    """A new agreement starts in the file's stage; an existing one moves there by a stage move."""
    counts = KindCounts()
    partner_ids = dict(Partner.objects.filter(slug__in={a.partner for a in plan.agreements})
                       .values_list("slug", "pk"))
    owner_ids = dict(get_user_model().objects.filter(
        username__in={a.owner for a in plan.agreements if a.owner}).values_list("username", "pk"))
    existing = Agreement.objects.in_bulk([a.code for a in plan.agreements], field_name="code")
    written = {}
    for spec in plan.agreements:
        fields = {"partner_id": partner_ids[spec.partner],
                  "owner_id": owner_ids[spec.owner] if spec.owner else None, **spec.fields}
        agreement = existing.get(spec.code)
        if agreement is None:
            agreement = Agreement(code=spec.code, **fields)
            writer.create(agreement)
            counts.created += 1
        else:
            to_stage = fields.pop("stage")
            updated = writer.update(agreement, fields)
            moved = to_stage != agreement.stage
            if moved:
                writer.move(agreement, to_stage)
            if updated or moved:
                counts.updated += 1
            else:
                counts.unchanged += 1
        written[spec.code] = agreement
    return counts, written


def _write_agreement_kpis(writer: _Writer, plan: _Plan, agreements: dict,
                          kpis: dict) -> KindCounts:
    """The file is the truth for each agreement it names: KPIs left out are removed."""
    counts = KindCounts()
    existing: dict[tuple[int, int], AgreementKPI] = {
        (row.agreement_id, row.kpi_id): row
        for row in AgreementKPI.objects.filter(
            agreement_id__in=[agreements[a.code].pk for a in plan.agreements]
        ).select_related("agreement__partner", "kpi")
    }
    # New rows get the objects, not their ids: their history names both without a query.
    wanted = {
        (agreements[a.code].pk, kpis[spec.kpi].pk): (agreements[a.code], kpis[spec.kpi],
                                                     spec.fields)
        for a in plan.agreements for spec in a.kpis
    }
    for key, row in existing.items():
        if key not in wanted:
            writer.delete(row)
            counts.deleted += 1
    for key, (agreement, kpi, fields) in wanted.items():
        writer.upsert(existing.get(key), fields,
                      lambda a=agreement, k=kpi, f=fields: AgreementKPI(agreement=a, kpi=k, **f),
                      counts)
    return counts


def _objective_key(objective: Objective) -> tuple:
    return tuple(getattr(objective, name) for name in (
        "goal_type", "success_metric", "kpi_id", "target_value", "deadline", "priority"
    ))


def _write_objectives(writer: _Writer, plan: _Plan, agreements: dict,
                      kpis: dict) -> KindCounts:
    """Objectives have no natural key: keep the equal ones, delete the rest, create the new.
    An equal one whose `set_on` the file gives differently is updated."""
    counts = KindCounts()
    replaced = [a for a in plan.agreements if a.objectives is not KEEP]
    existing: dict[int, list[Objective]] = {}
    for objective in Objective.objects.filter(
        agreement_id__in=[agreements[a.code].pk for a in replaced]
    ).select_related("agreement__partner").order_by("pk"):
        existing.setdefault(objective.agreement_id, []).append(objective)
    for agreement in replaced:
        agreement_id = agreements[agreement.code].pk
        new_by_key: dict[tuple, list[tuple[Objective, Any]]] = {}
        for spec in agreement.objectives:
            # Without set_on a new objective is set today, or on its deadline when that has
            # passed already (it was agreed before then; a deadline precedes no objective).
            set_on = spec.set_on or min(writer.today, spec.fields["deadline"])
            objective = Objective(
                agreement=agreements[agreement.code], kpi=kpis[spec.kpi] if spec.kpi else None,
                set_on=set_on, **spec.fields,
            )
            new_by_key.setdefault(_objective_key(objective), []).append((objective,
                                                                         spec.set_on))
        for objective in existing.get(agreement_id, []):
            waiting = new_by_key.get(_objective_key(objective))
            if not waiting:
                writer.delete(objective)
                counts.deleted += 1
                continue
            _, set_on = waiting.pop()
            if set_on is not None and writer.update(objective, {"set_on": set_on}):
                counts.updated += 1
            else:
                counts.unchanged += 1
        for group in new_by_key.values():
            for objective, _ in group:
                writer.create(objective)
                counts.created += 1
    return counts


def _write_incentives(writer: _Writer, plan: _Plan, agreements: dict) -> KindCounts:
    counts = KindCounts()
    managed = [a for a in plan.agreements if a.incentive is not KEEP]
    existing = {
        plan_row.agreement_id: plan_row
        for plan_row in IncentivePlan.objects.filter(
            agreement_id__in=[agreements[a.code].pk for a in managed]
        ).select_related("agreement__partner")
    }
    for agreement in managed:
        agreement_id = agreements[agreement.code].pk
        row = existing.get(agreement_id)
        if agreement.incentive is not None:
            writer.upsert(row, agreement.incentive,
                          lambda a=agreements[agreement.code], f=agreement.incentive:
                          IncentivePlan(agreement=a, **f), counts)
        elif row is not None:
            writer.delete(row)
            counts.deleted += 1
    return counts


def _write_kpi_templates(writer: _Writer, items: dict[tuple[str, str], dict],
                         kpis: dict) -> KindCounts:
    """The section is the whole standard set: items left out of it are removed."""
    counts = KindCounts()
    existing = {(row.agreement_type, row.kpi_id): row
                for row in KPITemplateItem.objects.select_related("kpi")}
    wanted = {(agreement_type, kpis[code].pk): fields
              for (agreement_type, code), fields in items.items()}
    for key, row in existing.items():
        if key not in wanted:
            writer.delete(row)
            counts.deleted += 1
    for (agreement_type, kpi_id), fields in wanted.items():
        writer.upsert(existing.get((agreement_type, kpi_id)), fields,
                      lambda t=agreement_type, k=kpi_id, f=fields:
                      KPITemplateItem(agreement_type=t, kpi_id=k, **f), counts)
    return counts


def _write_settings(writer: _Writer, fields: dict) -> KindCounts:
    counts = KindCounts()
    writer.upsert(ProgramSettings.objects.filter(pk=1).first(), fields,
                  lambda: ProgramSettings(pk=1, **fields), counts)
    return counts


def _check_user(user) -> None:
    membership = getattr(user, "membership", None)
    if not (user.is_active and membership is not None and membership.is_host):
        raise ProgramError(
            [f"user {user.get_username()!r}: only host staff may load a program file"]
        )


def program_load(*, document: dict | str, user=None, file_name: str = "",
                 sha256: str = "", actor: str = SYSTEM_ACTOR) -> ProgramLoadResult:
    """Check a program document (a mapping, or YAML text) fully, then upsert it atomically,
    with the history of every change and one `program_loaded` audit event."""
    if user is not None:
        _check_user(user)
    if isinstance(document, str):
        sha256 = sha256 or hashlib.sha256(document.encode()).hexdigest()
        document = program_parse(text=document)
    elif not isinstance(document, dict):
        raise ProgramError([f"document: must be a mapping, got {_describe(document)}"])
    reader = _Reader()
    plan = _check_document(document, reader)
    with transaction.atomic():
        _lock_program_writes()
        # References and stage moves are checked inside the transaction, after the lock, so
        # that what was checked is what is written.
        _check_references(plan, reader)
        today = timezone.localdate()
        _check_stage_moves(plan, reader, today)
        if reader.problems:
            raise ProgramError(reader.problems)
        reason = f"Program file {file_name}" if file_name else "Program file"
        result = _write(plan, _Writer(user=user, actor=actor, reason=reason, today=today))
        _audit_load(result, user=user, actor=actor, file_name=file_name, sha256=sha256)
        return result


def _audit_load(result: ProgramLoadResult, *, user, actor: str, file_name: str,
                sha256: str) -> None:
    username = user.get_username() if user is not None else actor
    audit_record(
        action=AuditAction.PROGRAM_LOADED, user=user, username=username,
        target=f"program file {file_name}".strip(),
        detail={"file": file_name, "sha256": sha256, "user": username,
                "counts": {kind: asdict(counts) for kind, counts in result.counts.items()}},
    )


def _write(plan: _Plan, writer: _Writer) -> ProgramLoadResult:
    result = ProgramLoadResult()
    try:
        result.counts["partners"], _ = _write_keyed(writer, Partner, "slug", plan.partners)
        result.counts["kpis"], _ = _write_keyed(writer, KPIDefinition, "code", plan.kpis)
        result.counts["agreements"], agreements = _write_agreements(writer, plan)
        kpi_codes = {k.kpi for a in plan.agreements for k in a.kpis} | {
            o.kpi for a in plan.agreements if a.objectives is not KEEP
            for o in a.objectives if o.kpi
        } | ({code for _, code in plan.kpi_templates} if plan.kpi_templates is not KEEP
             else set())
        kpis = KPIDefinition.objects.in_bulk(list(kpi_codes), field_name="code")
        result.counts["agreement_kpis"] = _write_agreement_kpis(writer, plan, agreements, kpis)
        result.counts["objectives"] = _write_objectives(writer, plan, agreements, kpis)
        result.counts["incentive_plans"] = _write_incentives(writer, plan, agreements)
        if plan.kpi_templates is not KEEP:
            result.counts["kpi_templates"] = _write_kpi_templates(
                writer, plan.kpi_templates, kpis)
        if plan.settings is not KEEP:
            result.counts["settings"] = _write_settings(writer, plan.settings)
    except ValidationError as error:
        # The file's checks mirror the models' rules; a row already in the database that
        # breaks one of them (written before the rule) is reported rather than crashing.
        raise ProgramError([f"the model refuses a row: {'; '.join(error.messages)}"]) from None
    return result
