"""The KPI library, an agreement's KPIs (add, edit in place, remove), copying a KPI set from
another agreement or from the standard set of the agreement's type, and the standard sets."""

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from dashboards.program.kpi_forms import (
    NUMBER_ERROR,
    AgreementKPIAddForm,
    KPIDefinitionForm,
    TemplateItemForm,
)
from partnerships.kpi_sets import KpiSetRefused, kpi_set_copy, kpi_set_source_items
from partnerships.models import (
    AgreementKPI,
    AuditAction,
    AuditEvent,
    KPIDefinition,
    KPITemplateItem,
    MetricObservation,
    Objective,
    ProgramChange,
)
from tests.conftest import make_agreement, write_observations

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def manager_client(client, host_manager):
    client.force_login(host_manager)
    return client


@pytest.fixture
def leads(db):
    return KPIDefinition.objects.create(code="qualified_leads", name="Qualified leads",
                                        unit="leads", category="strategic", aggregation="sum",
                                        source="partner")


def kpis_url(agreement) -> str:
    return reverse("program_agreement_kpis", args=[agreement.code])


def kpi_pairs(agreement) -> dict[str, tuple[float, float, float]]:
    return {row.kpi.code: (row.target, row.floor, row.weight)
            for row in AgreementKPI.objects.filter(agreement=agreement).select_related("kpi")}


# ---- The library ------------------------------------------------------------------------------


def test_library_lists_kpis_with_the_number_of_agreements_using_them(
        manager_client, acme_agreement, globex_agreement, leads):
    text = manager_client.get(reverse("program_kpis")).text
    assert "Partner-sourced revenue" in text and "Qualified leads" in text
    row = text[text.index("Partner-sourced revenue"):text.index("Partner-sourced revenue") + 900]
    assert 'data-label="Agreements" class="num">2<' in row
    assert "3 KPIs in the library" in text


def test_library_search_answers_htmx_with_the_results_only(manager_client, kpis, leads):
    response = manager_client.get(reverse("program_kpis"), {"q": "lead"}, headers=HTMX)
    assert response.status_code == 200
    assert "<html" not in response.text
    assert 'id="kpi-results"' in response.text
    assert "Qualified leads" in response.text and "Defect rate" not in response.text
    assert "1 of 3 KPIs match" in response.text


@pytest.mark.parametrize(("code", "message"), [
    ("Revenue Total", "Use only letters, digits, hyphens and underscores."),
    ("revenue", "Another KPI already has this code."),
])
def test_kpi_code_must_be_a_new_slug(kpis, code, message):
    form = KPIDefinitionForm({"code": code, "name": "X", "category": "financial",
                              "aggregation": "sum", "source": "host"})
    assert not form.is_valid()
    assert form.errors["code"] == [message]


def test_creating_a_kpi_records_history_and_redirects(manager_client, host_manager):
    response = manager_client.post(reverse("program_kpi_new"), {
        "code": "csat", "name": "Partner satisfaction", "unit": "points",
        "value_type": "number", "category": "relationship", "aggregation": "mean",
        "source": "partner", "description": "Quarterly survey of the partner's team."})
    assert response.status_code == 302
    kpi = KPIDefinition.objects.get(code="csat")
    change = ProgramChange.objects.get(object_type="KPI definition", object_id=kpi.pk)
    assert change.kind == "created" and change.user == host_manager
    assert change.fields["Name"] == ["", "Partner satisfaction"]


def test_invalid_kpi_keeps_the_input_and_says_why(manager_client, kpis):
    response = manager_client.post(reverse("program_kpi_new"), {
        "code": "revenue", "name": "Second revenue", "category": "financial",
        "aggregation": "sum", "source": "host"})
    assert response.status_code == 200
    assert "Another KPI already has this code." in response.text
    assert 'value="Second revenue"' in response.text
    assert KPIDefinition.objects.count() == 2


def test_inline_validation_saves_nothing_and_skips_untouched_fields(manager_client, kpis):
    response = manager_client.post(reverse("program_kpi_new") + "?validate=1",
                                   {"code": "revenue"}, headers=HTMX)
    assert response.status_code == 200
    # Only each field's messages, swapped in beside it: nothing being typed is replaced.
    assert "<html" not in response.text and "<input" not in response.text
    assert 'id="id_code_feedback"' in response.text and 'hx-swap-oob="true"' in response.text
    assert "Another KPI already has this code." in response.text
    assert "This field is required." not in response.text  # name is still empty
    assert KPIDefinition.objects.count() == 2


def test_changing_how_a_kpi_with_observations_is_scored_warns(
        manager_client, kpis, acme_agreement):
    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-01-10", 50)])
    url = reverse("program_kpi_edit", args=["revenue"])
    data = {"code": "revenue", "name": "Partner-sourced revenue", "unit": "USD",
            "value_type": "money", "category": "financial", "aggregation": "mean",
            "source": "host"}
    inline = manager_client.post(url + "?validate=1", data, headers=HTMX).text
    assert "scores change on the next scoring run" in inline
    response = manager_client.post(url, data, follow=True)
    assert "change on the next scoring run" in response.text
    kpis["revenue"].refresh_from_db()
    assert kpis["revenue"].aggregation == "mean"  # still allowed


KPI_DATA = {"code": "conversion", "name": "Conversion rate", "unit": "%",
            "category": "operational", "aggregation": "mean", "source": "host"}


def test_creating_a_kpi_saves_its_type_and_range(manager_client):
    response = manager_client.post(reverse("program_kpi_new"), {
        **KPI_DATA, "code": "deals", "unit": "count", "value_type": "count", "minimum": "",
        "maximum": "500"})
    assert response.status_code == 302
    kpi = KPIDefinition.objects.get(code="deals")
    assert (kpi.value_type, kpi.minimum, kpi.maximum) == ("count", None, 500.0)
    assert kpi.allowed_values == "whole number ≥ 0, at most 500"


def test_a_percentage_left_without_bounds_gets_0_to_100():
    form = KPIDefinitionForm({**KPI_DATA, "value_type": "percentage", "maximum": "250"})
    assert form.is_valid(), form.errors
    kpi = form.save()
    assert (kpi.value_type, kpi.minimum, kpi.maximum) == ("percentage", 0.0, 250.0)


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"minimum": "10", "maximum": "5"}, "maximum",
     "The maximum (5) is below the minimum (10)."),
    ({"maximum": "1e13"}, "maximum", "Must be a number between -1,000,000,000,000 and "
     "1,000,000,000,000, the magnitude any observation may have."),
    ({"value_type": "count", "minimum": "-1"}, "minimum",
     "A count is never negative: the bound must be 0 or more."),
    ({"minimum": "1e400"}, "minimum", NUMBER_ERROR),
    ({"value_type": "ratio"}, "value_type",
     "Select a valid choice. ratio is not one of the available choices."),
], ids=["max below min", "beyond magnitude", "negative count bound", "infinite", "unknown"])
def test_kpi_form_refuses_impossible_allowed_values(data, field, message):
    form = KPIDefinitionForm({**KPI_DATA, "value_type": "number", **data})
    assert not form.is_valid()
    assert form.errors[field] == [message]


def test_the_database_refuses_a_minimum_above_the_maximum(kpis):
    with pytest.raises(IntegrityError), transaction.atomic():
        KPIDefinition.objects.filter(code="revenue").update(minimum=5, maximum=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        KPIDefinition.objects.filter(code="revenue").update(value_type="percentage")


def test_narrowing_allowed_values_warns_about_recorded_observations_outside(
        manager_client, kpis, acme_agreement):
    write_observations([(acme_agreement, kpis["defect_rate"], "partner", day, value)
                        for day, value in (("2025-01-10", 3.5), ("2025-01-11", 12.0),
                                           ("2025-01-12", 40.0))], side="partner")
    url = reverse("program_kpi_edit", args=["defect_rate"])
    response = manager_client.post(url, {
        "code": "defect_rate", "name": "Defect rate", "unit": "%", "value_type": "percentage",
        "minimum": "0", "maximum": "10", "category": "operational", "aggregation": "mean",
        "source": "partner"}, follow=True)
    assert ("2 recorded observations of Defect rate are outside its allowed values now "
            "(0 to 10): kept and scored as before") in response.text
    assert MetricObservation.objects.filter(kpi=kpis["defect_rate"]).count() == 3


def test_library_shows_each_kpis_allowed_values(manager_client, kpis):
    KPIDefinition.objects.filter(code="defect_rate").update(
        value_type="percentage", minimum=0, maximum=100)
    text = manager_client.get(reverse("program_kpis")).text
    assert "Percentage: 0 to 100" in text and "Number: any number" in text


def test_deleting_a_kpi_in_use_is_refused_with_the_reason(manager_client, kpis, acme_agreement):
    response = manager_client.post(reverse("program_kpi_delete", args=["revenue"]), follow=True)
    assert "cannot be deleted" in response.text and "ACME-CM-2025" in response.text
    assert KPIDefinition.objects.filter(code="revenue").exists()


def test_deleting_a_kpi_with_observations_only_is_refused(manager_client, kpis, acme_agreement):
    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-01-10", 50)])
    AgreementKPI.objects.filter(kpi=kpis["revenue"]).delete()
    response = manager_client.post(reverse("program_kpi_delete", args=["revenue"]), follow=True)
    assert "1 observation of it are recorded" in response.text
    assert KPIDefinition.objects.filter(code="revenue").exists()


def test_deleting_an_unused_kpi_records_history(manager_client, leads):
    response = manager_client.post(reverse("program_kpi_delete", args=[leads.code]),
                                   {"confirm": "yes"})
    assert response.status_code == 302
    assert not KPIDefinition.objects.filter(pk=leads.pk).exists()
    assert ProgramChange.objects.filter(kind="deleted", object_label__contains="Qualified").exists()


# ---- Permissions ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["program_kpis", "program_kpi_new", "program_kpi_templates"])
def test_partner_users_get_404_on_host_pages(client, acme_viewer, kpis, name):
    client.force_login(acme_viewer)
    assert client.get(reverse(name)).status_code == 404


def test_partner_users_get_404_for_their_own_agreements_kpi_pages(
        client, acme_viewer, acme_agreement):
    client.force_login(acme_viewer)
    for name in ("program_agreement_kpis", "program_agreement_kpis_copy"):
        assert client.get(reverse(name, args=[acme_agreement.code])).status_code == 404
    assert client.post(kpis_url(acme_agreement), {"kpi": "revenue"}).status_code == 404


# ---- An agreement's KPIs --------------------------------------------------------------------


def test_agreement_kpis_grouped_by_category_with_direction(manager_client, acme_agreement):
    text = manager_client.get(kpis_url(acme_agreement)).text
    assert "category weight 50 of 100" in text
    assert "↑ higher is better" in text and "↓ lower is better" in text
    # Strategic has weight 0 here: said, not left blank.
    assert "not measured" in text
    assert text.index("category-financial") < text.index("category-operational")


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"target": "10", "floor": "10", "weight": "1"}, "floor", "The floor must differ"),
    ({"target": "10", "floor": "0", "weight": "0"}, "weight", "greater than 0"),
    ({"target": "10", "floor": "0", "weight": "-2"}, "weight", "greater than 0"),
    ({"target": "ten", "floor": "0", "weight": "1"}, "target", "Enter a number"),
    ({"target": "1,000", "floor": "0", "weight": "1"}, "target", "Enter a number"),
    ({"target": "nan", "floor": "0", "weight": "1"}, "target", "Enter a number"),
    ({"target": "10", "floor": "inf", "weight": "1"}, "floor", "Enter a number"),
])
def test_agreement_kpi_form_rules(acme_agreement, leads, data, field, message):
    form = AgreementKPIAddForm({"kpi": leads.code, **data}, agreement=acme_agreement)
    assert not form.is_valid()
    assert message in " ".join(form.errors[field])


def test_a_kpi_cannot_be_added_twice(acme_agreement, kpis):
    form = AgreementKPIAddForm({"kpi": "revenue", "target": "5", "floor": "0", "weight": "1"},
                               agreement=acme_agreement)
    assert not form.is_valid()
    assert "already on this agreement" in form.errors["kpi"][0]


def test_adding_a_kpi_saves_it_and_records_history(manager_client, host_manager,
                                                    acme_agreement, leads):
    response = manager_client.post(kpis_url(acme_agreement), {
        "kpi": "qualified_leads", "target": "40", "floor": "5", "weight": "2"})
    assert response.status_code == 302
    assert kpi_pairs(acme_agreement)["qualified_leads"] == (40, 5, 2)
    change = ProgramChange.objects.get(object_type="agreement KPI")
    assert change.kind == "created" and change.agreement == acme_agreement
    assert change.user == host_manager


def test_adding_with_htmx_answers_the_form_with_errors_and_keeps_input(
        manager_client, acme_agreement, leads):
    response = manager_client.post(kpis_url(acme_agreement), {
        "kpi": "qualified_leads", "target": "40", "floor": "40", "weight": "1"}, headers=HTMX)
    assert response.status_code == 200
    assert "<html" not in response.text and 'id="kpi-add"' in response.text
    assert "The floor must differ from the target" in response.text
    assert 'value="40"' in response.text
    assert "qualified_leads" not in kpi_pairs(acme_agreement)


def test_adding_with_htmx_redirects_by_header(manager_client, acme_agreement, leads):
    response = manager_client.post(kpis_url(acme_agreement), {
        "kpi": "qualified_leads", "target": "40", "floor": "0", "weight": "1"}, headers=HTMX)
    assert response.status_code == 204
    assert response["HX-Redirect"] == kpis_url(acme_agreement)


def test_inline_validation_reacts_to_floor_equal_to_target(manager_client, acme_agreement,
                                                           leads):
    response = manager_client.post(kpis_url(acme_agreement) + "?validate=1", {
        "kpi": "", "target": "7", "floor": "7"}, headers=HTMX)
    assert "The floor must differ from the target" in response.text
    assert "This field is required" not in response.text
    assert AgreementKPI.objects.filter(agreement=acme_agreement).count() == 2


def test_row_edit_with_htmx_swaps_the_row(manager_client, acme_agreement):
    row = AgreementKPI.objects.get(agreement=acme_agreement, kpi__code="revenue")
    url = reverse("program_agreement_kpi_edit", args=[acme_agreement.code, row.pk])
    form = manager_client.get(url, headers=HTMX)
    assert form.text.lstrip().startswith(f'<tr id="kpi-row-{row.pk}"')
    assert 'name="target"' in form.text
    saved = manager_client.post(url, {"target": "250", "floor": "0", "weight": "1"},
                                headers=HTMX)
    assert saved.text.lstrip().startswith(f'<tr id="kpi-row-{row.pk}"')
    assert "250" in saved.text and "saved" in saved.text
    row.refresh_from_db()
    assert row.target == 250
    change = ProgramChange.objects.get(object_type="agreement KPI", kind="updated")
    assert change.fields == {"Monthly target": ["100", "250"]}
    assert "HX-Request" in saved["Vary"]
    event = AuditEvent.objects.get(action=AuditAction.PROGRAM_CHANGED)
    assert event.detail["change"] == change.pk and event.ip_address == "127.0.0.1"


def test_row_edit_refuses_bad_values_and_keeps_them(manager_client, acme_agreement):
    row = AgreementKPI.objects.get(agreement=acme_agreement, kpi__code="defect_rate")
    url = reverse("program_agreement_kpi_edit", args=[acme_agreement.code, row.pk])
    response = manager_client.post(url, {"target": "2", "floor": "2", "weight": "1"},
                                   headers=HTMX)
    assert "The floor must differ" in response.text and 'value="2"' in response.text
    row.refresh_from_db()
    assert (row.target, row.floor) == (2, 10)


def test_row_edit_without_javascript_is_a_page_and_a_redirect(manager_client, acme_agreement):
    row = AgreementKPI.objects.get(agreement=acme_agreement, kpi__code="revenue")
    url = reverse("program_agreement_kpi_edit", args=[acme_agreement.code, row.pk])
    page = manager_client.get(url)
    assert "<html" in page.text and 'name="floor"' in page.text
    response = manager_client.post(url, {"target": "120", "floor": "10", "weight": "3"})
    assert response.status_code == 302 and response["Location"] == kpis_url(acme_agreement)
    assert kpi_pairs(acme_agreement)["revenue"] == (120, 10, 3)


def test_another_agreements_row_is_not_found_under_this_code(
        manager_client, acme_agreement, globex_agreement):
    row = AgreementKPI.objects.get(agreement=globex_agreement, kpi__code="revenue")
    url = reverse("program_agreement_kpi_edit", args=[acme_agreement.code, row.pk])
    assert manager_client.get(url).status_code == 404


def test_removing_a_kpi_records_history(manager_client, acme_agreement):
    row = AgreementKPI.objects.get(agreement=acme_agreement, kpi__code="defect_rate")
    url = reverse("program_agreement_kpi_remove", args=[acme_agreement.code, row.pk])
    assert manager_client.post(url, {"confirm": "yes"}).status_code == 302
    assert set(kpi_pairs(acme_agreement)) == {"revenue"}
    assert ProgramChange.objects.filter(object_type="agreement KPI", kind="deleted").exists()


def test_removing_a_kpi_an_objective_measures_is_refused(manager_client, acme_agreement, kpis):
    Objective.objects.create(agreement=acme_agreement, goal_type="revenue_growth",
                             success_metric="Grow revenue", kpi=kpis["revenue"],
                             target_value=100, deadline="2026-12-31")
    row = AgreementKPI.objects.get(agreement=acme_agreement, kpi__code="revenue")
    url = reverse("program_agreement_kpi_remove", args=[acme_agreement.code, row.pk])
    response = manager_client.post(url, follow=True)
    assert "measures its progress with it" in response.text
    assert "revenue" in kpi_pairs(acme_agreement)


# ---- Copying a KPI set ------------------------------------------------------------------------


@pytest.fixture
def source(acme, kpis, leads):
    """An agreement with revenue (other values), qualified leads, and no defect rate."""
    agreement = make_agreement(acme, "ACME-REF-2025", kpis)
    AgreementKPI.objects.filter(agreement=agreement, kpi=kpis["defect_rate"]).delete()
    AgreementKPI.objects.filter(agreement=agreement, kpi=kpis["revenue"]).update(
        target=500, floor=50, weight=3)
    AgreementKPI.objects.create(agreement=agreement, kpi=leads, target=40, floor=0, weight=1)
    return agreement


def test_copy_keeping_existing_kpis_adds_only_the_missing_ones(
        acme_agreement, source, host_manager):
    plan = kpi_set_copy(agreement=acme_agreement, items=kpi_set_source_items(agreement=source),
                        mode="keep", user=host_manager)
    assert [item.kpi.code for item in plan.added] == ["qualified_leads"]
    assert not plan.updated and not plan.removed
    assert kpi_pairs(acme_agreement) == {
        "revenue": (100, 0, 1), "defect_rate": (2, 10, 1), "qualified_leads": (40, 0, 1)}
    assert ProgramChange.objects.filter(kind="created", agreement=acme_agreement).count() == 1


def test_copy_replacing_makes_the_set_the_sources(acme_agreement, source, host_manager):
    plan = kpi_set_copy(agreement=acme_agreement, items=kpi_set_source_items(agreement=source),
                        mode="replace", user=host_manager)
    assert ([i.kpi.code for i in plan.added], [r.kpi.code for r, _ in plan.updated],
            [r.kpi.code for r in plan.removed]) == (["qualified_leads"], ["revenue"],
                                                    ["defect_rate"])
    assert kpi_pairs(acme_agreement) == {"revenue": (500, 50, 3), "qualified_leads": (40, 0, 1)}
    kinds = sorted(ProgramChange.objects.filter(agreement=acme_agreement)
                   .values_list("kind", flat=True))
    assert kinds == ["created", "deleted", "updated"]
    assert kpi_pairs(source) == {"revenue": (500, 50, 3), "qualified_leads": (40, 0, 1)}


def test_copy_is_all_or_nothing(acme_agreement, source, host_manager, kpis):
    # Replacing would remove the defect rate an objective measures: nothing at all changes.
    Objective.objects.create(agreement=acme_agreement, goal_type="capability",
                             success_metric="Fewer defects", kpi=kpis["defect_rate"],
                             target_value=3, deadline="2026-12-31")
    before = kpi_pairs(acme_agreement)
    with pytest.raises(KpiSetRefused, match="Defect rate"):
        kpi_set_copy(agreement=acme_agreement, items=kpi_set_source_items(agreement=source),
                     mode="replace", user=host_manager)
    assert kpi_pairs(acme_agreement) == before
    assert not ProgramChange.objects.exists()


def test_copy_from_the_template_of_the_agreements_type(manager_client, acme_agreement, leads,
                                                      kpis):
    KPITemplateItem.objects.create(agreement_type="co_marketing", kpi=leads, target=30, floor=0)
    KPITemplateItem.objects.create(agreement_type="co_marketing", kpi=kpis["revenue"],
                                   target=900, floor=100, weight=2)
    KPITemplateItem.objects.create(agreement_type="referral", kpi=kpis["defect_rate"],
                                   target=1, floor=5)
    url = reverse("program_agreement_kpis_copy", args=[acme_agreement.code])
    preview = manager_client.get(url, {"from": "template", "mode": "keep"}, headers=HTMX)
    assert "<html" not in preview.text and 'id="copy-preview"' in preview.text
    assert "existing KPIs kept" in preview.text
    assert preview.text.count("will be added") == 1 and "Qualified leads" in preview.text
    assert "kept as it is" in preview.text
    assert kpi_pairs(acme_agreement) == {"revenue": (100, 0, 1), "defect_rate": (2, 10, 1)}

    replace = manager_client.get(url, {"from": "template", "mode": "replace"}).text
    assert "existing KPIs replaced" in replace
    assert "100 → 900" in replace and "will be removed" in replace

    response = manager_client.post(url, {"from": "template", "mode": "keep"})
    assert response.status_code == 302
    assert kpi_pairs(acme_agreement) == {
        "revenue": (100, 0, 1), "defect_rate": (2, 10, 1), "qualified_leads": (30, 0, 1)}


def test_copy_from_an_agreement_through_the_page(manager_client, acme_agreement, source):
    url = reverse("program_agreement_kpis_copy", args=[acme_agreement.code])
    page = manager_client.get(url, {"from": "agreement", "source": source.code,
                                    "mode": "replace"}).text
    assert "Copy: 1 added, 1 changed, 1 removed" in page
    response = manager_client.post(url, {"from": "agreement", "source": source.code,
                                         "mode": "replace"}, follow=True)
    assert "1 added, 1 changed, 1 removed" in response.text
    assert set(kpi_pairs(acme_agreement)) == {"revenue", "qualified_leads"}


def test_copy_refusal_is_shown_on_the_page(manager_client, acme_agreement, source, kpis):
    Objective.objects.create(agreement=acme_agreement, goal_type="capability",
                             success_metric="Fewer defects", kpi=kpis["defect_rate"],
                             target_value=3, deadline="2026-12-31")
    url = reverse("program_agreement_kpis_copy", args=[acme_agreement.code])
    response = manager_client.post(url, {"from": "agreement", "source": source.code,
                                         "mode": "replace"})
    assert response.status_code == 200 and "Unlink the objective first" in response.text
    assert "defect_rate" in kpi_pairs(acme_agreement)


def test_copy_cannot_read_an_agreement_the_form_does_not_offer(manager_client, acme_agreement):
    url = reverse("program_agreement_kpis_copy", args=[acme_agreement.code])
    response = manager_client.post(url, {"from": "agreement", "source": acme_agreement.code,
                                         "mode": "keep"})
    assert "Select a valid choice" in response.text


# ---- Standard sets ---------------------------------------------------------------------------


def test_template_item_rules(kpis):
    KPITemplateItem.objects.create(agreement_type="referral", kpi=kpis["revenue"], target=5,
                                   floor=0)
    form = TemplateItemForm({"agreement_type": "referral", "kpi": "revenue", "target": "3",
                             "floor": "3", "weight": "0"})
    assert not form.is_valid()
    assert "already in the Referral set" in form.errors["kpi"][0]
    assert "The floor must differ" in form.errors["floor"][0]
    assert "greater than 0" in form.errors["weight"][0]


def test_templates_page_adds_edits_and_removes_items(manager_client, kpis):
    url = reverse("program_kpi_templates")
    response = manager_client.post(url, {"agreement_type": "referral", "kpi": "revenue",
                                         "target": "20", "floor": "0", "weight": "1"})
    assert response.status_code == 302
    item = KPITemplateItem.objects.get()
    page = manager_client.get(url).text
    assert "Partner-sourced revenue" in page and "No standard set yet" in page
    edit = reverse("program_kpi_template_edit", args=[item.pk])
    bad = manager_client.post(edit, {"agreement_type": "referral", "kpi": "revenue",
                                     "target": "x", "floor": "0", "weight": "1"})
    assert "Enter a number" in bad.text and 'value="x"' in bad.text
    manager_client.post(edit, {"agreement_type": "referral", "kpi": "revenue",
                               "target": "25", "floor": "0", "weight": "1"})
    item.refresh_from_db()
    assert item.target == 25
    manager_client.post(reverse("program_kpi_template_remove", args=[item.pk]), {"confirm": "yes"})
    assert not KPITemplateItem.objects.exists()
    assert list(ProgramChange.objects.filter(object_type="KPI template item")
                .order_by("id").values_list("kind", flat=True)) == [
        "created", "updated", "deleted"]
