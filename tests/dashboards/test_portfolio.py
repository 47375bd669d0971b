"""The host's portfolio page: cards, table, filters, sorting, pagination, months, HTMX."""

import pytest
from django.urls import reverse

from dashboards.selectors import one_decimal
from partnerships.models import Agreement
from scoring.exports import format_number
from scoring.models import Scorecard, ScoringRun
from scoring.services import scoring_run_inline
from tests.conftest import make_agreement, write_observations

pytestmark = pytest.mark.django_db

URL = "/portfolio/"


def observations_for(agreements, kpis, months=3):
    rev, defect = kpis["revenue"], kpis["defect_rate"]
    rows = []
    for index, agreement in enumerate(agreements):
        for month in range(1, months + 1):
            rows += [
                (agreement, rev, "host", f"2025-{month:02d}-10", 40 + 10 * month + 7 * index),
                (agreement, defect, "partner", f"2025-{month:02d}-12", 4 + index % 3),
            ]
    return rows


@pytest.fixture
def scored(acme_agreement, globex_agreement, kpis):
    write_observations(observations_for([acme_agreement, globex_agreement], kpis))
    scoring_run_inline()
    return acme_agreement, globex_agreement


def test_url_is_portfolio():
    assert reverse("portfolio") == URL


def test_partner_users_get_404_and_anonymous_visitors_log_in(client, acme_viewer):
    assert client.get(URL).status_code == 302
    client.force_login(acme_viewer)
    assert client.get(URL).status_code == 404


def test_empty_state_before_any_run(client, host_manager, acme_agreement):
    client.force_login(host_manager)
    response = client.get(URL)
    assert response.status_code == 200
    assert "No scores published yet" in response.text


def test_defaults_to_the_last_month_and_shows_stored_numbers(client, host_manager, scored):
    acme, globex = scored
    client.force_login(host_manager)
    response = client.get(URL)
    assert response.status_code == 200
    assert response.context["month"] == "2025-03"
    card = Scorecard.objects.get(run=ScoringRun.objects.current(), agreement=acme,
                                 period="2025-03")
    expected = f"{float(format_number(card.overall)):.1f}"
    row = next(row for row in response.context["page"].object_list if row.agreement == acme)
    assert row.overall == expected
    assert expected in response.text
    assert "ACME-CM-2025" in response.text and "GLOBEX-REF-2025" in response.text
    assert reverse("agreement_dashboard", args=[acme.code]) in response.text
    assert response.context["summary"]["active"] == 2


def test_month_selector_changes_the_month(client, host_manager, scored):
    client.force_login(host_manager)
    response = client.get(URL, {"month": "2025-02"})
    assert response.context["month"] == "2025-02"
    assert "month=2025-01" in response.context["previous_month_url"]
    assert "month=2025-03" in response.context["next_month_url"]
    # A month the run did not score falls back to the last one.
    assert client.get(URL, {"month": "1999-01"}).context["month"] == "2025-03"


def test_htmx_request_gets_the_table_partial_only(client, host_manager, scored):
    client.force_login(host_manager)
    response = client.get(URL, {"month": "2025-02"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="portfolio-body"')
    assert "<html" not in response.text
    assert 'hx-push-url="true"' in response.text


def test_filters_by_search_type_and_tier(client, host_manager, scored, acme):
    client.force_login(host_manager)
    codes = lambda response: [row.agreement.code for row in response.context["page"]]  # noqa: E731
    assert codes(client.get(URL, {"q": "acme"})) == ["ACME-CM-2025"]
    assert codes(client.get(URL, {"q": "globex"})) == ["GLOBEX-REF-2025"]
    assert codes(client.get(URL, {"type": "referral"})) == []
    assert len(codes(client.get(URL, {"type": "co_marketing"}))) == 2
    tier = client.get(URL).context["page"].object_list[0].tier
    assert "ACME-CM-2025" in codes(client.get(URL, {"tier": tier}))
    # Unknown filter values are ignored rather than matching nothing.
    assert len(codes(client.get(URL, {"stage": "nonsense"}))) == 2


def test_flag_filter(client, host_manager, scored):
    client.force_login(host_manager)
    run = ScoringRun.objects.current()
    acme = scored[0]
    Scorecard.objects.filter(run=run, agreement=acme, period="2025-03").update(at_risk=True)
    response = client.get(URL, {"flag": "at_risk"})
    assert [row.agreement.code for row in response.context["page"]] == ["ACME-CM-2025"]
    assert "flag-at-risk" in response.text
    assert client.get(URL).context["summary"]["at_risk"] == 1


def test_sorting_by_overall_both_ways(client, host_manager, scored):
    client.force_login(host_manager)
    ascending = [row.scorecard.overall for row in client.get(URL, {"sort": "overall"})
                 .context["page"]]
    descending = [row.scorecard.overall for row in client.get(URL, {"sort": "-overall"})
                  .context["page"]]
    assert ascending == sorted(ascending)
    assert descending == sorted(descending, reverse=True)
    assert client.get(URL, {"sort": "bogus"}).context["sort"] == "agreement"


def test_pagination_50_per_page(client, host_manager, acme, kpis):
    agreements = [make_agreement(acme, f"ACME-{index:03d}", kpis) for index in range(55)]
    write_observations(observations_for(agreements, kpis, months=1))
    scoring_run_inline()
    client.force_login(host_manager)
    first = client.get(URL)
    assert len(first.context["page"].object_list) == 50
    assert "page=2" in first.context["next_page_url"]
    second = client.get(URL, {"page": 2})
    assert len(second.context["page"].object_list) == 5
    assert "Page 2 of 2" in second.text


def test_tier_change_shows_an_arrow(client, host_manager, scored):
    acme = scored[0]
    run = ScoringRun.objects.current()
    Scorecard.objects.filter(run=run, agreement=acme, period="2025-02").update(
        tier="transactional")
    Scorecard.objects.filter(run=run, agreement=acme, period="2025-03").update(tier="strategic")
    client.force_login(host_manager)
    response = client.get(URL)
    row = next(row for row in response.context["page"] if row.agreement == acme)
    assert row.tier_move == "up"
    assert "▲" in response.text


def test_query_count_does_not_grow_with_agreements(client, host_manager, acme, kpis,
                                                   django_assert_max_num_queries):
    counts = []
    for size in (3, 30):
        ScoringRun.objects.all().delete()
        Agreement.objects.all().delete()
        agreements = [make_agreement(acme, f"Q{size}-{index:03d}", kpis)
                      for index in range(size)]
        write_observations(observations_for(agreements, kpis, months=2))
        scoring_run_inline()
        client.force_login(host_manager)
        with django_assert_max_num_queries(12) as captured:
            response = client.get(URL)
        assert response.status_code == 200
        assert len(response.context["page"].object_list) == size
        counts.append(len(captured))
    assert counts[0] == counts[1]


def test_one_decimal_matches_the_export():
    assert one_decimal(None) == ""
    assert one_decimal(74.25) == f"{float(format_number(74.25)):.1f}"
    assert one_decimal(-0.00001) == "0.0"
    assert one_decimal(56.25) == "56.2"
