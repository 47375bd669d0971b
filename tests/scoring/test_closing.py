"""Closing and reopening months (DOMAIN.md § Closing months): order, refusals, frozen rows,
the cleanup, `of_run`, and the commands."""

import datetime as dt
import io

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command

from partnerships.models import (
    AgreementKPI,
    AuditEvent,
    MonthEvent,
    ProgramMonth,
    Role,
)
from scoring import services
from scoring.closing import (
    ClosingRefused,
    auto_close_refusal,
    current_month,
    month_reopen,
    months_auto_close,
    months_close,
)
from scoring.exports import scorecard_export_rows
from scoring.models import KPIScore, Scorecard, ScoringRun
from tests.conftest import make_user, write_observations

pytestmark = pytest.mark.django_db


@pytest.fixture
def host_admin(django_user_model):
    return make_user(django_user_model, "admin", Role.HOST_ADMIN)


@pytest.fixture
def three_months(acme_agreement, globex_agreement, kpis):
    """Revenue and defect rate of two agreements in 2025-01 to 2025-03, scored once."""
    rev, defect = kpis["revenue"], kpis["defect_rate"]
    rows = []
    for month, (acme_rev, globex_rev) in enumerate([(50, 90), (80, 100), (120, 130)], start=1):
        rows += [
            (acme_agreement, rev, "host", f"2025-{month:02d}-10", acme_rev),
            (acme_agreement, defect, "partner", f"2025-{month:02d}-10", 5),
            (globex_agreement, rev, "host", f"2025-{month:02d}-15", globex_rev),
            (globex_agreement, defect, "partner", f"2025-{month:02d}-15", 2),
        ]
    write_observations(rows)
    services.scoring_run_inline()
    return acme_agreement, globex_agreement


def frozen_periods(model=Scorecard) -> set[str]:
    return set(model.objects.filter(frozen=True).values_list("period", flat=True))


def test_closing_a_month_closes_every_open_month_up_to_it_in_order(three_months, host_manager):
    assert months_close(through="2025-02", user=host_manager) == ["2025-01", "2025-02"]
    assert list(ProgramMonth.objects.closed().values_list("month", flat=True)) == [
        "2025-01", "2025-02"]
    assert ProgramMonth.objects.get(month="2025-02").closed_by == host_manager
    events = MonthEvent.objects.order_by("id").values_list("month", "action", "username")
    assert list(events) == [("2025-01", "closed", "manager"), ("2025-02", "closed", "manager")]
    assert AuditEvent.objects.filter(action="month_closed", user=host_manager).count() == 1
    assert months_close(through="2025-03", user=host_manager) == ["2025-03"]
    assert months_close(through="2025-03", user=host_manager) == []  # closed already


def test_closing_freezes_the_published_runs_rows_of_the_closed_months(three_months):
    run = ScoringRun.objects.current()
    months_close(through="2025-02", user=None)
    assert frozen_periods() == {"2025-01", "2025-02"}
    assert frozen_periods(KPIScore) == {"2025-01", "2025-02"}
    assert not Scorecard.objects.filter(frozen=True).exclude(run=run).exists()
    assert not Scorecard.objects.filter(run=run, period="2025-03", frozen=True).exists()


def test_a_month_that_has_not_ended_cannot_close(three_months, host_manager):
    with pytest.raises(ClosingRefused, match="has not ended"):
        months_close(through=current_month(), user=host_manager)
    assert not ProgramMonth.objects.exists()


def test_only_host_managers_and_admins_close(three_months, acme_viewer):
    with pytest.raises(PermissionDenied):
        months_close(through="2025-01", user=acme_viewer)
    assert not ProgramMonth.objects.exists()


def test_closing_is_refused_until_the_scores_are_current(three_months, host_manager, kpis):
    acme, _ = three_months
    assert services.scoring_inputs_fingerprint() == ScoringRun.objects.current().fingerprint
    write_observations([(acme, kpis["revenue"], "host", "2025-03-20", 10)])
    assert services.scoring_inputs_fingerprint() != ScoringRun.objects.current().fingerprint
    with pytest.raises(ClosingRefused, match="run scoring first"):
        months_close(through="2025-02", user=host_manager)
    assert not ProgramMonth.objects.exists() and not frozen_periods()
    services.scoring_run_inline()
    assert months_close(through="2025-02", user=host_manager) == ["2025-01", "2025-02"]


def test_closing_is_refused_after_a_change_of_terms(three_months, host_manager):
    acme, _ = three_months
    AgreementKPI.objects.filter(agreement=acme, kpi__code="revenue").update(target=200)
    with pytest.raises(ClosingRefused, match="run scoring first"):
        months_close(through="2025-01", user=host_manager)


def test_closing_without_a_published_run_is_refused(acme_agreement, host_manager):
    with pytest.raises(ClosingRefused, match="run scoring first"):
        months_close(through="2025-01", user=host_manager)


def test_a_host_admin_reopens_a_month_and_every_later_closed_month_with_a_reason(
        three_months, host_manager, host_admin):
    months_close(through="2025-03", user=host_manager)
    with pytest.raises(PermissionDenied):
        month_reopen(month="2025-02", reason="late revenue", user=host_manager)
    with pytest.raises(ClosingRefused, match="reason"):
        month_reopen(month="2025-02", reason="  ", user=host_admin)
    assert ProgramMonth.objects.last_closed() == "2025-03"
    assert month_reopen(month="2025-02", reason="late revenue", user=host_admin) == [
        "2025-02", "2025-03"]
    assert ProgramMonth.objects.last_closed() == "2025-01"
    reopened = MonthEvent.objects.filter(action="reopened").values_list("month", "reason",
                                                                       "username")
    assert sorted(reopened) == [("2025-02", "late revenue", "admin"),
                                ("2025-03", "late revenue", "admin")]
    assert AuditEvent.objects.filter(action="month_reopened", user=host_admin).count() == 1
    # Still frozen and shown until a run computes them again.
    assert frozen_periods() == {"2025-01", "2025-02", "2025-03"}
    with pytest.raises(ClosingRefused, match="is not closed"):
        month_reopen(month="2025-02", reason="again", user=host_admin)


def test_closing_again_freezes_the_new_run_and_unmarks_the_old_rows(three_months, host_admin):
    acme, _ = three_months
    first = ScoringRun.objects.current()
    months_close(through="2025-02", user=None)
    month_reopen(month="2025-02", reason="late revenue", user=host_admin)
    AgreementKPI.objects.filter(agreement=acme, kpi__code="revenue").update(target=200)
    services.scoring_run_inline()
    second = ScoringRun.objects.current()
    assert months_close(through="2025-02", user=None) == ["2025-02"]
    february = Scorecard.objects.filter(period="2025-02", frozen=True)
    assert set(february.values_list("run_id", flat=True)) == {second.pk}
    assert set(Scorecard.objects.filter(period="2025-01", frozen=True)
               .values_list("run_id", flat=True)) == {first.pk}


def test_the_cleanup_of_old_runs_keeps_frozen_rows(three_months):
    first = ScoringRun.objects.current()
    months_close(through="2025-02", user=None)
    frozen = Scorecard.objects.filter(run=first, frozen=True).count()
    frozen_kpis = KPIScore.objects.filter(run=first, frozen=True).count()
    services.scoring_run_inline()  # removes the results of the runs before it
    assert Scorecard.objects.filter(run=first).count() == frozen == 4
    assert KPIScore.objects.filter(run=first).count() == frozen_kpis == 8
    assert ScoringRun.objects.filter(pk=first.pk).exists()


def test_of_run_shows_the_frozen_rows_of_the_months_before_open_from(three_months):
    first = ScoringRun.objects.current()
    before = scorecard_export_rows(run=first)
    months_close(through="2025-02", user=None)
    services.scoring_run_inline()
    second = ScoringRun.objects.current()
    # A run that computed from 2025-03 on: its rows before are not its own.
    Scorecard.objects.filter(run=second, period__lt="2025-03").delete()
    KPIScore.objects.filter(run=second, period__lt="2025-03").delete()
    ScoringRun.objects.filter(pk=second.pk).update(open_from="2025-03")
    second.refresh_from_db()
    shown = Scorecard.objects.of_run(second)
    assert sorted(shown.values_list("period", "run_id")) == [
        ("2025-01", first.pk), ("2025-01", first.pk), ("2025-02", first.pk),
        ("2025-02", first.pk), ("2025-03", second.pk), ("2025-03", second.pk)]
    assert set(KPIScore.objects.of_run(second).values_list("period", flat=True)) == {
        "2025-01", "2025-02", "2025-03"}
    assert scorecard_export_rows(run=second) == before


def test_of_run_is_the_runs_own_rows_without_open_from(three_months):
    run = ScoringRun.objects.current()
    months_close(through="2025-02", user=None)
    assert set(Scorecard.objects.of_run(run)) == set(Scorecard.objects.filter(run=run))


def test_a_later_change_of_terms_and_a_new_run_leave_a_closed_month_as_exported(three_months):
    acme, _ = three_months
    months_close(through="2025-02", user=None)
    before = scorecard_export_rows(run=ScoringRun.objects.current(), period="2025-02")
    AgreementKPI.objects.filter(agreement=acme, kpi__code="revenue").update(target=200)
    services.scoring_run_inline()
    assert scorecard_export_rows(run=ScoringRun.objects.current(), period="2025-02") == before


# ---- The commands -----------------------------------------------------------------------


def run_command(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_close_months_command_closes_and_says_what(three_months, host_manager):
    assert run_command("close_months", "--through", "2025-02") == (
        "Closed 2 months, 2025-01 to 2025-02.\n")
    assert MonthEvent.objects.filter(username="system").count() == 2
    assert run_command("close_months", "--through", "2025-03", "--user", "manager") == (
        "Closed 2025-03.\n")
    assert run_command("close_months", "--through", "2025-03") == (
        "Nothing to close: 2025-03 is closed already.\n")


def test_close_months_command_exits_non_zero_with_the_reason(three_months, acme_viewer, kpis):
    acme, _ = three_months
    with pytest.raises(CommandError, match="has not ended"):
        run_command("close_months", "--through", current_month())
    with pytest.raises(CommandError, match="is not a host manager or admin"):
        run_command("close_months", "--through", "2025-01", "--user", "acme-viewer")
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        run_command("close_months", "--through", "2025-01", "--user", "nobody")
    with pytest.raises(CommandError, match="YYYY-MM"):
        run_command("close_months", "--through", "2025-1")
    write_observations([(acme, kpis["revenue"], "host", "2025-03-20", 10)])
    with pytest.raises(CommandError, match="run scoring first"):
        run_command("close_months", "--through", "2025-01")
    assert not ProgramMonth.objects.exists()


def test_reopen_month_command(three_months, host_manager, host_admin):
    run_command("close_months", "--through", "2025-03")
    with pytest.raises(CommandError, match="is not a host admin"):
        run_command("reopen_month", "2025-02", "--reason", "late data", "--user", "manager")
    with pytest.raises(CommandError, match="reason is required"):
        run_command("reopen_month", "2025-02", "--reason", "")
    assert run_command("reopen_month", "2025-02", "--reason", "late data", "--user",
                       "admin") == "Reopened 2 months, 2025-02 to 2025-03.\n"
    with pytest.raises(CommandError, match="2025-02 is not closed"):
        run_command("reopen_month", "2025-02", "--reason", "late data")
    assert run_command("reopen_month", "2025-01", "--reason", "late data") == (
        "Reopened 2025-01.\n")


# ---- Closing on a schedule ----------------------------------------------------------------


def test_automatic_closing_is_off_by_default(three_months, settings):
    settings.MONTH_AUTO_CLOSE_DAYS = 0
    assert months_auto_close(today=dt.date(2025, 6, 1)) == "automatic closing is off"
    assert not ProgramMonth.objects.exists()


def test_months_close_automatically_the_set_number_of_days_after_they_end(three_months,
                                                                         settings):
    settings.MONTH_AUTO_CLOSE_DAYS = 5
    # 2025-03 ended on April 1st: closed from April 6th on.
    assert months_auto_close(today=dt.date(2025, 4, 5)) == "closed 2025-01, 2025-02"
    assert months_auto_close(today=dt.date(2025, 4, 6)) == "closed 2025-03"
    assert months_auto_close(today=dt.date(2025, 4, 7)) == "nothing to close (closed up to 2025-03)"
    assert MonthEvent.objects.filter(action="closed", username="system").count() == 3


def test_a_refused_automatic_close_says_why_and_is_tried_again_the_next_day(three_months,
                                                                            settings, kpis):
    acme, _ = three_months
    settings.MONTH_AUTO_CLOSE_DAYS = 1
    write_observations([(acme, kpis["revenue"], "host", "2025-03-20", 10)])
    assert "run scoring first" in months_auto_close(today=dt.date(2025, 4, 2))
    assert not ProgramMonth.objects.exists()
    refusal = auto_close_refusal()
    assert refusal["through"] == "2025-03" and "run scoring first" in refusal["refused"]
    services.scoring_run_inline()
    assert months_auto_close(today=dt.date(2025, 4, 3)) == "closed 2025-01, 2025-02, 2025-03"
    assert auto_close_refusal() is None


def test_a_reopened_month_is_not_closed_again_automatically(three_months, settings, host_admin):
    settings.MONTH_AUTO_CLOSE_DAYS = 1
    months_close(through="2025-03", user=None)
    month_reopen(month="2025-02", reason="late data", user=host_admin)
    assert months_auto_close(today=dt.date(2025, 5, 2)) == "nothing to close (closed up to 2025-01)"
    assert ProgramMonth.objects.last_closed() == "2025-01"
