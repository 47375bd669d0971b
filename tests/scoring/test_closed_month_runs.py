"""Scoring runs with closed months (DOMAIN.md § Closing months, rules version 2): a run computes
only the months after the last closed one and continues from their frozen results; nothing
later changes a closed month; the fingerprint and the race with a close."""

import io
import random

import pytest
from django.core.management import call_command

from partnerships.models import (
    AgreementKPI,
    IncentivePlan,
    KPIDefinition,
    ProgramSettings,
    Role,
)
from scoring import services
from scoring.closing import ClosingRefused, month_reopen, months_close
from scoring.models import KPIScore, Scorecard, ScoringRun
from tests.conftest import make_user, write_observations

pytestmark = pytest.mark.django_db

MONTHS = ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"]
SCORECARD_FIELDS = ["agreement_id", "period", "has_scorecard", "financial", "strategic",
                    "operational", "relationship", "overall", "coverage", "rolling",
                    "incomplete", "at_risk", "candidate_tier", "tier", "payout", "streak"]
KPI_FIELDS = ["agreement_id", "kpi_id", "period", "actual", "other_side_actual", "target",
              "floor", "score"]


@pytest.fixture
def host_admin(django_user_model):
    return make_user(django_user_model, "admin", Role.HOST_ADMIN)


@pytest.fixture
def six_months(acme_agreement, globex_agreement, kpis):
    """Two agreements, 2025-01 to 2025-06, scored once with the threshold policy (85 / 70,
    hysteresis 2). Overall = (revenue score + defect score) / 2:

    acme   revenue 40 40 100 100 100 100, defect on target → overall 70 70 100 100 100 100,
           rolling – 70 80 90 100 100, candidates – G G S S S, tier – G G G S S, streak at
           2025-04: 1 (strategic once, against growth).
    globex revenue 90 20 10 10 0 60, defect 2 6 10 10 10 2 → overall 95 35 5 5 0 80: low
           (< 50) from 2025-02 to 2025-05, at risk in 2025-04 and 2025-05.

    acme also has a financial KPI without observations (deals, weight 1 beside revenue's 1):
    its coverage is 0.75, and a change of revenue's weight changes it.
    """
    ProgramSettings.objects.create(tier_policy="threshold")
    deals = KPIDefinition.objects.create(code="deals", name="Deals closed", unit="deals",
                                         category="financial", aggregation="sum", source="host")
    AgreementKPI.objects.create(agreement=acme_agreement, kpi=deals, target=10, floor=0)
    IncentivePlan.objects.create(agreement=acme_agreement, base_amount=1000)
    rev, defect = kpis["revenue"], kpis["defect_rate"]
    acme_revenue = [40, 40, 100, 100, 100, 100]
    globex_revenue, globex_defect = [90, 20, 10, 10, 0, 60], [2, 6, 10, 10, 10, 2]
    rows = []
    for index, month in enumerate(MONTHS):
        rows += [
            (acme_agreement, rev, "host", f"{month}-10", acme_revenue[index] / 2),
            (acme_agreement, rev, "host", f"{month}-20", acme_revenue[index] / 2),
            (acme_agreement, defect, "partner", f"{month}-12", 2),
            (globex_agreement, rev, "host", f"{month}-15", globex_revenue[index]),
            (globex_agreement, defect, "partner", f"{month}-15", globex_defect[index]),
        ]
    write_observations(rows)
    services.scoring_run_inline()
    return acme_agreement, globex_agreement


def current_run() -> ScoringRun:
    return ScoringRun.objects.current()


def results(run: ScoringRun | None = None, months=None) -> dict:
    """Every scorecard and KPI score readers see of the run, field by field, keyed."""
    run = run or current_run()
    cards = Scorecard.objects.of_run(run)
    kpi_scores = KPIScore.objects.of_run(run)
    if months is not None:
        cards, kpi_scores = cards.filter(period__in=months), kpi_scores.filter(period__in=months)
    shown = {("card", row[0], row[1]): row for row in cards.values_list(*SCORECARD_FIELDS)}
    shown.update({("kpi", *row[:3]): row for row in kpi_scores.values_list(*KPI_FIELDS)})
    return shown


def card(agreement, period) -> Scorecard:
    return Scorecard.objects.of_run(current_run()).get(agreement=agreement, period=period)


def export(period: str | None = None) -> bytes:
    out = io.StringIO()
    call_command("export_scorecards", *(["--period", period] if period else []), stdout=out)
    return out.getvalue().encode()


def is_current() -> bool:
    return services.scoring_inputs_fingerprint() == current_run().fingerprint


def test_a_run_without_closed_months_computes_every_month_as_version_one(six_months):
    run = current_run()
    assert (run.open_from, run.rules_version) == ("", 1)
    assert Scorecard.objects.filter(run=run).count() == 2 * 6
    acme, _ = six_months
    april = card(acme, "2025-04")
    assert (april.rolling, april.candidate_tier, april.tier, april.streak) == (
        90.0, "strategic", "growth", 1)
    assert card(acme, "2025-05").tier == "strategic"


def test_a_run_after_a_close_computes_only_the_open_months(six_months):
    before = current_run()
    months_close(through="2025-04", user=None)
    summary = services.scoring_run_inline()
    run = current_run()
    assert (run.open_from, run.rules_version) == ("2025-05", 2)
    assert set(Scorecard.objects.filter(run=run).values_list("period", flat=True)) == {
        "2025-05", "2025-06"}
    assert set(KPIScore.objects.filter(run=run).values_list("period", flat=True)) == {
        "2025-05", "2025-06"}
    # The months shown are unchanged: the closed ones come from their frozen rows.
    assert (run.first_period, run.last_period, run.months, run.periods) == (
        "2025-01", "2025-06", 6, MONTHS)
    assert (summary.scorecards, summary.tier_changes) == (before.scorecards, before.tier_changes)
    assert Scorecard.objects.of_run(run).count() == 12


def test_closing_and_scoring_again_without_changes_changes_nothing(six_months):
    before, exported = results(), export()
    first = current_run()
    months_close(through="2025-04", user=None)
    # Closing froze the current run's rows: it is still current, and nothing moved.
    assert is_current() and results() == before
    services.scoring_run_inline()
    assert current_run().pk != first.pk
    assert results() == before and export() == exported
    assert is_current()
    assert months_close(through="2025-05", user=None) == ["2025-05"]
    assert is_current()
    services.scoring_run_inline()
    assert results() == before and export() == exported and is_current()


@pytest.mark.parametrize("through", MONTHS)
def test_closing_any_month_then_scoring_gives_version_ones_results_to_the_bit(
        acme_agreement, globex_agreement, kpis, through):
    """A generated program: closing up to any month and scoring the rest changes no bit."""
    shuffled = random.Random(13)
    rows = []
    for agreement in (acme_agreement, globex_agreement):
        for month in MONTHS:
            for day in shuffled.sample(range(1, 28), 3):
                rows.append((agreement, kpis["revenue"], "host", f"{month}-{day:02d}",
                             shuffled.uniform(0, 60)))
            if shuffled.random() < 0.8:  # some months incomplete
                rows.append((agreement, kpis["defect_rate"], "partner", f"{month}-05",
                             shuffled.uniform(1, 11)))
    write_observations(rows)
    IncentivePlan.objects.create(agreement=globex_agreement, base_amount=777.77)
    services.scoring_run_inline()
    before = results()
    months_close(through=through, user=None)
    services.scoring_run_inline(chunk_size=1)
    assert results() == before
    assert is_current()


CHANGES = {
    "target": lambda acme, kpis: AgreementKPI.objects.filter(
        agreement=acme, kpi=kpis["revenue"]).update(target=200),
    "kpi weight": lambda acme, kpis: AgreementKPI.objects.filter(
        agreement=acme, kpi=kpis["revenue"]).update(weight=3),
    "category weights": lambda acme, kpis: type(acme).objects.filter(pk=acme.pk).update(
        weight_financial=80, weight_operational=20),
    "stage": lambda acme, kpis: type(acme).objects.filter(pk=acme.pk).update(stage="prospect"),
    "incentive plan": lambda acme, kpis: IncentivePlan.objects.filter(agreement=acme).update(
        base_amount=2500),
    "KPI definition": lambda acme, kpis: KPIDefinition.objects.filter(
        pk=kpis["revenue"].pk).update(aggregation="mean"),
    # Strategic from 101: May's candidate is growth, acme's tier at the close.
    "settings": lambda acme, kpis: ProgramSettings.objects.update(strategic_threshold=101),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_later_change_leaves_closed_months_and_changes_the_open_ones(six_months, kpis,
                                                                       change):
    acme, _ = six_months
    months_close(through="2025-04", user=None)
    closed, april = results(months=MONTHS[:4]), export("2025-04")
    open_before = results(months=MONTHS[4:])
    CHANGES[change](acme, kpis)
    assert not is_current()
    with pytest.raises(ClosingRefused, match="run scoring first"):
        months_close(through="2025-05", user=None)
    services.scoring_run_inline()
    assert results(months=MONTHS[:4]) == closed and export("2025-04") == april
    assert results(months=MONTHS[4:]) != open_before
    assert is_current()


def test_the_walk_continues_from_the_frozen_tier_and_streak(six_months):
    acme, _ = six_months
    months_close(through="2025-04", user=None)
    # Strategic from 95: April's candidate would be growth now, which would break the streak.
    ProgramSettings.objects.update(strategic_threshold=95)
    services.scoring_run_inline()
    april = card(acme, "2025-04")
    assert (april.candidate_tier, april.tier, april.streak) == ("strategic", "growth", 1)
    # May: rolling (100 + 100 + 100) / 3 = 100 ≥ 95, strategic again: the frozen streak of 1
    # reaches 2, so the tier switches (version 1 over every month would still say growth).
    may = card(acme, "2025-05")
    assert (may.rolling, may.candidate_tier, may.tier, may.streak) == (
        100.0, "strategic", "strategic", 0)
    # Growth × 1.25 → strategic × 1.5: 1000 × 1.5 × 100 / 100.
    assert may.payout == 1500.0


def test_an_agreement_without_candidates_keeps_its_frozen_tier(six_months):
    acme, _ = six_months
    months_close(through="2025-04", user=None)
    type(acme).objects.filter(pk=acme.pk).update(stage="prospect")
    services.scoring_run_inline()
    # No candidate in an open month: the tier frozen at 2025-04 (growth) stays, the streak
    # resets, and the payout is growth's: 1000 × 1.25 × 100 / 100.
    may = card(acme, "2025-05")
    assert (may.candidate_tier, may.tier, may.streak, may.payout) == ("", "growth", 0, 1250.0)
    assert card(acme, "2025-04").candidate_tier == "strategic"


def test_rolling_and_at_risk_take_the_frozen_months_as_they_are(six_months, kpis):
    _, globex = six_months
    months_close(through="2025-04", user=None)
    # Revenue 10 is on target now: March and April would score 50 (not low) if recomputed.
    AgreementKPI.objects.filter(agreement=globex, kpi=kpis["revenue"]).update(target=10)
    services.scoring_run_inline()
    assert card(globex, "2025-04").overall == 5.0
    may = card(globex, "2025-05")
    # May: revenue 0 → 0, defect on its floor → 0; the frozen 5 and 5 stay in the window.
    assert may.overall == 0.0
    assert may.rolling == (5.0 + 5.0 + 0.0) / 3
    assert may.at_risk
    june = card(globex, "2025-06")
    # June: revenue 60 of 10 → capped 120, defect on target 100 → 110; April frozen 5.
    assert june.overall == 110.0
    assert june.rolling == (5.0 + 0.0 + 110.0) / 3
    assert not june.at_risk


def test_the_export_of_a_closed_month_is_the_same_bytes_after_later_runs(six_months, kpis):
    acme, globex = six_months
    months_close(through="2025-03", user=None)
    march = export("2025-03")
    assert march.count(b"\n") == 3
    AgreementKPI.objects.filter(kpi=kpis["defect_rate"]).update(floor=20)
    ProgramSettings.objects.update(hysteresis=1)
    services.scoring_run_inline()
    write_observations([(acme, kpis["revenue"], "host", "2025-04-28", 55)])
    services.scoring_run_inline()
    services.scoring_run_inline()
    assert export("2025-03") == march


def test_reopening_and_scoring_again_recomputes_the_reopened_months(six_months, kpis,
                                                                    host_admin):
    acme, _ = six_months
    months_close(through="2025-04", user=None)
    AgreementKPI.objects.filter(agreement=acme, kpi=kpis["revenue"]).update(target=200)
    services.scoring_run_inline()
    assert card(acme, "2025-04").financial == 100.0  # frozen
    month_reopen(month="2025-04", reason="revenue target was wrong", user=host_admin)
    # Shown as frozen until a run computes the month again.
    assert card(acme, "2025-04").financial == 100.0
    assert not is_current()
    services.scoring_run_inline()
    run = current_run()
    assert run.open_from == "2025-04"
    april = card(acme, "2025-04")
    assert (april.run_id, april.frozen, april.financial) == (run.pk, False, 50.0)
    # The walk continues from March, frozen: growth, streak 0.
    assert card(acme, "2025-03").financial == 100.0
    assert months_close(through="2025-04", user=None) == ["2025-04"]
    assert Scorecard.objects.get(agreement=acme, period="2025-04", frozen=True).run_id == run.pk


def test_reopening_a_month_the_current_run_did_not_compute_needs_a_run_before_closing(
        six_months, host_admin):
    months_close(through="2025-04", user=None)
    services.scoring_run_inline()  # computes 2025-05 on
    month_reopen(month="2025-03", reason="late partner data", user=host_admin)
    assert not is_current()
    with pytest.raises(ClosingRefused, match="run scoring first"):
        months_close(through="2025-03", user=None)
    services.scoring_run_inline()
    assert current_run().open_from == "2025-03" and is_current()
    assert months_close(through="2025-04", user=None) == ["2025-03", "2025-04"]


def test_with_every_month_closed_a_run_publishes_no_rows_of_its_own(six_months):
    before = results()
    months_close(through="2025-06", user=None)
    summary = services.scoring_run_inline()
    run = current_run()
    assert summary.status == "succeeded" and run.open_from == "2025-07"
    assert not Scorecard.objects.filter(run=run).exists()
    assert results() == before and is_current()
    assert (run.first_period, run.last_period, run.scorecards) == ("2025-01", "2025-06", 12)


def test_a_run_planned_before_a_close_is_not_published_after_it(six_months):
    first = current_run()
    run = services.scoring_run_request(trigger=ScoringRun.Trigger.COMMAND)
    assert services.scoring_run_claim(run_id=run.id)
    for index in services.scoring_run_plan(run_id=run.id):
        services.scoring_chunk_execute(run_id=run.id, index=index)
    months_close(through="2025-04", user=None)  # from the published run, meanwhile
    assert services.scoring_run_publish(run_id=run.id) is None
    run.refresh_from_db()
    assert run.status == "failed" and "closed months changed" in run.error
    assert current_run() == first
    assert services.scoring_run_inline().status == "succeeded"
    assert current_run().open_from == "2025-05"


def test_the_cleanup_keeps_frozen_rows_and_the_runs_that_hold_them(six_months, host_admin):
    first = current_run()
    months_close(through="2025-02", user=None)
    services.scoring_run_inline()
    second = current_run()
    months_close(through="2025-04", user=None)
    services.scoring_run_inline()
    services.scoring_run_inline()
    frozen = Scorecard.objects.filter(frozen=True)
    assert sorted(frozen.order_by().values_list("period", "run_id").distinct()) == [
        ("2025-01", first.pk), ("2025-02", first.pk), ("2025-03", second.pk),
        ("2025-04", second.pk)]
    assert frozen.count() == 8 and KPIScore.objects.filter(frozen=True).count() == 16
    assert ScoringRun.objects.filter(pk__in=[first.pk, second.pk]).count() == 2
