"""The value objects of the portfolio table: a row, a month's scorecard, a point of a trend."""

from dataclasses import dataclass, field
from typing import NamedTuple

from partnerships.models import Agreement, Tier

# Tiers from the lowest: a row's tier moved up or down, the table sorts by tier.
TIER_RANK = {Tier.TRANSACTIONAL: 1, Tier.GROWTH: 2, Tier.STRATEGIC: 3}


class TrendPoint(NamedTuple):
    period: str
    overall: float | None  # None: no scorecard that month
    tier: str


class MonthCard(NamedTuple):
    """What the table shows of a month's scorecard (CARD_COLUMNS): lighter than the model."""

    has_scorecard: bool
    overall: float | None
    rolling: float | None
    coverage: float
    tier: str
    at_risk: bool
    incomplete: bool
    payout: float | None

    @property
    def flags(self) -> list[str]:
        flags = (("incomplete", self.incomplete), ("at_risk", self.at_risk))
        return [name for name, on in flags if on]

    def get_tier_display(self) -> str:
        return TIER_LABELS.get(self.tier, self.tier)


TIER_LABELS = dict(Tier.choices)


@dataclass
class PortfolioRow:
    agreement: Agreement
    scorecard: MonthCard | None
    previous: MonthCard | None
    trend: list[TrendPoint] = field(default_factory=list)
    # The trend change computed by the database, for rows loaded without their trend.
    change: float | None = None
    # The trend as inline SVG, drawn with the row's scorecards (charts.sparkline_svg).
    sparkline_svg: str = ""
    # Today's overdue review (days past due, 0 when not overdue) and overdue actions of
    # either side (dashboards/program/overdue.py).
    review_overdue_days: int = 0
    overdue_actions: int = 0

    @property
    def tier(self) -> str:
        return self.scorecard.tier if self.scorecard else ""

    @property
    def tier_move(self) -> str:
        before = TIER_RANK.get(self.previous.tier if self.previous else "", 0)
        now = TIER_RANK.get(self.tier, 0)
        if not now or not before or now == before:
            return ""
        return "up" if now > before else "down"

    @property
    def has_scorecard(self) -> bool:
        return self.scorecard is not None and self.scorecard.has_scorecard

    def value(self, name: str) -> float | None:
        if self.scorecard is None:
            return None
        return getattr(self.scorecard, name)

    # Numbers, written by the template edge (templatetags/numbers.py); None when missing.
    @property
    def overall(self) -> float | None:
        return self.value("overall") if self.has_scorecard else None

    @property
    def rolling(self) -> float | None:
        return self.value("rolling")

    @property
    def coverage(self) -> float | None:
        """The share of the KPI weight with data, in [0, 1]."""
        return self.value("coverage") if self.has_scorecard else None

    @property
    def flags(self) -> list[str]:
        return self.scorecard.flags if self.scorecard else []

    @property
    def payout(self) -> float | None:
        return self.value("payout")

    @property
    def currency(self) -> str:
        """The incentive plan's currency ('' without a plan); joined, so no query."""
        # A missing plan raises RelatedObjectDoesNotExist, an AttributeError.
        plan = getattr(self.agreement, "incentive_plan", None)
        return plan.currency if plan is not None else ""

    @property
    def owner_name(self) -> str:
        owner = self.agreement.owner
        if owner is None:
            return ""
        return owner.get_full_name() or owner.get_username()

    @property
    def trend_change(self) -> float | None:
        """Last minus first scored overall score of the trend window (None below two months)."""
        if not self.trend:
            return self.change
        scored = [point.overall for point in self.trend if point.overall is not None]
        return scored[-1] - scored[0] if len(scored) >= 2 else None



# The columns of a month's scorecard a row of the table shows, and of the month before's.
CARD_COLUMNS = MonthCard._fields


PREVIOUS_CARD_COLUMNS = ("has_scorecard", "overall", "tier")


# What a card of the month before holds beyond PREVIOUS_CARD_COLUMNS (nothing shows them).
MONTH_CARD_DEFAULTS = {"rolling": None, "coverage": 0.0, "at_risk": False,
                       "incomplete": False, "payout": None}
