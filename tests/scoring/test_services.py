"""Scoring runs against the database: results, publication, reproducibility, refusals."""

import datetime as dt

import pytest
from django.core.management import call_command

from partnerships.models import IncentivePlan, MetricObservation
from scoring import services, tasks
from scoring.exports import EXPORT_HEADER, scorecard_export_rows
from scoring.models import KPIScore, Scorecard, ScoringChunk, ScoringRun
from tests.conftest import make_agreement, write_observations

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored_program(acme_agreement, globex_agreement, kpis):
    """Three months of data for two agreements (revenue host-side, defect rate partner-side)."""
    rev, defect = kpis["revenue"], kpis["defect_rate"]
    rows = []
    for month, (acme_rev, globex_rev) in enumerate([(50, 90), (80, 100), (120, 130)], start=1):
        day = f"2025-{month:02d}"
        rows += [
            (acme_agreement, rev, "host", f"{day}-10", acme_rev / 2),
            (acme_agreement, rev, "host", f"{day}-20", acme_rev / 2),
            (acme_agreement, rev, "partner", f"{day}-20", 999),  # never scored: not the source
            (acme_agreement, defect, "partner", f"{day}-05", 4),
            (acme_agreement, defect, "partner", f"{day}-25", 6),
            (globex_agreement, rev, "host", f"{day}-15", globex_rev),
            (globex_agreement, defect, "partner", f"{day}-15", 2),
        ]
    write_observations(rows)
    return acme_agreement, globex_agreement


def scorecard(agreement, period):
    return Scorecard.objects.get(run=ScoringRun.objects.current(), agreement=agreement,
                                 period=period)


def test_run_scores_every_month_by_the_rules(scored_program, kpis):
    acme, globex = scored_program
    summary = services.scoring_run_inline()
    assert summary.status == "succeeded"
    assert (summary.months, summary.first_period, summary.last_period) == (3, "2025-01", "2025-03")
    assert (summary.agreements, summary.scorecards) == (2, 6)
    january = scorecard(acme, "2025-01")
    # revenue 25 + 25 = 50 of target 100 → 50; defect mean(4, 6) = 5 between floor 10 and
    # target 2 → (5 − 10) / (2 − 10) = 0.625 → 62.5; overall (50·50 + 62.5·50) / 100.
    assert january.financial == 50.0
    assert january.operational == 62.5
    assert january.overall == 56.25
    assert january.coverage == 1.0
    assert january.rolling is None
    february = scorecard(acme, "2025-02")
    assert february.rolling == (56.25 + (80 + 62.5) / 2) / 2
    march = scorecard(acme, "2025-03")
    # revenue 120 → capped at 120 points.
    assert march.financial == 120.0
    kpi_row = KPIScore.objects.get(agreement=acme, kpi=kpis["revenue"], period="2025-01")
    assert (kpi_row.actual, kpi_row.other_side_actual, kpi_row.score) == (50.0, 999.0, 50.0)


def test_tiers_and_payouts_are_published_with_the_scores(scored_program):
    acme, globex = scored_program
    IncentivePlan.objects.create(agreement=globex, base_amount=1000)
    services.scoring_run_inline()
    # Two candidates each month: rank 1 → 10·0 < 2 strategic; rank 2 → 10 < 6? no → transactional.
    february = scorecard(globex, "2025-02")
    assert february.candidate_tier == "strategic"
    assert february.tier == "strategic"
    assert scorecard(acme, "2025-02").tier == "transactional"
    assert scorecard(acme, "2025-01").tier == ""
    # globex Feb: overall (100·50 + 100·50)/100 = 100, rolling (95 + 100)/2 = 97.5 ≥ 60.
    assert february.payout == 1000 * 1.5 * 100 / 100
    assert scorecard(acme, "2025-02").payout is None


def test_export_matches_the_domain_format(scored_program):
    services.scoring_run_inline()
    rows = scorecard_export_rows(run=ScoringRun.objects.current())
    assert EXPORT_HEADER == ["agreement", "partner", "period", "financial", "strategic",
                             "operational", "relationship", "overall", "coverage", "rolling",
                             "tier", "flags"]
    assert [row[:3] for row in rows] == [
        ["ACME-CM-2025", "acme", "2025-01"], ["ACME-CM-2025", "acme", "2025-02"],
        ["ACME-CM-2025", "acme", "2025-03"], ["GLOBEX-REF-2025", "globex", "2025-01"],
        ["GLOBEX-REF-2025", "globex", "2025-02"], ["GLOBEX-REF-2025", "globex", "2025-03"],
    ]
    assert rows[0] == ["ACME-CM-2025", "acme", "2025-01", "50.0000", "", "62.5000", "",
                       "56.2500", "1.0000", "", "", ""]


def test_export_command_writes_one_month(scored_program, tmp_path, capsys):
    call_command("score")
    output = tmp_path / "march.csv"
    call_command("export_scorecards", "--period", "2025-03", "--output", str(output))
    lines = output.read_text().splitlines()
    assert lines[0] == ",".join(EXPORT_HEADER)
    assert [line.split(",")[2] for line in lines[1:]] == ["2025-03", "2025-03"]


def test_score_command_prints_a_summary(scored_program, capsys):
    call_command("score")
    out = capsys.readouterr().out
    assert "months:       3 (2025-01 to 2025-03)" in out
    assert "scorecards:   6" in out


def _results(run):
    scorecards = list(
        Scorecard.objects.filter(run=run).order_by("agreement_id", "period").values_list(
            "agreement_id", "period", "has_scorecard", "financial", "strategic", "operational",
            "relationship", "overall", "coverage", "rolling", "incomplete", "at_risk",
            "candidate_tier", "tier", "payout",
        )
    )
    kpi_scores = list(
        KPIScore.objects.filter(run=run).order_by("agreement_id", "kpi_id", "period").values_list(
            "agreement_id", "kpi_id", "period", "actual", "other_side_actual", "score"
        )
    )
    return scorecards, kpi_scores


def _many_agreements(acme, kpis, count=7):
    rev, defect = kpis["revenue"], kpis["defect_rate"]
    rows = []
    for n in range(count):
        agreement = make_agreement(acme, f"A-{n:02d}", kpis)
        for month in range(1, 6):
            rows.append((agreement, rev, "host", f"2025-{month:02d}-03", 10 + 13.7 * n + month))
            if (n + month) % 3:
                rows.append((agreement, defect, "partner", f"2025-{month:02d}-09", 3 + n % 5))
    write_observations(rows)


def test_same_inputs_give_bit_identical_results_and_fingerprint(acme, kpis):
    _many_agreements(acme, kpis)
    first = services.scoring_run_inline()
    first_results = _results(ScoringRun.objects.get(pk=first.run_id))
    second = services.scoring_run_inline()
    assert second.fingerprint == first.fingerprint
    assert _results(ScoringRun.objects.get(pk=second.run_id)) == first_results


def test_one_chunk_and_many_chunks_give_identical_results(acme, kpis):
    _many_agreements(acme, kpis)
    whole = services.scoring_run_inline(chunk_size=1000)
    whole_results = _results(ScoringRun.objects.get(pk=whole.run_id))
    chunked = services.scoring_run_inline(chunk_size=2)
    assert ScoringChunk.objects.filter(run_id=chunked.run_id).count() == 4
    assert _results(ScoringRun.objects.get(pk=chunked.run_id)) == whole_results
    assert chunked.fingerprint == whole.fingerprint


def test_changed_observation_changes_the_fingerprint(scored_program, kpis):
    acme, _ = scored_program
    first = services.scoring_run_inline()
    write_observations([(acme, kpis["revenue"], "host", "2025-01-10", 26)])
    assert services.scoring_run_inline().fingerprint != first.fingerprint


def test_second_request_while_one_is_active_is_refused(scored_program):
    active = services.scoring_run_request(trigger="user")
    with pytest.raises(services.ScoringAlreadyRunning, match=f"run {active.pk}"):
        services.scoring_run_request(trigger="user")
    assert ScoringRun.objects.count() == 1


def test_second_nightly_request_for_the_same_night_is_refused(scored_program):
    night = dt.date(2026, 1, 2)
    run = services.scoring_run_request(trigger="schedule", scheduled_for=night)
    services.scoring_run_execute(run_id=run.id)
    with pytest.raises(services.ScoringAlreadyRunning):
        services.scoring_run_request(trigger="schedule", scheduled_for=night)


def test_duplicate_delivery_does_not_run_twice(scored_program):
    run = services.scoring_run_request(trigger="user")
    assert services.scoring_run_claim(run_id=run.id)
    assert not services.scoring_run_claim(run_id=run.id)
    assert services.scoring_run_execute(run_id=run.id) is None


def test_chunk_delivered_twice_is_scored_once(scored_program):
    run = services.scoring_run_request(trigger="user")
    services.scoring_run_claim(run_id=run.id)
    [index] = services.scoring_run_plan(run_id=run.id)
    assert services.scoring_chunk_execute(run_id=run.id, index=index)
    assert not services.scoring_chunk_execute(run_id=run.id, index=index)
    assert Scorecard.objects.filter(run=run).count() == 6


def test_readers_see_previous_results_until_the_new_run_publishes(scored_program, kpis):
    acme, _ = scored_program
    first = services.scoring_run_inline()
    write_observations([(acme, kpis["revenue"], "host", "2025-01-10", 40)])
    run = services.scoring_run_request(trigger="user")
    services.scoring_run_claim(run_id=run.id)
    for index in services.scoring_run_plan(run_id=run.id):
        services.scoring_chunk_execute(run_id=run.id, index=index)
    # Staged but not published: pages and exports still read the first run, whole.
    assert ScoringRun.objects.current().pk == first.run_id
    assert scorecard(acme, "2025-01").overall == 56.25
    services.scoring_run_publish(run_id=run.id)
    assert ScoringRun.objects.current().pk == run.id
    assert scorecard(acme, "2025-01").financial == 65.0
    services.scoring_results_cleanup()
    assert not Scorecard.objects.filter(run_id=first.run_id).exists()
    assert Scorecard.objects.filter(run_id=run.id).count() == 6


def test_failed_run_leaves_previous_results(scored_program, monkeypatch):
    first = services.scoring_run_inline()

    def broken(**kwargs):
        raise ValueError("disk full")

    monkeypatch.setattr(services.rules, "assign_tiers", broken)
    with pytest.raises(ValueError):
        services.scoring_run_inline()
    failed = ScoringRun.objects.order_by("-id").first()
    assert failed.status == "failed" and "disk full" in failed.error and failed.active is None
    assert ScoringRun.objects.current().pk == first.run_id
    assert Scorecard.objects.filter(run_id=first.run_id, has_scorecard=True).count() == 6


def test_run_without_heartbeat_is_marked_failed_and_unblocks(scored_program, settings):
    settings.SCORING_STALE_AFTER_SECONDS = 60
    run = services.scoring_run_request(trigger="user")
    services.scoring_run_claim(run_id=run.id)
    later = run.created_at + dt.timedelta(minutes=5)
    assert services.scoring_runs_expire_stale(now=later) == 1
    run.refresh_from_db()
    assert run.status == "failed" and "Stopped reporting progress" in run.error
    assert services.scoring_run_request(trigger="user").status == "pending"


def test_no_observations_gives_an_empty_published_run(acme_agreement):
    summary = services.scoring_run_inline()
    assert (summary.status, summary.months, summary.scorecards) == ("succeeded", 0, 0)


def test_enqueue_waits_for_the_commit(scored_program, django_capture_on_commit_callbacks,
                                      monkeypatch):
    sent = []
    monkeypatch.setattr(tasks, "task_publish", lambda signature: sent.append(signature.args))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = tasks.scoring_enqueue(trigger="user")
        assert sent == []
    assert len(callbacks) == 1 and sent == [(run.id,)]


def test_tasks_run_a_whole_run_in_process(scored_program):
    run = services.scoring_run_request(trigger="user")
    tasks.run_scoring.apply(args=[run.id]).get()
    run.refresh_from_db()
    assert run.status == "succeeded" and run.progress == 100
    assert tasks.run_scoring.apply(args=[run.id]).get() == "skipped"


def test_nightly_task_skips_a_second_beat(scored_program, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        assert tasks.scoring_nightly.apply().get().startswith("queued run")
        assert tasks.scoring_nightly.apply().get() == "skipped"
    assert MetricObservation.objects.exists()


def test_cleanup_keeps_the_chunks_of_a_run_requested_meanwhile(scored_program):
    services.scoring_run_inline()
    run = services.scoring_run_request(trigger="user")
    services.scoring_run_claim(run_id=run.id)
    services.scoring_run_plan(run_id=run.id)
    services.scoring_results_cleanup()
    assert ScoringChunk.objects.filter(run=run).count() == 1
    services.scoring_chunk_execute(run_id=run.id, index=0)
    assert services.scoring_run_publish(run_id=run.id).status == "succeeded"


def test_run_periods_cross_the_year_boundary():
    run = ScoringRun(first_period="2024-11", last_period="2025-02")
    assert run.periods == ["2024-11", "2024-12", "2025-01", "2025-02"]
    assert ScoringRun(first_period="", last_period="").periods == []


def test_export_sorts_on_raw_codes_and_escapes_formula_like_text(scored_program):
    acme, globex = scored_program
    # Raw: "(" (0x28) sorts before "=" (0x3D); escaped, "'=ACME" would sort first.
    acme.code, globex.code = "=ACME", "(GLOBEX"
    acme.save()
    globex.save()
    services.scoring_run_inline()
    rows = scorecard_export_rows(run=ScoringRun.objects.current())
    assert [row[0] for row in rows] == ["(GLOBEX"] * 3 + ["'=ACME"] * 3


def test_score_command_fails_with_the_runs_error_when_the_run_fails(scored_program, monkeypatch):
    from django.core.management.base import CommandError

    def refused_at_publication(*, run_id):
        # As when months close between the run's planning and its publication.
        services.scoring_run_fail(run_id=run_id, error="2025-02 closed meanwhile")
        return None

    monkeypatch.setattr(services, "scoring_run_publish", refused_at_publication)
    with pytest.raises(CommandError, match="failed: 2025-02 closed meanwhile"):
        call_command("score")
