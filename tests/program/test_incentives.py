"""The incentive plan page: create, edit, remove, validation, the formula and its example."""

from decimal import Decimal

import pytest
from django.urls import reverse

from dashboards.program.kpi_forms import IncentivePlanForm
from partnerships.models import AuditAction, AuditEvent, IncentivePlan, ProgramChange
from scoring.services import scoring_run_inline
from tests.conftest import write_observations

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
GOOD = {"base_amount": "1000", "currency": "eur", "baseline_score": "60",
        "multiplier_transactional": "1", "multiplier_growth": "1.25",
        "multiplier_strategic": "1.5"}


@pytest.fixture
def manager_client(client, host_manager):
    client.force_login(host_manager)
    return client


def plan_url(agreement) -> str:
    return reverse("program_incentive_plan", args=[agreement.code])


@pytest.mark.parametrize(("field", "value", "message"), [
    ("base_amount", "-5", "Must be 0 or more."),
    ("base_amount", "1.000,50", "Enter a number"),
    ("currency", "dollars", "three-letter currency code"),
    ("currency", "U1D", "three-letter currency code"),
    ("baseline_score", "121", "less than or equal to 120"),
    ("baseline_score", "-1", "greater than or equal to 0"),
    ("multiplier_growth", "-0.5", "Must be 0 or more."),
    ("multiplier_strategic", "many", "Enter a number"),
])
def test_plan_form_rules(field, value, message):
    form = IncentivePlanForm({**GOOD, field: value})
    assert not form.is_valid()
    assert message in " ".join(form.errors[field])


def test_defaults_are_the_domains():
    form = IncentivePlanForm(instance=IncentivePlan())
    assert form["baseline_score"].value() == 60
    assert [form[name].value() for name in ("multiplier_transactional", "multiplier_growth",
                                            "multiplier_strategic")] == [
        Decimal("1.0"), Decimal("1.25"), Decimal("1.5")]


def test_create_edit_remove_with_history(manager_client, host_manager, acme_agreement):
    page = manager_client.get(plan_url(acme_agreement)).text
    assert "no incentive plan" in page and 'value="60' in page
    assert manager_client.post(plan_url(acme_agreement), GOOD).status_code == 302
    plan = IncentivePlan.objects.get(agreement=acme_agreement)
    assert (plan.base_amount, plan.currency) == (Decimal("1000"), "EUR")
    assert manager_client.post(plan_url(acme_agreement),
                               {**GOOD, "baseline_score": "70"}).status_code == 302
    plan.refresh_from_db()
    assert plan.baseline_score == 70
    delete = reverse("program_incentive_plan_delete", args=[acme_agreement.code])
    assert manager_client.post(delete, {"confirm": "yes"}).status_code == 302
    assert not IncentivePlan.objects.exists()
    changes = ProgramChange.objects.filter(object_type="incentive plan", agreement=acme_agreement)
    assert sorted(changes.values_list("kind", flat=True)) == ["created", "deleted", "updated"]
    assert changes.get(kind="updated").fields == {"Baseline rolling score": ["60", "70"]}
    assert changes.get(kind="created").user == host_manager
    events = AuditEvent.objects.filter(action=AuditAction.PROGRAM_CHANGED)
    assert sorted(event.detail["change"] for event in events) == sorted(
        changes.values_list("pk", flat=True))


def test_page_states_the_formula_and_an_example_from_the_values(manager_client, acme_agreement):
    IncentivePlan.objects.create(agreement=acme_agreement, base_amount=Decimal("2000"),
                                 currency="USD", multiplier_strategic=Decimal("2"))
    text = manager_client.get(plan_url(acme_agreement)).text
    assert "base amount × the multiplier of the month" in text
    assert "2,000.00 USD × 2 × 90 ÷ 100" in text and "3,600.00 USD" in text
    assert "2,000.00 USD × 1.25 × 90 ÷ 100" in text and "2,250.00 USD" in text


def test_inline_validation_answers_the_panel_and_saves_nothing(manager_client, acme_agreement):
    response = manager_client.post(plan_url(acme_agreement) + "?validate=1",
                                   {"base_amount": "500", "baseline_score": "150"},
                                   headers=HTMX)
    assert response.status_code == 200
    assert "<html" not in response.text and "<input" not in response.text
    assert 'id="id_baseline_score_feedback"' in response.text
    assert "less than or equal to 120" in response.text
    assert "This field is required" not in response.text  # currency etc. not reached yet
    assert not IncentivePlan.objects.exists()


def test_the_example_follows_the_values_being_typed(manager_client, acme_agreement):
    response = manager_client.post(plan_url(acme_agreement) + "?validate=1",
                                   {**GOOD, "base_amount": "100"}, headers=HTMX)
    assert "100.00 EUR × 1.25 × 90 ÷ 100" in response.text
    assert not IncentivePlan.objects.exists()


def test_latest_scored_month_is_worked_through(manager_client, acme_agreement, kpis):
    IncentivePlan.objects.create(agreement=acme_agreement, base_amount=Decimal("1000"))
    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-01-10", 80)])
    scoring_run_inline()
    text = manager_client.get(plan_url(acme_agreement)).text
    assert "In 2025-01" in text
    assert "the rolling score is not defined yet" in text and "0.00 USD" in text


def test_partner_users_get_404(client, acme_viewer, acme_agreement):
    IncentivePlan.objects.create(agreement=acme_agreement, base_amount=Decimal("1000"))
    client.force_login(acme_viewer)
    assert client.get(plan_url(acme_agreement)).status_code == 404
    assert client.post(plan_url(acme_agreement), GOOD).status_code == 404
    delete = reverse("program_incentive_plan_delete", args=[acme_agreement.code])
    assert client.post(delete, {"confirm": "yes"}).status_code == 404
    assert IncentivePlan.objects.get().base_amount == Decimal("1000")
