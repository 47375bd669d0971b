import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from partnerships.models import (
    Agreement,
    AgreementKPI,
    IncentivePlan,
    KPIDefinition,
    KPITemplateItem,
    Objective,
    Partner,
    ProgramChange,
    ProgramSettings,
    StageTransition,
)
from partnerships.program import program_load, program_parse
from partnerships.program_export import program_export

pytestmark = pytest.mark.django_db

PROGRAM_MODELS = (Objective, IncentivePlan, AgreementKPI, KPITemplateItem, StageTransition,
                  Agreement, Partner, KPIDefinition, ProgramSettings, ProgramChange)


@pytest.fixture
def full_program(host_manager, acme_agreement, globex_agreement, kpis):
    """The cast's program with every part a program file holds."""
    ProgramSettings.objects.create(pk=1, tier_policy="threshold", strategic_threshold=80,
                                   growth_threshold=65.5, hysteresis=3)
    Partner.objects.filter(slug="acme").update(website="https://acme.example",
                                               industry="Manufacturing")
    KPIDefinition.objects.create(code="csat", name="Partner satisfaction", unit="points",
                                 category="relationship", aggregation="last", source="partner",
                                 value_type="number", minimum=0, maximum=10,
                                 tolerance_kind="absolute", tolerance=0.5,
                                 description="Asked every quarter.")
    KPIDefinition.objects.filter(code="defect_rate").update(tolerance=12.5)
    acme_agreement.owner = host_manager
    acme_agreement.title = "Joint campaign: 2025"
    acme_agreement.end_date = dt.date(2025, 12, 31)
    acme_agreement.partner_contacts = "Jane Roe, alliances lead\njane@acme.example"
    acme_agreement.attribution_method = "First registered opportunity wins."
    acme_agreement.save()
    AgreementKPI.objects.filter(agreement=acme_agreement, kpi__code="revenue").update(
        target=50000.5, weight=2)
    Objective.objects.create(agreement=acme_agreement, goal_type="revenue_growth",
                             success_metric="Partner-sourced revenue", kpi=kpis["revenue"],
                             target_value=60000, set_on=dt.date(2025, 1, 15),
                             deadline=dt.date(2025, 12, 31), priority="critical")
    Objective.objects.create(agreement=acme_agreement, goal_type="brand_building",
                             success_metric="Joint webinars held", target_value=4,
                             set_on=dt.date(2025, 1, 1), deadline=dt.date(2025, 6, 30))
    IncentivePlan.objects.create(agreement=acme_agreement, base_amount=Decimal("2500.50"),
                                 currency="EUR", baseline_score=65,
                                 multiplier_growth=Decimal("1.2"))
    KPITemplateItem.objects.create(agreement_type="co_marketing", kpi=kpis["revenue"],
                                   target=40000, floor=0, weight=1.5)
    Agreement.objects.filter(pk=globex_agreement.pk).update(stage="ended",
                                                            end_date=dt.date(2025, 9, 30))


def empty_the_program() -> None:
    for model in PROGRAM_MODELS:
        model.objects.all().delete()


def test_export_loaded_into_an_empty_program_exports_the_same_bytes(full_program):
    exported = program_export()
    empty_the_program()

    program_load(document=exported)

    assert program_export() == exported


def test_export_holds_every_part_of_the_program(full_program):
    document = program_parse(text=program_export())

    acme = document["agreements"][0]
    assert document["scoring"] == {"tier_policy": "threshold",
                                   "thresholds": {"strategic": 80, "growth": 65.5},
                                   "hysteresis": 3}
    assert [p["slug"] for p in document["partners"]] == ["acme", "globex"]
    assert [k["code"] for k in document["kpis"]] == ["csat", "defect_rate", "revenue"]
    assert [(k.get("tolerance_kind"), k.get("tolerance")) for k in document["kpis"]] == [
        ("absolute", 0.5), ("percent", 12.5), (None, None)]
    assert document["kpi_templates"] == [
        {"type": "co_marketing", "kpi": "revenue", "target": 40000, "floor": 0, "weight": 1.5}]
    assert (acme["owner"], acme["end"], acme["terms"]) == (
        "manager", "2025-12-31", {"attribution_method": "First registered opportunity wins."})
    assert acme["partner_contacts"] == "Jane Roe, alliances lead\njane@acme.example"
    assert acme["kpis"][1] == {"kpi": "revenue", "target": 50000.5, "floor": 0, "weight": 2}
    assert [o["deadline"] for o in acme["objectives"]] == ["2025-06-30", "2025-12-31"]
    assert acme["incentive"] == {
        "base_amount": 2500.5, "currency": "EUR", "baseline": 65,
        "multipliers": {"transactional": 1, "growth": 1.2, "strategic": 1.5}}
    assert document["agreements"][1]["incentive"] is None


def test_loading_the_export_into_its_own_program_writes_nothing(full_program):
    updated = {model: list(model.objects.order_by("pk").values_list("updated_at", flat=True))
               for model in (Partner, KPIDefinition, Agreement, Objective, IncentivePlan,
                             ProgramSettings)}

    result = program_load(document=program_export())

    assert not result.changed
    assert not ProgramChange.objects.exists()
    assert not StageTransition.objects.exists()
    assert updated == {
        model: list(model.objects.order_by("pk").values_list("updated_at", flat=True))
        for model in updated}


def test_export_of_an_empty_program_loads_back_to_the_same_bytes(db):
    exported = program_export()

    program_load(document=exported)

    assert program_parse(text=exported)["agreements"] == []
    assert program_export() == exported


def test_export_program_command_writes_the_file_the_loader_reads(full_program, tmp_path):
    path = tmp_path / "program.yaml"

    call_command("export_program", "--output", str(path), stderr=io.StringIO())
    stdout = io.StringIO()
    call_command("export_program", stdout=stdout)

    assert path.read_text(encoding="utf-8") == stdout.getvalue() == program_export()


def test_export_reads_as_the_documented_format(full_program):
    exported = program_export()

    assert exported.startswith("scoring:\n  tier_policy: threshold\n")
    assert "    partner_contacts: |-\n      Jane Roe, alliances lead\n" in exported
    assert "      - {kpi: revenue, target: 50000.5, floor: 0, weight: 2}\n" in exported
    assert "    title: 'Joint campaign: 2025'\n" in exported
