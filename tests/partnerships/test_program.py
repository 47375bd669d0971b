import copy
import datetime as dt
import importlib
import io
import math
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError

from partnerships.models import (
    Agreement,
    AgreementKPI,
    AuditEvent,
    ImportBatch,
    IncentivePlan,
    KPIDefinition,
    MetricObservation,
    Objective,
    Partner,
    ProgramSettings,
)
from partnerships.program import (
    ProgramError,
    program_load,
    program_parse,
    value_type_from_unit,
)
from tests.conftest import write_observations

pytestmark = pytest.mark.django_db

PROGRAMS = Path(__file__).parent / "programs"
EXAMPLE = (PROGRAMS / "example.yaml").read_text()
FULL = (PROGRAMS / "full.yaml").read_text()
ACME = "agreements[0] (ACME-CM-2025)"
GLOBEX = "agreements[1] (GLOBEX-REF-2025)"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The cast's users are created for most tests here; real password hashing is slow."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def full_document() -> dict:
    return program_parse(text=FULL)


def database_snapshot(*, audit: bool = True) -> dict[str, list[dict]]:
    """Every row of every table, with every column: equal snapshots mean nothing was written.
    Without `audit` the audit log is left out (every load records its event there)."""
    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for model in apps.get_models()
        if audit or model is not AuditEvent
    }


def counts(result) -> dict[str, tuple[int, int, int, int]]:
    return {
        kind: (c.created, c.updated, c.unchanged, c.deleted) for kind, c in result.counts.items()
    }


def test_example_of_domain_loads_with_the_values_of_the_file():
    result = program_load(document=EXAMPLE)

    assert counts(result)["agreement_kpis"] == (2, 0, 0, 0)
    assert Partner.objects.get().name == "Acme Corp"
    revenue = KPIDefinition.objects.get(code="revenue")
    assert (revenue.name, revenue.unit, revenue.category, revenue.aggregation, revenue.source) == (
        "Partner-sourced revenue", "USD", "financial", "sum", "host"
    )
    defect_rate = KPIDefinition.objects.get(code="defect_rate")
    assert (defect_rate.unit, defect_rate.category, defect_rate.aggregation) == (
        "%", "operational", "mean"
    )
    assert defect_rate.source == "partner"
    agreement = Agreement.objects.get()
    assert agreement.code == "ACME-CM-2025"
    assert agreement.partner.slug == "acme"
    assert (agreement.type, agreement.stage) == ("co_marketing", "active")
    assert (agreement.start_date, agreement.end_date) == (dt.date(2025, 1, 1), None)
    assert agreement.category_weights == {
        "financial": 30, "strategic": 25, "operational": 25, "relationship": 20
    }
    assert sorted(
        AgreementKPI.objects.values_list("kpi__code", "target", "floor", "weight")
    ) == [("defect_rate", 2.0, 10.0, 1.0), ("revenue", 50000.0, 0.0, 2.0)]
    settings = ProgramSettings.objects.get(pk=1)
    assert (settings.tier_policy, settings.strategic_threshold, settings.growth_threshold) == (
        "percentile", 85.0, 70.0
    )
    assert settings.hysteresis == 2


def test_every_optional_key_is_written(host_manager):
    program_load(document=FULL)

    acme = Partner.objects.get(slug="acme")
    assert (acme.website, acme.industry, acme.status) == (
        "https://acme.example", "Manufacturing", "active"
    )
    assert Partner.objects.get(slug="globex").status == "prospect"
    assert KPIDefinition.objects.get(code="revenue").description.startswith("Closed-won revenue")
    agreement = Agreement.objects.get(code="ACME-CM-2025")
    assert agreement.title == "Joint campaign 2025"
    assert agreement.end_date == dt.date(2025, 12, 31)
    assert agreement.owner == host_manager
    assert agreement.partner_contacts == "Jane Roe, alliances lead, jane@acme.example"
    assert agreement.review_cadence == "monthly"
    assert agreement.category_weights == {
        "financial": 40, "strategic": 30, "operational": 20, "relationship": 10
    }
    assert agreement.value_financial == "10 % revenue share on partner-sourced deals."
    assert agreement.attribution_method == "First registered opportunity wins."
    assert agreement.exit_criteria == "Three months below 50 trigger a review."
    assert agreement.shared_costs == ""
    assert AgreementKPI.objects.get(agreement=agreement, kpi__code="csat").weight == 1.5
    objectives = list(
        agreement.objectives.order_by("deadline").values_list(
            "goal_type", "success_metric", "kpi__code", "target_value", "deadline", "priority"
        )
    )
    assert objectives == [
        ("brand_building", "Joint webinars held", None, 4.0, dt.date(2025, 6, 30), "medium"),
        ("revenue_growth", "Partner-sourced revenue", "revenue", 600000.0,
         dt.date(2025, 12, 31), "critical"),
    ]
    plan = agreement.incentive_plan
    assert (plan.base_amount, plan.currency, plan.baseline_score) == (
        Decimal("2500.50"), "EUR", 65.0
    )
    assert (plan.multiplier_transactional, plan.multiplier_growth, plan.multiplier_strategic) == (
        Decimal("1"), Decimal("1.2"), Decimal("1.75")
    )
    globex = Agreement.objects.get(code="GLOBEX-REF-2025")
    assert (globex.title, globex.owner, globex.review_cadence) == ("", None, "quarterly")
    assert globex.category_weights == {
        "financial": 30, "strategic": 25, "operational": 25, "relationship": 20
    }
    assert not hasattr(globex, "incentive_plan")
    settings = ProgramSettings.objects.get(pk=1)
    assert (settings.tier_policy, settings.strategic_threshold, settings.growth_threshold) == (
        "threshold", 80.0, 65.5
    )
    assert settings.hysteresis == 3


def test_second_load_of_same_file_changes_nothing(host_manager):
    program_load(document=FULL)
    before = database_snapshot(audit=False)

    result = program_load(document=FULL)

    assert database_snapshot(audit=False) == before  # updated_at included
    assert AuditEvent.objects.filter(action="program_loaded").count() == 2
    assert not result.changed
    assert counts(result) == {
        "partners": (0, 0, 2, 0),
        "kpis": (0, 0, 4, 0),
        "agreements": (0, 0, 2, 0),
        "agreement_kpis": (0, 0, 5, 0),
        "objectives": (0, 0, 2, 0),
        "incentive_plans": (0, 0, 1, 0),
        "kpi_templates": (0, 0, 0, 0),
        "settings": (0, 0, 1, 0),
    }


def test_changed_target_updates_only_that_agreement_kpi(host_manager):
    program_load(document=FULL)
    before = database_snapshot()
    document = full_document()
    document["agreements"][0]["kpis"][0]["target"] = 60000

    result = program_load(document=document)

    assert counts(result)["agreement_kpis"] == (0, 1, 4, 0)
    assert counts(result)["agreements"] == (0, 0, 2, 0)
    assert AgreementKPI.objects.get(kpi__code="revenue", agreement__code="ACME-CM-2025").target \
        == 60000.0
    after = database_snapshot()
    assert after["partnerships.Agreement"] == before["partnerships.Agreement"]
    assert after["partnerships.Partner"] == before["partnerships.Partner"]


def test_changed_partner_name_moves_only_that_partners_updated_at(host_manager):
    program_load(document=FULL)
    before = {p.slug: p.updated_at for p in Partner.objects.all()}
    document = full_document()
    document["partners"][1]["name"] = "Globex Corporation"

    result = program_load(document=document)

    assert counts(result)["partners"] == (0, 1, 1, 0)
    after = {p.slug: p for p in Partner.objects.all()}
    assert after["globex"].name == "Globex Corporation"
    assert after["globex"].updated_at > before["globex"]
    assert after["acme"].updated_at == before["acme"]


def test_omitted_optional_key_resets_it_to_its_default(host_manager):
    program_load(document=FULL)
    document = full_document()
    for key in ("title", "owner", "weights", "review_cadence", "terms", "end"):
        del document["agreements"][0][key]

    program_load(document=document)

    agreement = Agreement.objects.get(code="ACME-CM-2025")
    assert (agreement.title, agreement.owner, agreement.review_cadence) == ("", None, "quarterly")
    assert agreement.end_date is None
    assert agreement.weight_financial == 30
    assert agreement.value_financial == ""


def test_agreement_kpi_left_out_of_the_file_is_removed(host_manager):
    program_load(document=FULL)
    document = full_document()
    del document["agreements"][0]["kpis"][3]

    result = program_load(document=document)

    assert counts(result)["agreement_kpis"] == (0, 0, 4, 1)
    assert not AgreementKPI.objects.filter(kpi__code="csat").exists()
    assert KPIDefinition.objects.filter(code="csat").exists()


def test_agreements_partners_and_kpis_left_out_of_the_file_stay(host_manager):
    program_load(document=FULL)
    document = full_document()
    del document["agreements"][1], document["partners"][1], document["kpis"][3]
    del document["agreements"][0]["kpis"][3]

    program_load(document=document)

    assert Agreement.objects.filter(code="GLOBEX-REF-2025").exists()
    assert Partner.objects.filter(slug="globex").exists()
    assert KPIDefinition.objects.filter(code="csat").exists()


def test_file_may_refer_to_partners_and_kpis_already_in_the_database(acme, kpis):
    document = {
        "partners": [],
        "kpis": [],
        "agreements": [{
            "code": "ACME-RS-2026", "partner": "acme", "type": "reseller", "stage": "pilot",
            "start": "2026-01-01", "kpis": [{"kpi": "revenue", "target": 10, "floor": 0,
                                               "weight": 1}],
        }],
    }

    program_load(document=document)

    assert Agreement.objects.get(code="ACME-RS-2026").partner == acme


def test_objectives_are_replaced_as_a_set_only_when_given(host_manager):
    program_load(document=FULL)
    kept = Objective.objects.get(success_metric="Partner-sourced revenue")
    document = full_document()
    document["agreements"][0]["objectives"][1]["target_value"] = 6

    result = program_load(document=document)

    assert counts(result)["objectives"] == (1, 0, 1, 1)
    assert Objective.objects.get(success_metric="Partner-sourced revenue") == kept
    assert Objective.objects.get(success_metric="Joint webinars held").target_value == 6.0

    del document["agreements"][0]["objectives"]
    assert counts(program_load(document=document))["objectives"] == (0, 0, 0, 0)
    assert Objective.objects.count() == 2

    document["agreements"][0]["objectives"] = []
    assert counts(program_load(document=document))["objectives"] == (0, 0, 0, 2)
    assert not Objective.objects.exists()


def test_incentive_plan_is_kept_when_left_out_and_removed_when_null(host_manager):
    program_load(document=FULL)
    document = full_document()
    del document["agreements"][0]["incentive"]
    assert counts(program_load(document=document))["incentive_plans"] == (0, 0, 0, 0)
    assert IncentivePlan.objects.exists()

    document["agreements"][0]["incentive"] = {"base_amount": 100}
    assert counts(program_load(document=document))["incentive_plans"] == (0, 1, 0, 0)
    plan = IncentivePlan.objects.get()
    assert (plan.base_amount, plan.currency, plan.baseline_score) == (Decimal(100), "USD", 60.0)
    assert plan.multiplier_strategic == Decimal("1.5")

    document["agreements"][0]["incentive"] = None
    assert counts(program_load(document=document))["incentive_plans"] == (0, 0, 0, 1)
    assert not IncentivePlan.objects.exists()


def test_file_without_scoring_leaves_program_settings_alone(host_manager):
    program_load(document=FULL)
    document = full_document()
    del document["scoring"]

    result = program_load(document=document)

    assert counts(result)["settings"] == (0, 0, 0, 0)
    assert ProgramSettings.objects.get().tier_policy == "threshold"


def test_yaml_and_json_of_the_same_program_load_the_same_rows():
    program_load(document=EXAMPLE)
    from_yaml = database_snapshot(audit=False)
    document = program_parse(text=(PROGRAMS / "example.json").read_text(), json_format=True)

    result = program_load(document=document)

    assert not result.changed
    assert database_snapshot(audit=False) == from_yaml


def test_host_staff_may_load_a_program(host_manager):
    program_load(document=EXAMPLE, user=host_manager)

    assert Agreement.objects.filter(code="ACME-CM-2025").exists()


def test_partner_user_may_not_load_a_program(acme_viewer):
    before = database_snapshot()

    with pytest.raises(ProgramError) as error:
        program_load(document=EXAMPLE, user=acme_viewer)

    assert error.value.problems == [
        "user 'acme-viewer': only host staff may load a program file"
    ]
    assert database_snapshot() == before


# --------------------------------------------------------------------------- problems


def set_key(path: tuple, value):
    """A change to the full document: the value at `path` (keys and indexes) becomes `value`."""
    def change(document):
        target = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return change


def delete_key(path: tuple):
    def change(document):
        target = document
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
    return change


def append(path: tuple, value):
    def change(document):
        target = document
        for step in path:
            target = target[step]
        target.append(copy.deepcopy(value))
    return change


A0, A1 = ("agreements", 0), ("agreements", 1)
A1_KPI = (*A1, "kpis", 0)
NEW_PARTNER = {"slug": "initech", "name": "Initech"}
NEW_AGREEMENT = {
    "code": "INITECH-TI-2025", "partner": "initech", "type": "technology_integration",
    "stage": "prospect", "start": "2025-05-01",
    "kpis": [{"kpi": "revenue", "target": 100, "floor": 0, "weight": 1}],
}

PROBLEMS = {
    # The document and its sections
    "unknown top-level key": (
        set_key(("colour",), "red"),
        "colour: unknown key (allowed: partners, kpis, agreements, scoring, kpi_templates)",
    ),
    "misspelt key with a suggestion": (
        set_key(("partners", 1, "webiste"), "https://globex.example"),
        "partners[1] (globex).webiste: unknown key (did you mean 'website'?)",
    ),
    "missing top-level section": (delete_key(("kpis",)), "kpis: missing required key"),
    "section that is not a list": (
        set_key(("partners",), {"slug": "acme"}),
        "partners: must be a list (write [] for none), got a mapping",
    ),
    "entry that is not a mapping": (
        append(("partners",), "initech"), "partners[2]: must be a mapping, got text 'initech'"
    ),
    # Required keys and types
    "missing partner name": (
        delete_key(("partners", 1, "name")), "partners[1] (globex).name: missing required key"
    ),
    "null partner name": (
        set_key(("partners", 1, "name"), None), "partners[1] (globex).name: is required, got null"
    ),
    "missing KPI unit": (
        delete_key(("kpis", 3, "unit")), "kpis[3] (csat).unit: missing required key"
    ),
    "missing agreement start": (
        delete_key((*A1, "start")), f"{GLOBEX}.start: missing required key"
    ),
    "missing agreement KPI floor": (
        delete_key((*A1_KPI, "floor")), f"{GLOBEX}.kpis[0].floor: missing required key"
    ),
    "name that is not text": (
        set_key(("partners", 1, "name"), 2025),
        "partners[1] (globex).name: must be text, got number 2025",
    ),
    "slug with spaces": (
        set_key(("partners", 1, "slug"), "globex corp"),
        "partners[1] (globex corp).slug: slug must be letters, digits, '-' and '_' only, "
        "got 'globex corp'",
    ),
    "invalid website": (
        set_key(("partners", 1, "website"), "globex dot com"),
        "partners[1] (globex).website: not a valid URL: 'globex dot com'",
    ),
    "target that is text": (
        set_key((*A1_KPI, "target"), "20"),
        f"{GLOBEX}.kpis[0].target: must be a number, got text '20'",
    ),
    "target that is a boolean": (
        set_key((*A1_KPI, "target"), True),
        f"{GLOBEX}.kpis[0].target: must be a number, got boolean true",
    ),
    "target that is NaN": (
        set_key((*A1_KPI, "target"), math.nan),
        f"{GLOBEX}.kpis[0].target: must be a finite number, got nan",
    ),
    "floor that is infinite": (
        set_key((*A1_KPI, "floor"), -math.inf),
        f"{GLOBEX}.kpis[0].floor: must be a finite number, got -inf",
    ),
    "agreement KPIs that are not a list": (
        set_key((*A1, "kpis"), None),
        f"{GLOBEX}.kpis: must be a list (write [] for none), got null",
    ),
    # References
    "unknown partner": (
        set_key((*A1, "partner"), "umbrella"),
        f"{GLOBEX}.partner: unknown partner 'umbrella' (not in this file nor in the database)",
    ),
    "unknown KPI of an agreement": (
        set_key((*A1_KPI, "kpi"), "churn"),
        f"{GLOBEX}.kpis[0].kpi: unknown KPI 'churn' (not in this file nor in the database)",
    ),
    "unknown KPI of an objective": (
        set_key((*A0, "objectives", 0, "kpi"), "churn"),
        f"{ACME}.objectives[0].kpi: unknown KPI 'churn' (not in this file nor in the database)",
    ),
    "unknown owner": (
        set_key((*A1, "owner"), "nobody"), f"{GLOBEX}.owner: no user 'nobody'"
    ),
    "partner-side owner": (
        set_key((*A1, "owner"), "acme-viewer"),
        f"{GLOBEX}.owner: user 'acme-viewer' is on the partner side; the owner is host staff",
    ),
    # Agreement KPI rules
    "floor equal to target": (
        set_key((*A1_KPI, "floor"), 20), f"{GLOBEX}.kpis[0].floor: floor equals target (20)"
    ),
    "weight of zero": (
        set_key((*A1_KPI, "weight"), 0), f"{GLOBEX}.kpis[0].weight: must be greater than 0, got 0"
    ),
    "negative weight": (
        set_key((*A1_KPI, "weight"), -1.5),
        f"{GLOBEX}.kpis[0].weight: must be greater than 0, got -1.5",
    ),
    "same KPI twice in one agreement": (
        append((*A1, "kpis"), {"kpi": "qualified_leads", "target": 30, "floor": 0, "weight": 1}),
        f"{GLOBEX}.kpis[1].kpi: duplicate KPI 'qualified_leads' in this agreement "
        "(first at kpis[0])",
    ),
    # Category weights
    "weights without all four categories": (
        set_key((*A1, "weights"), {"financial": 50, "strategic": 25, "operational": 25}),
        f"{GLOBEX}.weights.relationship: missing required key",
    ),
    "weights not summing to 100": (
        set_key((*A1, "weights"),
                {"financial": 30, "strategic": 25, "operational": 25, "relationship": 10}),
        f"{GLOBEX}.weights: must sum to 100, got 90",
    ),
    "negative weight of a category": (
        set_key((*A1, "weights"),
                {"financial": 110, "strategic": -10, "operational": 0, "relationship": 0}),
        f"{GLOBEX}.weights.strategic: must not be negative, got -10",
    ),
    "fractional weight of a category": (
        set_key((*A1, "weights"),
                {"financial": 29.5, "strategic": 25.5, "operational": 25, "relationship": 20}),
        f"{GLOBEX}.weights.financial: must be a whole number, got 29.5",
    ),
    "unknown category in weights": (
        set_key((*A1, "weights", ), {"financial": 30, "strategic": 25, "operational": 25,
                                     "relationship": 20, "legal": 0}),
        f"{GLOBEX}.weights.legal: unknown key "
        "(allowed: financial, strategic, operational, relationship)",
    ),
    # Choices
    "unknown stage": (
        set_key((*A1, "stage"), "live"),
        f"{GLOBEX}.stage: unknown stage 'live' "
        "(expected one of: prospect, pilot, active, under_review, exiting, ended)",
    ),
    "unknown type": (
        set_key((*A1, "type"), "affiliate"),
        f"{GLOBEX}.type: unknown type 'affiliate' (expected one of: technology_integration, "
        "co_marketing, strategic_investment, referral, reseller)",
    ),
    "unknown category": (
        set_key(("kpis", 3, "category"), "customer"),
        "kpis[3] (csat).category: unknown category 'customer' "
        "(expected one of: financial, strategic, operational, relationship)",
    ),
    "unknown aggregation": (
        set_key(("kpis", 3, "aggregation"), "median"),
        "kpis[3] (csat).aggregation: unknown aggregation 'median' "
        "(expected one of: sum, mean, last)",
    ),
    "unknown source": (
        set_key(("kpis", 3, "source"), "both"),
        "kpis[3] (csat).source: unknown source 'both' (expected one of: host, partner)",
    ),
    "unknown tier policy": (
        set_key(("scoring", "tier_policy"), "ranking"),
        "scoring.tier_policy: unknown tier policy 'ranking' "
        "(expected one of: percentile, threshold)",
    ),
    "unknown partner status": (
        set_key(("partners", 1, "status"), "paused"),
        "partners[1] (globex).status: unknown status 'paused' "
        "(expected one of: prospect, active, inactive)",
    ),
    "unknown review cadence": (
        set_key((*A1, "review_cadence"), "weekly"),
        f"{GLOBEX}.review_cadence: unknown review cadence 'weekly' "
        "(expected one of: biweekly, monthly, quarterly, semiannual, annual)",
    ),
    "unknown goal type": (
        set_key((*A0, "objectives", 1, "goal_type"), "fun"),
        f"{ACME}.objectives[1].goal_type: unknown goal type 'fun' (expected one of: "
        "revenue_growth, market_access, cost_reduction, brand_building, capability)",
    ),
    # Duplicates within the file
    "duplicate partner slug": (
        append(("partners",), {"slug": "acme", "name": "Acme again"}),
        "partners[2] (acme).slug: duplicate slug 'acme' (first at partners[0])",
    ),
    "duplicate KPI code": (
        append(("kpis",), {"code": "csat", "name": "CSAT", "unit": "points",
                           "category": "relationship", "aggregation": "last",
                           "source": "host"}),
        "kpis[4] (csat).code: duplicate code 'csat' (first at kpis[3])",
    ),
    "duplicate agreement code": (
        append(("agreements",), {**NEW_AGREEMENT, "code": "ACME-CM-2025", "partner": "acme"}),
        "agreements[2] (ACME-CM-2025).code: duplicate code 'ACME-CM-2025' "
        "(first at agreements[0])",
    ),
    # Dates
    "date that is not ISO": (
        set_key((*A1, "start"), "01/03/2025"),
        f"{GLOBEX}.start: must be a date as YYYY-MM-DD, got text '01/03/2025'",
    ),
    "date without leading zeros": (
        set_key((*A1, "start"), "2025-3-1"),
        f"{GLOBEX}.start: must be a date as YYYY-MM-DD, got text '2025-3-1'",
    ),
    "date that does not exist": (
        set_key((*A1, "start"), "2025-02-30"), f"{GLOBEX}.start: no such date: '2025-02-30'"
    ),
    "date with a time": (
        set_key((*A1, "start"), dt.datetime(2025, 3, 1, 9, 30)),
        f"{GLOBEX}.start: must be a date as YYYY-MM-DD, got date and time 2025-03-01T09:30:00",
    ),
    "objective deadline that is a number": (
        set_key((*A0, "objectives", 1, "deadline"), 2025),
        f"{ACME}.objectives[1].deadline: must be a date as YYYY-MM-DD, got number 2025",
    ),
    "end before start": (
        set_key((*A1, "end"), dt.date(2025, 2, 28)),
        f"{GLOBEX}.end: end 2025-02-28 is before start 2025-03-01",
    ),
    # Scoring
    "hysteresis below 1": (
        set_key(("scoring", "hysteresis"), 0),
        "scoring.hysteresis: must be a whole number of months from 1 to 32767, got 0",
    ),
    "hysteresis that is not whole": (
        set_key(("scoring", "hysteresis"), 1.5),
        "scoring.hysteresis: must be a whole number, got 1.5",
    ),
    "hysteresis that is text": (
        set_key(("scoring", "hysteresis"), "2"),
        "scoring.hysteresis: must be a number, got text '2'",
    ),
    "growth threshold above strategic": (
        set_key(("scoring", "thresholds"), {"strategic": 70, "growth": 85}),
        "scoring.thresholds: growth (85) is above strategic (70)",
    ),
    "scoring that is not a mapping": (
        set_key(("scoring",), "percentile"), "scoring: must be a mapping, got text 'percentile'"
    ),
    # Terms, objectives and incentive plans
    "unknown term": (
        set_key((*A0, "terms", "warranty"), "Two years."),
        f"{ACME}.terms.warranty: unknown key (allowed: value_financial, value_strategic, "
        "value_operational, attribution_method, qualified_lead_definition, "
        "underperformance_consequences, overperformance_rewards, customer_relationship_owner, "
        "support_responsibilities, marketing_materials, messaging_approval, shared_costs, "
        "dispute_resolution, exit_criteria)",
    ),
    "objectives that are null": (
        set_key((*A0, "objectives"), None),
        f"{ACME}.objectives: must be a list (write [] to remove them all), got null",
    ),
    "negative incentive base amount": (
        set_key((*A0, "incentive", "base_amount"), -1),
        f"{ACME}.incentive.base_amount: must not be negative, got -1",
    ),
    "base amount in fractions of a cent": (
        set_key((*A0, "incentive", "base_amount"), 10.005),
        f"{ACME}.incentive.base_amount: at most 2 decimal places, got 10.005",
    ),
    "bad currency": (
        set_key((*A0, "incentive", "currency"), "euro"),
        f"{ACME}.incentive.currency: must be a three-letter currency code such as USD, "
        "got 'euro'",
    ),
    "baseline above 120": (
        set_key((*A0, "incentive", "baseline"), 130),
        f"{ACME}.incentive.baseline: must be between 0 and 120, got 130",
    ),
    "negative multiplier": (
        set_key((*A0, "incentive", "multipliers", "growth"), -1),
        f"{ACME}.incentive.multipliers.growth: must not be negative, got -1",
    ),
    # A bad entry after good new ones: nothing of the good ones is written either
    "bad last agreement after new good entries": (
        lambda document: (
            append(("partners",), NEW_PARTNER)(document),
            append(("agreements",), NEW_AGREEMENT)(document),
            append(("agreements",), {**NEW_AGREEMENT, "code": "INITECH-2", "stage": "signed"})(
                document
            ),
        ),
        "agreements[3] (INITECH-2).stage: unknown stage 'signed' "
        "(expected one of: prospect, pilot, active, under_review, exiting, ended)",
    ),
}


@pytest.mark.parametrize(
    ("change", "problem"), list(PROBLEMS.values()), ids=list(PROBLEMS)
)
def test_bad_program_names_entry_and_field_and_writes_nothing(
    change, problem, host_manager, acme_viewer
):
    program_load(document=EXAMPLE)  # acme, revenue and defect_rate exist before the bad load
    document = full_document()
    change(document)
    before = database_snapshot()

    with pytest.raises(ProgramError) as error:
        program_load(document=document)

    assert problem in error.value.problems, error.value.problems
    assert database_snapshot() == before


def test_every_problem_is_reported_not_only_the_first(host_manager):
    document = full_document()
    document["partners"][0]["status"] = "gone"
    document["kpis"][1]["aggregation"] = "max"
    document["agreements"][0]["kpis"][0]["floor"] = 50000
    document["agreements"][1]["partner"] = "umbrella"

    with pytest.raises(ProgramError) as error:
        program_load(document=document)

    assert len(error.value.problems) == 4
    assert str(error.value).count("\n") == 3
    assert Partner.objects.count() == 0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("partners: [\n  {slug: acme\n", "line 3, column 1: YAML syntax error:"),
        ("- acme\n- globex\n", "document: must be a mapping with partners, kpis and agreements"),
        ("", "document: empty"),
        ("partners: []\npartners: []\n", "line 2, column 1: YAML syntax error: found duplicate"),
    ],
    ids=["syntax error", "list", "empty", "duplicate key"],
)
def test_unreadable_yaml_is_reported_with_its_line(text, problem):
    with pytest.raises(ProgramError) as error:
        program_load(document=text)

    assert error.value.problems[0].startswith(problem), error.value.problems


def test_yaml_dates_must_be_written_as_iso_dates(host_manager):
    text = FULL.replace("start: 2025-03-01", "start: 2025-3-1")

    with pytest.raises(ProgramError) as error:
        program_load(document=text)

    assert error.value.problems == [
        f"{GLOBEX}.start: must be a date as YYYY-MM-DD, got text '2025-3-1'"
    ]


def test_yaml_nan_is_not_a_target(host_manager):
    text = FULL.replace("target: 20, floor: 0", "target: .nan, floor: 0")

    with pytest.raises(ProgramError) as error:
        program_load(document=text)

    assert error.value.problems == [f"{GLOBEX}.kpis[0].target: must be a finite number, got nan"]


def test_json_syntax_error_is_reported_with_its_line():
    with pytest.raises(ProgramError) as error:
        program_parse(text='{"partners": [\n  {"slug": "acme",}\n]}', json_format=True)

    assert error.value.problems[0].startswith("line 2, column 18: JSON syntax error")


def test_json_object_with_a_key_twice_is_refused():
    with pytest.raises(ProgramError) as error:
        program_parse(text='{"partners": [], "partners": []}', json_format=True)

    assert error.value.problems == [
        "syntax error: duplicate key 'partners' in one JSON object"
    ]


def test_yaml_reads_exponents_as_numbers_like_json():
    program_load(document=EXAMPLE.replace("target: 50000", "target: 5e4"))

    assert AgreementKPI.objects.get(kpi__code="revenue").target == 50000.0


# ---------------------------------------------------------------------------- command


def run_import(path: Path) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("import_program", str(path), stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def test_command_prints_counts_per_kind():
    stdout, _ = run_import(PROGRAMS / "example.yaml")

    assert "partners:        1 created, 0 updated, 0 unchanged" in stdout
    assert "agreement_kpis:  2 created, 0 updated, 0 unchanged, 0 deleted" in stdout
    assert Agreement.objects.filter(code="ACME-CM-2025").exists()


def test_command_run_twice_reports_no_changes():
    run_import(PROGRAMS / "example.yaml")

    stdout, _ = run_import(PROGRAMS / "example.yaml")

    assert "no changes" in stdout
    assert "kpis:            0 created, 0 updated, 2 unchanged" in stdout


def test_command_reads_json_files():
    stdout, _ = run_import(PROGRAMS / "example.json")

    assert "kpis:            2 created" in stdout
    assert AgreementKPI.objects.get(kpi__code="revenue").target == 50000.0


def test_command_prints_every_problem_and_fails(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        EXAMPLE.replace("floor: 0", "floor: 50000").replace("stage: active", "stage: live")
    )
    stderr = io.StringIO()

    with pytest.raises(CommandError) as error:
        call_command("import_program", str(path), stdout=io.StringIO(), stderr=stderr)

    assert error.value.returncode == 1
    assert str(error.value) == f"{path}: 2 problems; nothing was loaded"
    assert f"{path}: agreements[0] (ACME-CM-2025).kpis[0].floor: floor equals target (50000)" \
        in stderr.getvalue()
    assert "agreements[0] (ACME-CM-2025).stage: unknown stage 'live'" in stderr.getvalue()
    assert not Partner.objects.exists()


def test_command_refuses_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_program", str(tmp_path / "missing.yaml"))


def test_command_refuses_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("partners:\n  - {slug: acme, name: Société}\n".encode("latin-1"))

    with pytest.raises(CommandError, match="not UTF-8 text"):
        call_command("import_program", str(path))


def test_command_accepts_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + EXAMPLE.encode())

    run_import(path)

    assert Partner.objects.filter(slug="acme").exists()


def test_example_of_the_docs_loads_and_prints_the_documented_summary(host_manager, tmp_path):
    docs = (Path(__file__).parents[2] / "docs" / "program-file.md").read_text()
    example = docs.split("## Example", 1)[1]
    program = example.split("```yaml\n", 1)[1].split("```", 1)[0]
    summary = example.split("prints:\n\n```\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "program.yaml"
    path.write_text(program)

    stdout, _ = run_import(path)

    assert stdout.replace(str(path), "program.yaml") == summary


def test_a_load_moves_the_change_counter_on_though_it_writes_in_bulk(host_manager):
    """Agreements are upserted without per-row signals: the load itself tells the pages that
    keep figures of the program (partnerships/changes.py)."""
    from partnerships.changes import program_version

    before = program_version()
    program_load(document=FULL)
    after = program_version()
    assert after > before
    with pytest.raises(ProgramError):
        program_load(document="partners: 3")
    assert program_version() == after  # nothing written, nothing moved


# ----------------------------------------------------------------- allowed values of KPIs


def kpi_values(code: str) -> tuple:
    kpi = KPIDefinition.objects.get(code=code)
    return kpi.value_type, kpi.minimum, kpi.maximum


def test_kpis_without_a_type_of_value_get_the_one_their_unit_implies(host_manager):
    program_load(document=FULL)

    assert kpi_values("revenue") == ("money", None, None)
    assert kpi_values("defect_rate") == ("percentage", 0.0, 100.0)
    assert kpi_values("qualified_leads") == ("count", None, None)
    assert kpi_values("csat") == ("number", None, None)


def test_kpi_type_and_range_given_in_the_file_are_written_once(host_manager):
    document = full_document()
    document["kpis"][1].update(value_type="percentage", minimum=0, maximum=25)
    document["kpis"][2].update(value_type="count", maximum=500)
    document["kpis"][3].update(value_type="number", minimum=-100, maximum=100)
    document["kpis"][0].update(value_type="number")
    program_load(document=document)

    assert kpi_values("defect_rate") == ("percentage", 0.0, 25.0)
    assert kpi_values("qualified_leads") == ("count", None, 500.0)
    assert kpi_values("csat") == ("number", -100.0, 100.0)
    assert kpi_values("revenue") == ("number", None, None)
    assert counts(program_load(document=document))["kpis"] == (0, 0, 4, 0)


def test_kpi_range_left_out_of_the_file_is_reset_like_any_optional_key(host_manager):
    document = full_document()
    document["kpis"][3].update(minimum=0, maximum=10)
    program_load(document=document)
    result = program_load(document=FULL)

    assert counts(result)["kpis"] == (0, 1, 3, 0)
    assert kpi_values("csat") == ("number", None, None)


K1 = "kpis[1] (defect_rate)"
K2 = "kpis[2] (qualified_leads)"


@pytest.mark.parametrize(("values", "problem"), [
    ({"minimum": 10, "maximum": 5}, f"{K1}.maximum: the maximum (5) is below the minimum (10)"),
    ({"value_type": "ratio"}, f"{K1}.value_type: unknown type of value 'ratio' (expected one "
                              "of: number, count, percentage, money)"),
    ({"minimum": "0"}, f"{K1}.minimum: must be a number, got text '0'"),
    ({"maximum": 1e13}, f"{K1}.maximum: must be a number between -1,000,000,000,000 and "
                        "1,000,000,000,000, the magnitude any observation may have"),
    ({"maximum": math.inf}, f"{K1}.maximum: must be a finite number, got inf"),
], ids=["max below min", "unknown type", "text bound", "beyond magnitude", "infinite"])
def test_bad_kpi_ranges_are_problems_and_nothing_is_written(values, problem, host_manager):
    document = full_document()
    document["kpis"][1].update(values)

    with pytest.raises(ProgramError) as error:
        program_load(document=document)

    assert error.value.problems == [problem]
    assert not KPIDefinition.objects.exists()


def test_a_count_may_not_have_a_negative_bound(host_manager):
    document = full_document()
    document["kpis"][2].update(minimum=-1)

    with pytest.raises(ProgramError) as error:
        program_load(document=document)

    assert error.value.problems == [
        f"{K2}.minimum: a count is never negative: the bound must be 0 or more"
    ]


def test_a_percentage_declared_on_another_unit_gets_0_to_100(host_manager):
    document = full_document()
    document["kpis"][3].update(value_type="percentage")
    program_load(document=document)

    assert kpi_values("csat") == ("percentage", 0.0, 100.0)


def test_migration_types_existing_kpis_from_their_unit_and_recorded_values(acme_agreement,
                                                                            kpis):
    migration = importlib.import_module("partnerships.migrations.0011_kpi_allowed_values")
    growth = KPIDefinition.objects.create(code="growth", name="Growth", unit="%",
                                          category="financial", aggregation="mean",
                                          source="host")
    leads = KPIDefinition.objects.create(code="leads", name="Leads", unit="leads",
                                         category="strategic", aggregation="sum", source="host")
    halves = KPIDefinition.objects.create(code="halves", name="Half deals", unit="deals",
                                          category="strategic", aggregation="sum",
                                          source="host")
    for kpi in (growth, leads, halves):
        AgreementKPI.objects.create(agreement=acme_agreement, kpi=kpi, target=10, floor=1)
    write_observations([(acme_agreement, growth, "host", "2025-01-10", 140.4),
                        (acme_agreement, growth, "host", "2025-01-11", -12.5),
                        (acme_agreement, leads, "host", "2025-01-10", 12),
                        (acme_agreement, halves, "host", "2025-01-10", 2.5),
                        (acme_agreement, kpis["defect_rate"], "partner", "2025-01-10", 3)])
    # An absurd value of an older import does not widen the range.
    batch = ImportBatch.objects.create(source="command", side="host", status="succeeded")
    MetricObservation.objects.create(agreement=acme_agreement, kpi=growth, side="host",
                                     date=dt.date(2025, 1, 12), value=1e300, batch=batch,
                                     recorded_at=batch.created_at)
    KPIDefinition.objects.update(value_type="number", minimum=None, maximum=None)

    migration.kpis_typed_from_unit(apps, None)

    assert kpi_values("revenue") == ("money", None, None)
    assert kpi_values("defect_rate") == ("percentage", 0.0, 100.0)
    assert kpi_values("growth") == ("percentage", -13.0, 141.0)
    assert kpi_values("leads") == ("count", None, None)
    assert kpi_values("halves") == ("number", None, None)


@pytest.mark.parametrize("unit", ["%", "percent", "count", "#", "leads", "USD", "eur", "€",
                                  "days", "points", "NPS", ""])
def test_the_migration_and_the_program_file_imply_the_same_type(unit):
    migration = importlib.import_module("partnerships.migrations.0011_kpi_allowed_values")
    assert migration._from_unit(unit) == value_type_from_unit(unit)
