"""Every destructive action asks first: a POST without `confirm=yes` destroys nothing and
answers the question (a page, or the panel htmx swaps in place of the button); the confirmed
POST does it. One case per destructive endpoint of the project."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from dashboards.api import api_token_create
from partnerships.invitations import token_hash
from partnerships.models import (
    ActionItem,
    AgreementKPI,
    ApiToken,
    IncentivePlan,
    Invitation,
    KPIDefinition,
    KPITemplateItem,
    Objective,
    Review,
    Role,
)
from tests.conftest import make_user

CONFIRM = {"confirm": "yes"}


@pytest.fixture
def admin(django_user_model):
    """A host admin: manages the program and its users, and may make API tokens."""
    return make_user(django_user_model, "admin-ann", Role.HOST_ADMIN)


@dataclass
class Case:
    url: str
    question: str  # what the confirmation asks
    alive: callable  # whether the object is still there (not deleted, revoked, ...)
    body: dict  # the fields the button posts besides `confirm`
    cancel_url: str  # where Keep goes


def agreement_kpi(agreement, admin) -> Case:
    row = AgreementKPI.objects.get(agreement=agreement, kpi__code="defect_rate")
    return Case(reverse("program_agreement_kpi_remove", args=[agreement.code, row.pk]),
                "Remove “Defect rate” from ACME-CM-2025?",
                lambda: AgreementKPI.objects.filter(pk=row.pk).exists(), {},
                reverse("program_agreement_kpis", args=[agreement.code]))


def library_kpi(agreement, admin) -> Case:
    kpi = KPIDefinition.objects.create(code="qualified_leads", name="Qualified leads",
                                       category="strategic", aggregation="sum", source="host")
    return Case(reverse("program_kpi_delete", args=[kpi.code]),
                "Delete the KPI “Qualified leads” (qualified_leads) from the library?",
                lambda: KPIDefinition.objects.filter(pk=kpi.pk).exists(), {},
                reverse("program_kpi_edit", args=[kpi.code]))


def template_item(agreement, admin) -> Case:
    item = KPITemplateItem.objects.create(agreement_type="referral",
                                          kpi=AgreementKPI.objects.first().kpi,
                                          target=10, floor=0)
    return Case(reverse("program_kpi_template_remove", args=[item.pk]),
                f"Remove “{item.kpi.name}” from the standard set of referral agreements?",
                lambda: KPITemplateItem.objects.filter(pk=item.pk).exists(), {},
                reverse("program_kpi_templates") + "#type-referral")


def objective(agreement, admin) -> Case:
    item = Objective.objects.create(agreement=agreement, goal_type="capability",
                                    success_metric="Certify 10 engineers", target_value=10,
                                    deadline=dt.date(2026, 6, 30))
    return Case(reverse("program_objective_delete", args=[agreement.code, item.pk]),
                "Delete the objective “Certify 10 engineers” of ACME-CM-2025?",
                lambda: Objective.objects.filter(pk=item.pk).exists(), {},
                reverse("program_objectives", args=[agreement.code]))


def review(agreement, admin) -> Case:
    item = Review.objects.create(agreement=agreement, kind="quarterly_strategy",
                                 held_on=dt.date(2026, 3, 4))
    ActionItem.objects.create(agreement=agreement, review=item, description="Share pipeline",
                              owner_name="Ann", owner_side="partner",
                              due_date=dt.date(2026, 4, 1))
    return Case(reverse("program_review_delete", args=[item.pk]),
                "Delete the quarterly strategy review of 2026-03-04 (ACME-CM-2025)?",
                lambda: Review.objects.filter(pk=item.pk).exists(), {},
                reverse("agreement_reviews", args=[agreement.code]))


def action(agreement, admin) -> Case:
    item = ActionItem.objects.create(agreement=agreement, description="Share the pipeline",
                                     owner_name="Ann", owner_side="partner",
                                     due_date=dt.date(2026, 4, 1))
    return Case(reverse("program_action_delete", args=[item.pk]),
                "Delete the action “Share the pipeline” of ACME-CM-2025?",
                lambda: ActionItem.objects.filter(pk=item.pk).exists(), {},
                reverse("agreement_reviews", args=[agreement.code]))


def incentive_plan(agreement, admin) -> Case:
    plan = IncentivePlan.objects.create(agreement=agreement, base_amount=Decimal("1000"))
    return Case(reverse("program_incentive_plan_delete", args=[agreement.code]),
                "Remove the incentive plan of ACME-CM-2025?",
                lambda: IncentivePlan.objects.filter(pk=plan.pk).exists(), {},
                reverse("program_incentive_plan", args=[agreement.code]))


def user(agreement, admin) -> Case:
    member = make_user(type(admin), "acme-viewer", Role.PARTNER_VIEWER, agreement.partner)
    return Case(reverse("access_user_deactivate", args=[member.pk]), "Deactivate acme-viewer?",
                lambda: type(admin).objects.get(pk=member.pk).is_active,
                {"next": reverse("access_user", args=[member.pk])},
                reverse("access_user", args=[member.pk]))


def invitation(agreement, admin) -> Case:
    item = Invitation.objects.create(
        email="new.person@acme.example", role=Role.PARTNER_VIEWER, partner=agreement.partner,
        token_hash=token_hash("a-token"), invited_by=admin,
        expires_at=timezone.now() + dt.timedelta(days=1))
    return Case(reverse("access_invitation_withdraw", args=[item.pk]),
                "Withdraw the invitation to new.person@acme.example?",
                lambda: Invitation.objects.get(pk=item.pk).revoked_at is None, {},
                reverse("access_users") + "#invitations")


def api_token(agreement, admin) -> Case:
    token, _key = api_token_create(user=admin, name="CRM nightly export")
    return Case(reverse("api_token_revoke"), "Revoke the token “CRM nightly export”",
                lambda: ApiToken.objects.get(pk=token.pk).revoked_at is None,
                {"token": str(token.pk)}, reverse("api_tokens"))


CASES = [agreement_kpi, library_kpi, template_item, objective, review, action, incentive_plan,
         user, invitation, api_token]


@pytest.fixture(params=CASES, ids=[case.__name__ for case in CASES])
def case(request, client, admin, acme_agreement) -> Case:
    client.force_login(admin)
    return request.param(acme_agreement, admin)


def test_an_unconfirmed_post_destroys_nothing_and_asks(client, case):
    response = client.post(case.url, case.body)
    assert response.status_code == 200
    assert case.alive()
    page = response.text
    assert case.question in page
    # The page's own form confirms, carrying what the button posted; Keep goes back.
    assert f'action="{case.url}"' in page and 'name="confirm" value="yes"' in page
    for name, value in case.body.items():
        assert f'name="{name}" value="{value}"' in page
    assert f'href="{case.cancel_url}" data-confirm-keep>Keep</a>' in page


def test_a_confirmed_post_does_it(client, case):
    response = client.post(case.url, {**case.body, **CONFIRM})
    assert response.status_code == 302
    assert not case.alive()


@pytest.mark.parametrize("answer", ["", "no", "YES", "1"])
def test_only_confirm_yes_counts_as_confirmed(client, case, answer):
    client.post(case.url, {**case.body, "confirm": answer})
    assert case.alive()


def test_over_htmx_the_question_replaces_the_button_that_asked(client, case):
    headers = {"HX-Request": "true", "HX-Trigger": "confirm-the-button"}
    response = client.post(case.url, case.body, headers=headers)
    assert response.status_code == 200 and case.alive()
    panel = response.text.strip()
    assert panel.startswith('<div class="confirm" id="confirm-the-button-ask"')
    assert 'data-confirm="confirm-the-button"' in panel and "autofocus" in panel
    assert case.question in panel and "<html" not in panel
    assert "HX-Request" in response["Vary"]

    confirmed = client.post(case.url, {**case.body, **CONFIRM}, headers={"HX-Request": "true"})
    assert confirmed.status_code == 204 and confirmed["HX-Redirect"]
    assert not case.alive()


def test_a_deactivation_confirmed_on_the_users_page_answers_the_users_row(client, admin, acme):
    member = make_user(type(admin), "acme-viewer", Role.PARTNER_VIEWER, acme)
    client.force_login(admin)
    url = reverse("access_user_deactivate", args=[member.pk])
    asked = client.post(url, {"confirm_target": f"#user-{member.pk}"},
                        headers={"HX-Request": "true"}).text
    assert f'hx-target="#user-{member.pk}"' in asked and "confirm_target" not in asked
    row = client.post(url, CONFIRM, headers={"HX-Request": "true",
                                             "HX-Target": f"user-{member.pk}"}).text
    assert row.strip().startswith(f'<tr id="user-{member.pk}"') and "Reactivate" in row


def test_a_refused_removal_says_why_without_asking(client, admin, acme_agreement):
    Objective.objects.create(agreement=acme_agreement, goal_type="revenue_growth",
                             success_metric="Grow revenue", target_value=100,
                             kpi=KPIDefinition.objects.get(code="revenue"),
                             deadline=dt.date(2026, 12, 31))
    row = AgreementKPI.objects.get(agreement=acme_agreement, kpi__code="revenue")
    client.force_login(admin)
    url = reverse("program_agreement_kpi_remove", args=[acme_agreement.code, row.pk])
    response = client.post(url, follow=True)
    assert "measures its progress with it" in response.text
    assert "Remove “Partner-sourced revenue”" not in response.text


def test_pages_draw_every_destructive_button_as_a_confirming_trigger(client, admin,
                                                                   acme_agreement):
    IncentivePlan.objects.create(agreement=acme_agreement, base_amount=Decimal("1000"))
    client.force_login(admin)
    page = client.get(reverse("program_agreement_kpis", args=[acme_agreement.code])).text
    remove = reverse("program_agreement_kpi_remove",
                     args=[acme_agreement.code,
                           AgreementKPI.objects.get(kpi__code="revenue").pk])
    assert (f'<form method="post" action="{remove}" class="inline-form confirm-trigger"'
            in page)
    assert f'hx-post="{remove}" hx-target="this" hx-swap="outerHTML"' in page
    plan = client.get(reverse("program_incentive_plan", args=[acme_agreement.code])).text
    assert "confirm-trigger" in plan and 'name="confirm"' not in plan


def test_no_template_uses_the_browsers_own_confirm_popup():
    templates = Path(settings.BASE_DIR, "templates").rglob("*.html")
    assert [path.name for path in templates if "hx-confirm" in path.read_text()] == []
