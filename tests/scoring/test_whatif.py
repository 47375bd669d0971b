"""What-if (scoring/whatif.py): the rules re-run with changed inputs beside the published run.
With nothing changed it equals the published run to the bit; a change moves what the rules say
it moves (hand-computed below); it writes nothing; saving goes through the services, to the
open months only."""

import numpy as np
import pandas as pd
import pytest
from django.core.exceptions import ValidationError

from partnerships.models import (
    AgreementKPI,
    AuditAction,
    AuditEvent,
    IncentivePlan,
    MetricObservation,
    ProgramChange,
    ProgramSettings,
)
from scoring import rules, services
from scoring.closing import months_close
from scoring.models import KPIScore, Scorecard, ScoringRun
from scoring.whatif import (
    Change,
    WhatIf,
    whatif_apply,
    whatif_inputs_ready,
    whatif_job_new,
    whatif_job_run,
    whatif_job_status,
    whatif_payout_total,
    whatif_reason,
    whatif_save_job_run,
    whatif_simulate,
    whatif_state_job,
    whatif_state_token,
    whatif_summary,
    whatif_tier_moves,
)
from tests.conftest import write_observations

pytestmark = pytest.mark.django_db

MONTHS = ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"]
VALUES = ("overall", "rolling", "payout")


def score_six_months(acme_agreement, globex_agreement, kpis):
    """Two agreements, 2025-01 to 2025-06, scored with the threshold policy (85 / 70,
    hysteresis 2); overall = (revenue score + defect score) / 2 (weights 50 / 50).

    acme   revenue 40 40 100 100 100 100 (target 100, floor 0), defect on target
           → overall 70 70 100 100 100 100, rolling – 70 80 90 100 100,
           tier – G G G S S; plan base 1000: payouts 0 875 1250 1250 1500 1500 = 6,375.
    globex revenue 90 20 10 10 0 60, defect 2 6 10 10 10 2 → overall 95 35 5 5 0 80.
    """
    ProgramSettings.objects.create(tier_policy="threshold")
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
    assert services.scoring_run_inline().status == ScoringRun.Status.SUCCEEDED
    return acme_agreement, globex_agreement


@pytest.fixture
def six_months(acme_agreement, globex_agreement, kpis):
    return score_six_months(acme_agreement, globex_agreement, kpis)


def of(simulation, agreement, month: str) -> pd.Series:
    rows = simulation.rows
    return rows[(rows["agreement_id"] == agreement.pk) & (rows["period"] == month)].iloc[0]


def bits(values) -> np.ndarray:
    return np.asarray(values, dtype="float64").view("int64")


def test_unchanged_inputs_give_the_published_run_to_the_bit(six_months):
    for whatif in (WhatIf(), WhatIf(hysteresis=2, tier_policy="threshold")):
        simulation = whatif_simulate(whatif=whatif)
        rows = simulation.rows
        assert simulation.periods == MONTHS
        assert len(rows) == 2 * len(MONTHS)
        for name in VALUES:
            assert (bits(rows[f"{name}_now"]) == bits(rows[f"{name}_simulated"])).all(), name
        assert list(rows["tier_now"]) == list(rows["tier_simulated"])
        assert (rows["has_scorecard_now"] == rows["has_scorecard_simulated"]).all()
        assert whatif_summary(simulation=simulation, month="2025-06")["payout_difference"] == 0


def test_period_observations_score_to_the_bit_as_the_observations_they_come_from(six_months):
    periods = MONTHS
    ids = sorted(agreement.pk for agreement in six_months)
    inputs = services.load_chunk_inputs(agreement_ids=ids, periods=periods)
    reduced = rules.period_observations(observations=inputs["observations"],
                                        agreement_kpis=inputs["agreement_kpis"], periods=periods)
    # One row per agreement KPI and month: 2 agreements × 2 KPIs × 6 months.
    assert len(reduced) == 24
    _, whole = rules.score_agreements(observations=inputs["observations"],
                                      agreement_kpis=inputs["agreement_kpis"],
                                      agreements=inputs["agreements"], periods=periods)
    _, again = rules.score_agreements(observations=reduced,
                                      agreement_kpis=inputs["agreement_kpis"],
                                      agreements=inputs["agreements"], periods=periods)
    for name in ("overall", "coverage", "rolling", *rules.CATEGORIES):
        assert (bits(whole[name]) == bits(again[name])).all(), name


def test_a_lower_target_raises_the_agreements_scores_and_moves_its_tier_earlier(six_months):
    acme, globex = six_months
    revenue = AgreementKPI.objects.get(agreement=acme, kpi__code="revenue")
    simulation = whatif_simulate(whatif=WhatIf(agreement_id=acme.pk, kpi_id=revenue.kpi_id,
                                               target=Change(80)))
    # Revenue 40 of target 80: 50 → overall (50 + 100) / 2 = 75; 100 of 80: 125, capped 120
    # → overall 110.
    assert of(simulation, acme, "2025-01")["overall_simulated"] == 75.0
    assert of(simulation, acme, "2025-03")["overall_simulated"] == 110.0
    assert of(simulation, acme, "2025-03")["rolling_simulated"] == pytest.approx(260 / 3)
    # Rolling 86.7 then 98.3: strategic twice in a row → strategic at 2025-04 (now at 2025-05).
    assert of(simulation, acme, "2025-04")["tier_now"] == "growth"
    assert of(simulation, acme, "2025-04")["tier_simulated"] == "strategic"
    assert whatif_tier_moves(simulation=simulation, month="2025-04") == {
        ("growth", "strategic"): 1, ("transactional", "transactional"): 1}
    # Globex is not in scope: its results stay to the bit.
    for month in MONTHS:
        row = of(simulation, globex, month)
        assert bits([row["overall_now"]]) == bits([row["overall_simulated"]])
    assert simulation.changed_kpis == 1


def test_a_change_in_percent_reaches_every_agreement_of_the_program(six_months):
    acme, globex = six_months
    simulation = whatif_simulate(whatif=WhatIf(
        kpi_id=AgreementKPI.objects.get(agreement=acme, kpi__code="revenue").kpi_id,
        target=Change(-20, percent=True)))
    assert simulation.changed_kpis == 2
    assert of(simulation, acme, "2025-01")["overall_simulated"] == 75.0
    # Globex 2025-01: revenue 90 of 80 → 112.5; (112.5 + 100) / 2.
    assert of(simulation, globex, "2025-01")["overall_simulated"] == 106.25


def test_thresholds_hysteresis_and_policy_move_tiers_as_the_rules_say(six_months):
    acme, globex = six_months
    at_once = whatif_simulate(whatif=WhatIf(hysteresis=1))
    # Rolling 90 in 2025-04 is strategic; with a hysteresis of 1 the tier follows at once.
    assert of(at_once, acme, "2025-04")["tier_simulated"] == "strategic"
    assert of(at_once, acme, "2025-04")["tier_now"] == "growth"
    out_of_reach = whatif_simulate(whatif=WhatIf(strategic_threshold=101))
    assert of(out_of_reach, acme, "2025-06")["tier_now"] == "strategic"
    assert of(out_of_reach, acme, "2025-06")["tier_simulated"] == "growth"
    # Percentile among 2: the first is strategic (10·0 < 2), the second transactional
    # (10·1 ≥ 3·2). Acme's rolling is above globex's in every month (70 > 65 in 2025-02, then
    # 80 > 45, …), so acme is strategic from its first candidate on.
    ranked = whatif_simulate(whatif=WhatIf(tier_policy="percentile"))
    assert [of(ranked, acme, month)["tier_simulated"] for month in MONTHS] == [
        None, "strategic", "strategic", "strategic", "strategic", "strategic"]
    assert [of(ranked, globex, month)["tier_simulated"] for month in MONTHS] == [
        None, "transactional", "transactional", "transactional", "transactional",
        "transactional"]


def test_payout_difference_of_a_multiplier_and_of_a_baseline(six_months):
    simulation = whatif_simulate(whatif=WhatIf(multipliers={"growth": Change(2)}))
    now, simulated = whatif_payout_total(simulation=simulation)
    assert now == 6375.0
    # Growth months 2025-02 to 2025-04: 1000 × 2 × (0.7, 1, 1) = 1400 + 2000 + 2000.
    assert simulated == 1400 + 2000 + 2000 + 1500 + 1500
    assert whatif_summary(simulation=simulation, month="2025-06")["payout_difference"] == 2025.0
    # Baseline 75: 2025-02's rolling 70 is below it, so its 875 is not due.
    higher = whatif_simulate(whatif=WhatIf(baseline=Change(75)))
    assert whatif_summary(simulation=higher, month="2025-06")["payout_difference"] == -875.0


def test_simulating_writes_nothing(six_months):
    models = (Scorecard, KPIScore, ScoringRun, AgreementKPI, IncentivePlan, ProgramSettings,
              ProgramChange, AuditEvent, MetricObservation)
    before = {model: model.objects.count() for model in models}
    targets = list(AgreementKPI.objects.order_by("pk").values_list("target", "floor", "weight"))
    whatif_simulate(whatif=WhatIf(target=Change(10, percent=True), hysteresis=1,
                                  category_weights=(40, 10, 40, 10), baseline=Change(50),
                                  multipliers={"strategic": Change(3)}))
    assert {model: model.objects.count() for model in models} == before
    assert list(AgreementKPI.objects.order_by("pk").values_list(
        "target", "floor", "weight")) == targets


@pytest.mark.parametrize(("whatif", "message"), [
    (WhatIf(target=Change(0)), "target equal the floor"),
    (WhatIf(weight=Change(-100, percent=True)), "weight that is not above 0"),
    (WhatIf(category_weights=(50, 0, 40, 0)), "add up to 90"),
    (WhatIf(growth_threshold=90), "growth threshold is above"),
    (WhatIf(multipliers={"growth": Change(-1)}), "outside 0 to 100"),
])
def test_a_change_the_services_would_refuse_is_refused(six_months, whatif, message):
    with pytest.raises(ValidationError) as refused:
        whatif_simulate(whatif=whatif)
    assert message in " ".join(refused.value.messages)


def test_the_prepared_period_values_are_kept_and_a_job_tells_its_progress(six_months, kpis):
    job = whatif_job_new()
    assert whatif_job_status(job_id=job)["done"] is False
    assert not whatif_inputs_ready()
    whatif_job_run(job_id=job)
    assert whatif_job_status(job_id=job) == {"progress": 100, "stage": "done", "done": True,
                                             "error": ""}
    assert whatif_inputs_ready()
    # A new observation makes what was kept stale.
    acme, _ = six_months
    write_observations([(acme, kpis["revenue"], "host", "2025-06-25", 1)])
    assert not whatif_inputs_ready()


def test_saving_applies_through_the_services_to_the_open_months_only(six_months, host_manager):
    acme, _ = six_months
    months_close(through="2025-03", user=None)
    closed_before = list(Scorecard.objects.of_run(ScoringRun.objects.current()).filter(
        period__lte="2025-03").order_by("agreement_id", "period").values_list(
        "agreement_id", "period", "overall", "rolling", "tier", "payout"))
    revenue = AgreementKPI.objects.get(agreement=acme, kpi__code="revenue")
    whatif = WhatIf(agreement_id=acme.pk, kpi_id=revenue.kpi_id, target=Change(80),
                    hysteresis=1, multipliers={"growth": Change(2)})
    simulation = whatif_simulate(whatif=whatif)
    # Only the open months are simulated.
    assert simulation.periods == MONTHS[3:]
    assert simulation.last_closed == "2025-03"
    saved = whatif_apply(whatif=whatif, simulation=simulation, month="2025-06",
                         user=host_manager)
    assert saved == 3  # settings, the KPI, the plan
    revenue.refresh_from_db()
    assert revenue.target == 80
    assert ProgramSettings.current().hysteresis == 1
    assert IncentivePlan.objects.get(agreement=acme).multiplier_growth == 2
    changes = ProgramChange.objects.filter(user=host_manager)
    assert {change.object_type for change in changes} == {
        "program settings", "agreement KPI", "incentive plan"}
    summary = whatif_summary(simulation=simulation, month="2025-06")
    reason = whatif_reason(summary=summary)
    assert reason.startswith("What-if: ") and reason.endswith(" USD")
    assert {change.reason for change in changes} == {reason}
    event = AuditEvent.objects.filter(action=AuditAction.PROGRAM_CHANGED,
                                      target__startswith="What-if").get()
    assert event.detail["summary"] == whatif_summary(simulation=simulation, month="2025-06")
    assert event.detail["whatif"]["target"] == "80"

    assert services.scoring_run_inline().status == ScoringRun.Status.SUCCEEDED
    run = ScoringRun.objects.current()
    # Closed months keep their frozen results; the open months are what was simulated.
    assert list(Scorecard.objects.of_run(run).filter(period__lte="2025-03").order_by(
        "agreement_id", "period").values_list("agreement_id", "period", "overall", "rolling",
                                             "tier", "payout")) == closed_before
    published = {(row.agreement_id, row.period): row for row in Scorecard.objects.of_run(run)
                 .filter(period__gt="2025-03")}
    for row in simulation.rows.itertuples():
        card = published[(row.agreement_id, row.period)]
        assert bits([card.overall, card.rolling]).tolist() == bits(
            [row.overall_simulated, row.rolling_simulated]).tolist()
        assert (card.tier or None) == row.tier_simulated
        assert bits([card.payout]).tolist() == bits([row.payout_simulated]).tolist()


def test_a_save_job_delivered_twice_applies_a_change_in_percent_once(six_months, host_manager):
    acme, _ = six_months
    whatif = WhatIf.from_json(WhatIf(agreement_id=acme.pk, target=Change(-20, percent=True),
                                     multipliers={"growth": Change(2)}).as_json())
    assert whatif.target == Change(-20, percent=True)
    token = whatif_state_token(whatif=whatif, month="2025-06")
    job = whatif_state_job(token=token, whatif=whatif, month="2025-06")
    assert job == whatif_state_job(token=token, whatif=whatif, month="2025-06")
    for _ in range(2):
        whatif_save_job_run(job_id=job, token=token, user_id=host_manager.pk)
    assert whatif_job_status(job_id=job)["saved"] == 3  # two KPIs and the plan
    assert AgreementKPI.objects.get(agreement=acme, kpi__code="revenue").target == 80
    assert AgreementKPI.objects.get(agreement=acme, kpi__code="defect_rate").target == 1.6


def test_a_save_job_in_a_program_changed_since_the_confirmation_saves_nothing(six_months,
                                                                              host_manager):
    from partnerships.program_services import agreement_kpi_update

    acme, _ = six_months
    whatif = WhatIf(agreement_id=acme.pk, target=Change(10, percent=True))
    token = whatif_state_token(whatif=whatif, month="2025-06")
    revenue = AgreementKPI.objects.get(agreement=acme, kpi__code="revenue")
    agreement_kpi_update(user=host_manager, agreement_kpi=revenue, target=90)
    job = whatif_job_new()
    whatif_save_job_run(job_id=job, token=token, user_id=host_manager.pk)
    assert whatif_job_status(job_id=job)["error"] == (
        "The program changed since you confirmed: simulate again.")
    revenue.refresh_from_db()
    assert revenue.target == 90
    assert not ProgramChange.objects.filter(reason__startswith="What-if").exists()


def test_a_confirmation_names_its_own_changes_only(six_months):
    acme, _ = six_months
    whatif = WhatIf(agreement_id=acme.pk, target=Change(10, percent=True))
    token = whatif_state_token(whatif=whatif, month="2025-06")
    other = WhatIf(agreement_id=acme.pk, target=Change(20, percent=True))
    assert whatif_state_job(token=token, whatif=other, month="2025-06") is None
    assert whatif_state_job(token=token, whatif=whatif, month="2025-05") is None
    assert whatif_state_job(token=token + "x", whatif=whatif, month="2025-06") is None


def test_beat_keeps_the_period_values_once_per_change_of_the_observations(six_months, kpis):
    from scoring.tasks import whatif_warm

    assert whatif_warm() == "prepared"
    assert whatif_inputs_ready()
    assert whatif_warm() == "kept already"
    acme, _ = six_months
    write_observations([(acme, kpis["revenue"], "host", "2025-06-26", 1)])
    assert whatif_warm() == "prepared"
