"""Why an agreement needs attention: the rules of the worklist, over facts read elsewhere.

An agreement needs attention when at least one of these holds (each a *reason*):

- **at risk** / **incomplete**: its scorecard of the month the pages open on carries the flag;
- **review overdue**: by the review rules of `partnerships.reviews` (only held reviews count);
- **actions overdue**: an action of either side, open or in progress, due before today;
- **stale data**: one of its KPIs has no observation of its source side for a month that ended
  more than `stale_after_days` days ago (the first month after the KPI's latest observation,
  or the agreement's first month when it has none); prospects and ended agreements never;
- **open disputes**: a dispute of one of its values is open;
- **tier changed**: its tier in the month the pages open on differs from the month before's
  (a first tier is no change);
- **objectives at risk or overdue**: by the rule of `scoring.objectives`;
- **renewal due**: its end date falls within the next RENEWAL_DAYS days (or is today).

The facts are passed in: these functions read nothing from the database. The worklist and
the home page's counts judge by them; the e-mail digest shares the tier rule (`tier_changed`)
and reads its other facts itself.
"""

import datetime as dt
from dataclasses import dataclass, field

from partnerships.models import Stage
from partnerships.months import month_after
from partnerships.reviews import UNREVIEWED_STAGES

AT_RISK, INCOMPLETE = "at_risk", "incomplete"
REVIEW_OVERDUE, ACTIONS_OVERDUE = "review_overdue", "actions_overdue"
STALE_DATA, OPEN_DISPUTES = "stale_data", "open_disputes"
TIER_CHANGED, OBJECTIVES, RENEWAL_DUE = "tier_changed", "objectives", "renewal_due"
# In the order the worklist shows them: the score first, then what people owe, then dates.
REASONS = (AT_RISK, INCOMPLETE, REVIEW_OVERDUE, ACTIONS_OVERDUE, STALE_DATA, OPEN_DISPUTES,
           TIER_CHANGED, OBJECTIVES, RENEWAL_DUE)
REASON_LABELS = {
    AT_RISK: "At risk", INCOMPLETE: "Incomplete", REVIEW_OVERDUE: "Review overdue",
    ACTIONS_OVERDUE: "Actions overdue", STALE_DATA: "Stale data",
    OPEN_DISPUTES: "Open disputes", TIER_CHANGED: "Tier changed",
    OBJECTIVES: "Objectives at risk or overdue", RENEWAL_DUE: "Renewal due",
}
# An agreement ending within this many days is due for its renewal decision.
RENEWAL_DAYS = 90


def month_last_day(month: str) -> dt.date:
    """The last day of a 'YYYY-MM' month."""
    year, number = (int(part) for part in month_after(month).split("-"))
    return dt.date(year, number, 1) - dt.timedelta(days=1)


def kpi_stale_month(*, last_observed: dt.date | None, start: dt.date, end: dt.date | None,
                    today: dt.date, stale_after_days: int) -> str:
    """The first month a KPI has no observation for, when that month ended more than
    `stale_after_days` days before `today` (and before the agreement's end); '' otherwise."""
    if last_observed is not None and (today - last_observed).days <= stale_after_days:
        return ""  # the month after it ends later still: most KPIs, decided at once
    missing = (month_after(last_observed.strftime("%Y-%m")) if last_observed is not None
               else start.strftime("%Y-%m"))
    month_end = month_last_day(missing)
    if end is not None and missing > end.strftime("%Y-%m"):
        return ""
    return missing if (today - month_end).days > stale_after_days else ""


def renewal_due(*, end: dt.date | None, today: dt.date, days: int = RENEWAL_DAYS) -> bool:
    """Ends between today and `days` days from today, both included."""
    return end is not None and today <= end <= today + dt.timedelta(days=days)


def tier_changed(*, tier: str, previous_tier: str) -> bool:
    """A tier that differs from the month before's; a first tier is no change."""
    return bool(tier) and bool(previous_tier) and tier != previous_tier


@dataclass
class AttentionFacts:
    """What the rules need of one agreement (read by a selector, set-based)."""

    stage: str
    end: dt.date | None = None
    at_risk: bool = False
    incomplete: bool = False
    review_overdue_days: int = 0
    review_due: dt.date | None = None
    overdue_actions: dict[str, int] = field(default_factory=dict)  # by owner side
    stale_kpis: list[tuple[str, str]] = field(default_factory=list)  # (KPI code, month)
    open_disputes: int = 0
    tier: str = ""
    previous_tier: str = ""
    objectives: dict[str, int] = field(default_factory=dict)  # at_risk / overdue counts


def attention_reasons(*, facts: AttentionFacts, today: dt.date) -> list[str]:
    """The reasons (REASONS, in that order) an agreement needs attention; [] when none.

    An ended agreement is measured no more: only what both sides still owe each other counts
    (overdue actions, open disputes), not its last month's flags, tier or objectives."""
    ended = facts.stage == Stage.ENDED
    found = {
        AT_RISK: facts.at_risk and not ended,
        INCOMPLETE: facts.incomplete and not ended,
        REVIEW_OVERDUE: facts.review_overdue_days > 0,
        ACTIONS_OVERDUE: sum(facts.overdue_actions.values()) > 0,
        STALE_DATA: facts.stage not in UNREVIEWED_STAGES and bool(facts.stale_kpis),
        OPEN_DISPUTES: facts.open_disputes > 0,
        TIER_CHANGED: not ended and tier_changed(tier=facts.tier,
                                                 previous_tier=facts.previous_tier),
        OBJECTIVES: not ended and sum(facts.objectives.values()) > 0,
        RENEWAL_DUE: facts.stage not in UNREVIEWED_STAGES
        and renewal_due(end=facts.end, today=today),
    }
    return [reason for reason in REASONS if found[reason]]
