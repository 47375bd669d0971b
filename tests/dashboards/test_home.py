"""The home page: a partner's users see their own agreements as cards, nothing of anyone else;
host users keep the program overview with links to the portfolio and the ecosystem."""

import re

import pytest
from django.urls import reverse

from dashboards.templatetags.numbers import score_text as one_decimal
from partnerships.models import Agreement, Partner
from scoring.models import Scorecard, ScoringRun
from scoring.services import scoring_run_inline
from tests.conftest import make_agreement, write_observations
from tests.dashboards.test_portfolio import observations_for

pytestmark = pytest.mark.django_db

URL = "/"


@pytest.fixture
def world(acme, globex, kpis):
    """Acme with two agreements, Globex with one that has a distinctive name, all scored."""
    Partner.objects.filter(pk=globex.pk).update(name="Globex Zyxcorp")
    acme_agreements = [make_agreement(acme, "ACME-CM-2025", kpis),
                       make_agreement(acme, "ACME-RES-2025", kpis, stage="pilot")]
    Agreement.objects.filter(pk=acme_agreements[0].pk).update(title="Acme co-marketing")
    globex_agreement = make_agreement(globex, "GLOBEX-REF-2025", kpis)
    Agreement.objects.filter(pk=globex_agreement.pk).update(title="Globex secret deal")
    # Globex's numbers differ from Acme's (index 2 in observations_for), so a leak would show.
    write_observations(observations_for([*acme_agreements, globex_agreement], kpis, months=3))
    scoring_run_inline()
    return acme_agreements, globex_agreement


def cards(response):
    return response.context["agreement_cards"]


def test_partner_user_sees_a_card_per_own_agreement_with_the_stored_numbers(
        client, acme_viewer, world):
    acme_agreements, _ = world
    client.force_login(acme_viewer)
    response = client.get(URL)
    assert response.status_code == 200
    assert [row.agreement.code for row in cards(response)] == ["ACME-CM-2025", "ACME-RES-2025"]
    assert response.context["month"] == "2025-03"
    run = ScoringRun.objects.current()
    card = Scorecard.objects.get(run=run, agreement=acme_agreements[0], period="2025-03")
    html = response.text
    assert "Where Acme Corp stands in 2025-03" in html
    assert one_decimal(card.overall) in html and one_decimal(card.rolling) in html
    assert f"{one_decimal(card.coverage * 100)} %" in html
    assert "Acme co-marketing" in html
    assert "Co-marketing · pilot" in html
    assert reverse("agreement_dashboard", args=["ACME-CM-2025"]) + "?month=2025-03" in html
    assert html.count('<svg class="sparkline"') == 2
    if card.tier:
        assert f'badge tier-{card.tier}' in html
    assert " style=" not in html


def test_partner_home_shows_nothing_of_another_partner(client, acme_viewer, world):
    _, globex_agreement = world
    run = ScoringRun.objects.current()
    globex_cards = Scorecard.objects.filter(run=run, agreement=globex_agreement,
                                            has_scorecard=True)
    client.force_login(acme_viewer)
    response = client.get(URL)
    html = response.text
    for text in ("GLOBEX", "Globex", "Zyxcorp", "secret deal"):
        assert text not in html
    # Globex's scores appear nowhere, not even as a number on a card or in a sparkline label.
    acme_numbers = {row.overall for row in cards(response)} | {
        row.rolling for row in cards(response)}
    for globex_card in globex_cards:
        number = one_decimal(globex_card.overall)
        if number not in acme_numbers:
            assert not re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", html), number
    # Counts and chart axes count Acme's agreements only.
    assert response.context["agreement_count"] == 2
    stage_counts = dict(zip(response.context["stage_figure"]["data"][0]["y"],
                            response.context["stage_figure"]["data"][0]["x"], strict=True))
    assert sum(stage_counts.values()) == 2
    assert all(row.agreement.partner.slug == "acme" for row in cards(response))


def test_globex_user_sees_only_globex(client, globex_viewer, world):
    client.force_login(globex_viewer)
    response = client.get(URL)
    assert [row.agreement.code for row in cards(response)] == ["GLOBEX-REF-2025"]
    assert "ACME" not in response.text.upper()


def test_partner_home_before_any_run_lists_the_agreements_and_says_why_no_scores(
        client, acme_viewer, acme_agreement):
    client.force_login(acme_viewer)
    response = client.get(URL)
    assert [row.agreement.code for row in cards(response)] == ["ACME-CM-2025"]
    assert "No scores published yet" in response.text
    assert "ACME-CM-2025" in response.text


def test_partner_card_says_when_the_month_has_no_metrics(client, acme_viewer, world, acme,
                                                         kpis):
    make_agreement(acme, "ACME-NEW-2025", kpis)
    client.force_login(acme_viewer)
    response = client.get(URL)
    row = next(row for row in cards(response) if row.agreement.code == "ACME-NEW-2025")
    assert not [point for point in row.trend if point.overall is not None]
    assert "No metrics imported for 2025-03." in response.text
    assert "no scores" in response.text


def test_host_home_links_to_portfolio_and_ecosystem_and_has_no_cards(
        client, host_manager, world):
    client.force_login(host_manager)
    response = client.get(URL)
    assert "agreement_cards" not in response.context
    assert reverse("portfolio") in response.text
    assert reverse("ecosystem") in response.text
    assert "GLOBEX-REF-2025" in response.text and "ACME-CM-2025" in response.text
    # The main navigation has the ecosystem page for host users only.
    assert f'<a href="{reverse("ecosystem")}"' in response.text


def test_partner_navigation_has_no_ecosystem_link(client, acme_viewer, world):
    client.force_login(acme_viewer)
    assert reverse("ecosystem") not in client.get(URL).text


def test_partner_home_queries_do_not_grow_with_agreements(
        client, acme_viewer, acme, kpis, django_assert_max_num_queries):
    counts = []
    for size in (2, 20):
        ScoringRun.objects.all().delete()
        Agreement.objects.all().delete()
        agreements = [make_agreement(acme, f"H{size}-{index:03d}", kpis)
                      for index in range(size)]
        write_observations(observations_for(agreements, kpis, months=2))
        scoring_run_inline()
        client.force_login(acme_viewer)
        # 16, and the worklist's counts (dashboards/selectors/attention.py): the settings,
        # the agreements, two months' scorecards, the tiers, disputes, the finished imports,
        # and on a first view the program's counter, objectives and each KPI's latest
        # observation (kept afterwards); and the reviews planned ahead (one query).
        with django_assert_max_num_queries(27) as captured:
            response = client.get(URL)
        assert len(cards(response)) == size
        counts.append(len(captured))
    assert counts[0] == counts[1]


def test_partner_card_shows_the_payout_in_its_plan_currency(client, acme_viewer, world):
    from decimal import Decimal

    from partnerships.models import IncentivePlan

    acme_agreements, _ = world
    IncentivePlan.objects.create(agreement=acme_agreements[0], base_amount=Decimal("1000"),
                                 currency="EUR")
    run = ScoringRun.objects.current()
    Scorecard.objects.filter(run=run, agreement=acme_agreements[0], period="2025-03").update(
        payout=1234.5)
    client.force_login(acme_viewer)
    response = client.get(URL)
    assert "payout (EUR)" in response.text
    assert "1,234.50" in response.text


def test_host_home_says_when_it_lists_only_some_agreements_and_links_to_all(
        client, host_manager, acme, kpis, settings):
    from dashboards.home_views import HOME_LINKS

    for n in range(HOME_LINKS + 3):
        make_agreement(acme, f"MANY-{n:02d}", kpis)
    client.force_login(host_manager)
    response = client.get(URL)

    total = HOME_LINKS + 3
    assert f"The first {HOME_LINKS} of {total} agreements by code" in response.text
    assert f'All {total} on the portfolio' in response.text
    assert "MANY-19" in response.text and "MANY-20" not in response.text


def test_host_home_with_every_agreement_listed_says_nothing_of_a_selection(
        client, host_manager, world):
    client.force_login(host_manager)
    assert "agreement-links-note" not in client.get(URL).text
