"""Agreement pages: the guided form and its rules, the live weight check, stage moves from
the page, and the history that both sides read for their own agreements."""

import datetime as dt

import pytest
from django.urls import reverse

from partnerships.models import (
    Agreement,
    ChangeKind,
    ProgramChange,
    Role,
    StageTransition,
)
from tests.conftest import make_agreement, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager_client(client, host_manager):
    client.force_login(host_manager)
    return client


def agreement_data(**changes) -> dict:
    data = {
        "initial_stage": "prospect", "partner": "acme", "code": "ACME-REF-2026",
        "title": "Referral of retail leads", "type": "referral",
        "start_date": "2026-01-01", "end_date": "", "owner": "",
        "partner_contacts": "Wile E. Coyote <wile@acme.example>",
        "weight_financial": "40", "weight_strategic": "20", "weight_operational": "20",
        "weight_relationship": "20",
        "value_financial": "10 % of first-year revenue of referred deals.",
        "attribution_method": "Deal registration in the portal before first contact.",
        "qualified_lead_definition": "Company of 50+ staff with budget this year.",
        "exit_criteria": "Overall below 50 for three months.",
        "review_cadence": "quarterly",
    }
    data.update(changes)
    return data


# ---- Create ---------------------------------------------------------------------------------


def test_create_an_agreement_as_prospect_and_record_it(manager_client, acme, host_manager):
    response = manager_client.post(reverse("program_agreement_new"),
                                   agreement_data(owner=str(host_manager.pk)))
    assert response.status_code == 302
    assert response["Location"] == reverse("program_agreement_edit", args=["ACME-REF-2026"])
    agreement = Agreement.objects.get(code="ACME-REF-2026")
    assert (agreement.partner, agreement.stage, agreement.owner) == (acme, "prospect",
                                                                     host_manager)
    assert agreement.category_weights == {"financial": 40, "strategic": 20,
                                          "operational": 20, "relationship": 20}
    change = ProgramChange.objects.get()
    assert (change.kind, change.agreement, change.user) == (ChangeKind.CREATED, agreement,
                                                            host_manager)
    assert change.fields["Attribution method"][1].startswith("Deal registration")
    page = manager_client.get(response["Location"])
    assert "created as a prospect" in page.content.decode()


def test_a_new_agreement_may_start_as_a_pilot_but_no_later(manager_client, acme):
    manager_client.post(reverse("program_agreement_new"),
                        agreement_data(initial_stage="pilot"))
    assert Agreement.objects.get().stage == "pilot"
    response = manager_client.post(reverse("program_agreement_new"),
                                   agreement_data(code="ACME-2", initial_stage="active"))
    assert "initial_stage" in response.context["form"].errors
    assert Agreement.objects.count() == 1


def test_the_partner_can_be_chosen_in_the_link(manager_client, acme, globex):
    response = manager_client.get(reverse("program_agreement_new"), {"partner": "globex"})
    assert '<option value="globex" selected>' in response.content.decode()


def test_default_weights_are_offered_and_pass_the_check(manager_client):
    response = manager_client.get(reverse("program_agreement_new"))
    body = response.content.decode()
    assert 'name="weight_financial" value="30"' in body
    assert "The weights add up to 100." in body


def test_weights_that_do_not_add_up_to_100_are_refused_and_kept(manager_client, acme):
    response = manager_client.post(reverse("program_agreement_new"),
                                   agreement_data(weight_relationship="15"))
    assert response.status_code == 200
    form = response.context["form"]
    assert form.non_field_errors() == [
        "The weights add up to 95: 5 short of 100. Change them so that they add up to "
        "exactly 100."]
    body = response.content.decode()
    assert "The weights add up to 95: 5 short of 100. Change them" in body
    assert 'name="weight_relationship" value="15"' in body
    assert "Deal registration in the portal before first contact." in body
    assert not Agreement.objects.exists()


def test_an_end_before_the_start_is_refused(manager_client, acme):
    response = manager_client.post(reverse("program_agreement_new"),
                                   agreement_data(end_date="2025-12-31"))
    assert response.context["form"].errors["end_date"] == [
        "The end date is before the start date."]
    assert 'value="2025-12-31"' in response.content.decode()
    assert not Agreement.objects.exists()


@pytest.mark.parametrize("code", ["ACME-CM-2025", "acme-cm-2025"])
def test_a_duplicate_code_is_refused(manager_client, acme_agreement, code):
    response = manager_client.post(reverse("program_agreement_new"), agreement_data(code=code))
    assert response.context["form"].errors["code"] == [
        "Another agreement already has this code: choose another one."]
    assert Agreement.objects.count() == 1


def test_a_code_that_cannot_be_a_url_is_refused(manager_client, acme):
    response = manager_client.post(reverse("program_agreement_new"),
                                   agreement_data(code="ACME/REF 1"))
    assert "Use letters, digits" in response.context["form"].errors["code"][0]


def test_the_owner_must_be_a_host_manager(manager_client, acme, acme_viewer,
                                          django_user_model):
    admin = make_user(django_user_model, "admin", Role.HOST_ADMIN)
    for user in (acme_viewer, admin):
        response = manager_client.post(reverse("program_agreement_new"),
                                       agreement_data(owner=str(user.pk)))
        assert response.context["form"].errors["owner"] == [
            "Choose a host manager as the owner."]
    assert not Agreement.objects.exists()


def test_partner_users_get_404_for_the_agreement_form(client, acme_viewer, acme_agreement):
    client.force_login(acme_viewer)
    assert client.get(reverse("program_agreement_new")).status_code == 404
    assert client.get(reverse("program_agreement_edit",
                              args=["ACME-CM-2025"])).status_code == 404
    assert client.post(reverse("program_agreement_stage", args=["ACME-CM-2025"]),
                       {"to_stage": "under_review", "reason": "x"}).status_code == 404
    assert client.get(reverse("program_agreement_weights")).status_code == 404
    acme_agreement.refresh_from_db()
    assert acme_agreement.stage == "active"


# ---- The live weight check ------------------------------------------------------------------


@pytest.mark.parametrize(("weights", "message", "ok"), [
    ((30, 25, 25, 20), "The weights add up to 100.", True),
    ((30, 25, 25, 10), "The weights add up to 90: 10 short of 100.", False),
    ((50, 25, 25, 20), "The weights add up to 120: 20 over 100.", False),
    ((30, 25, 25, ""), "Each weight is a whole number from 0 to 100", False),
    ((130, 0, 0, 0), "Each weight is a whole number from 0 to 100", False),
])
def test_live_weight_check_answers_the_fragment(manager_client, weights, message, ok):
    names = ("weight_financial", "weight_strategic", "weight_operational",
             "weight_relationship")
    response = manager_client.get(reverse("program_agreement_weights"),
                                  dict(zip(names, weights, strict=True)),
                                  headers={"HX-Request": "true"})
    body = response.content.decode().strip()
    assert body.startswith('<p id="weights-check"')
    assert message in body
    assert ("weights-check--ok" in body) is ok
    assert "<html" not in body


# ---- Edit -----------------------------------------------------------------------------------


def test_edit_keeps_partner_code_and_stage_and_records_the_fields(manager_client,
                                                                  acme_agreement, globex):
    data = agreement_data(partner="globex", code="HIJACKED", initial_stage="pilot",
                          stage="ended", weight_financial="50", weight_strategic="0",
                          weight_operational="50", weight_relationship="0")
    response = manager_client.post(reverse("program_agreement_edit", args=["ACME-CM-2025"]),
                                   data)
    assert response.status_code == 302
    acme_agreement.refresh_from_db()
    assert (acme_agreement.code, acme_agreement.partner.slug, acme_agreement.stage) == (
        "ACME-CM-2025", "acme", "active")
    assert acme_agreement.type == "referral"
    change = ProgramChange.objects.get()
    assert change.kind == ChangeKind.UPDATED
    assert change.fields["Type"] == ["Co-marketing", "Referral"]
    assert change.fields["Exit criteria"] == ["", "Overall below 50 for three months."]
    assert "Stage" not in change.fields and "Code" not in change.fields


def test_edit_page_shows_the_allowed_moves_and_the_stage_history(manager_client, acme, kpis):
    make_agreement(acme, "ACME-PILOT", kpis, stage="pilot")
    url = reverse("program_agreement_stage", args=["ACME-PILOT"])
    manager_client.post(url, {"to_stage": "under_review", "reason": "Slow start."})
    manager_client.post(url, {"to_stage": "active", "reason": "Back on track."})
    response = manager_client.get(reverse("program_agreement_edit", args=["ACME-PILOT"]))
    body = response.content.decode()
    assert [m["value"] for m in response.context["moves"]] == ["under_review", "exiting"]
    assert "Slow start." in body and "Back on track." in body
    assert body.index("Back on track.") < body.index("Slow start.")  # newest first


def test_a_pilot_offers_promotion_to_a_full_agreement(manager_client, acme, kpis):
    make_agreement(acme, "ACME-PILOT", kpis, stage="pilot")
    response = manager_client.get(reverse("program_agreement_edit", args=["ACME-PILOT"]))
    assert "Promote to full agreement" in response.content.decode()


# ---- Stage moves from the page --------------------------------------------------------------


def test_stage_move_without_js_redirects_with_a_message(manager_client, acme_agreement,
                                                        host_manager):
    response = manager_client.post(
        reverse("program_agreement_stage", args=["ACME-CM-2025"]),
        {"to_stage": "under_review", "reason": "Two weak months."}, follow=True)
    assert "ACME-CM-2025 moved from active to under review." in response.content.decode()
    transition = StageTransition.objects.get()
    assert (transition.by, transition.reason) == (host_manager, "Two weak months.")


def test_stage_move_by_htmx_answers_the_stage_panel(manager_client, acme, kpis):
    pilot = make_agreement(acme, "ACME-PILOT", kpis, stage="pilot")
    response = manager_client.post(
        reverse("program_agreement_stage", args=["ACME-PILOT"]),
        {"to_stage": "active", "reason": "Targets met."}, headers={"HX-Request": "true"})
    body = response.content.decode().strip()
    assert body.startswith('<section id="stage-panel"')
    assert "moved from pilot to active" in body
    assert Agreement.objects.get(code="ACME-PILOT").pk == pilot.pk


def test_a_move_without_a_reason_is_refused_with_the_choice_kept(manager_client,
                                                                 acme_agreement):
    response = manager_client.post(
        reverse("program_agreement_stage", args=["ACME-CM-2025"]),
        {"to_stage": "exiting", "reason": ""}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert "Say why the stage changes" in body
    assert 'value="exiting" required checked' in body
    acme_agreement.refresh_from_db()
    assert acme_agreement.stage == "active" and not StageTransition.objects.exists()


def test_a_disallowed_move_is_refused_with_a_clear_message(manager_client, acme_agreement):
    response = manager_client.post(
        reverse("program_agreement_stage", args=["ACME-CM-2025"]),
        {"to_stage": "prospect", "reason": "Start again."})
    assert response.status_code == 200
    body = response.content.decode()
    assert "An agreement cannot move from active to prospect." in body
    assert "Start again." in body  # the reason typed is kept
    acme_agreement.refresh_from_db()
    assert acme_agreement.stage == "active"
    assert not StageTransition.objects.exists() and not ProgramChange.objects.exists()


def test_ending_from_the_page_sets_and_says_the_end_date(manager_client, acme, kpis):
    make_agreement(acme, "ACME-X", kpis, stage="exiting")
    response = manager_client.post(reverse("program_agreement_stage", args=["ACME-X"]),
                                   {"to_stage": "ended", "reason": "Exit done."}, follow=True)
    agreement = Agreement.objects.get(code="ACME-X")
    assert agreement.end_date == dt.date.today()
    assert f"Its end date is {agreement.end_date:%Y-%m-%d}." in response.content.decode()


# ---- The history page, both sides -----------------------------------------------------------


def test_both_sides_read_the_history_of_their_own_agreement(client, manager_client,
                                                            acme_agreement, acme_viewer):
    manager_client.post(reverse("program_agreement_stage", args=["ACME-CM-2025"]),
                        {"to_stage": "under_review", "reason": "Quarter below target."})
    manager_client.post(reverse("program_agreement_edit", args=["ACME-CM-2025"]),
                        agreement_data(weight_financial="50", weight_strategic="0",
                                       weight_operational="50", weight_relationship="0"))
    url = reverse("agreement_history", args=["ACME-CM-2025"])
    client.force_login(acme_viewer)
    for reader in (manager_client, client):
        body = reader.get(url).content.decode()
        assert "Quarter below target." in body
        assert "manager" in body
        assert "<del>Co-marketing</del> → <ins>Referral</ins>" in body
        assert "<ins>Active</ins>" not in body or "Under review" in body


def test_partner_users_get_404_for_another_partners_history(client, acme_viewer,
                                                            globex_agreement):
    client.force_login(acme_viewer)
    assert client.get(reverse("agreement_history",
                              args=["GLOBEX-REF-2025"])).status_code == 404
    assert client.get(reverse("agreement_history", args=["NOPE"])).status_code == 404


def test_history_page_offers_manage_only_to_the_host(client, manager_client, acme_agreement,
                                                     acme_viewer):
    url = reverse("agreement_history", args=["ACME-CM-2025"])
    edit = reverse("program_agreement_edit", args=["ACME-CM-2025"])
    assert edit in manager_client.get(url).content.decode()
    client.force_login(acme_viewer)
    assert edit not in client.get(url).content.decode()


def test_agreement_dashboard_links_history_for_both_and_edit_for_the_host(
        client, manager_client, acme_agreement, acme_viewer):
    url = reverse("agreement_dashboard", args=["ACME-CM-2025"])
    edit = reverse("program_agreement_edit", args=["ACME-CM-2025"])
    history = reverse("agreement_history", args=["ACME-CM-2025"])
    body = manager_client.get(url).content.decode()
    assert edit in body and history in body
    client.force_login(acme_viewer)
    body = client.get(url).content.decode()
    assert history in body and edit not in body


def test_an_owner_who_is_no_longer_a_manager_is_kept_when_other_terms_change(
        manager_client, acme_agreement, django_user_model):
    former = make_user(django_user_model, "former", Role.HOST_ADMIN)
    acme_agreement.owner = former
    acme_agreement.save()
    page = manager_client.get(reverse("program_agreement_edit", args=["ACME-CM-2025"]))
    assert f'<option value="{former.pk}" selected>' in page.content.decode()
    response = manager_client.post(
        reverse("program_agreement_edit", args=["ACME-CM-2025"]),
        agreement_data(owner=str(former.pk), weight_financial="50", weight_strategic="0",
                       weight_operational="50", weight_relationship="0"))
    assert response.status_code == 302
    acme_agreement.refresh_from_db()
    assert acme_agreement.owner == former
