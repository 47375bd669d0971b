"""A service's refusal lands on the form that was sent: nothing typed is lost."""

import pytest
from django.core.exceptions import ValidationError

from dashboards.http import refusal_into_form
from dashboards.program.kpi_forms import ObjectiveForm

pytestmark = pytest.mark.django_db

TYPED = {"success_metric": "Revenue of 50,000 a month", "goal_type": "revenue_growth",
         "target_value": "50000", "set_on": "2025-01-01", "deadline": "2025-12-31",
         "priority": "high"}


def test_each_message_goes_beside_its_field_or_above_the_form(acme_agreement):
    form = ObjectiveForm(TYPED, agreement=acme_agreement)
    assert form.is_valid()
    refusal_into_form(form, ValidationError({
        "deadline": "The deadline is too late.", "agreement": "The agreement has ended.",
        "__all__": "Someone else changed it."}))
    assert form.errors["deadline"] == ["The deadline is too late."]
    assert form.non_field_errors() == ["The agreement has ended.", "Someone else changed it."]
    assert form["success_metric"].value() == TYPED["success_metric"]  # kept for the page


def test_a_message_without_a_field_goes_above_the_form(acme_agreement):
    form = ObjectiveForm(TYPED, agreement=acme_agreement)
    assert form.is_valid()
    refusal_into_form(form, ValidationError("Closed for edits."))
    assert form.non_field_errors() == ["Closed for edits."]
    assert not form.is_valid()

