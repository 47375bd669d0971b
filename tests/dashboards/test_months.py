"""The Months page (close with a preview, reopen with a reason, approve by another admin), the
month labels of every month selector for both sides, and the month a page opens on."""

from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from dashboards.selectors.months import month_shift
from dashboards.templatetags.numbers import money_text
from partnerships.models import IncentivePlan, ProgramMonth, Role
from scoring.closing import current_month, months_close
from scoring.models import Scorecard, ScoringRun, StatementApproval
from scoring.services import scoring_run_inline
from scoring.statements import payout_amount
from tests.conftest import make_user, write_observations

pytestmark = pytest.mark.django_db


@pytest.fixture
def host_admin(django_user_model):
    return make_user(django_user_model, "admin", Role.HOST_ADMIN)


@pytest.fixture
def other_admin(django_user_model):
    return make_user(django_user_model, "finance", Role.HOST_ADMIN)


def months_back(count: int) -> str:
    return month_shift(current_month(), -count)


@pytest.fixture
def scored(acme_agreement, globex_agreement, kpis):
    """Four months ended (oldest first) and the month in progress, all scored; Acme has an
    incentive plan."""
    IncentivePlan.objects.create(agreement=acme_agreement, base_amount=Decimal("1000.00"))
    rows = []
    for agreement, revenue in ((acme_agreement, 90), (globex_agreement, 40)):
        for back in range(4, 0, -1):
            rows.append((agreement, kpis["revenue"], "host", f"{months_back(back)}-10", revenue))
            rows.append((agreement, kpis["defect_rate"], "partner", f"{months_back(back)}-10",
                         3))
        rows.append((agreement, kpis["revenue"], "host", timezone.localdate().isoformat(), 5))
    write_observations([row for row in rows if row[2] == "host"])
    write_observations([row for row in rows if row[2] == "partner"], side="partner")
    assert scoring_run_inline().status == ScoringRun.Status.SUCCEEDED
    run = ScoringRun.objects.current()
    assert run.last_period == current_month()
    return run


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# ---- Who sees and does what ------------------------------------------------------------------


def test_a_host_manager_sees_every_month_with_its_state_and_may_close(client, host_manager,
                                                                       scored):
    client.force_login(host_manager)
    response = client.get(reverse("months"))
    assert response.status_code == 200
    rows = {row.month: row for row in response.context["rows"]}
    assert rows[current_month()].state == "in_progress"
    assert rows[months_back(1)].state == "open"
    assert response.context["closable"] == [months_back(back) for back in range(4, 0, -1)]
    assert response.context["scores_current"] is True
    assert 'action="/months/close/"' in response.text
    # Reopening and approving are the host admins'.
    assert 'action="/months/reopen/"' not in response.text


def test_partner_users_do_not_learn_the_months_page_exists(client, acme_viewer, scored):
    client.force_login(acme_viewer)
    assert client.get(reverse("months")).status_code == 404
    assert client.post(reverse("months_close"),
                       {"through": months_back(1), "confirm": "yes"}).status_code == 404
    assert client.post(reverse("month_reopen"),
                       {"month": months_back(1), "reason": "x"}).status_code == 404
    assert ProgramMonth.objects.last_closed() is None


def test_a_host_manager_may_neither_reopen_nor_approve(client, host_manager, scored):
    months_close(through=months_back(2), user=host_manager)
    client.force_login(host_manager)
    assert client.post(reverse("month_reopen"),
                       {"month": months_back(2), "reason": "late data"}).status_code == 403
    assert client.post(reverse("month_statement_approve"),
                       {"month": months_back(2)}).status_code == 403
    assert ProgramMonth.objects.last_closed() == months_back(2)


# ---- Closing ---------------------------------------------------------------------------------


def test_closing_first_shows_what_it_freezes_then_closes_when_confirmed(client, host_manager,
                                                                        scored):
    client.force_login(host_manager)
    through = months_back(3)
    asked = client.post(reverse("months_close"), {"through": through})
    assert asked.status_code == 200
    assert ProgramMonth.objects.last_closed() is None
    months = [months_back(4), through]
    cards = Scorecard.objects.of_run(scored).filter(period__in=months, has_scorecard=True)
    assert f"Close {months[0]} to {through}?" in asked.text
    assert f"It freezes {cards.count()} scorecards" in asked.text
    assert f"{months[0]}: 2 scorecards" in asked.text and f"{through}: 2 scorecards" in asked.text
    assert money_text(sum((payout_amount(card.payout) for card in cards
                           if card.payout is not None), Decimal("0.00"))) in asked.text
    assert 'name="confirm" value="yes"' in asked.text
    assert f'name="through" value="{through}"' in asked.text

    done = client.post(reverse("months_close"), {"through": through, "confirm": "yes"})
    assert done.status_code == 302
    assert ProgramMonth.objects.last_closed() == through
    assert any(f"Closed {months[0]} to {through}" in text for text in messages_of(done))
    page = client.get(reverse("months"))
    rows = {row.month: row for row in page.context["rows"]}
    assert rows[through].state == "closed" and rows[through].closing.username == "manager"
    assert "awaiting approval" in page.text


def test_closing_with_scores_not_current_is_refused_and_the_page_says_why(client, host_manager,
                                                                           scored, kpis,
                                                                           acme_agreement):
    client.force_login(host_manager)
    # Seen current first, so that the page must notice the import that follows.
    assert client.get(reverse("months")).context["scores_current"] is True
    write_observations([(acme_agreement, kpis["revenue"], "host", f"{months_back(2)}-20", 7)])
    page = client.get(reverse("months"))
    assert page.context["scores_current"] is False
    assert "The scores are not current" in page.text
    refused = client.post(reverse("months_close"),
                          {"through": months_back(2), "confirm": "yes"}, follow=True)
    assert ProgramMonth.objects.last_closed() is None
    assert any("run scoring first" in text for text in messages_of(refused))
    assert "run scoring first" in refused.text


def test_the_month_in_progress_cannot_be_chosen_to_close(client, host_manager, scored):
    client.force_login(host_manager)
    response = client.post(reverse("months_close"),
                           {"through": current_month(), "confirm": "yes"}, follow=True)
    assert ProgramMonth.objects.last_closed() is None
    assert any("has ended" in text for text in messages_of(response))


def test_the_page_says_why_the_automatic_close_could_not_run(client, host_manager, scored,
                                                             settings, kpis, acme_agreement):
    from scoring.closing import months_auto_close

    settings.MONTH_AUTO_CLOSE_DAYS = 1
    write_observations([(acme_agreement, kpis["revenue"], "host", f"{months_back(2)}-20", 7)])
    assert "could not close" in months_auto_close()
    client.force_login(host_manager)
    page = client.get(reverse("months"))
    assert "The automatic close through" in page.text
    assert "run scoring first" in page.text


# ---- Reopening and approving ----------------------------------------------------------------


def test_reopening_needs_a_reason_and_keeps_what_was_typed(client, host_admin, host_manager,
                                                           scored):
    months_close(through=months_back(2), user=host_manager)
    client.force_login(host_admin)
    refused = client.post(reverse("month_reopen"), {"month": months_back(3), "reason": "  "})
    assert refused.status_code == 200
    assert ProgramMonth.objects.last_closed() == months_back(2)
    assert "This field is required" in refused.text
    assert f'<option value="{months_back(3)}" selected>' in refused.text

    done = client.post(reverse("month_reopen"),
                       {"month": months_back(3), "reason": "Late partner revenue"})
    assert done.status_code == 302
    assert ProgramMonth.objects.last_closed() == months_back(4)
    page = client.get(reverse("months"))
    assert "Late partner revenue" in page.text


def test_the_admin_who_closed_a_month_is_told_another_admin_approves_it(
        client, host_admin, other_admin, scored):
    months_close(through=months_back(2), user=host_admin)
    client.force_login(host_admin)
    page = client.get(reverse("months"))
    assert f"You closed {months_back(2)}: another host admin approves its statement." \
        in page.text
    refused = client.post(reverse("month_statement_approve"), {"month": months_back(2)},
                          follow=True)
    assert not StatementApproval.objects.exists()
    assert any("approved by another host admin" in text for text in messages_of(refused))

    client.force_login(other_admin)
    page = client.get(reverse("months"))
    assert "Approve for payment" in page.text
    client.post(reverse("month_statement_approve"), {"month": months_back(2)})
    assert StatementApproval.objects.filter(month=months_back(2),
                                            approved_by=other_admin).exists()
    page = client.get(reverse("months"))
    rows = {row.month: row for row in page.context["rows"]}
    assert rows[months_back(2)].approval.approved_by == other_admin


# ---- Month labels on the selectors of both sides ---------------------------------------------


def test_the_agreement_month_selector_labels_months_for_both_sides(client, host_manager,
                                                                   acme_viewer, scored):
    months_close(through=months_back(3), user=host_manager)
    for user in (host_manager, acme_viewer):
        client.force_login(user)
        text = client.get(reverse("agreement_dashboard", args=["ACME-CM-2025"])).text
        assert f">{months_back(3)} · closed</option>" in text
        assert f">{months_back(2)} · open</option>" in text
        assert f">{current_month()} · in progress</option>" in text
        assert 'class="month-state month-state--open">open</span>' in text


def test_the_portfolio_month_navigation_labels_the_months(client, host_manager, scored):
    months_close(through=months_back(2), user=host_manager)
    client.force_login(host_manager)
    text = client.get(reverse("portfolio"), {"month": months_back(2)}).text
    assert 'class="month-state month-state--closed">closed</span>' in text
    assert f'aria-label="Next month, {months_back(1)} · open"' in text
    assert f'aria-label="Previous month, {months_back(3)} · closed"' in text


def test_the_partner_home_says_the_state_of_its_month(client, acme_viewer, host_manager,
                                                      scored):
    months_close(through=months_back(1), user=host_manager)
    client.force_login(acme_viewer)
    response = client.get(reverse("home"))
    assert response.context["month"] == months_back(1)
    assert 'class="month-state month-state--closed">closed</span>' in response.text


# ---- The month a page opens on -------------------------------------------------------------


def test_pages_open_on_the_latest_ended_month_never_the_month_in_progress(
        client, host_manager, acme_viewer, scored):
    client.force_login(host_manager)
    assert client.get(reverse("portfolio")).context["month"] == months_back(1)
    agreement = reverse("agreement_dashboard", args=["ACME-CM-2025"])
    assert client.get(agreement).context["month"] == months_back(1)
    assert client.get(reverse("ecosystem")).context["end"] == months_back(1)
    client.force_login(acme_viewer)
    assert client.get(reverse("home")).context["month"] == months_back(1)
    assert client.get(agreement).context["month"] == months_back(1)


def test_the_month_in_progress_can_be_chosen_and_says_so_far(client, host_manager, scored):
    client.force_login(host_manager)
    portfolio = client.get(reverse("portfolio"), {"month": current_month()})
    assert portfolio.context["month"] == current_month()
    assert "is in progress: its figures are so far" in portfolio.text
    assert "total payout in " + current_month() + " so far" in portfolio.text
    # No at-risk flag can be known in a partial month: never a bare 0 read as an all-clear.
    assert portfolio.context["summary"]["at_risk"] == 0
    assert ('<span class="kpi-card__value">—</span><span class="kpi-card__label">at risk so '
            f'far: not known until {current_month()} ends</span>') in portfolio.text
    assert '<span class="kpi-card__value">0</span><span class="kpi-card__label">at risk' \
        not in portfolio.text
    agreement = client.get(reverse("agreement_dashboard", args=["ACME-CM-2025"]),
                           {"month": current_month()})
    assert "these scores are so far" in agreement.text
