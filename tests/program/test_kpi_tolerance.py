"""A KPI's tolerance on the KPI form and in the library: set, kept when left out, refused
when negative, written with its history."""

import pytest
from django.urls import reverse

from partnerships.models import KPIDefinition, ProgramChange

pytestmark = pytest.mark.django_db

DATA = {"code": "revenue", "name": "Partner-sourced revenue", "unit": "USD",
        "value_type": "money", "category": "financial", "aggregation": "sum", "source": "host"}


def test_editing_a_kpi_sets_an_absolute_tolerance_with_its_history(client, host_manager, kpis):
    client.force_login(host_manager)

    response = client.post(reverse("program_kpi_edit", args=["revenue"]),
                           {**DATA, "tolerance_kind": "absolute", "tolerance": "250"})

    assert response.status_code == 302
    kpis["revenue"].refresh_from_db()
    assert (kpis["revenue"].tolerance_kind, kpis["revenue"].tolerance) == ("absolute", 250.0)
    change = ProgramChange.objects.filter(object_type="KPI definition").latest("pk")
    assert change.fields["Tolerance"] == ["5", "250"]
    assert change.fields["Tolerance kind"][1] == "Absolute (in the KPI's unit)"
    library = client.get(reverse("program_kpis")).text
    assert "± 250 USD" in library
    assert "5 %" in library  # the defect rate keeps the default


def test_a_form_without_the_tolerance_keeps_the_kpis_own(client, host_manager, kpis):
    KPIDefinition.objects.filter(code="revenue").update(tolerance_kind="absolute", tolerance=3)
    client.force_login(host_manager)

    client.post(reverse("program_kpi_edit", args=["revenue"]), {**DATA, "name": "Revenue"})

    kpi = KPIDefinition.objects.get(code="revenue")
    assert (kpi.name, kpi.tolerance_kind, kpi.tolerance) == ("Revenue", "absolute", 3.0)


def test_a_new_kpi_gets_five_percent_and_a_negative_tolerance_is_refused(client, host_manager):
    client.force_login(host_manager)
    new = reverse("program_kpi_new")

    refused = client.post(new, {**DATA, "tolerance_kind": "percent", "tolerance": "-1"})
    client.post(new, DATA)

    assert refused.status_code == 200
    assert "greater than or equal to 0" in refused.text
    kpi = KPIDefinition.objects.get(code="revenue")
    assert (kpi.tolerance_kind, kpi.tolerance) == ("percent", 5.0)
