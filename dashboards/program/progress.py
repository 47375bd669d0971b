"""Progress of objectives, measured from the published scores of their linked KPI.

The rule (shown on the objectives page and the agreement dashboard too):

- **Current value**: the linked KPI's actual value (its source side, aggregated as the KPI
  says) in the latest month of the published scoring run that has one for this agreement.
  Targets of agreement KPIs are monthly, so objectives are read against a month's value too;
  a `sum` KPI is not summed over several months, because an objective has no start date to
  sum from and a monthly rate is what the agreement's targets speak of.
- **Direction**: the agreement KPI's (target above floor: higher is better, else lower).
- **Progress**: how far the current value has come from a start towards the objective's
  target value, in %: `100 × (current − start) / (target value − start)`, clamped to 0–100.
  The start is 0 for a higher-is-better KPI and the agreement KPI's floor (the worst
  acceptable value) for a lower-is-better one.
- **Status**: *done* once the current value reaches the target value (≥ for higher-is-better,
  ≤ for lower-is-better), whatever the date; otherwise *overdue* after the deadline; otherwise
  *on track* when progress is at least the share of the time elapsed from the day the
  objective was set (its "set on" date, which a program file and the form carry, or the
  agreement's start, if later) to the deadline, *at risk* when it is behind it; *no data
  yet* while the linked KPI has no scored value. Objectives without a linked KPI (or whose
  KPI is no longer on the agreement) are *not measured*: whether they were met cannot be
  known, so they show their deadline only.

Three queries whatever the number of objectives: the run, the agreement KPIs, the scores (the
run's scores are read once per run, then from the cache).
"""

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass

from django.utils import timezone

from partnerships.models import AgreementKPI, Objective
from scoring.models import KPIScore, ScoringRun

from ..cache import run_cached_each

DONE, ON_TRACK, AT_RISK, OVERDUE = "done", "on_track", "at_risk", "overdue"
NO_DATA, NOT_MEASURED = "no_data", "not_measured"
STATUS_LABELS = {
    DONE: "done", ON_TRACK: "on track", AT_RISK: "at risk", OVERDUE: "overdue",
    NO_DATA: "no data yet", NOT_MEASURED: "not measured",
}


@dataclass
class ObjectiveProgress:
    objective: Objective
    measured: bool  # a linked KPI that is on the agreement
    higher_is_better: bool | None = None
    current: float | None = None
    period: str = ""  # the month the current value is of
    start: float | None = None
    percent: float | None = None  # 0–100
    expected_percent: float | None = None  # share of the time elapsed, 0–100
    time_start: dt.date | None = None  # the day that time runs from
    status: str = NOT_MEASURED

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def percent_display(self) -> str:
        return "" if self.percent is None else f"{self.percent:.0f}"

    @property
    def direction_label(self) -> str:
        if self.higher_is_better is None:
            return ""
        return "higher is better" if self.higher_is_better else "lower is better"


def objective_time_start(objective: Objective) -> dt.date:
    """The day the time to an objective's deadline starts: the day it was set, or the
    agreement's start if that is later (nothing can be achieved before it)."""
    return max(objective.agreement.start_date, objective.set_on)


def _elapsed_percent(*, start: dt.date, deadline: dt.date, today: dt.date) -> float:
    if deadline <= start:
        return 100.0
    share = (today - start).days / (deadline - start).days
    return 100.0 * min(max(share, 0.0), 1.0)


def _latest_actuals_of_each(*, run: ScoringRun, ids: list[int]) -> dict[int, dict]:
    """For each agreement: the latest month with an actual value, and the value, of each of
    its KPIs ({kpi id: (month, actual)}). One query."""
    result: dict[int, dict] = {pk: {} for pk in ids}
    # Oldest month first: the last one written for a KPI is its latest month.
    for agreement_id, kpi_id, period, actual in (
            KPIScore.objects.filter(run=run, agreement_id__in=ids, actual__isnull=False)
            .order_by("period").values_list("agreement_id", "kpi_id", "period", "actual")):
        # Runs before non-finite actuals were refused may hold ±inf: that month has no value.
        if math.isfinite(actual):
            result[agreement_id][kpi_id] = (period, actual)
    return result


def objective_actuals_kept(*, run: ScoringRun, ids: list[int]) -> dict[int, dict]:
    """`_latest_actuals_of_each`, read once per run, then from the cache."""
    return run_cached_each(run=run, name="objective-actuals", ids=ids,
                           compute=lambda missing: _latest_actuals_of_each(run=run,
                                                                           ids=missing))


def objectives_progress(*, objectives: Iterable[Objective], run: ScoringRun | None = None,
                        today: dt.date | None = None) -> list[ObjectiveProgress]:
    """Progress of each objective towards its target value from its linked KPI's latest
    scored monthly actual (see the module's docstring for the rule); in the given order.

    `run` defaults to the published run; objectives need `agreement` loaded or loadable
    (select_related("agreement", "kpi") keeps it to three queries)."""
    objectives = list(objectives)
    today = today or timezone.localdate()
    if run is None:
        run = ScoringRun.objects.current()
    linked = [item for item in objectives if item.kpi_id is not None]
    agreement_ids = {item.agreement_id for item in linked}
    kpi_ids = {item.kpi_id for item in linked}
    agreement_kpis: dict[tuple[int, int], AgreementKPI] = {}
    latest: dict[tuple[int, int], tuple[str, float]] = {}
    if linked:
        agreement_kpis = {
            (row.agreement_id, row.kpi_id): row
            for row in AgreementKPI.objects.filter(agreement_id__in=agreement_ids,
                                                   kpi_id__in=kpi_ids)
        }
    if linked and run is not None:
        # The run's scores never change: read once per run.
        for agreement_id, actuals in objective_actuals_kept(
                run=run, ids=sorted(agreement_ids)).items():
            latest.update({(agreement_id, kpi_id): found for kpi_id, found in actuals.items()})

    results = []
    for objective in objectives:
        key = (objective.agreement_id, objective.kpi_id)
        row = agreement_kpis.get(key)
        if objective.kpi_id is None or row is None:
            results.append(ObjectiveProgress(objective=objective, measured=False))
            continue
        progress = ObjectiveProgress(objective=objective, measured=True,
                                     higher_is_better=row.higher_is_better)
        progress.start = 0.0 if row.higher_is_better else row.floor
        progress.time_start = objective_time_start(objective)
        progress.expected_percent = _elapsed_percent(
            start=progress.time_start, deadline=objective.deadline, today=today)
        found = latest.get(key)
        if found is not None:
            progress.period, progress.current = found
            target = objective.target_value
            span = target - progress.start
            if span != 0:
                share = (progress.current - progress.start) / span
                progress.percent = 100.0 * min(max(share, 0.0), 1.0)
            reached = (progress.current >= target if row.higher_is_better
                       else progress.current <= target)
            if reached:
                progress.percent = 100.0
        else:
            reached = False
        if reached:
            progress.status = DONE
        elif today > objective.deadline:
            progress.status = OVERDUE
        elif progress.current is None:
            progress.status = NO_DATA
        elif progress.percent is not None and progress.percent >= progress.expected_percent:
            progress.status = ON_TRACK
        else:
            progress.status = AT_RISK
        results.append(progress)
    return results
