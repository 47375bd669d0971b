"""The quarterly business review pack of one agreement: what both sides bring to the QBR.

For a quarter (`2026-Q3`): the three months' scorecards and the score history up to the
quarter's end, the KPI table of each month with both sides' values, the objectives and their
progress, the reviews held in the quarter with their decisions, every open action of both sides,
the disputes about the quarter's months and the payout statement lines of those months. Read for
one user (the actions through their scope); the agreement is one the user may see.
"""

import datetime as dt
import re
from dataclasses import dataclass

from django.utils import timezone

from partnerships.access import action_items_for
from partnerships.models import Agreement, Dispute, Review, ReviewStatus, Side
from partnerships.months import month_first_day, month_of, month_shift
from partnerships.reviews import OPEN_STATUSES
from scoring.models import ScoringRun, StatementLine

from .. import charts
from ..program.objectives import objectives_for_dashboard
from ..program.overdue import annotate_actions
from .agreement import agreement_kpi_rows, agreement_scorecards
from .runs import tier_policy

QUARTER_PATTERN = re.compile(r"(?P<year>[0-9]{4})-Q(?P<number>[1-4])")
# The score history drawn in the pack: the quarter and the nine months before it.
HISTORY_MONTHS = 12


@dataclass(frozen=True)
class Quarter:
    year: int
    number: int

    @property
    def label(self) -> str:
        return f"{self.year}-Q{self.number}"

    @property
    def months(self) -> list[str]:
        first = f"{self.year}-{3 * self.number - 2:02d}"
        return [first, month_shift(first, 1), month_shift(first, 2)]

    @property
    def first_day(self) -> dt.date:
        return month_first_day(self.months[0])

    @property
    def last_day(self) -> dt.date:
        return month_first_day(month_shift(self.months[-1], 1)) - dt.timedelta(days=1)

    def shifted(self, quarters: int) -> "Quarter":
        index = self.year * 4 + self.number - 1 + quarters
        return Quarter(index // 4, index % 4 + 1)

    def __str__(self) -> str:
        return self.label


def quarter_parse(text: str) -> Quarter | None:
    """`YYYY-Qn` as a Quarter; None for anything else."""
    match = QUARTER_PATTERN.fullmatch(text or "")
    return Quarter(int(match["year"]), int(match["number"])) if match else None


def quarter_of_month(month: str) -> Quarter:
    year, number = month.split("-")
    return Quarter(int(year), (int(number) - 1) // 3 + 1)


def quarter_default(*, run: ScoringRun | None) -> Quarter:
    """The quarter of the published run's last month, else of today."""
    if run is not None and run.last_period:
        return quarter_of_month(run.last_period)
    return quarter_of_month(month_of(timezone.localdate()))


def _month_rows(*, run, agreement: Agreement, scorecards: dict, quarter: Quarter) -> list[dict]:
    rows = []
    for month in quarter.months:
        card = scorecards.get(month)
        scored = card is not None and card.has_scorecard
        rows.append({
            "month": month, "card": card, "scored": scored,
            "overall": card.overall if scored else None,
            "rolling": card.rolling if card is not None else None,
            "coverage": card.coverage if scored else None,
            "categories": [(name, getattr(card, name) if scored else None)
                           for name in charts.CATEGORIES],
            "tier": card.tier if card is not None else "",
            "payout": card.payout if scored else None,
        })
    return rows


def _kpi_table(*, run, agreement: Agreement, quarter: Quarter) -> list[dict]:
    """One row per KPI: for each of the three months its actual (source side), the other
    side's value, the difference and the score (the three months side by side are the trend;
    the score history is drawn above)."""
    by_kpi: dict[int, dict] = {}
    for index, month in enumerate(quarter.months):
        for row in agreement_kpi_rows(run=run, agreement=agreement, period=month):
            entry = by_kpi.setdefault(row["kpi"].pk, {
                "kpi": row["kpi"], "source": row["source"],
                "target": row["target"], "floor": row["floor"],
                "cells": [{"month": name, "row": None} for name in quarter.months]})
            entry["cells"][index]["row"] = row
            # The targets of the quarter's last month with a score.
            entry["target"], entry["floor"] = row["target"], row["floor"]
    return sorted(by_kpi.values(), key=lambda row: (row["kpi"].category, row["kpi"].code))


def qbr_pack(*, agreement: Agreement, quarter: Quarter, user,
             run: ScoringRun | None = None) -> dict:
    """Everything the pack shows, for `user` (a user who may see the agreement)."""
    if run is None:
        run = ScoringRun.objects.current()
    today = timezone.localdate()
    all_cards = agreement_scorecards(run=run, agreement=agreement) if run is not None else []
    by_period = {card.period: card for card in all_cards}
    first_shown = month_shift(quarter.months[-1], -(HISTORY_MONTHS - 1))
    history = [card for card in all_cards
               if first_shown <= card.period <= quarter.months[-1]
               and (card.has_scorecard or card.rolling is not None)]
    bands = charts.tier_bands(policy=tier_policy(run=run))
    month_rows = _month_rows(run=run, agreement=agreement, scorecards=by_period,
                             quarter=quarter)
    actions = (action_items_for(user=user).filter(agreement=agreement)
               .select_related("agreement", "review"))
    open_actions = annotate_actions(actions.filter(status__in=OPEN_STATUSES)
                                    .order_by("due_date", "id"), user=user, today=today)
    reviews = list(
        Review.objects.filter(agreement=agreement, status=ReviewStatus.HELD,
                              held_on__gte=quarter.first_day, held_on__lte=quarter.last_day)
        .order_by("held_on", "id"))
    planned = list(Review.objects.filter(agreement=agreement, status=ReviewStatus.PLANNED,
                                         held_on__gte=today).order_by("held_on", "id")[:3])
    disputes = list(Dispute.objects.filter(agreement=agreement, month__in=quarter.months)
                    .select_related("kpi").order_by("month", "opened_at", "id"))
    statements = list(StatementLine.objects.filter(agreement=agreement,
                                                   period__in=quarter.months)
                      .order_by("period", "created_at", "id"))
    statement_totals: dict[str, object] = {}
    for line in statements:
        statement_totals[line.currency] = statement_totals.get(line.currency, 0) + line.amount
    scored = [row for row in month_rows if row["scored"]]
    return {
        "agreement": agreement, "quarter": quarter, "run": run,
        "previous_quarter": quarter.shifted(-1), "next_quarter": quarter.shifted(1),
        "month_rows": month_rows, "scored_months": len(scored),
        "last_row": scored[-1] if scored else None,
        "history_svg": charts.score_history_svg(scorecards=history, bands=bands)
        if history else None,
        "kpi_table": _kpi_table(run=run, agreement=agreement, quarter=quarter)
        if run is not None else [],
        "objectives_progress": objectives_for_dashboard(agreement=agreement, run=run),
        "reviews": reviews, "planned_reviews": planned,
        "host_actions": [action for action in open_actions if action.owner_side == Side.HOST],
        "partner_actions": [action for action in open_actions
                            if action.owner_side == Side.PARTNER],
        "open_action_count": len(open_actions),
        "overdue_action_count": sum(1 for action in open_actions if action.overdue_days),
        "disputes": disputes, "statements": statements,
        "statement_totals": sorted(statement_totals.items()),
        "today": today,
    }
