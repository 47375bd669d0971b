"""The agreement dashboard's breakdown of the overall score and its path to the next tier, for
both sides, checked against the figures shown and by scoring again with a suggested value."""

from decimal import Decimal

import pytest
from django.urls import reverse

from dashboards.templatetags.numbers import score
from scoring.models import Scorecard, ScoringRun
from scoring.services import scoring_run_inline
from tests.conftest import write_observations

pytestmark = pytest.mark.django_db

MARCH = "2025-03"


def url(code: str) -> str:
    return reverse("agreement_dashboard", args=[code])


@pytest.fixture
def ranked(acme_agreement, globex_agreement, kpis):
    """Acme (revenue 60, 70, 80; defect rate 4: score 75) ranks below Globex (revenue 80,
    defect rate 4: overall 77.5 every month): with two agreements, Globex is strategic and Acme
    transactional, and growth takes Globex's rolling score, 77.5."""
    revenue, defect = kpis["revenue"], kpis["defect_rate"]
    rows = []
    for month, value in ((1, 60), (2, 70), (3, 80)):
        day = f"2025-{month:02d}"
        rows += [
            (acme_agreement, revenue, "host", f"{day}-10", value),
            (acme_agreement, defect, "partner", f"{day}-05", 4),
            (globex_agreement, revenue, "host", f"{day}-15", 80),
            (globex_agreement, defect, "partner", f"{day}-15", 4),
        ]
    write_observations(rows)
    scoring_run_inline()
    return acme_agreement, globex_agreement


def march_card(agreement) -> Scorecard:
    return Scorecard.objects.of_run(ScoringRun.objects.current()).get(
        agreement=agreement, period=MARCH)


@pytest.mark.parametrize("user", ["host_manager", "acme_viewer"])
def test_both_sides_see_the_breakdown_and_the_path(client, request, ranked, user):
    client.force_login(request.getfixturevalue(user))
    response = client.get(url("ACME-CM-2025"), {"month": MARCH})
    assert response.status_code == 200
    text = response.text
    assert "Where the score comes from, 2025-03" in text
    assert "Share of overall" in text
    assert "The path to growth in 2025-03" in text
    assert "Growth needed a rolling score ≥ 77.5" in text
    assert "the cut moves with the other agreements" in text
    # (50 × 80 + 50 × 75) / 100 = 77.5 in March; rolling (67.5 + 72.5 + 77.5) / 3 = 72.5.
    # Revenue alone: 50 × s + 3,750 = 9,250 → s = 110; defect rate alone: s = 105, at most
    # 10 − 1.05 × 8 = 1.6 %. Revenue is the smaller change (+37.5 % against −60 %).
    path = response.context["explanation"]["paths"][0]
    assert [row["kpi"].code for row in path["reachable"]] == ["revenue", "defect_rate"]
    assert path["reachable"][0]["needed"] == pytest.approx(110.0)
    assert path["reachable"][1]["needed"] == pytest.approx(1.6)
    assert "at least 110.00 USD (the month&#x27;s total), against 80.00 (+37.5 %)" in text
    assert "at most 1.6 % (the month&#x27;s mean), against 4.0 (−60.0 %)" in text.replace(
        "-60.0", "−60.0")
    assert "Globex" not in text


def test_the_breakdown_adds_up_to_the_overall_shown(client, host_manager, ranked):
    client.force_login(host_manager)
    response = client.get(url("ACME-CM-2025"), {"month": MARCH})
    breakdown = response.context["explanation"]["breakdown"]
    assert breakdown["same"]
    shown = Decimal(score(march_card(ranked[0]).overall))
    rows = breakdown["rows"]

    def total(values) -> Decimal:
        return sum((Decimal(score(value)) for value in values), Decimal(0))

    assert total(row["contribution"] for row in rows if row["state"] == "scored") == shown
    assert total(row["left"] for row in rows if row["state"] == "scored") == 100 - shown
    for row in rows:
        if row["state"] == "scored":
            assert total(kpi["contribution"] for kpi in row["kpis"]) == Decimal(
                score(row["contribution"]))
    # Financial and operational weigh 50 each; strategic and relationship have weight 0.
    assert [row["state"] for row in rows] == ["scored", "unweighted", "scored", "unweighted"]
    assert [row["share"] for row in rows] == [0.5, 0.0, 0.5, 0.0]


@pytest.mark.parametrize(("factor", "tiers"), [
    # Tied with Globex, ranked first with it (ties share the best rank): at least growth.
    (1.0, {"growth", "strategic"}),
    (0.99, {"transactional"}),
])
def test_the_suggested_value_reaches_the_next_tier_when_scored_again(
        client, host_manager, ranked, kpis, factor, tiers):
    """Writing the revenue the path suggests (or 1 % less) and scoring again through the
    services: the agreement reaches growth's mark, or does not."""
    acme = ranked[0]
    client.force_login(host_manager)
    path = client.get(url(acme.code), {"month": MARCH}).context["explanation"]["paths"][0]
    needed = next(row["needed"] for row in path["reachable"] if row["kpi"].code == "revenue")
    # The same key as March's revenue: the value is replaced.
    write_observations([(acme, kpis["revenue"], "host", "2025-03-10", needed * factor)])
    scoring_run_inline()
    card = march_card(acme)
    assert (card.rolling >= path["mark"]) is (factor == 1.0)
    assert card.candidate_tier in tiers


def test_a_stage_without_tiers_has_no_path(client, host_manager, ranked):
    acme = ranked[0]
    acme.stage = "exiting"
    acme.save(update_fields=["stage"])
    client.force_login(host_manager)
    response = client.get(url(acme.code), {"month": MARCH})
    assert response.context["explanation"]["paths"] == []
    assert "Where the score comes from" in response.text


def test_the_month_change_by_htmx_carries_the_section(client, acme_viewer, ranked):
    client.force_login(acme_viewer)
    response = client.get(url("ACME-CM-2025"), {"month": "2025-02"},
                          headers={"HX-Request": "true"})
    assert "Where the score comes from, 2025-02" in response.text
    assert "<html" not in response.text


def test_changed_weights_are_said_and_the_breakdown_adds_up_to_what_they_give(
        client, host_manager, ranked, kpis):
    from partnerships.changes import program_changed

    acme = ranked[0]
    # The category weights edited after the run (as the program's services would, which also
    # tell the pages that the program changed).
    type(acme).objects.filter(pk=acme.pk).update(weight_financial=80, weight_operational=20)
    program_changed()
    client.force_login(host_manager)
    response = client.get(url(acme.code), {"month": MARCH})
    breakdown = response.context["explanation"]["breakdown"]
    assert not breakdown["same"]
    # (80 × 80 + 20 × 75) / 100 = 79 with the weights now; the run's 77.5 stays shown above.
    assert breakdown["overall"] == pytest.approx(79.0)
    assert "weights or KPIs changed since 2025-03 was scored (77.5 overall)" in response.text


def test_the_month_in_progress_has_its_own_path_checked_by_scoring_again(
        client, host_manager, acme_agreement, globex_agreement, kpis):
    """Two ended months and the month in progress so far (Acme's revenue only): "to reach it
    this month" takes the run's cut of the month in progress, and the value it gives for the
    defect rate, written and scored, reaches it."""
    from partnerships.months import month_shift
    from scoring.closing import current_month

    now = current_month()
    revenue, defect = kpis["revenue"], kpis["defect_rate"]
    rows = []
    for lag, acme_revenue in ((2, 60), (1, 70)):
        month = month_shift(now, -lag)
        rows += [(acme_agreement, revenue, "host", f"{month}-10", acme_revenue),
                 (acme_agreement, defect, "partner", f"{month}-05", 4),
                 (globex_agreement, revenue, "host", f"{month}-15", 80),
                 (globex_agreement, defect, "partner", f"{month}-15", 4)]
    rows += [(acme_agreement, revenue, "host", f"{now}-01", 80),
             (globex_agreement, revenue, "host", f"{now}-01", 80),
             (globex_agreement, defect, "partner", f"{now}-01", 4)]
    write_observations(rows)
    scoring_run_inline()
    client.force_login(host_manager)
    response = client.get(url(acme_agreement.code))
    paths = response.context["explanation"]["paths"]
    assert [path["period"] for path in paths] == [month_shift(now, -1), now]
    this_month = paths[1]
    assert this_month["in_progress"] and this_month["mark_month"] == now
    assert f"To reach growth this month ({now}, in progress)" in response.text
    defect_path = next(row for row in this_month["reachable"]
                       if row["kpi"].code == "defect_rate")
    assert defect_path["actual"] is None  # no defect rate reported so far this month
    write_observations([(acme_agreement, defect, "partner", f"{now}-01",
                         defect_path["needed"])], side="partner")
    scoring_run_inline()
    card = Scorecard.objects.of_run(ScoringRun.objects.current()).get(
        agreement=acme_agreement, period=now)
    assert card.rolling >= this_month["mark"]
