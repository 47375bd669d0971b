"""The rule of an objective's progress, on values passed in: no database."""

import datetime as dt

import pytest

from partnerships.models import Agreement, AgreementKPI, Objective
from scoring.objectives import (
    AT_RISK,
    DONE,
    NO_DATA,
    NOT_MEASURED,
    ON_TRACK,
    OVERDUE,
    elapsed_percent,
    objective_progress,
    objective_time_start,
    progress_percent,
)

START = dt.date(2025, 1, 1)
DEADLINE = dt.date(2025, 12, 31)
HIGHER = AgreementKPI(target=100, floor=0)  # higher is better
LOWER = AgreementKPI(target=2, floor=10)  # lower is better


def objective(*, target: float, set_on: dt.date = START, deadline: dt.date = DEADLINE,
              kpi_id: int | None = 1) -> Objective:
    return Objective(agreement=Agreement(start_date=START), kpi_id=kpi_id,
                     target_value=target, set_on=set_on, deadline=deadline)


@pytest.mark.parametrize(("today", "percent"), [
    (dt.date(2024, 12, 1), 0.0),  # before the start
    (START, 0.0),
    (dt.date(2025, 7, 2), 100.0 * 182 / 364),
    (DEADLINE, 100.0),
    (dt.date(2026, 3, 1), 100.0),
])
def test_elapsed_percent_is_the_share_of_the_time_to_the_deadline(today, percent):
    assert elapsed_percent(start=START, deadline=DEADLINE, today=today) == pytest.approx(percent)


def test_a_deadline_on_or_before_the_start_has_all_its_time_elapsed():
    assert elapsed_percent(start=START, deadline=START, today=START) == 100.0


@pytest.mark.parametrize(("current", "start", "target", "percent"), [
    (40, 0, 100, 40.0), (150, 0, 100, 100.0), (-5, 0, 100, 0.0),
    (6, 10, 2, 50.0),  # lower is better: from the floor 10 down to 2
    (5, 5, 5, None),  # no span to measure
])
def test_progress_percent_is_clamped_to_0_100(current, start, target, percent):
    assert progress_percent(current=current, start=start, target=target) == (
        pytest.approx(percent) if percent is not None else None)


def test_time_runs_from_the_day_set_or_the_agreements_start_if_later():
    assert objective_time_start(objective(target=1, set_on=dt.date(2025, 3, 1))) == dt.date(
        2025, 3, 1)
    assert objective_time_start(objective(target=1, set_on=dt.date(2024, 6, 1))) == START


@pytest.mark.parametrize(("kpi", "target", "latest", "today", "status", "percent"), [
    (HIGHER, 200, ("2025-03", 150.0), dt.date(2025, 4, 1), ON_TRACK, 75.0),
    (HIGHER, 200, ("2025-03", 40.0), dt.date(2025, 11, 1), AT_RISK, 20.0),
    (HIGHER, 100, ("2025-03", 150.0), dt.date(2026, 2, 1), DONE, 100.0),  # even late
    (HIGHER, 200, ("2025-03", 150.0), dt.date(2026, 2, 1), OVERDUE, 75.0),
    (HIGHER, 200, None, dt.date(2025, 4, 1), NO_DATA, None),
    (LOWER, 4, ("2025-03", 6.0), dt.date(2025, 4, 1), ON_TRACK, 66.66666666666667),
    (LOWER, 4, ("2025-03", 3.5), dt.date(2025, 4, 1), DONE, 100.0),
])
def test_objective_progress_and_status(kpi, target, latest, today, status, percent):
    progress = objective_progress(objective=objective(target=target), agreement_kpi=kpi,
                                  latest=latest, today=today)
    assert progress.measured and progress.status == status
    assert progress.percent == (pytest.approx(percent) if percent is not None else None)
    assert progress.start == (0.0 if kpi is HIGHER else 10.0)


@pytest.mark.parametrize(("kpi_id", "agreement_kpi"), [(None, None), (1, None)])
def test_without_a_kpi_on_the_agreement_progress_is_not_measured(kpi_id, agreement_kpi):
    progress = objective_progress(objective=objective(target=1, kpi_id=kpi_id),
                                  agreement_kpi=agreement_kpi, latest=("2025-03", 5.0),
                                  today=START)
    assert (progress.measured, progress.status, progress.percent) == (False, NOT_MEASURED, None)
