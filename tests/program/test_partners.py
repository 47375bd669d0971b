"""Partner pages: search, create and edit with inline validation, the partner's page, and
assessments recorded over time; host only."""

import datetime as dt
import importlib
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.forms import BaseForm
from django.urls import reverse

from dashboards.program.forms import PartnerForm
from partnerships.models import (
    AuditAction,
    AuditEvent,
    ChangeKind,
    Membership,
    Partner,
    PartnerAssessment,
    ProgramChange,
    Role,
)
from tests.conftest import make_agreement, make_user

pytestmark = pytest.mark.django_db

GOOD_ASSESSMENT = {
    "assessed_on": "2025-03-01", "strategic_fit": "4", "cultural_compatibility": "3",
    "operational_capability": "5", "market_position": "2", "aligned_decision_speed": "on",
    "aligned_communication": "on", "aligned_risk_tolerance": "on",
    "aligned_customer_focus": "on", "horizon_today": "Two joint customers.",
    "resource_contribution": "3", "implementation_complexity": "2",
    "notes": "Strong integration team.",
}


@pytest.fixture
def manager_client(client, host_manager):
    client.force_login(host_manager)
    return client


# ---- Who may see and edit -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["program_partners", "program_partner_new"])
def test_partner_users_get_404_for_partner_pages(client, acme_viewer, name):
    client.force_login(acme_viewer)
    assert client.get(reverse(name)).status_code == 404


def test_partner_users_get_404_for_their_own_partner_page(client, acme_viewer, acme):
    client.force_login(acme_viewer)
    for name in ("program_partner", "program_partner_edit", "program_assessment_new"):
        assert client.get(reverse(name, args=["acme"])).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client, acme):
    response = client.get(reverse("program_partner", args=["acme"]))
    assert response.status_code == 302 and "/login" in response["Location"]


def test_host_admins_edit_partners_too(client, django_user_model, acme):
    client.force_login(make_user(django_user_model, "admin", Role.HOST_ADMIN))
    response = client.post(reverse("program_partner_edit", args=["acme"]),
                           {"name": "Acme Corporation", "slug": "acme", "status": "active"})
    assert response.status_code == 302
    assert Partner.objects.get(slug="acme").name == "Acme Corporation"


# ---- The list and its search ----------------------------------------------------------------


@pytest.fixture
def three_partners(db):
    Partner.objects.create(slug="acme", name="Acme Corp", industry="Retail software")
    Partner.objects.create(slug="globex", name="Globex", industry="Logistics",
                           status="prospect")
    Partner.objects.create(slug="initech", name="Initech", industry="Banking software",
                           status="inactive")


def test_search_matches_name_slug_and_industry(manager_client, three_partners):
    def names(**query):
        response = manager_client.get(reverse("program_partners"), query)
        return [p.name for p in response.context["partners"]]

    assert names() == ["Acme Corp", "Globex", "Initech"]
    assert names(q="software") == ["Acme Corp", "Initech"]
    assert names(q="GLOB") == ["Globex"]
    assert names(q="initech") == ["Initech"]
    assert names(q="software", status="inactive") == ["Initech"]
    assert names(status="prospect") == ["Globex"]
    assert names(q="nothing like it") == []


def test_search_by_htmx_answers_only_the_results(manager_client, three_partners):
    response = manager_client.get(
        reverse("program_partners"), {"q": "software"},
        headers={"HX-Request": "true", "HX-Target": "partner-results"})
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="partner-results"')
    assert "<html" not in body and "Initech" in body and "Globex" not in body
    assert "2 partners match" in body
    assert "HX-Request" in response["Vary"]


def test_search_without_js_renders_the_whole_page(manager_client, three_partners):
    response = manager_client.get(reverse("program_partners"), {"q": "software"})
    body = response.content.decode()
    assert "<html" in body and 'value="software"' in body and "Globex</a>" not in body


# ---- Create and edit ------------------------------------------------------------------------


def test_create_a_partner_records_the_history(manager_client, host_manager):
    response = manager_client.post(reverse("program_partner_new"), {
        "name": "Hooli", "slug": "Hooli", "website": "https://hooli.example",
        "industry": "Search", "status": "prospect"})
    assert response.status_code == 302
    assert response["Location"] == reverse("program_partner", args=["hooli"])
    partner = Partner.objects.get(slug="hooli")
    change = ProgramChange.objects.get()
    assert (change.kind, change.partner, change.user) == (ChangeKind.CREATED, partner,
                                                          host_manager)
    assert change.fields["Name"] == ["", "Hooli"]
    assert change.fields["Status"] == ["", "Prospect"]


def test_a_duplicate_slug_is_refused_next_to_the_field(manager_client, acme):
    response = manager_client.post(reverse("program_partner_new"), {
        "name": "Another Acme", "slug": "acme", "status": "active"})
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors["slug"] == ["Another partner already has this slug: choose another one."]
    assert 'value="Another Acme"' in response.content.decode()
    assert Partner.objects.count() == 1 and not ProgramChange.objects.exists()


def test_an_invalid_website_is_refused_with_the_input_kept(manager_client):
    response = manager_client.post(reverse("program_partner_new"), {
        "name": "Hooli", "slug": "hooli", "website": "hooli dot com", "status": "active"},
        headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="partner-form"')
    assert "Enter a full web address, e.g. https://example.com." in body
    assert 'value="hooli dot com"' in body
    assert not Partner.objects.exists()


def test_saving_by_htmx_redirects_the_whole_page(manager_client):
    response = manager_client.post(reverse("program_partner_new"), {
        "name": "Hooli", "slug": "hooli", "status": "active"}, headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("program_partner", args=["hooli"])


def test_edit_records_old_and_new_values(manager_client, acme):
    response = manager_client.post(reverse("program_partner_edit", args=["acme"]), {
        "name": "Acme Corp", "slug": "acme", "industry": "Retail", "status": "inactive"})
    assert response.status_code == 302
    change = ProgramChange.objects.get()
    assert change.kind == ChangeKind.UPDATED
    assert change.fields == {"Industry": ["", "Retail"], "Status": ["Active", "Inactive"]}
    event = AuditEvent.objects.get(action=AuditAction.PROGRAM_CHANGED)
    assert event.user.username == "manager" and event.ip_address == "127.0.0.1"


def test_saving_an_unchanged_partner_records_nothing(manager_client, acme):
    manager_client.post(reverse("program_partner_edit", args=["acme"]), {
        "name": "Acme Corp", "slug": "acme", "status": "active"})
    assert not ProgramChange.objects.exists()


# ---- The partner's page ---------------------------------------------------------------------


def test_partner_page_shows_agreements_contacts_and_history(manager_client, acme, kpis,
                                                            acme_viewer, globex_agreement):
    agreement = make_agreement(acme, "ACME-REF-1", kpis, stage="pilot")
    agreement.partner_contacts = "Wile E. Coyote, head of partnerships"
    agreement.save()
    manager_client.post(reverse("program_partner_edit", args=["acme"]), {
        "name": "Acme Corp", "slug": "acme", "industry": "Anvils", "status": "active"})
    response = manager_client.get(reverse("program_partner", args=["acme"]))
    body = response.content.decode()
    assert reverse("agreement_dashboard", args=["ACME-REF-1"]) in body
    assert "Pilot" in body and "Co-marketing" in body
    assert "acme-viewer" in body  # a partner-side user of Acme
    assert "Wile E. Coyote, head of partnerships" in body
    assert "Anvils" in body  # the change history: the new industry
    assert "GLOBEX-REF-2025" not in body
    assert "globex-viewer" not in body


def test_a_partner_that_does_not_exist_is_404(manager_client):
    assert manager_client.get(reverse("program_partner", args=["nope"])).status_code == 404


# ---- Assessments ----------------------------------------------------------------------------


def test_record_an_assessment(manager_client, acme, host_manager):
    response = manager_client.post(reverse("program_assessment_new", args=["acme"]),
                                   GOOD_ASSESSMENT)
    assert response.status_code == 302
    assessment = PartnerAssessment.objects.get()
    assert (assessment.partner, assessment.assessed_by) == (acme, host_manager)
    assert assessment.aligned_count == 4 and not assessment.aligned_innovation
    change = ProgramChange.objects.get()
    assert (change.kind, change.partner, change.agreement) == (ChangeKind.CREATED, acme, None)
    assert change.fields["Strategic fit"] == ["", "4"]


@pytest.mark.parametrize(("field", "value"), [
    ("strategic_fit", "0"), ("market_position", "6"), ("resource_contribution", "-1"),
    ("implementation_complexity", "9"), ("cultural_compatibility", ""),
    ("operational_capability", "3.5"),
])
def test_assessment_scores_outside_1_to_5_are_refused(manager_client, acme, field, value):
    response = manager_client.post(reverse("program_assessment_new", args=["acme"]),
                                   {**GOOD_ASSESSMENT, field: value})
    assert response.status_code == 200
    errors = response.context["form"].errors[field]
    assert errors[0].startswith("Give a")
    assert "1 to 5" in errors[0]
    body = response.content.decode()
    assert "Two joint customers." in body  # the rest of the input is kept
    assert not PartnerAssessment.objects.exists()


def test_assessments_are_kept_over_time_and_shown_newest_first(manager_client, acme):
    manager_client.post(reverse("program_assessment_new", args=["acme"]), GOOD_ASSESSMENT)
    later = {**GOOD_ASSESSMENT, "assessed_on": "2025-09-01", "strategic_fit": "5",
             "resource_contribution": "4", "implementation_complexity": "3",
             "aligned_customer_focus": ""}
    manager_client.post(reverse("program_assessment_new", args=["acme"]), later)
    assert PartnerAssessment.objects.count() == 2
    response = manager_client.get(reverse("program_partner", args=["acme"]))
    body = response.content.decode()
    assert [a.assessed_on for a in response.context["assessments"]] == [
        dt.date(2025, 9, 1), dt.date(2025, 3, 1)]
    # (5 × 4) / 3 and (4 × 3) / 2, with their formula
    assert "= <strong>6.7</strong>" in body and "= <strong>6.0</strong>" in body
    assert "(5 strategic fit × 4 resource contribution) / 3 implementation complexity" in body
    assert "Aligned on 3 of 5 → not a good cultural fit" in body
    assert "Aligned on 4 of 5 → good cultural fit" in body
    assert body.index("2025-09-01") < body.index("2025-03-01")


def test_assessment_form_errors_by_htmx_swap_only_the_form(manager_client, acme):
    response = manager_client.post(reverse("program_assessment_new", args=["acme"]),
                                   {**GOOD_ASSESSMENT, "strategic_fit": "7"},
                                   headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="assessment-form"')
    assert "Give a score from 1 to 5." in body


def test_partner_side_members_are_listed_only_for_their_partner(manager_client, acme, globex,
                                                                django_user_model):
    make_user(django_user_model, "road-runner", Role.PARTNER_EDITOR, acme)
    make_user(django_user_model, "hank", Role.PARTNER_VIEWER, globex)
    response = manager_client.get(reverse("program_partner", args=["acme"]))
    assert [m.user.username for m in response.context["contacts"]] == ["road-runner"]
    assert Membership.objects.count() == 3


def test_the_list_is_paged_and_keeps_the_search_in_its_links(manager_client):
    Partner.objects.bulk_create(
        Partner(slug=f"p{n:03d}", name=f"Partner {n:03d}", industry="Retail")
        for n in range(55))
    first = manager_client.get(reverse("program_partners"), {"q": "retail"})
    assert len(first.context["partners"]) == 50
    assert "?q=retail&amp;page=2" in first.content.decode()
    second = manager_client.get(reverse("program_partners"), {"q": "retail", "page": "2"},
                                headers={"HX-Request": "true", "HX-Target": "partner-results"})
    assert [p.name for p in second.context["partners"]] == [
        f"Partner {n:03d}" for n in range(50, 55)]
    assert "Partners 51–55 of 55" in second.content.decode()


# ---- The partner form's widgets ---------------------------------------------------------------


def styled_input_types() -> set[str]:
    """The input types app.css styles as text fields (its rule for input[type="text"]), and
    "select" when that rule styles select elements too (Django's Select says input_type
    "select")."""
    css = (Path(settings.BASE_DIR) / "static" / "css" / "app.css").read_text()
    rule = next(rule for rule in css.split("{") if 'input[type="text"]' in rule)
    selectors = [selector.strip() for selector in rule.rsplit("}", 1)[-1].split(",")]
    return ({match for selector in selectors
             for match in re.findall(r'^input\[type="([a-z-]+)"\]$', selector)}
            | ({"select"} & set(selectors)))


def test_the_website_is_a_url_input_that_the_stylesheet_styles():
    website = PartnerForm()["website"]
    assert website.field.widget.input_type == "url"
    html = str(website)
    assert 'type="url"' in html and 'autocomplete="url"' in html
    assert "url" in styled_input_types()


@pytest.mark.parametrize("module", ["dashboards.program.forms", "dashboards.program.kpi_forms",
                                    "dashboards.program.review_forms",
                                    "dashboards.access_views", "dashboards.api"])
def test_every_text_like_input_of_the_forms_is_styled(module):
    """Every input type a form of the project draws has the text fields' style (a new widget
    type missing from the stylesheet's rule is drawn by the browser's defaults)."""
    unstyled = {"hidden", "checkbox", "radio", "submit"}
    forms_module = importlib.import_module(module)
    found = {
        f"{form.__name__}.{name}": field.widget.input_type
        for form in vars(forms_module).values()
        if isinstance(form, type) and issubclass(form, BaseForm) and hasattr(form, "base_fields")
        for name, field in form.base_fields.items()
        if getattr(field.widget, "input_type", None) not in (None, *unstyled)
    }
    assert found, module
    assert {field: kind for field, kind in found.items()
            if kind not in styled_input_types()} == {}


def test_a_new_partners_slug_follows_the_name_an_existing_ones_does_not(acme):
    new = str(PartnerForm()["slug"])
    assert 'data-slug-from="name"' in new and 'maxlength="64"' in new
    assert "Filled in from the name" in PartnerForm().fields["slug"].help_text
    assert "data-slug-from" not in str(PartnerForm(instance=acme)["slug"])


def test_the_new_partner_page_loads_the_slug_script(manager_client):
    page = manager_client.get(reverse("program_partner_new")).text
    assert re.search(r'<script src="/static/js/slug\.[0-9a-f.]*js" defer nonce="[^"]+">', page)
