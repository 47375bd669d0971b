"""The dashboard of one agreement, shared by the host and the agreement's partner."""

import json

import pytest
from django.urls import reverse

from dashboards.templatetags.numbers import money, score, share
from scoring.exports import format_number, scorecard_export_rows
from scoring.models import KPIScore, Scorecard, ScoringRun
from scoring.services import scoring_run_inline
from tests.browser import (
    SHOTS,
)
from tests.conftest import write_observations
from tests.test_isolation import normalised

pytestmark = pytest.mark.django_db


def url(code: str) -> str:
    return reverse("agreement_dashboard", args=[code])


@pytest.fixture
def scored(acme_agreement, globex_agreement, kpis):
    rev, defect = kpis["revenue"], kpis["defect_rate"]
    rows = []
    for month, value in ((1, 50), (2, 80), (3, 120)):
        day = f"2025-{month:02d}"
        rows += [
            (acme_agreement, rev, "host", f"{day}-10", value),
            (acme_agreement, rev, "partner", f"{day}-11", value * 1.2),  # 20 % apart
            (acme_agreement, defect, "partner", f"{day}-05", 5),
            (globex_agreement, rev, "host", f"{day}-15", 90),
            (globex_agreement, defect, "partner", f"{day}-15", 2),
        ]
    # April: globex only, so Acme has no scorecard for it.
    rows.append((globex_agreement, rev, "host", "2025-04-15", 90))
    write_observations(rows)
    scoring_run_inline()
    return acme_agreement, globex_agreement


def scorecard(agreement, period):
    return Scorecard.objects.get(run=ScoringRun.objects.current(), agreement=agreement,
                                 period=period)


def test_anonymous_visitors_log_in(client, scored):
    assert client.get(url("ACME-CM-2025")).status_code == 302


def test_partner_viewer_sees_own_agreement(client, acme_viewer, scored):
    client.force_login(acme_viewer)
    response = client.get(url("ACME-CM-2025"))
    assert response.status_code == 200
    assert "Acme Corp — ACME-CM-2025" in response.text
    assert "Globex" not in response.text


def test_other_partners_agreement_answers_like_a_missing_one(client, acme_viewer, scored):
    client.force_login(acme_viewer)
    other = client.get(url("GLOBEX-REF-2025"))
    missing = client.get(url("NO-SUCH-CODE"))
    assert other.status_code == missing.status_code == 404
    # The same page but for its one-time tokens (nonce, CSRF), new on every answer.
    assert normalised(other.text, []) == normalised(missing.text, [])


def test_host_sees_every_agreement(client, host_manager, scored):
    client.force_login(host_manager)
    assert client.get(url("GLOBEX-REF-2025")).status_code == 200
    assert client.get(url("ACME-CM-2025")).status_code == 200


def test_numbers_equal_the_export_rounded_to_one_decimal(client, host_manager, scored):
    acme = scored[0]
    client.force_login(host_manager)
    response = client.get(url(acme.code), {"month": "2025-03"})
    export = next(row for row in scorecard_export_rows(run=ScoringRun.objects.current())
                  if row[0] == acme.code and row[2] == "2025-03")
    overall, coverage, rolling = export[7], export[8], export[9]
    # The context holds the stored numbers; the page writes them as the export, to 1 decimal.
    assert score(response.context["overall"]) == score(float(overall))
    assert score(response.context["rolling"]) == score(float(rolling))
    assert share(response.context["coverage"]) == share(float(coverage))
    assert f'<span class="kpi-card__value">{score(float(overall))}</span>' in response.text
    assert f'<span class="kpi-card__value">{share(float(coverage))} %</span>' in response.text
    figure = response.context["history_figure"]
    march = list(figure["data"][0]["customdata"]).index("2025-03")
    # The chart's point is the figure the page writes (91.2500 in the export: 91.3).
    assert figure["data"][0]["y"][march] == float(score(float(overall)))
    assert figure["layout"]["yaxis"]["title"]["text"] == "score (0–120)"


def test_category_chart_uses_fixed_colours(client, host_manager, scored):
    client.force_login(host_manager)
    response = client.get(url("ACME-CM-2025"), {"month": "2025-02"})
    bars = response.context["category_figure"]["data"][0]
    assert list(bars["marker"]["color"]) == ["#56b4e9", "#cc79a7", "#c9b300", "#8c8c8c"]
    assert 'id="chart-categories-data"' in response.text
    json.loads(response.text.split('id="chart-history-data" type="application/json">')[1]
               .split("</script>")[0])


def test_kpi_table_shows_other_side_and_large_delta(client, host_manager, scored, kpis):
    acme = scored[0]
    client.force_login(host_manager)
    response = client.get(url(acme.code), {"month": "2025-02"})
    rows = {row["kpi"].code: row for row in response.context["kpi_rows"]}
    stored = KPIScore.objects.get(run=ScoringRun.objects.current(), agreement=acme,
                                  kpi=kpis["revenue"], period="2025-02")
    assert rows["revenue"]["actual"] == stored.actual
    assert rows["revenue"]["other"] == 96.0
    assert rows["revenue"]["delta"] == pytest.approx(20.0)
    # Revenue is in USD: money, two decimals.
    assert f">{money(float(format_number(stored.actual)))}</td>" in response.text
    assert "96.00 <span" in response.text and "(⚠ 20.0 %)" in response.text
    assert rows["revenue"]["delta_large"] is True
    assert "delta--large" in response.text
    assert rows["revenue"]["source"] == "host"


def test_what_is_kept_of_the_run_answers_as_the_database_and_kpis_show_as_now(
        client, host_manager, scored, kpis):
    """The dashboard keeps the run's scorecards, KPI scores and cut-offs: its second answer
    reads fewer queries and says the same; a KPI renamed since the run shows its new name."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    acme = scored[0]
    client.force_login(host_manager)

    def main(response) -> str:
        text = response.content.decode()
        return text[text.index("<main"):text.index("</main>")]

    with CaptureQueriesContext(connection) as first_queries:
        first = client.get(url(acme.code), {"month": "2025-02"})
    with CaptureQueriesContext(connection) as cached_queries:
        cached = client.get(url(acme.code), {"month": "2025-02"})
    assert len(cached_queries) < len(first_queries)
    assert main(cached) == main(first)
    assert [row["kpi"].code for row in cached.context["kpi_rows"]] == [
        row["kpi"].code for row in first.context["kpi_rows"]] == ["revenue", "defect_rate"]
    kpis["revenue"].name = "Partner-sourced revenue"
    kpis["revenue"].save()
    renamed = client.get(url(acme.code), {"month": "2025-02"})
    assert "Partner-sourced revenue" in main(renamed)


def test_an_agreement_in_an_unranked_stage_says_why_it_has_no_tier(
        client, host_manager, scored):
    acme = scored[0]
    acme.stage = "exiting"
    acme.save()
    scoring_run_inline()
    client.force_login(host_manager)
    text = client.get(url(acme.code)).text
    assert "No tier in 2025-04" in text and "No tier yet" not in text
    assert "Not ranked in the exiting stage: only pilot, active and under-review agreements" in text
    assert "tiers rank the rolling score" not in text


def test_on_a_phone_the_kpi_and_month_tables_stack_with_a_label_per_cell(
        client, host_manager, scored):
    import re

    client.force_login(host_manager)
    text = client.get(url(scored[0].code), {"month": "2025-02"}).text
    for table in ("kpi-table", "months-table"):
        body = text.split(f'class="table table--stack {table}"', 1)[1].split("</table>", 1)[0]
        rows = body.split("<tbody>", 1)[1]
        cells = re.findall(r"<td[^>]*>", rows)
        assert cells and all("data-label=" in cell for cell in cells), table
        assert rows.count('<th scope="row">') == rows.count("<tr")


def test_month_selector_and_htmx_partial(client, host_manager, scored):
    client.force_login(host_manager)
    response = client.get(url("ACME-CM-2025"), {"month": "2025-02"},
                          headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="agreement-body"')
    assert "<html" not in response.text
    assert "?month=2025-01" in response.text and "?month=2025-03" in response.text
    assert response.context["month"] == "2025-02"


def test_defaults_to_the_last_month_and_names_missing_data(client, host_manager, scored):
    client.force_login(host_manager)
    response = client.get(url("ACME-CM-2025"))
    # The run scored April (globex's data) but Acme has no metrics for it.
    assert response.context["month"] == "2025-04"
    assert "No metrics imported for 2025-04" in response.text
    assert response.context["category_figure"] is None


def test_tier_since_sentence(client, host_manager, scored):
    globex = scored[1]
    run = ScoringRun.objects.current()
    Scorecard.objects.filter(run=run, agreement=globex).update(tier="growth")
    Scorecard.objects.filter(run=run, agreement=globex, period="2025-01").update(tier="")
    client.force_login(host_manager)
    response = client.get(url(globex.code), {"month": "2025-03"})
    assert response.context["tier_since"] == "2025-02"
    assert "GROWTH</span> since 2025-02" in response.text


def test_empty_state_without_a_run(client, host_manager, acme_agreement):
    client.force_login(host_manager)
    response = client.get(url(acme_agreement.code))
    assert response.status_code == 200
    assert "No scores published yet" in response.text


# ---- In a real browser: both pages with demo-like data, desktop and phone -----------------

@pytest.fixture
def demo_program(transactional_db):
    from partnerships.demo import demo_generate

    demo_generate(partners=4, agreements=12, months=12, kpis_per_agreement=5,
                  observations_per_month=2, seed=1, password="pw-demo")
    scoring_run_inline()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_portfolio_and_agreement_render_in_a_browser(live_server, demo_program, page):
    # The session-wide browser of tests/dashboards/conftest.py: a second Playwright started
    # here would refuse to run beside it.
    from partnerships.models import Agreement

    code = Agreement.objects.order_by("code").values_list("code", flat=True).first()
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill("manager")
    page.get_by_label("Password").fill("pw-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/")
    for width, name in ((1280, "desktop"), (375, "phone")):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(live_server.url + "/portfolio/")
        page.wait_for_selector(".portfolio-table")
        page.screenshot(path=f"{SHOTS}/portfolio-{name}.png", full_page=True)
        page.goto(live_server.url + f"/agreements/{code}/")
        page.wait_for_selector("#chart-history .main-svg", timeout=15_000)
        page.wait_for_timeout(300)
        page.screenshot(path=f"{SHOTS}/agreement-{name}.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    # The month selector swaps the panel in with htmx and the charts draw again.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator(".month-nav a").first.click()
    page.wait_for_url("**?month=**")
    page.wait_for_selector("#chart-history .main-svg", timeout=15_000)
    page.screenshot(path=f"{SHOTS}/agreement-previous-month.png", full_page=True)
    page.goto(live_server.url + "/portfolio/")
    page.locator("th a", has_text="Overall").click()
    page.wait_for_url("**sort=overall**")
    page.screenshot(path=f"{SHOTS}/portfolio-sorted.png", full_page=True)
    assert page.problems == []


def test_home_links_to_own_agreement_dashboards_only(client, acme_viewer, scored):
    client.force_login(acme_viewer)
    response = client.get("/")
    assert url("ACME-CM-2025") in response.text
    assert "GLOBEX" not in response.text


# ---- The completed dashboard: categories, tiers, payouts, flags, imports, print ----------


@pytest.fixture
def planned(scored):
    from partnerships.models import IncentivePlan

    acme = scored[0]
    IncentivePlan.objects.create(agreement=acme, base_amount=1000, baseline_score=0)
    acme.exit_criteria = "Exit after two reviews below the floor."
    acme.save(update_fields=["exit_criteria"])
    scoring_run_inline()
    return scored


def test_category_scores_and_payouts_equal_the_export(client, host_manager, planned):
    acme = planned[0]
    client.force_login(host_manager)
    response = client.get(url(acme.code), {"month": "2025-03"})
    run = ScoringRun.objects.current()
    export = {row[2]: row for row in scorecard_export_rows(run=run) if row[0] == acme.code}
    categories = {row["name"]: row["value"] for row in response.context["category_rows"]}
    for index, name in enumerate(("financial", "strategic", "operational", "relationship")):
        cell = export["2025-03"][3 + index]
        assert score(categories[name]) == (score(float(cell)) if cell else "—")
    months = {row["period"]: row for row in response.context["month_rows"]}
    assert set(months) == {"2025-01", "2025-02", "2025-03"}
    for period, row in months.items():
        assert score(row["overall"]) == score(float(export[period][7]))
        assert row["tier"] == export[period][10]
        card = scorecard(acme, period)
        assert row["payout"] == card.payout
    assert any(card.payout for card in Scorecard.objects.filter(run=run, agreement=acme))
    assert "Incentive plan: 1,000.00 USD a month" in response.text
    assert response.context["payout_total"] == pytest.approx(
        sum(scorecard(acme, p).payout for p in ("2025-01", "2025-02", "2025-03")))


def test_no_plan_says_so(client, acme_viewer, scored):
    client.force_login(acme_viewer)
    response = client.get(url("ACME-CM-2025"), {"month": "2025-03"})
    assert response.context["plan"] is None
    assert "No incentive plan for this agreement, so no payouts." in response.text


def test_tier_history_marks_the_months_the_tier_changed(client, host_manager, scored):
    globex = scored[1]
    run = ScoringRun.objects.current()
    Scorecard.objects.filter(run=run, agreement=globex).update(tier="growth")
    Scorecard.objects.filter(run=run, agreement=globex, period="2025-01").update(tier="")
    Scorecard.objects.filter(run=run, agreement=globex, period="2025-04").update(tier="strategic")
    client.force_login(host_manager)
    response = client.get(url(globex.code), {"month": "2025-04"})
    changes = [(row["period"], row["from_tier"], row["tier"])
               for row in response.context["tier_changes"]]
    assert changes == [("2025-02", "", "growth"), ("2025-04", "growth", "strategic")]
    assert "changed from growth" in response.text


def test_threshold_policy_shades_tier_bands_and_says_what_the_next_tier_needs(
    client, host_manager, scored
):
    acme = scored[0]
    run = ScoringRun.objects.current()
    run.settings_snapshot = {"policy": "threshold", "strategic_threshold": 85.0,
                             "growth_threshold": 70.0, "hysteresis": 2}
    run.save(update_fields=["settings_snapshot"])
    card = scorecard(acme, "2025-03")
    Scorecard.objects.filter(pk=card.pk).update(candidate_tier="growth", rolling=75.25)
    client.force_login(host_manager)
    response = client.get(url(acme.code), {"month": "2025-03"})
    shapes = response.context["history_figure"]["layout"]["shapes"]
    assert [(shape["y0"], shape["y1"]) for shape in shapes] == [(85, 125), (70, 85), (0, 70)]
    # The selector gives numbers; the page writes them.
    assert response.context["tier_hint"] == {"reason": "needs", "tier": "strategic",
                                             "needed": 85.0, "gap": 85.0 - 75.25}
    assert "Strategic needs rolling ≥ 85.0 this month (+9.8)" in response.text
    assert "Shaded bands" in response.text


def test_percentile_policy_names_this_months_cut_offs(client, host_manager, scored):
    acme, globex = scored
    run = ScoringRun.objects.current()
    Scorecard.objects.filter(run=run, agreement=globex, period="2025-03").update(
        candidate_tier="strategic", rolling=97.5)
    Scorecard.objects.filter(run=run, agreement=acme, period="2025-03").update(
        candidate_tier="transactional", rolling=60.0)
    client.force_login(host_manager)
    response = client.get(url(acme.code), {"month": "2025-03"})
    assert not response.context["history_figure"]["layout"].get("shapes")
    assert response.context["cutoffs"]["strategic"] == 97.5
    assert response.context["cutoffs"]["ranked"] == 2
    # Transactional: the next tier up is growth, which took rolling ≥ 97.5 this month.
    assert response.context["tier_hint"]["needed"] == 97.5
    assert "Growth needs rolling ≥ 97.5 this month (+37.5)" in response.text
    assert "Tiers are ranked, not fixed" in response.text


def test_flags_are_explained_beside_the_exit_criteria(client, acme_viewer, planned):
    acme = planned[0]
    Scorecard.objects.filter(pk=scorecard(acme, "2025-03").pk).update(at_risk=True)
    client.force_login(acme_viewer)
    response = client.get(url(acme.code), {"month": "2025-03"})
    assert "call for a review" in response.text
    assert "Exit after two reviews below the floor." in response.text


def test_recent_imports_show_both_sides_imports_of_the_agreement(client, acme_viewer,
                                                                 host_manager, scored, acme,
                                                                 kpis):
    from partnerships.models import ImportBatch

    acme_agreement = scored[0]
    batch, _ = write_observations(
        [(acme_agreement, kpis["defect_rate"], "partner", "2025-03-20", 4)], side="partner")
    ImportBatch.objects.filter(pk=batch.pk).update(partner=acme, file_name="acme-march.csv")
    client.force_login(acme_viewer)
    partner_view = client.get(url(acme_agreement.code))
    # The host's import that wrote the agreement's values too, by the "host team".
    recent = partner_view.context["recent_imports"]
    assert len(recent) == 2 and recent[0].pk == batch.pk and recent[1].partner_id is None
    assert reverse("import_batch", args=[batch.pk]) in partner_view.text
    assert "by the host team" in partner_view.text
    assert "No import has written" not in partner_view.text
    client.force_login(host_manager)
    host_view = client.get(url(acme_agreement.code))
    assert len(host_view.context["recent_imports"]) == 2
    assert host_view.context["recent_imports"][0].pk == batch.pk
    assert reverse("scoring_runs") in host_view.text
    assert reverse("scoring_runs") not in partner_view.text


def test_kpi_rows_have_a_trend(client, host_manager, scored):
    client.force_login(host_manager)
    response = client.get(url("ACME-CM-2025"), {"month": "2025-03"})
    trend = next(row["trend_line"] for row in response.context["kpi_rows"]
                 if row["kpi"].code == "revenue")
    assert len(trend["lines"]) == 1 and len(trend["lines"][0].split()) == 3
    assert 'class="trend"' in response.text


def test_print_view_has_every_section_and_no_scripts_or_navigation(client, acme_viewer,
                                                                   planned):
    client.force_login(acme_viewer)
    for response in (client.get(reverse("agreement_print", args=["ACME-CM-2025"]),
                                {"month": "2025-02"}),
                     client.get(url("ACME-CM-2025"), {"month": "2025-02", "print": "1"})):
        assert response.status_code == 200
        text = response.text
        assert "<script" not in text
        assert 'class="site-nav"' not in text
        assert "<form" not in text
        assert "data-plotly" not in text
        for heading in ("KPIs in 2025-02", "Flags in 2025-02", "Tier and payouts by month",
                        "Data behind these numbers", "Category scores, 2025-02"):
            assert heading in text
        assert "<polyline" in text
    assert client.get(reverse("agreement_print", args=["GLOBEX-REF-2025"])).status_code == 404


def test_htmx_month_change_swaps_every_section(client, host_manager, planned):
    client.force_login(host_manager)
    response = client.get(url("ACME-CM-2025"), {"month": "2025-02"},
                          headers={"HX-Request": "true"})
    text = response.text
    for part in ("KPIs in 2025-02", "Flags in 2025-02", "Tier and payouts by month",
                 "Recent imports", "?month=2025-02", 'name="month"'):
        assert part in text
    assert "2025-03</th>" not in text  # the month table stops at the month shown


def test_figures_are_valid_plotly_figures(client, host_manager, planned):
    import plotly.graph_objects as go

    acme = planned[0]
    run = ScoringRun.objects.current()
    run.settings_snapshot = {"policy": "threshold", "strategic_threshold": 85.0,
                             "growth_threshold": 70.0, "hysteresis": 2}
    run.save(update_fields=["settings_snapshot"])
    client.force_login(host_manager)
    response = client.get(url(acme.code), {"month": "2025-03"})
    for name in ("history_figure", "category_figure"):
        figure = response.context[name]
        # A validating go.Figure raises on any property plotly.js does not know.
        checked = go.Figure(data=figure["data"], layout=figure["layout"])
        assert checked.to_plotly_json()["data"][0]["type"] in ("scatter", "bar")
        # The same JSON the validating path would give.
        assert checked.to_plotly_json()["layout"] == figure["layout"]
