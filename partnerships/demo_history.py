"""The demo program's history: how each agreement reached its stage, its business reviews and
their action items, partner assessments over time, and the KPI templates per agreement type.

Written as the pages would have written it (a StageTransition and a ProgramChange per move),
with realistic gaps: some agreements are overdue for a review, some actions are late.
"""

import datetime as dt

import numpy as np
from django.utils import timezone

from .models import (
    REVIEW_CADENCE_DAYS,
    ActionItem,
    ActionStatus,
    Agreement,
    AgreementKPI,
    AgreementType,
    ChangeKind,
    KPITemplateItem,
    Partner,
    PartnerAssessment,
    ProgramChange,
    Raci,
    Review,
    ReviewCadence,
    ReviewKind,
    Side,
    Stage,
    StageTransition,
)

REVIEW_WINDOW_DAYS = 540  # reviews of the last 18 months
LAPSED_SHARE = 0.25  # agreements whose reviews lapsed: overdue now
REVIEW_KIND = {
    ReviewCadence.BIWEEKLY: ReviewKind.TACTICAL_SYNC,
    ReviewCadence.MONTHLY: ReviewKind.MONTHLY_RESULTS,
    ReviewCadence.QUARTERLY: ReviewKind.QUARTERLY_STRATEGY,
    ReviewCadence.SEMIANNUAL: ReviewKind.QUARTERLY_STRATEGY,
    ReviewCadence.ANNUAL: ReviewKind.QUARTERLY_STRATEGY,
}
REASONS = {
    Stage.PILOT: "Pilot scope and success criteria signed by both sides.",
    Stage.ACTIVE: "Success criteria met; full agreement signed.",
    Stage.UNDER_REVIEW: "Rolling score below the floor two months running; review opened.",
    Stage.EXITING: "Review concluded: the exit criteria apply; notice given.",
    Stage.ENDED: "Exit completed; customers transitioned and final payout settled.",
}
NOTES = (
    "Walked through the scorecard month by month; both sides agree on the figures.",
    "Lead quality discussed: the partner will apply the qualified-lead definition before "
    "registering.",
    "Pipeline reviewed deal by deal; two deals slipped to next quarter.",
    "Partner raised support response times; host to add a named escalation contact.",
    "Joint campaign results below plan; agreed to refocus on the mid-market segment.",
    "Integration defects down after the last release; certification of two more engineers "
    "planned.",
)
DECISIONS = (
    "Keep targets unchanged until the next quarterly review.",
    "Shift 20 % of the co-marketing budget to webinars.",
    "Run a joint account plan for the top ten customers.",
    "Raise the lead target from next month, as both sides proposed.",
    "Escalate attribution disputes to the alliance leads within five working days.",
)
ACTIONS = (
    "Send the updated deal-registration list",
    "Share the campaign performance report",
    "Schedule the enablement session for new sales staff",
    "Fix the data feed for the partner-side KPIs",
    "Draft the joint account plan",
    "Confirm the attribution of the disputed deals",
    "Update the partner portal content",
    "Book the executive sponsor meeting",
)


def _when(day: dt.date, hour: int = 10) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def _path(stage: str, *, pilot_first: bool) -> list[str]:
    """The stages an agreement went through to reach `stage`, from prospect."""
    to_active = [Stage.PILOT, Stage.ACTIVE] if pilot_first else [Stage.ACTIVE]
    return {
        Stage.PROSPECT: [],
        Stage.PILOT: [Stage.PILOT],
        Stage.ACTIVE: to_active,
        Stage.UNDER_REVIEW: [*to_active, Stage.UNDER_REVIEW],
        Stage.EXITING: [*to_active, Stage.UNDER_REVIEW, Stage.EXITING],
        Stage.ENDED: [*to_active, Stage.EXITING, Stage.ENDED],
    }[stage]


def _contact_names(agreement: Agreement) -> list[str]:
    names = [line.split(",")[0].strip() for line in agreement.partner_contacts.splitlines()]
    return [name for name in names if name] or ["Partner lead"]


def demo_history_create(rng: np.random.Generator, *, agreements: list[Agreement],
                        partners: list[Partner], manager, today: dt.date) -> None:
    host_name = manager.get_full_name() or manager.get_username()
    transitions, changes, reviews, review_agreements = [], [], [], []
    for agreement in agreements:
        path = _path(agreement.stage, pilot_first=rng.random() < 0.4)
        start = agreement.start_date
        end = min(agreement.end_date or today, today)
        span = max((end - start).days, len(path) + 1)
        days = sorted(rng.choice(np.arange(1, span), size=len(path), replace=False).tolist()
                      ) if len(path) > 1 else [0] * len(path)
        previous = Stage.PROSPECT
        for stage, offset in zip(path, days, strict=True):
            day = start + dt.timedelta(days=int(offset))
            if stage == Stage.ENDED and agreement.end_date:
                day = min(agreement.end_date, today)
            at = _when(min(day, today))
            transitions.append(StageTransition(
                agreement=agreement, from_stage=previous, to_stage=stage, at=at, by=manager,
                reason=REASONS[stage],
            ))
            changes.append(ProgramChange(
                at=at, user=manager, username=manager.get_username(), kind=ChangeKind.STAGE,
                object_type="agreement", object_id=agreement.pk, object_label=agreement.code,
                partner_id=agreement.partner_id, agreement=agreement,
                fields={"Stage": [Stage(previous).label, Stage(stage).label],
                        "Reason": ["", REASONS[stage]]},
            ))
            previous = stage
        if agreement.stage == Stage.PROSPECT:
            continue
        interval = REVIEW_CADENCE_DAYS[agreement.review_cadence]
        first = max(start + dt.timedelta(days=int(interval * 0.8)),
                    today - dt.timedelta(days=REVIEW_WINDOW_DAYS))
        last = end
        if agreement.stage != Stage.ENDED and rng.random() < LAPSED_SHARE:
            last = today - dt.timedelta(days=int(interval * rng.uniform(1.3, 2.2)))
        contacts = _contact_names(agreement)
        day = first
        while day <= last:
            reviews.append(Review(
                agreement=agreement, kind=REVIEW_KIND[agreement.review_cadence], held_on=day,
                host_attendees=f"{host_name} (partnership manager)",
                partner_attendees=", ".join(contacts), created_by=manager,
                notes=str(rng.choice(NOTES)), decisions=str(rng.choice(DECISIONS)),
            ))
            review_agreements.append(agreement)
            day += dt.timedelta(days=int(interval * rng.uniform(0.85, 1.1)))
    StageTransition.objects.bulk_create(transitions, batch_size=2000)
    ProgramChange.objects.bulk_create(changes, batch_size=2000)
    Review.objects.bulk_create(reviews, batch_size=2000)

    actions = []
    for review, agreement in zip(reviews, review_agreements, strict=True):
        contacts = _contact_names(agreement)
        for _ in range(int(rng.integers(1, 4))):
            partner_side = rng.random() < 0.5
            due = review.held_on + dt.timedelta(days=int(rng.integers(10, 46)))
            late = (today - due).days
            if late > 60:  # long past: settled one way or the other
                status = ActionStatus.DONE if rng.random() < 0.9 else ActionStatus.CANCELLED
            elif late > 0:  # recently due: some slip
                status = ActionStatus.DONE if rng.random() < 0.6 else ActionStatus.OPEN
            else:
                status = ActionStatus.IN_PROGRESS if rng.random() < 0.4 else ActionStatus.OPEN
            completed = (_when(min(due - dt.timedelta(days=int(rng.integers(0, 8))), today))
                         if status == ActionStatus.DONE else None)
            actions.append(ActionItem(
                agreement=agreement, review=review, description=str(rng.choice(ACTIONS)),
                owner_name=str(rng.choice(contacts)) if partner_side else host_name,
                owner_side=Side.PARTNER if partner_side else Side.HOST,
                raci=Raci.RESPONSIBLE if rng.random() < 0.8 else Raci.ACCOUNTABLE,
                due_date=due, status=status, completed_at=completed,
            ))
    ActionItem.objects.bulk_create(actions, batch_size=2000)
    _assessments(rng, agreements=agreements, partners=partners, manager=manager, today=today)
    _templates()


def _assessments(rng: np.random.Generator, *, agreements: list[Agreement],
                 partners: list[Partner], manager, today: dt.date) -> None:
    first_start = {}
    for agreement in agreements:
        known = first_start.get(agreement.partner_id)
        first_start[agreement.partner_id] = min(known or agreement.start_date,
                                                agreement.start_date)
    assessments = []
    for partner in partners:
        start = first_start.get(partner.pk)
        if start is None:
            continue
        days = [min(start - dt.timedelta(days=45), today)]
        if (today - start).days > 400:
            days.append(start + dt.timedelta(days=365))
        fit = int(rng.integers(2, 6))
        for day in days:
            fit = int(np.clip(fit + rng.integers(-1, 2), 1, 5))
            aligned = rng.random(5) < 0.75
            assessments.append(PartnerAssessment(
                partner=partner, assessed_on=day, assessed_by=manager,
                strategic_fit=fit,
                cultural_compatibility=int(rng.integers(2, 6)),
                operational_capability=int(rng.integers(2, 6)),
                market_position=int(rng.integers(1, 6)),
                aligned_decision_speed=bool(aligned[0]), aligned_communication=bool(aligned[1]),
                aligned_risk_tolerance=bool(aligned[2]), aligned_innovation=bool(aligned[3]),
                aligned_customer_focus=bool(aligned[4]),
                horizon_today=f"{partner.name} brings customers in our core segments now.",
                horizon_capabilities="Joint integration and certified delivery staff within "
                                     "a year.",
                horizon_options="Co-developed offers for adjacent markets.",
                resource_contribution=int(rng.integers(2, 6)),
                implementation_complexity=int(rng.integers(1, 5)),
            ))
    PartnerAssessment.objects.bulk_create(assessments, batch_size=2000)


def _templates() -> None:
    """Each agreement type's standard KPI set: the median target and floor its agreements use."""
    rows = AgreementKPI.objects.values_list("agreement__type", "kpi_id", "target", "floor")
    grouped: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for agreement_type, kpi_id, target, floor in rows:
        grouped.setdefault((agreement_type, kpi_id), []).append((target, floor))
    items = []
    for agreement_type in AgreementType.values:
        used = sorted(((len(pairs), kpi_id) for (kind, kpi_id), pairs in grouped.items()
                       if kind == agreement_type), reverse=True)[:5]
        for _, kpi_id in used:
            pairs = sorted(grouped[(agreement_type, kpi_id)])
            target, floor = pairs[len(pairs) // 2]
            items.append(KPITemplateItem(agreement_type=agreement_type, kpi_id=kpi_id,
                                         target=target, floor=floor))
    KPITemplateItem.objects.bulk_create(items)
