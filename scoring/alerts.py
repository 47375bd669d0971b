"""E-mail that needs the published scores: alerts after a run, overdue reviews, the weekly digest.

- **After a run is published** (`score_moves`, read inside the publishing transaction, while
  the previous run's results are still kept): an agreement newly at risk, or whose tier
  changed, in the run's last month compared with the previous published run's last month.
  A first run tells nothing (no previous run to compare with); a first tier is no change.
  Each recipient gets one message per run and kind (key: the run).
- **Review overdue** (daily): by the rules of `partnerships.reviews` (only held reviews count),
  with the tier of the published run; told once per agreement and due date, in its first
  REVIEW_ALERT_DAYS days overdue (later it is in the digest every week).
- **The weekly digest** (key: the ISO week) of each user's own agreements: score moves of at
  least DIGEST_SCORE_MOVE points and tier moves since the month before, newly at risk, open
  actions of the user's side due within DIGEST_AHEAD_DAYS or overdue, planned reviews in the
  next DIGEST_AHEAD_DAYS and overdue ones, open disputes. Nothing to say: no digest.

Recipients and their scope are `partnerships.recipients`: a partner user hears of their
partner's agreements only.
"""

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Max, Q
from django.urls import reverse
from django.utils import timezone

from partnerships.mail import mail_send_once, mail_send_once_each, site_link
from partnerships.mail_preferences import (
    AT_RISK,
    DIGEST,
    REVIEW_OVERDUE,
    TIER,
    users_not_wanting,
)
from partnerships.models import (
    ActionItem,
    Agreement,
    Dispute,
    DisputeStatus,
    Review,
    ReviewStatus,
    Side,
    Stage,
)
from partnerships.months import month_before
from partnerships.recipients import recipients_by_agreement
from partnerships.reviews import OPEN_STATUSES, UNREVIEWED_STAGES, review_status

from .attention import tier_changed
from .models import Scorecard, ScoringRun

REVIEW_ALERT_DAYS = 7
DIGEST_SCORE_MOVE = 5.0
DIGEST_AHEAD_DAYS = 14


def _link(name: str, agreement: Agreement) -> str:
    return site_link(reverse(name, args=[agreement.code]))


def _states(*, run: ScoringRun, period: str) -> dict[int, dict]:
    """Each agreement's at-risk flag, tier and overall score in one month of a run."""
    rows = (Scorecard.objects.of_run(run).filter(period=period).order_by()
            .values("agreement_id", "at_risk", "tier", "overall", "has_scorecard"))
    return {row["agreement_id"]: row for row in rows}


# ---- After a run is published ------------------------------------------------------------------


def score_moves(*, previous: ScoringRun | None, run: ScoringRun) -> list[dict]:
    """What changed between the previous published run and `run`, each in its last month:
    [{"agreement": id, "kind": "at_risk"|"tier", "period", "overall", "from", "to"}]."""
    if previous is None or not previous.last_period or not run.last_period:
        return []
    before = _states(run=previous, period=previous.last_period)
    moves = []
    for agreement_id, now in sorted(_states(run=run, period=run.last_period).items()):
        old = before.get(agreement_id)
        move = {"agreement": agreement_id, "period": run.last_period,
                "overall": now["overall"] if now["has_scorecard"] else None}
        if now["at_risk"] and not (old and old["at_risk"]):
            moves.append({**move, "kind": AT_RISK})
        if old and tier_changed(tier=now["tier"], previous_tier=old["tier"]):
            moves.append({**move, "kind": TIER, "from": old["tier"], "to": now["tier"]})
    return moves


MOVE_SUBJECTS = {AT_RISK: ("{code} is at risk", "{count} agreements are at risk"),
                 TIER: ("{code}: tier changed", "{count} agreements changed tier")}


def score_alerts_send(*, run_id: int, moves: list[dict]) -> int:
    """Mail each recipient the moves of their agreements, one message per kind; sent count."""
    agreements = Agreement.objects.select_related("partner").in_bulk(
        {move["agreement"] for move in moves})
    recipients = recipients_by_agreement(agreements=agreements.values())
    sent = 0
    for kind in (AT_RISK, TIER):
        off = users_not_wanting(kind=kind)
        by_user: dict[int, tuple] = {}
        for move in moves:
            agreement = agreements.get(move["agreement"])
            if move["kind"] != kind or agreement is None:
                continue
            row = {**move, "agreement": agreement, "link": _link("agreement_dashboard",
                                                                 agreement)}
            for user in recipients[agreement.pk]:
                if user.pk not in off:
                    by_user.setdefault(user.pk, (user, []))[1].append(row)
        one, many = MOVE_SUBJECTS[kind]
        for user, rows in by_user.values():
            subject = (one.format(code=rows[0]["agreement"].code) if len(rows) == 1
                       else many.format(count=len(rows)))
            outcome = mail_send_once(
                kind=kind, key=f"run:{run_id}", user=user, subject=subject,
                template=f"mail/{kind}", context={"rows": rows, "period": rows[0]["period"]})
            sent += outcome.sent
    return sent


# ---- Reviews overdue ---------------------------------------------------------------------------


def current_tiers(*, run: ScoringRun | None) -> dict[int, str]:
    """Each agreement's tier in the published run's last month ('' without one)."""
    if run is None or not run.last_period:
        return {}
    return dict(Scorecard.objects.of_run(run).filter(period=run.last_period).order_by()
                .values_list("agreement_id", "tier"))


def reviews_overdue(*, today: dt.date, agreements=None) -> dict[int, tuple[dt.date, int]]:
    """(due date, days overdue) of every agreement whose review is overdue today."""
    agreements = (agreements if agreements is not None else Agreement.objects.all())
    rows = (agreements.exclude(stage__in=UNREVIEWED_STAGES).order_by()
            .annotate(last_review=Max("reviews__held_on",
                                      filter=Q(reviews__status=ReviewStatus.HELD)))
            .values_list("pk", "stage", "start_date", "review_cadence", "last_review"))
    tiers = current_tiers(run=ScoringRun.objects.current())
    overdue = {}
    for pk, stage, start, cadence, last_review in rows:
        due, days = review_status(stage=stage, start=start, cadence=cadence,
                                  tier=tiers.get(pk, ""), last_review=last_review, today=today)
        if days > 0:
            overdue[pk] = (due, days)
    return overdue


def review_overdue_alerts_send(*, today: dt.date | None = None) -> int:
    """Tell both sides of reviews that fell overdue in the last REVIEW_ALERT_DAYS days."""
    today = today or timezone.localdate()
    fresh = {pk: state for pk, state in reviews_overdue(today=today).items()
             if state[1] <= REVIEW_ALERT_DAYS}
    agreements = Agreement.objects.select_related("partner").in_bulk(fresh)
    recipients = recipients_by_agreement(agreements=agreements.values())
    off = users_not_wanting(kind=REVIEW_OVERDUE)
    by_user: dict[int, tuple] = {}
    for pk, (due, days) in sorted(fresh.items()):
        agreement = agreements[pk]
        row = {"key": f"{pk}:{due.isoformat()}", "agreement": agreement, "due": due,
               "days": days, "link": _link("agreement_reviews", agreement)}
        for user in recipients[pk]:
            if user.pk not in off:
                by_user.setdefault(user.pk, (user, []))[1].append(row)
    sent = 0
    for user, rows in by_user.values():
        by_key = {row["key"]: row for row in rows}
        outcome = mail_send_once_each(
            kind=REVIEW_OVERDUE, keys=list(by_key), user=user, template="mail/review_overdue",
            subject=lambda keys, by_key=by_key: (
                f"Review overdue: {by_key[keys[0]]['agreement'].code}" if len(keys) == 1
                else f"{len(keys)} reviews are overdue"),
            context=lambda keys, by_key=by_key: {"rows": [by_key[key] for key in keys]},
        )
        sent += outcome.sent
    return sent


# ---- The weekly digest -------------------------------------------------------------------------


@dataclass
class DigestEntry:
    """What the digest says of one agreement (the actions of both sides: each reader gets
    their own side's)."""

    agreement: Agreement
    link: str = ""
    overall: float | None = None
    previous_overall: float | None = None
    tier: str = ""
    previous_tier: str = ""
    newly_at_risk: bool = False
    actions: list = field(default_factory=list)
    planned_reviews: list = field(default_factory=list)
    review_overdue: tuple | None = None
    disputes: list = field(default_factory=list)

    @property
    def score_moved(self) -> bool:
        return (self.overall is not None and self.previous_overall is not None
                and abs(self.overall - self.previous_overall) >= DIGEST_SCORE_MOVE)

    @property
    def tier_moved(self) -> bool:
        return tier_changed(tier=self.tier, previous_tier=self.previous_tier)

    @property
    def change(self) -> float | None:
        if self.overall is None or self.previous_overall is None:
            return None
        return self.overall - self.previous_overall


def iso_week(day: dt.date) -> str:
    year, week, _weekday = day.isocalendar()
    return f"{year}-W{week:02d}"


def digest_entries(*, today: dt.date) -> dict[int, DigestEntry]:
    """Every live agreement's digest facts, by id: a few queries for the whole program."""
    agreements = Agreement.objects.exclude(stage=Stage.ENDED).select_related("partner")
    entries = {agreement.pk: DigestEntry(agreement=agreement,
                                         link=_link("agreement_dashboard", agreement))
               for agreement in agreements}
    run = ScoringRun.objects.current()
    if run is not None and run.last_period:
        now = _states(run=run, period=run.last_period)
        before = _states(run=run, period=month_before(run.last_period))
        for pk, state in now.items():
            entry = entries.get(pk)
            if entry is None:
                continue
            old = before.get(pk, {})
            entry.overall = state["overall"] if state["has_scorecard"] else None
            entry.previous_overall = old.get("overall") if old.get("has_scorecard") else None
            entry.tier, entry.previous_tier = state["tier"], old.get("tier", "")
            entry.newly_at_risk = state["at_risk"] and not old.get("at_risk", False)
    ahead = today + dt.timedelta(days=DIGEST_AHEAD_DAYS)
    for action in (ActionItem.objects.filter(status__in=OPEN_STATUSES, due_date__lte=ahead,
                                             agreement_id__in=entries)
                   .order_by("due_date", "pk")):
        action.overdue = action.due_date < today
        entries[action.agreement_id].actions.append(action)
    for review in (Review.objects.filter(status=ReviewStatus.PLANNED, held_on__gte=today,
                                         held_on__lte=ahead, agreement_id__in=entries)
                   .order_by("held_on", "starts_at", "pk")):
        entries[review.agreement_id].planned_reviews.append(review)
    for pk, state in reviews_overdue(
            today=today, agreements=Agreement.objects.filter(pk__in=entries)).items():
        entries[pk].review_overdue = state
    for dispute in (Dispute.objects.filter(status=DisputeStatus.OPEN, agreement_id__in=entries)
                    .select_related("kpi").order_by("opened_at", "pk")):
        entries[dispute.agreement_id].disputes.append(dispute)
    return entries


def digest_for(*, entries: list[DigestEntry], side: str) -> dict:
    """The digest's sections for a reader of `side`; all empty: nothing to say."""
    return {
        "moves": [entry for entry in entries if entry.score_moved or entry.tier_moved],
        "at_risk": [entry for entry in entries if entry.newly_at_risk],
        "actions": [(entry, [action for action in entry.actions if action.owner_side == side])
                    for entry in entries
                    if any(action.owner_side == side for action in entry.actions)],
        "reviews": [entry for entry in entries if entry.planned_reviews],
        "overdue_reviews": [entry for entry in entries if entry.review_overdue],
        "disputes": [entry for entry in entries if entry.disputes],
    }


def digests_send(*, today: dt.date | None = None) -> int:
    """The week's digest to every user who wants it and has something in it; sent count."""
    today = today or timezone.localdate()
    entries = digest_entries(today=today)
    recipients = recipients_by_agreement(agreements=[e.agreement for e in entries.values()])
    off = users_not_wanting(kind=DIGEST)
    by_user: dict[int, tuple] = {}
    for pk in sorted(entries, key=lambda pk: entries[pk].agreement.code):
        for user in recipients[pk]:
            if user.pk not in off:
                by_user.setdefault(user.pk, (user, []))[1].append(entries[pk])
    week, sent = iso_week(today), 0
    for user, own in by_user.values():
        side = user.membership.side
        sections = digest_for(entries=own, side=side)
        if not any(sections.values()):
            continue
        outcome = mail_send_once(
            kind=DIGEST, key=week, user=user, subject=f"Your partnerships this week ({week})",
            template="mail/digest",
            context={**sections, "week": week, "today": today,
                     "side_label": Side(side).label.lower()})
        sent += outcome.sent
    return sent
