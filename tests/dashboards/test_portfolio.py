"""The host's portfolio page: cards, table, filters, sorting, pagination, months, HTMX."""

import pytest
from django.urls import reverse

from dashboards.templatetags.numbers import score
from dashboards.templatetags.numbers import score_text as one_decimal
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
    expected = score(float(format_number(card.overall)))
    row = next(row for row in response.context["page"].object_list if row.agreement == acme)
    assert row.overall == card.overall
    assert f">{expected}</td>" in response.text
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
    # Past the end, or before the start as Django's Paginator.get_page has it: the last page.
    for number in ("3", "0", "-1"):
        assert client.get(URL, {"page": number}).context["page"].number == 2
    assert client.get(URL, {"page": "two"}).context["page"].number == 1


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
        # Session and user, the run, agreements, one scorecard query for the month, its
        # previous month and the trend window; the review and action cards; the footer.
        with django_assert_max_num_queries(20) as captured:
            response = client.get(URL)
        assert response.status_code == 200
        assert len(response.context["page"].object_list) == size
        counts.append(len(captured))
    assert counts[0] == counts[1]


def test_one_decimal_matches_the_export():
    assert one_decimal(None) == ""
    # The export's 74.2500 and 56.2500 rounded half up, as a reader of the CSV would.
    assert format_number(74.25) == "74.2500" and one_decimal(74.25) == "74.3"
    assert one_decimal(-0.00001) == "0.0"
    assert one_decimal(56.25) == "56.3"


# ---- Charts, sparklines, owner filter, new columns, CSV export --------------------------------


def rows_of(response):
    return list(response.context["page"].object_list)


def test_tier_and_score_charts_are_built_on_the_server(client, host_manager, scored):
    client.force_login(host_manager)
    response = client.get(URL)
    tiers, scores = response.context["tier_figure"], response.context["score_figure"]
    run = ScoringRun.objects.current()
    # The score histogram counts the month's scorecards, the tier chart the tiers per month.
    histogram = scores["data"][0]["y"]
    assert sum(histogram) == Scorecard.objects.filter(
        run=run, period="2025-03", has_scorecard=True).count() == 2
    march = {trace["name"]: trace["y"][-1] for trace in tiers["data"]}
    assert sum(march.values()) == Scorecard.objects.filter(
        run=run, period="2025-03").exclude(tier="").count()
    assert [trace["marker"]["color"] for trace in tiers["data"]] == [
        "#0072B2", "#009E73", "#E69F00"]
    assert scores["layout"]["xaxis"]["title"]["text"].startswith("overall score")
    assert 'data-plotly="chart-tiers-data"' in response.text
    assert 'data-plotly="chart-scores-data"' in response.text
    assert "plotly-strict" in response.text


def test_a_month_without_scorecards_says_so_instead_of_an_empty_chart(
        client, host_manager, scored):
    run = ScoringRun.objects.current()
    Scorecard.objects.filter(run=run, period="2025-01").update(has_scorecard=False, tier="")
    client.force_login(host_manager)
    response = client.get(URL, {"month": "2025-01"})
    assert response.context["score_figure"] is None
    assert response.context["tier_figure"] is None
    assert "No scorecards for 2025-01: import that month" in response.text
    assert "No tiers up to 2025-01 yet" in response.text


def test_each_row_has_an_accessible_sparkline_without_inline_styles(
        client, host_manager, scored):
    client.force_login(host_manager)
    response = client.get(URL)
    row = next(row for row in rows_of(response) if row.agreement.code == "ACME-CM-2025")
    assert [point.period for point in row.trend][-3:] == ["2025-01", "2025-02", "2025-03"]
    assert len(row.trend) == 12
    from dashboards.charts import sparkline

    spark = sparkline(points=row.trend)
    # Three scored months in a row: one line of three points, on the right of the window.
    assert len(spark["lines"]) == 1 and len(spark["lines"][0].split()) == 3
    assert spark["last"][0] == 100
    assert "3 of 12 months scored" in spark["label"]
    assert f"to {score(row.overall)} (2025-03)" in spark["label"]
    assert '<svg class="sparkline"' in response.text
    assert "<title>Overall score 2024-04 to 2025-03" in response.text
    assert " style=" not in response.text


def test_sparkline_breaks_at_months_without_a_scorecard():
    from dashboards.charts import sparkline
    from dashboards.selectors.rows import TrendPoint

    points = [TrendPoint("2025-01", 60.0, ""), TrendPoint("2025-02", None, ""),
              TrendPoint("2025-03", 120.0, ""), TrendPoint("2025-04", 0.0, ""),
              TrendPoint("2025-05", 200.0, "")]
    spark = sparkline(points=points, width=100, height=24)
    assert spark["dots"] == [(0.0, 12.0)]
    # 120 is the top, 0 the bottom, and values above the cap are drawn at the cap.
    assert spark["lines"] == ["50.0,2.0 75.0,22.0 100.0,2.0"]
    assert sparkline(points=[TrendPoint("2025-01", None, "")]) is None


def test_owner_filter_and_mine_shortcut(client, host_manager, scored, django_user_model):
    from tests.conftest import make_user

    acme, globex = scored
    other = make_user(django_user_model, "other-manager", "host_manager")
    other.first_name, other.last_name = "Olga", "Other"
    other.save()
    Agreement.objects.filter(pk=acme.pk).update(owner=host_manager)
    Agreement.objects.filter(pk=globex.pk).update(owner=other)
    client.force_login(host_manager)

    mine = client.get(URL, {"owner": "mine"})
    assert [row.agreement.code for row in rows_of(mine)] == ["ACME-CM-2025"]
    assert "owner: mine" in mine.text
    theirs = client.get(URL, {"owner": str(other.pk)})
    assert [row.agreement.code for row in rows_of(theirs)] == ["GLOBEX-REF-2025"]
    assert "Olga Other" in theirs.text
    assert ("mine", "Mine") in theirs.context["owner_choices"]
    # The filter stays in every link the page builds: sorting, months, export.
    assert f"owner={other.pk}" in theirs.context["columns"][0][2]
    assert f"owner={other.pk}" in theirs.context["export_url"]
    # An owner who owns nothing visible is ignored rather than matching nothing.
    assert len(rows_of(client.get(URL, {"owner": "999999"}))) == 2


@pytest.mark.parametrize("column", ["owner", "trend", "flags", "payout", "partner", "type",
                                    "stage", "tier", "rolling", "coverage"])
def test_every_column_sorts_both_ways(client, host_manager, acme, globex, kpis, column,
                                      django_user_model):
    from tests.conftest import make_user

    agreements = [make_agreement(acme if index % 2 else globex, f"S-{index}", kpis)
                  for index in range(4)]
    owners = [make_user(django_user_model, f"owner-{name}", "host_manager")
              for name in ("bea", "al", "cy")]
    for index, agreement in enumerate(agreements[:3]):
        agreement.owner = owners[index]
        agreement.save()
    write_observations(observations_for(agreements, kpis, months=3))
    scoring_run_inline()
    run = ScoringRun.objects.current()
    for index, agreement in enumerate(agreements):
        Scorecard.objects.filter(run=run, agreement=agreement, period="2025-03").update(
            payout=100.0 * ((index * 7) % 4), at_risk=index == 2, incomplete=index == 1)
    client.force_login(host_manager)

    from tests.dashboards.oracles import portfolio_sort

    ascending = rows_of(client.get(URL, {"sort": column}))
    descending = rows_of(client.get(URL, {"sort": "-" + column}))
    assert client.get(URL, {"sort": column}).context["sort"] == column
    assert [row.agreement.code for row in ascending] == [
        row.agreement.code for row in portfolio_sort(rows=ascending, sort=column)]
    keys = {
        "owner": lambda row: row.owner_name,
        "trend": lambda row: row.trend_change,
        "flags": lambda row: ("at_risk" in row.flags) * 2 + ("incomplete" in row.flags),
        "payout": lambda row: row.scorecard.payout,
        "partner": lambda row: row.agreement.partner.name,
        "type": lambda row: row.agreement.get_type_display(),
        "stage": lambda row: row.agreement.get_stage_display(),
        "tier": lambda row: {"transactional": 1, "growth": 2, "strategic": 3}.get(row.tier),
        "rolling": lambda row: row.scorecard.rolling,
        "coverage": lambda row: row.scorecard.coverage,
    }[column]
    present_up = [keys(row) for row in ascending if keys(row) not in (None, "")]
    present_down = [keys(row) for row in descending if keys(row) not in (None, "")]
    assert present_up == sorted(present_up)
    assert present_down == sorted(present_down, reverse=True)
    # Missing values (no owner) go last both ways.
    if column == "owner":
        assert ascending[-1].agreement.code == descending[-1].agreement.code == "S-3"
    # The header link of the sorted column reverses it.
    header = {name: url for name, _, url, _, _ in client.get(URL, {"sort": column})
              .context["columns"]}
    assert f"sort=-{column}" in header[column]


def test_htmx_partial_carries_charts_and_the_pushed_filters(client, host_manager, scored):
    client.force_login(host_manager)
    response = client.get(URL, {"tier": "growth", "owner": "mine"},
                          headers={"HX-Request": "true"})
    assert response.text.lstrip().startswith('<div id="portfolio-body"')
    assert 'id="chart-scores"' in response.text
    assert 'name="owner"' in response.text
    assert "HX-Request" in response["Vary"]


# ---- CSV export ---------------------------------------------------------------------------

EXPORT_URL = "/portfolio/export.csv"


def export_lines(response) -> list[str]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return body[1:].splitlines()


def test_export_url_and_access(client, acme_viewer):
    assert reverse("portfolio_export") == EXPORT_URL
    assert client.get(EXPORT_URL).status_code == 302
    client.force_login(acme_viewer)
    assert client.get(EXPORT_URL).status_code == 404


def test_export_has_every_filtered_row_escaped_with_the_month_in_its_name(
        client, host_manager, acme, globex, kpis):
    from partnerships.models import AuditAction, AuditEvent, Partner

    Partner.objects.filter(pk=acme.pk).update(name="=cmd|' /C calc'!A0")
    agreements = [make_agreement(acme, f"ACME-{index:03d}", kpis) for index in range(55)]
    Agreement.objects.filter(pk=agreements[0].pk).update(title="+SUM(1,2)")
    globex_agreement = make_agreement(globex, "GLOBEX-1", kpis)
    write_observations(observations_for([*agreements, globex_agreement], kpis, months=2))
    scoring_run_inline()
    client.force_login(host_manager)

    response = client.get(EXPORT_URL, {"q": "ACME", "month": "2025-02", "sort": "agreement"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="portfolio-2025-02.csv"'
    lines = export_lines(response)
    assert lines[0].startswith("period,partner,agreement,title,type,stage,owner,tier")
    # All 55 filtered rows, not only the first page of 50; Globex filtered out.
    assert len(lines) == 1 + 55
    assert not any("GLOBEX" in line for line in lines)
    first = lines[1].split(",")
    assert first[0] == "2025-02"
    assert "'=cmd|' /C calc'!A0" in lines[1]
    assert "'+SUM(1" in lines[1]
    card = Scorecard.objects.get(run=ScoringRun.objects.current(), agreement=agreements[0],
                                 period="2025-02")
    assert format_number(card.overall) in lines[1]
    event = AuditEvent.objects.get(action=AuditAction.EXPORT)
    assert event.username == "manager"
    assert event.target == "portfolio 2025-02"
    assert event.detail["rows"] == 55 and event.detail["q"] == "ACME"


def test_export_follows_the_sort_and_flag_filter(client, host_manager, scored):
    acme = scored[0]
    run = ScoringRun.objects.current()
    Scorecard.objects.filter(run=run, agreement=acme, period="2025-03").update(at_risk=True)
    client.force_login(host_manager)
    lines = export_lines(client.get(EXPORT_URL, {"flag": "at_risk"}))
    assert len(lines) == 2 and "ACME-CM-2025" in lines[1] and "at_risk" in lines[1]
    codes = [line.split(",")[2] for line in
             export_lines(client.get(EXPORT_URL, {"sort": "-agreement"}))[1:]]
    assert codes == ["GLOBEX-REF-2025", "ACME-CM-2025"]


def test_export_before_any_run_is_a_header_only(client, host_manager, acme_agreement):
    client.force_login(host_manager)
    response = client.get(EXPORT_URL)
    assert response["Content-Disposition"] == 'attachment; filename="portfolio-unscored.csv"'
    assert len(export_lines(response)) == 1


def test_export_and_filtered_page_queries_do_not_grow_with_agreements(
        client, host_manager, acme, kpis, django_assert_max_num_queries):
    counts = []
    for size in (3, 30):
        ScoringRun.objects.all().delete()
        Agreement.objects.all().delete()
        agreements = [make_agreement(acme, f"E{size}-{index:03d}", kpis)
                      for index in range(size)]
        Agreement.objects.filter(pk__in=[a.pk for a in agreements[::2]]).update(
            owner=host_manager)
        write_observations(observations_for(agreements, kpis, months=2))
        scoring_run_inline()
        client.force_login(host_manager)
        with django_assert_max_num_queries(20) as page_queries:
            response = client.get(URL, {"owner": "mine", "sort": "-trend"},
                                  headers={"HX-Request": "true"})
        assert len(response.context["page"].object_list) == (size + 1) // 2
        with django_assert_max_num_queries(14) as export_queries:
            lines = export_lines(client.get(EXPORT_URL, {"sort": "payout"}))
        assert len(lines) == size + 1
        counts.append((len(page_queries), len(export_queries)))
    assert counts[0] == counts[1]


# ---- The database's filtering, sorting and figures equal the rules on loaded rows ----------


@pytest.fixture
def varied(acme, globex, kpis, django_user_model):
    """Eight agreements with ties, gaps and missing values in every sortable column."""
    from partnerships.models import Stage
    from tests.conftest import make_user

    agreements = [make_agreement(acme if index % 3 else globex, f"V-{index}", kpis)
                  for index in range(8)]
    owners = [make_user(django_user_model, f"owner-{name}", "host_manager")
              for name in ("bea", "al")]
    owners[1].first_name, owners[1].last_name = "Zoë", "Able"
    owners[1].save()
    for index, agreement in enumerate(agreements):
        agreement.owner = owners[index % 2] if index < 6 else None
        agreement.stage = Stage.PILOT if index in (2, 5) else agreement.stage
        agreement.save()
    # V-7 has no metrics at all: no scorecard, no trend.
    write_observations(observations_for(agreements[:7], kpis, months=4))
    scoring_run_inline()
    run = ScoringRun.objects.current()
    for index, agreement in enumerate(agreements[:7]):
        Scorecard.objects.filter(run=run, agreement=agreement, period="2025-04").update(
            payout=None if index == 3 else 100.0 * (index % 3), at_risk=index in (1, 4),
            incomplete=index in (1, 2), tier=("strategic", "growth", "")[index % 3])
    # V-6 has a single scored month in the window (its trend is missing, not 0).
    Scorecard.objects.filter(run=run, agreement=agreements[6]).exclude(
        period="2025-04").update(has_scorecard=False)
    # V-0's month has a row without a scorecard: overall and coverage are missing.
    Scorecard.objects.filter(run=run, agreement=agreements[0], period="2025-04").update(
        has_scorecard=False)
    return run, agreements


def all_rows(run, period="2025-04"):
    from dashboards.selectors.portfolio import portfolio_rows

    return portfolio_rows(agreements=Agreement.objects.all(), run=run, period=period)


@pytest.mark.parametrize("sort", [
    direction + column for column in ("partner", "agreement", "type", "stage", "owner", "tier",
                                      "overall", "rolling", "trend", "coverage", "flags",
                                      "payout")
    for direction in ("", "-")])
def test_sql_order_equals_the_python_sort_with_ties_and_missing_values(varied, sort):
    from dashboards.selectors.portfolio import portfolio_queryset
    from tests.dashboards.oracles import portfolio_sort

    run, _ = varied
    expected = [row.agreement.code for row in portfolio_sort(rows=all_rows(run), sort=sort)]
    ordered = portfolio_queryset(agreements=Agreement.objects.all(), run=run,
                                 period="2025-04", sort=sort)
    assert [agreement.code for agreement in ordered] == expected


def test_sql_filters_equal_the_python_filters(varied, host_manager):
    from dashboards.selectors.portfolio import portfolio_queryset
    from tests.dashboards.oracles import portfolio_filter

    run, agreements = varied
    owner_id = agreements[1].owner_id
    rows = all_rows(run)
    for filters in ({"tier": "growth"}, {"tier": "strategic"}, {"flag": "at_risk"},
                    {"flag": "incomplete"}, {"stage": "pilot"}, {"type": "co_marketing"},
                    {"owner_id": owner_id}, {"search": "v-1"}, {"search": "ACME"},
                    {"search": "100%"}, {"tier": "growth", "flag": "incomplete"}):
        expected = [row.agreement.code for row in portfolio_filter(rows=rows, **filters)]
        found = portfolio_queryset(agreements=Agreement.objects.all(), run=run,
                                   period="2025-04", sort="agreement", **filters)
        assert [agreement.code for agreement in found] == expected, filters
        assert expected or filters == {"search": "100%"}


def test_headline_figures_and_charts_equal_those_of_the_rows(client, host_manager, varied):
    from dashboards.charts import score_bins
    from dashboards.selectors.portfolio import portfolio_figures
    from tests.dashboards.oracles import portfolio_summary

    run, agreements = varied
    rows = all_rows(run)
    figures = portfolio_figures(agreements=Agreement.objects.all(), run=run, period="2025-04",
                                active=sum(row.agreement.stage == "active" for row in rows))
    assert figures["summary"] == portfolio_summary(rows=rows)
    assert figures["summary"]["at_risk"] == 2 and figures["summary"]["incomplete"] == 2
    scores = [row.scorecard.overall for row in rows if row.overall]
    assert figures["score_bins"] == score_bins(scores)
    for month in ("2025-01", "2025-04"):
        assert figures["tier_counts"][month] == {
            tier: sum(1 for row in rows for point in row.trend
                      if point.period == month and point.tier == tier)
            for tier in ("strategic", "growth", "transactional")}
    # The page shows the same figures.
    client.force_login(host_manager)
    response = client.get(URL)
    assert response.context["summary"] == figures["summary"]
    assert response.context["score_figure"]["data"][0]["y"] == score_bins(scores)
    assert response.context["total_count"] == response.context["filtered_count"] == 8


def test_export_rows_equal_the_page_rows(client, host_manager, varied):
    from dashboards.csv_rows import portfolio_export_rows

    run, _ = varied
    client.force_login(host_manager)
    lines = export_lines(client.get(EXPORT_URL, {"sort": "-trend"}))
    page = rows_of(client.get(URL, {"sort": "-trend"}))
    import csv

    assert list(csv.reader(lines[1:])) == list(portfolio_export_rows(rows=page,
                                                                     period="2025-04"))
    trends = {row.agreement.code: row.trend_change for row in page}
    assert trends["V-7"] is None and trends["V-6"] is None and trends["V-1"] is not None


def test_a_page_past_the_end_shows_the_last_page(client, host_manager, varied):
    client.force_login(host_manager)
    response = client.get(URL, {"page": "9", "stage": "pilot"})
    assert response.context["page"].number == 1
    assert [row.agreement.code for row in rows_of(response)] == ["V-2", "V-5"]
    assert client.get(URL, {"page": "x"}).context["page"].number == 1
    empty = client.get(URL, {"q": "no such agreement", "page": "3"})
    assert rows_of(empty) == [] and empty.context["filtered_count"] == 0
    assert "No agreements match these filters." in empty.text


def test_rows_and_figures_read_from_the_cache_equal_those_read_from_the_database(
        client, host_manager, varied):
    """What the page keeps of a published run answers exactly as the database did; a new run
    publishes under new keys, so nothing of the old one is shown."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from dashboards.cache import run_cached_each

    run, agreements = varied
    client.force_login(host_manager)
    url = reverse("portfolio")
    params = {"month": "2025-04", "sort": "-overall"}
    def page() -> str:
        # The portfolio's body, without the per-response nonces and tokens of the page.
        content = client.get(url, query_params=params).content.decode()
        return content[content.index('<div id="portfolio-body"'):content.index("</main>")]

    with CaptureQueriesContext(connection) as first_queries:
        first = page()
    with CaptureQueriesContext(connection) as cached_queries:
        cached = page()
    assert cached == first
    assert len(cached_queries) < len(first_queries)
    # Every row's scorecards are in the cache now, under this run.
    ids = [agreement.pk for agreement in agreements]
    found = run_cached_each(run=run, name="row-cards", parts=("2025-04", 12), ids=ids,
                            compute=lambda missing: pytest.fail(f"not cached: {missing}"))
    assert set(found) == set(ids)
    # A newer run with other numbers: the page shows its numbers, not the cached ones.
    newer = ScoringRun.objects.get(pk=run.pk)
    newer.pk, newer.published_at = None, timezone.now()
    newer.save()
    cards = list(Scorecard.objects.filter(run=run))
    for card in cards:
        card.pk, card.run = None, newer
        card.overall = 11.0 if card.overall is not None else None
    Scorecard.objects.bulk_create(cards)
    newer_page = page()
    assert newer_page != first and "11.0" in newer_page
