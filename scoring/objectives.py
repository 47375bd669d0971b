"""Progress of an objective towards its target value, from its linked KPI's published actual.

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
  objective was set (its "set on" date, or the agreement's start, if later) to the deadline,
  *at risk* when it is behind it; *no data yet* while the linked KPI has no scored value.
  Objectives without a linked KPI (or whose KPI is no longer on the agreement) are *not
  measured*: whether they were met cannot be known, so they show their deadline only.

The published actual is passed in: these functions read nothing from the database.
"""

import datetime as dt
from dataclasses import dataclass

from partnerships.models import AgreementKPI, Objective

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


def elapsed_percent(*, start: dt.date, deadline: dt.date, today: dt.date) -> float:
    """Share of the time from `start` to `deadline` elapsed by `today`, in % (0–100)."""
    if deadline <= start:
        return 100.0
    share = (today - start).days / (deadline - start).days
    return 100.0 * min(max(share, 0.0), 1.0)


def progress_percent(*, current: float, start: float, target: float) -> float | None:
    """`100 × (current − start) / (target − start)` clamped to 0–100; None when target = start."""
    span = target - start
    if span == 0:
        return None
    return 100.0 * min(max((current - start) / span, 0.0), 1.0)


def objective_status(*, reached: bool, deadline: dt.date, today: dt.date,
                     current: float | None, percent: float | None,
                     expected_percent: float) -> str:
    """Done, overdue, no data yet, on track or at risk (see the module's rule)."""
    if reached:
        return DONE
    if today > deadline:
        return OVERDUE
    if current is None:
        return NO_DATA
    if percent is not None and percent >= expected_percent:
        return ON_TRACK
    return AT_RISK


def objective_progress(*, objective: Objective, agreement_kpi: AgreementKPI | None,
                       latest: tuple[str, float] | None, today: dt.date) -> ObjectiveProgress:
    """The progress of one objective: `agreement_kpi` is its linked KPI on the agreement (None
    when unlinked or no longer on it), `latest` the (month, actual) of that KPI's latest
    published monthly value, None without one."""
    if objective.kpi_id is None or agreement_kpi is None:
        return ObjectiveProgress(objective=objective, measured=False)
    higher_is_better = agreement_kpi.higher_is_better
    progress = ObjectiveProgress(objective=objective, measured=True,
                                 higher_is_better=higher_is_better)
    progress.start = 0.0 if higher_is_better else agreement_kpi.floor
    progress.time_start = objective_time_start(objective)
    progress.expected_percent = elapsed_percent(
        start=progress.time_start, deadline=objective.deadline, today=today)
    reached = False
    if latest is not None:
        progress.period, progress.current = latest
        target = objective.target_value
        progress.percent = progress_percent(current=progress.current, start=progress.start,
                                            target=target)
        reached = (progress.current >= target if higher_is_better
                   else progress.current <= target)
        if reached:
            progress.percent = 100.0
    progress.status = objective_status(
        reached=reached, deadline=objective.deadline, today=today, current=progress.current,
        percent=progress.percent, expected_percent=progress.expected_percent)
    return progress
