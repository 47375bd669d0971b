import datetime as dt
from io import StringIO

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone

from partnerships import demo
from partnerships.demo import (
    KPI_LIBRARY,
    LOWER_IS_BETTER_KPIS,
    DemoDataExists,
    demo_generate,
    demo_window,
    observation_dates,
)
from partnerships.models import (
    Agreement,
    AgreementKPI,
    AgreementType,
    Category,
    ImportBatch,
    KPIDefinition,
    Membership,
    MetricObservation,
    Partner,
    Role,
    Side,
    Stage,
)

pytestmark = pytest.mark.django_db

SMALL = {
    "partners": 3, "agreements": 8, "months": 6, "kpis_per_agreement": 5,
    "observations_per_month": 2, "seed": 7,
}


@pytest.fixture
def small_demo():
    return demo_generate(**SMALL)


def observation_snapshot() -> list[tuple]:
    return list(
        MetricObservation.objects.order_by("agreement__code", "kpi__code", "side", "date")
        .values_list("agreement__code", "kpi__code", "side", "date", "value")
    )


def source_observations() -> pd.DataFrame:
    rows = MetricObservation.objects.filter(side=F("kpi__source")).values_list(
        "agreement_id", "kpi_id", "date", "value"
    )
    return pd.DataFrame(list(rows), columns=["agreement_id", "kpi_id", "date", "value"])


def test_demo_has_the_requested_numbers_of_partners_agreements_and_kpis(small_demo):
    assert Partner.objects.count() == small_demo.partners == 3
    assert Agreement.objects.count() == small_demo.agreements == 8
    assert AgreementKPI.objects.count() == small_demo.agreement_kpis == 8 * 5
    assert all(a.agreement_kpis.count() == 5 for a in Agreement.objects.all())
    assert KPIDefinition.objects.count() == len(KPI_LIBRARY) >= 12
    assert set(KPIDefinition.objects.values_list("category", flat=True)) == set(Category.values)


def test_every_agreement_type_and_stage_occurs(small_demo):
    assert set(Agreement.objects.values_list("type", flat=True)) == set(AgreementType.values)
    assert set(Agreement.objects.values_list("stage", flat=True)) == set(Stage.values)


def test_window_ends_with_the_last_complete_month():
    first, last = demo_window(months=6, today=dt.date(2026, 3, 15))
    assert (first, last) == (dt.date(2025, 9, 1), dt.date(2026, 2, 28))
    assert observation_dates(month=dt.date(2026, 2, 1), per_month=4) == [
        dt.date(2026, 2, 7), dt.date(2026, 2, 14), dt.date(2026, 2, 21), dt.date(2026, 2, 28),
    ]


def test_observations_cover_exactly_the_requested_months(small_demo):
    months = {d.replace(day=1) for d in MetricObservation.objects.values_list("date", flat=True)}
    first, last = demo_window(months=6, today=timezone.localdate())
    assert min(months) == first == small_demo.first_month
    assert max(months) == last.replace(day=1) == small_demo.last_month
    assert len(months) == 6


def test_each_reported_month_is_complete_and_some_months_are_gaps(small_demo):
    """Source side: a month of an agreement KPI has every scheduled day in its term, or none."""
    observed = source_observations()
    observed["month"] = observed["date"].map(lambda d: d.replace(day=1))
    counts = observed.groupby(["agreement_id", "kpi_id", "month"]).size().to_dict()
    _, last = demo_window(months=6, today=timezone.localdate())
    months = sorted(set(observed["month"]))
    gaps = scheduled_total = missing = 0
    for agreement_kpi in AgreementKPI.objects.select_related("agreement"):
        agreement = agreement_kpi.agreement
        term_end = min(agreement.end_date or last, last)
        for month in months:
            scheduled = sum(
                agreement.start_date <= day <= term_end
                for day in observation_dates(month=month, per_month=2)
            )
            found = counts.get((agreement.id, agreement_kpi.kpi_id, month), 0)
            assert found in (0, scheduled)
            if scheduled and not found:
                gaps += 1
                missing += scheduled
            scheduled_total += scheduled
    assert gaps > 0
    assert len(observed) == scheduled_total - missing
    assert scheduled_total < 8 * 5 * 6 * 2  # prospects and late starters have fewer days


def test_summary_and_batches_account_for_every_observation(small_demo):
    assert MetricObservation.objects.count() == small_demo.observations
    batches = ImportBatch.objects.all()
    # One batch per month and side (6 months, both sides), dated after its month ends.
    assert len(batches) == small_demo.batches == 12
    assert {b.side for b in batches} == {Side.HOST, Side.PARTNER}
    for batch in batches:
        assert (batch.source, batch.status) == ("demo", "succeeded")
        assert batch.rows_total == batch.inserted == batch.observations.count()
        months = {day.strftime("%Y-%m") for day in
                  batch.observations.values_list("date", flat=True)}
        assert months == {batch.file_name.split()[1]}
        assert batch.created_at.date() > max(batch.observations.values_list("date", flat=True))
        assert set(batch.observations.values_list("side", flat=True)) == {batch.side}


def test_no_observation_in_the_future_or_outside_its_agreement(small_demo):
    observations = MetricObservation.objects
    assert not observations.filter(date__gte=timezone.localdate().replace(day=1)).exists()
    assert not observations.filter(date__lt=F("agreement__start_date")).exists()
    assert not observations.filter(date__gt=F("agreement__end_date")).exists()
    assert not observations.filter(agreement__stage=Stage.PROSPECT).exists()


def test_other_side_reports_some_kpis_on_the_source_sides_days(small_demo):
    other = MetricObservation.objects.exclude(side=F("kpi__source"))
    assert other.exists()
    source = set(
        MetricObservation.objects.filter(side=F("kpi__source"))
        .values_list("agreement_id", "kpi_id", "date")
    )
    assert set(other.values_list("agreement_id", "kpi_id", "date")) <= source


def test_sides_mostly_agree_and_sometimes_differ_by_more_than_five_percent():
    demo_generate(partners=4, agreements=20, months=12, kpis_per_agreement=6,
                  observations_per_month=2, seed=3)
    frame = pd.DataFrame(list(MetricObservation.objects.values(
        "agreement_id", "kpi_id", "date", "value", is_source=Q(side=F("kpi__source"))
    )))
    pairs = frame[frame.is_source].merge(
        frame[~frame.is_source], on=["agreement_id", "kpi_id", "date"], suffixes=("", "_other")
    )
    off = (pairs.value_other - pairs.value).abs() > 0.05 * pairs.value.abs()
    assert len(pairs) > 100
    assert 0 < off.mean() < 0.2


def test_lower_is_better_kpis_have_their_target_below_the_floor():
    demo_generate(partners=2, agreements=3, months=2, kpis_per_agreement=len(KPI_LIBRARY),
                  observations_per_month=1, seed=1)
    assert set(LOWER_IS_BETTER_KPIS) == {"time_to_market", "defect_rate", "support_response_time"}
    for agreement_kpi in AgreementKPI.objects.select_related("kpi"):
        if agreement_kpi.kpi.code in LOWER_IS_BETTER_KPIS:
            assert agreement_kpi.target < agreement_kpi.floor
        else:
            assert agreement_kpi.target > agreement_kpi.floor


def test_some_agreements_run_well_below_target_and_some_on_target(small_demo):
    """Scores in the scoring rules' sense: three poor months in a row, and healthy agreements."""
    observed = source_observations()
    observed["month"] = observed["date"].map(lambda d: d.replace(day=1))
    definitions = AgreementKPI.objects.values("agreement_id", "kpi_id", "target", "floor",
                                              aggregation=F("kpi__aggregation"))
    observed = observed.sort_values("date").merge(pd.DataFrame(list(definitions)))
    monthly = observed.groupby(["agreement_id", "kpi_id", "month"]).agg(
        value_sum=("value", "sum"), value_mean=("value", "mean"), value_last=("value", "last"),
        aggregation=("aggregation", "first"), target=("target", "first"),
        floor=("floor", "first"),
    )
    actual = monthly.apply(lambda row: row[f"value_{row.aggregation}"], axis=1)
    score = ((actual - monthly.floor) / (monthly.target - monthly.floor)).clip(0, 1.2) * 100
    overall = score.groupby(["agreement_id", "month"]).mean().unstack()
    poor = (overall < 50).astype(int)
    three_in_a_row = (poor + poor.shift(-1, axis=1) + poor.shift(-2, axis=1) == 3).any(axis=1)
    assert three_in_a_row.any()
    assert (overall.mean(axis=1) > 75).any()


def test_same_seed_gives_identical_data_and_another_seed_different_data():
    demo_generate(**SMALL)
    first = observation_snapshot()
    codes = list(Agreement.objects.values_list("code", "stage", "start_date", "end_date"))
    demo_generate(**SMALL, reset=True)
    assert observation_snapshot() == first
    assert list(Agreement.objects.values_list("code", "stage", "start_date", "end_date")) == codes
    demo_generate(**{**SMALL, "seed": 8}, reset=True)
    assert observation_snapshot() != first


def test_writes_in_chunks_with_one_batch_per_month_and_side_and_reports_progress(monkeypatch):
    monkeypatch.setattr(demo, "ROWS_PER_CHUNK", 5 * 6 * 2 * 3)  # three agreements a chunk
    calls = []
    summary = demo_generate(**SMALL, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(3, 8), (6, 8), (8, 8)]
    assert summary.batches == ImportBatch.objects.count() <= 3 * 6 * 2
    assert MetricObservation.objects.count() == summary.observations


def test_demo_users_can_log_in_with_their_roles(client, small_demo):
    first_partner = Partner.objects.get(name=small_demo.viewer_partner)
    roles = {m.user.username: m for m in Membership.objects.select_related("user", "partner")}
    assert roles["manager"].role == Role.HOST_MANAGER and roles["manager"].user.is_staff
    assert roles["admin"].role == Role.HOST_ADMIN and roles["admin"].user.is_superuser
    assert roles["viewer"].role == Role.PARTNER_VIEWER
    assert roles["viewer"].partner == first_partner
    assert first_partner.agreements.filter(stage=Stage.ACTIVE).exists()
    owners = list(Agreement.objects.order_by("pk").values_list("owner__username", flat=True))
    assert owners[0] == "manager" and set(owners) == {"manager", "sam.okafor"}
    for username in ("manager", "admin", "viewer"):
        # django-axes throttles by request (user name + address): authenticate needs one.
        assert client.login(request=HttpRequest(), username=username,
                            password=demo.DEMO_PASSWORD)
        client.logout()


def test_service_refuses_to_write_over_existing_data(acme):
    with pytest.raises(DemoDataExists):
        demo_generate(**SMALL)
    assert list(Partner.objects.all()) == [acme]


def test_command_refuses_existing_data_without_reset_and_replaces_it_with_reset(acme):
    with pytest.raises(CommandError, match="--reset"):
        call_command("generate_demo", "--agreements", "4", "--months", "3", stdout=StringIO())
    assert list(Partner.objects.all()) == [acme]

    out = StringIO()
    arguments = ["--partners", "2", "--agreements", "4", "--months", "3",
                 "--kpis-per-agreement", "4", "--observations-per-month", "1"]
    call_command("generate_demo", *arguments, "--reset", "--password", "s3cret", stdout=out)
    assert not Partner.objects.filter(pk=acme.pk).exists()
    assert Partner.objects.count() == 2
    observations = MetricObservation.objects.count()
    call_command("generate_demo", *arguments, "--reset", "--password", "s3cret", stdout=out)
    assert (Partner.objects.count(), Agreement.objects.count()) == (2, 4)
    assert MetricObservation.objects.count() == observations
    printed = out.getvalue()
    assert "http://127.0.0.1:8000/" in printed
    assert "demo_logins" in printed and "'s3cret'" in printed
    # The logins are listed once, by demo_logins, not in a second format here.
    assert "manager / " not in printed
    assert f"{observations:,} observations" in printed

    quiet = StringIO()
    call_command("generate_demo", *arguments, "--reset", "--no-next-steps", stdout=quiet)
    assert "Generated" in quiet.getvalue()
    assert "manage.py score" not in quiet.getvalue()  # `make demo` scores and serves itself


def test_command_rejects_impossible_sizes():
    with pytest.raises(CommandError, match="KPIs per agreement"):
        call_command("generate_demo", "--kpis-per-agreement", str(len(KPI_LIBRARY) + 1))
    with pytest.raises(CommandError):
        call_command("generate_demo", "--observations-per-month", "29")
    assert not Partner.objects.exists()


def test_if_empty_keeps_existing_data_and_logins_are_printed(db, capsys):
    from django.core.management import call_command

    from partnerships.models import Partner

    call_command("generate_demo", "--partners", "2", "--agreements", "3", "--months", "2",
                 "--kpis-per-agreement", "2", "--observations-per-month", "1")
    partners = list(Partner.objects.values_list("pk", flat=True))
    call_command("generate_demo", "--if-empty", "--partners", "5")
    assert list(Partner.objects.values_list("pk", flat=True)) == partners
    call_command("demo_logins")
    out = capsys.readouterr().out
    assert "already present" in out
    assert "viewer" in out and "only" in out and "manager" in out


def test_the_history_leads_each_agreement_to_its_stage_with_reviews_and_actions(small_demo):
    from partnerships.models import (
        STAGE_TRANSITIONS,
        ActionItem,
        KPITemplateItem,
        PartnerAssessment,
        ProgramChange,
        Review,
        StageTransition,
    )

    today = timezone.localdate()
    for agreement in Agreement.objects.all():
        moves = list(StageTransition.objects.filter(agreement=agreement).order_by("at", "id"))
        stages = ["prospect", *(move.to_stage for move in moves)]
        assert stages[-1] == agreement.stage
        for move, before in zip(moves, stages, strict=False):
            assert move.from_stage == before and move.to_stage in STAGE_TRANSITIONS[before]
            assert move.reason and agreement.start_date <= move.at.date() <= today
        held = Review.objects.filter(agreement=agreement)
        if agreement.stage == "prospect":
            assert not held.exists()
        assert all(review.held_on <= today for review in held)
    assert ProgramChange.objects.filter(kind="stage").count() == StageTransition.objects.count()
    assert ActionItem.objects.filter(status="done").exists()
    assert {"host", "partner"} == set(ActionItem.objects.values_list("owner_side", flat=True))
    assert PartnerAssessment.objects.exists() and KPITemplateItem.objects.exists()
