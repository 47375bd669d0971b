"""The ecosystem page: growth, engagement, value and health of the program, on hand-made data
whose figures are counted by hand."""

import datetime as dt
import math
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboards.selectors import ecosystem as queries
from partnerships.models import (
    Agreement,
    AgreementKPI,
    ImportBatch,
    KPIDefinition,
    MetricObservation,
    Review,
    StageTransition,
)
from scoring.models import KPIScore, Scorecard, ScoringRun
from scoring.services import scoring_run_inline
from tests.conftest import make_agreement, write_observations

pytestmark = pytest.mark.django_db

URL = "/ecosystem/"
# inf, nan, Infinity or NaN as a number on a page or in a chart's JSON.
NON_FINITE_SHOWN = re.compile(r"[>\s:,\[\"-](inf|nan|Infinity|NaN)[<\s,\]\"]")
MONTHS = ["2024-10", "2024-11", "2024-12", "2025-01", "2025-02", "2025-03"]


def moment(day: str) -> dt.datetime:
    return timezone.make_aware(dt.datetime.fromisoformat(day + "T12:00"))


@pytest.fixture
def program(acme, globex, kpis, host_manager):
    """A1 (Acme, co-marketing) measures satisfaction too; A2 (Acme, referral) is exiting
    without a recorded move; G1 (Globex) ended by a recorded move."""
    nps = KPIDefinition.objects.create(
        code="nps", name="Partner satisfaction (NPS)", category="relationship",
        aggregation="mean", source="partner")
    a1 = make_agreement(acme, "A1", kpis, weights=(40, 0, 40, 20))
    AgreementKPI.objects.create(agreement=a1, kpi=nps, target=50, floor=0)
    a2 = make_agreement(acme, "A2", kpis)
    g1 = make_agreement(globex, "G1", kpis)
    rev, defect = kpis["revenue"], kpis["defect_rate"]
    rows = []
    for month, a1_revenue in (("01", [50]), ("02", [60, 10]), ("03", [70])):
        for day, value in enumerate(a1_revenue, start=10):
            rows.append((a1, rev, "host", f"2025-{month}-{day}", value))
        rows += [(a2, rev, "host", f"2025-{month}-10", 5),
                 (g1, rev, "host", f"2025-{month}-10", 1)]
        rows += [(agreement, defect, "partner", f"2025-{month}-12", 4)
                 for agreement in (a1, a2, g1)]
    # The other side's revenue is kept for reconciliation, never summed as value.
    rows.append((a1, rev, "partner", "2025-02-20", 999))
    rows += [(a1, nps, "partner", "2025-01-05", 25), (a1, nps, "partner", "2025-02-05", 50)]
    write_observations(rows)
    scoring_run_inline()
    ImportBatch.objects.update(created_at=moment("2025-02-15"))
    ImportBatch.objects.create(source="upload", side="partner", status="succeeded",
                               partner=acme)
    ImportBatch.objects.create(source="upload", side="partner", status="failed", partner=acme)
    ImportBatch.objects.filter(side="partner").update(created_at=moment("2025-03-03"))

    Agreement.objects.filter(pk=a1.pk).update(start_date=dt.date(2025, 1, 15))
    Agreement.objects.filter(pk=a2.pk).update(start_date=dt.date(2025, 3, 1), type="referral",
                                              stage="exiting", end_date=dt.date(2025, 3, 31))
    Agreement.objects.filter(pk=g1.pk).update(start_date=dt.date(2025, 3, 10), stage="ended",
                                              end_date=dt.date(2025, 3, 20))
    for agreement, before, after, day in ((a1, "prospect", "pilot", "2025-02-05"),
                                          (a1, "pilot", "active", "2025-02-20"),
                                          (g1, "active", "ended", "2025-03-02")):
        move = StageTransition.objects.create(agreement=agreement, from_stage=before,
                                              to_stage=after, reason="test", by=host_manager)
        StageTransition.objects.filter(pk=move.pk).update(at=moment(day))
    for agreement, day in ((a1, "2025-02-03"), (g1, "2025-02-25"), (a1, "2025-03-30"),
                           (a1, "2024-01-01")):
        Review.objects.create(agreement=agreement, kind="monthly_results",
                              held_on=dt.date.fromisoformat(day))

    run = ScoringRun.objects.current()
    for agreement, february, march in ((a1, "growth", "strategic"), (a2, "", "transactional"),
                                       (g1, "transactional", "transactional")):
        Scorecard.objects.filter(run=run, agreement=agreement, period="2025-02").update(
            tier=february)
        Scorecard.objects.filter(run=run, agreement=agreement, period="2025-03").update(
            tier=march, at_risk=agreement != g1)
    return {"a1": a1, "a2": a2, "g1": g1, "run": run}


def everything():
    return Agreement.objects.all()


def test_growth_counts_new_agreements_and_stage_moves(program):
    assert queries.growth_new_agreements(agreements=everything(), months=MONTHS) == [
        0, 0, 0, 1, 0, 2]
    assert queries.growth_stage_moves(agreements=everything(), months=MONTHS) == {
        "pilot": [0, 0, 0, 0, 1, 0], "active": [0, 0, 0, 0, 1, 0],
        "ended": [0, 0, 0, 0, 0, 1]}


def test_engagement_counts_successful_imports_by_side_and_reviews(program):
    host_batches = ImportBatch.objects.filter(side="host").count()
    imports = queries.engagement_imports(batches=ImportBatch.objects.all(), months=MONTHS)
    assert imports == {"host side": [0, 0, 0, 0, host_batches, 0],
                       "partner side": [0, 0, 0, 0, 0, 1]}
    assert queries.engagement_reviews(agreements=everything(), months=MONTHS) == [
        0, 0, 0, 0, 2, 1]


def test_value_sums_the_source_side_of_financial_sum_kpis(program):
    from partnerships.models import MetricObservation

    revenue = queries.value_revenue(observations=MetricObservation.objects.all(),
                                    agreements=everything(), months=MONTHS)
    # A1 50 / 60+10 / 70, A2 5, G1 1 each month; the partner's 999 and defect rates left out.
    assert revenue == {("Partner-sourced revenue", "USD"): [None, None, None, 56, 76, 76]}


def test_tier_moves_matrix_from_the_month_before(program):
    moves = queries.health_tier_moves(run=program["run"], agreements=everything(),
                                      month="2025-03")
    matrix = {before: dict(zip(moves["column_tiers"], counts, strict=True))
              for before, _, counts in moves["rows"]}
    assert matrix["growth"]["strategic"] == 1
    assert matrix[""]["transactional"] == 1
    assert matrix["transactional"]["transactional"] == 1
    assert moves["total"] == 3 and moves["moved"] == 2
    assert moves["columns"] == ["Strategic", "Growth", "Transactional", "no tier"]


def test_at_risk_satisfaction_churn_and_types(program):
    run = program["run"]
    assert queries.health_at_risk(run=run, agreements=everything(), months=MONTHS) == [
        0, 0, 0, 0, 0, 2]
    satisfaction = queries.health_satisfaction(run=run, agreements=everything(), months=MONTHS)
    assert "Partner satisfaction (NPS)" in satisfaction["source"]
    assert satisfaction["values"] == [None, None, None, 50.0, 100.0, None]
    # G1 by its recorded move in March, A2 (no recorded move) by its end date in March.
    assert queries.health_churn(agreements=everything(), months=MONTHS) == [0, 0, 0, 0, 0, 2]
    types = dict(queries.diversity_by_type(agreements=everything()))
    assert types["Co-marketing"] == 1 and types["Referral"] == 1
    assert sum(types.values()) == 2  # G1 ended: left out


def test_satisfaction_falls_back_to_the_relationship_category(program):
    KPIDefinition.objects.filter(code="nps").update(code="rel", name="Joint planning")
    satisfaction = queries.health_satisfaction(run=program["run"], agreements=everything(),
                                               months=MONTHS)
    assert "relationship category" in satisfaction["source"]
    a1_relationship = Scorecard.objects.get(run=program["run"], agreement=program["a1"],
                                            period="2025-01").relationship
    assert satisfaction["values"][3] == pytest.approx(a1_relationship)


def test_url_and_access(client, acme_viewer):
    assert reverse("ecosystem") == URL
    assert client.get(URL).status_code == 302
    client.force_login(acme_viewer)
    assert client.get(URL).status_code == 404


def test_page_shows_every_section_with_its_figures(client, host_manager, program):
    client.force_login(host_manager)
    response = client.get(URL, {"end": "2025-03", "span": "6"})
    assert response.status_code == 200
    context = response.context
    assert context["months"] == MONTHS
    assert context["new_agreements_figure"]["data"][0]["y"] == [0, 0, 0, 1, 0, 2]
    assert context["churn_figure"]["data"][0]["y"] == [0, 0, 0, 0, 0, 2]
    assert len(context["revenue_figures"]) == 1
    assert context["tier_moves"]["month"] == "2025-03"
    for heading in ("Growth", "Engagement", "Value", "Health", "Diversity"):
        assert f">{heading}</h2>" in response.text
    for chart in ("chart-new-agreements", "chart-stage-moves", "chart-imports",
                  "chart-reviews", "chart-revenue-0", "chart-at-risk", "chart-satisfaction",
                  "chart-churn", "chart-types"):
        assert f'id="{chart}"' in response.text, chart
    assert "Partner satisfaction (NPS)" in response.text
    assert " style=" not in response.text


def test_empty_program_explains_what_is_missing(client, host_manager):
    client.force_login(host_manager)
    response = client.get(URL, {"end": "2025-03"})
    assert response.status_code == 200
    assert "No stage changes recorded between 2024-04 to 2025-03" in response.text
    assert "No business reviews recorded" in response.text
    assert "No scores published yet" in response.text
    assert "data-plotly" not in response.text


def test_htmx_gets_the_body_partial(client, host_manager, program):
    client.force_login(host_manager)
    response = client.get(URL, {"end": "2025-03", "span": "12"},
                          headers={"HX-Request": "true"})
    assert response.text.lstrip().startswith('<div id="ecosystem-body"')
    assert "<html" not in response.text
    assert len(response.context["months"]) == 12
    assert 'hx-push-url="true"' in response.text
    assert "HX-Request" in response["Vary"]


def test_bad_range_gets_an_error_next_to_the_field_and_keeps_the_input(client, host_manager):
    client.force_login(host_manager)
    response = client.get(URL, {"end": "2025-13", "span": "7"})
    assert response.status_code == 200
    assert "Give the last month as YYYY-MM" in response.text
    assert 'value="2025-13"' in response.text
    assert 'aria-invalid="true"' in response.text
    assert "Choose one of the listed ranges." in response.text
    assert response.context["span"] == 12


def test_queries_do_not_grow_with_agreements(client, host_manager, acme, kpis,
                                             django_assert_max_num_queries):
    counts = []
    for size in (3, 30):
        ScoringRun.objects.all().delete()
        Agreement.objects.all().delete()
        agreements = [make_agreement(acme, f"EC{size}-{index:03d}", kpis)
                      for index in range(size)]
        write_observations([(agreement, kpis["revenue"], "host", "2025-01-10", 10)
                            for agreement in agreements])
        scoring_run_inline()
        for agreement in agreements:
            Review.objects.create(agreement=agreement, kind="monthly_results",
                                  held_on=dt.date(2025, 1, 20))
        client.force_login(host_manager)
        # 25: one of them reads which months are closed, for the month's label.
        with django_assert_max_num_queries(25) as captured:
            response = client.get(URL, {"end": "2025-01"})
        assert response.context["new_agreements_figure"]["data"][0]["y"][-1] == size
        counts.append(len(captured))
    assert counts[0] == counts[1]


# ---- Values stored before imports bounded them ------------------------------------------------


def legacy_observations(agreement, kpi, values: list[tuple[str, float]], *, side: str = "host"):
    """Rows as an older import wrote them, straight into the table: no validation at all."""
    batch = ImportBatch.objects.create(source="command", side=side, status="succeeded")
    MetricObservation.objects.bulk_create(
        MetricObservation(agreement=agreement, kpi=kpi, side=side,
                          date=dt.date.fromisoformat(day), value=value, batch=batch,
                          recorded_at=timezone.now())
        for day, value in values
    )


@pytest.fixture
def legacy(acme_agreement, kpis):
    """January: two revenue values of 1.7e308 (their sum overflows double precision) beside
    a plausible 10; February: a plausible 40 and an absurd but summable -1.9e255."""
    legacy_observations(acme_agreement, kpis["revenue"], [
        ("2025-01-10", 1.7e308), ("2025-01-11", 1.7e308), ("2025-01-12", 10.0),
        ("2025-02-10", 40.0), ("2025-02-11", -1.9e255),
    ])
    legacy_observations(acme_agreement, kpis["defect_rate"], [("2025-01-15", 3.0)],
                        side="partner")
    return acme_agreement


def test_ecosystem_page_answers_with_values_beyond_the_limit_in_the_database(
        client, host_manager, legacy):
    client.force_login(host_manager)
    response = client.get(URL, {"end": "2025-02", "span": "6"})
    assert response.status_code == 200
    figure = response.context["revenue_figures"][0][1]
    assert figure["data"][0]["y"][-2:] == [10.0, 40.0]
    assert response.context["revenue_left_out"] == 3
    assert ("3 recorded values of these KPIs are beyond the allowed magnitude of "
            "1,000,000,000,000 or not a number, and left out of the sums") in response.text


def test_sums_leave_out_non_finite_values_stored_by_hand(acme_agreement, kpis):
    legacy_observations(acme_agreement, kpis["revenue"], [
        ("2025-03-01", math.inf), ("2025-03-02", -math.inf), ("2025-03-03", math.nan),
        ("2025-03-04", 7.0)])
    observations = MetricObservation.objects.all()
    assert queries.value_revenue(observations=observations, agreements=everything(),
                                 months=MONTHS) == {
        ("Partner-sourced revenue", "USD"): [None, None, None, None, None, 7.0]}
    assert queries.value_left_out(observations=observations, agreements=everything(),
                                  months=MONTHS) == 3


def test_scoring_overflowing_legacy_values_stores_no_infinity_and_pages_show_none(
        client, host_manager, legacy, kpis):
    run = ScoringRun.objects.get(pk=scoring_run_inline().run_id)
    scores = KPIScore.objects.filter(run=run)
    for row in scores.values("actual", "other_side_actual", "target", "floor", "score"):
        assert all(value is None or math.isfinite(value) for value in row.values()), row
    for row in Scorecard.objects.filter(run=run).values(
            "financial", "operational", "overall", "coverage", "rolling", "payout"):
        assert all(value is None or math.isfinite(value) for value in row.values()), row
    revenue = {score.period: score for score in scores.filter(kpi=kpis["revenue"])}
    # January's sum overflows: no measurement, the KPI is missing that month.
    assert revenue["2025-01"].actual is None and revenue["2025-01"].score is None
    assert revenue["2025-02"].actual == 40.0 - 1.9e255 and revenue["2025-02"].score == 0.0

    client.force_login(host_manager)
    for month in ("2025-01", "2025-02"):
        page = client.get(f"/agreements/{legacy.code}/", {"month": month})
        assert page.status_code == 200
        assert not NON_FINITE_SHOWN.search(page.text), NON_FINITE_SHOWN.search(page.text)
    february = client.get(f"/agreements/{legacy.code}/", {"month": "2025-02"}).text
    assert "-1.9e+255" in february


def test_a_page_shows_a_dash_for_an_infinite_actual_an_older_run_stored(
        client, host_manager, acme_agreement, kpis):
    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-01-10", 50)])
    run = ScoringRun.objects.get(pk=scoring_run_inline().run_id)
    KPIScore.objects.filter(run=run, kpi=kpis["revenue"]).update(actual=math.inf)
    client.force_login(host_manager)
    page = client.get(f"/agreements/{acme_agreement.code}/", {"month": "2025-01"})
    assert page.status_code == 200
    assert ">inf<" not in page.text and 'data-label="Actual">—<' in page.text
