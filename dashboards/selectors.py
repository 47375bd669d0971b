"""Read-only queries behind the pages."""

import math
from dataclasses import dataclass

from django.db.models import QuerySet

from partnerships.models import Agreement, Tier
from scoring.exports import format_number
from scoring.models import KPIScore, Scorecard, ScoringRun


def scoring_status() -> dict:
    """The published run (what pages show) and the newest run (which may be active or failed)."""
    latest = ScoringRun.objects.select_related("triggered_by").order_by("-created_at").first()
    published = ScoringRun.objects.current()
    return {
        "published_run": published,
        "latest_run": latest,
        "latest_failed": latest is not None and latest.status == ScoringRun.Status.FAILED,
        "active_run": latest if latest is not None and latest.active else None,
    }


def scoring_runs_recent(*, limit: int = 20) -> list[ScoringRun]:
    return list(ScoringRun.objects.select_related("triggered_by").order_by("-created_at")[:limit])


# ---- Portfolio and agreement dashboards ----------------------------------------------------

TIER_RANK = {Tier.TRANSACTIONAL: 1, Tier.GROWTH: 2, Tier.STRATEGIC: 3}
PORTFOLIO_SORTS = ("partner", "agreement", "type", "stage", "tier", "overall", "rolling",
                   "coverage")
FLAG_CHOICES = ("at_risk", "incomplete")


def one_decimal(value: float | None) -> str:
    """The export's 4-decimal value rounded to one decimal, so screen and CSV agree."""
    exported = format_number(value)
    if not exported:
        return ""
    text = f"{float(exported):.1f}"
    return "0.0" if text == "-0.0" else text


def month_shift(period: str, months: int) -> str:
    year, month = (int(part) for part in period.split("-"))
    index = year * 12 + month - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@dataclass
class PortfolioRow:
    agreement: Agreement
    scorecard: Scorecard | None
    previous: Scorecard | None

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

    @property
    def overall(self) -> str:
        return one_decimal(self.value("overall")) if self.has_scorecard else ""

    @property
    def rolling(self) -> str:
        return one_decimal(self.value("rolling"))

    @property
    def coverage(self) -> str:
        coverage = self.value("coverage") if self.has_scorecard else None
        return one_decimal(coverage * 100) if coverage is not None else ""

    @property
    def flags(self) -> list[str]:
        return self.scorecard.flags if self.scorecard else []


def portfolio_rows(*, agreements: QuerySet[Agreement], run, period: str) -> list[PortfolioRow]:
    """Every visible agreement with its scorecard of the month and of the month before.

    Three queries whatever the number of agreements."""
    agreement_list = list(agreements.select_related("partner", "owner").order_by("code"))
    by_key: dict[tuple[int, str], Scorecard] = {}
    if run is not None:
        previous_period = month_shift(period, -1)
        scorecards = Scorecard.objects.filter(
            run=run, period__in=(period, previous_period), agreement__in=agreements
        )
        by_key = {(card.agreement_id, card.period): card for card in scorecards}
        return [
            PortfolioRow(agreement=agreement, scorecard=by_key.get((agreement.pk, period)),
                         previous=by_key.get((agreement.pk, previous_period)))
            for agreement in agreement_list
        ]
    return [PortfolioRow(agreement=agreement, scorecard=None, previous=None)
            for agreement in agreement_list]


def portfolio_filter(*, rows: list[PortfolioRow], type: str = "", stage: str = "",
                     tier: str = "", flag: str = "", search: str = "") -> list[PortfolioRow]:
    """Rows matching every given filter (empty filters match all)."""
    needle = search.strip().casefold()
    return [
        row for row in rows
        if (not type or row.agreement.type == type)
        and (not stage or row.agreement.stage == stage)
        and (not tier or row.tier == tier)
        and (not flag or flag in row.flags)
        and (not needle or needle in row.agreement.code.casefold()
             or needle in row.agreement.partner.name.casefold()
             or needle in row.agreement.title.casefold())
    ]


def portfolio_sort(*, rows: list[PortfolioRow], sort: str) -> list[PortfolioRow]:
    """Sorted by a column of PORTFOLIO_SORTS; '-' first for descending; missing values last."""
    descending = sort.startswith("-")
    column = sort.lstrip("-")
    if column not in PORTFOLIO_SORTS:
        return rows

    def key(row: PortfolioRow):
        if column == "partner":
            return row.agreement.partner.name.casefold()
        if column == "agreement":
            return row.agreement.code
        if column == "type":
            return row.agreement.get_type_display()
        if column == "stage":
            return row.agreement.get_stage_display()
        if column == "tier":
            return TIER_RANK.get(row.tier) or None
        if column in ("overall", "coverage") and not row.has_scorecard:
            return None
        value = row.value(column)
        return None if value is None or math.isnan(value) else value

    present = [row for row in rows if key(row) is not None]
    missing = [row for row in rows if key(row) is None]
    present.sort(key=lambda row: (key(row), row.agreement.code), reverse=descending)
    return present + missing


def portfolio_summary(*, rows: list[PortfolioRow]) -> dict:
    """The headline cards: counts, mean overall and its change, tiers, flags, total payout."""

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    now = [row.scorecard.overall for row in rows
           if row.has_scorecard and row.scorecard.overall is not None]
    before = [row.previous.overall for row in rows
              if row.previous is not None and row.previous.has_scorecard
              and row.previous.overall is not None]
    mean_now, mean_before = mean(now), mean(before)
    change = mean_now - mean_before if mean_now is not None and mean_before is not None else None
    tiers = {tier: sum(1 for row in rows if row.tier == tier) for tier in Tier.values}
    payouts = [row.scorecard.payout for row in rows
               if row.scorecard is not None and row.scorecard.payout]
    return {
        "active": sum(1 for row in rows if row.agreement.stage == "active"),
        "scored": len(now),
        "mean_overall": one_decimal(mean_now),
        "mean_change": one_decimal(change),
        "mean_change_sign": "" if change is None else ("up" if change > 0 else
                                                        "down" if change < 0 else "same"),
        "tiers": [(tier, label, tiers[tier]) for tier, label in
                  reversed(list(zip(Tier.values, Tier.labels, strict=True)))],
        "at_risk": sum(1 for row in rows if "at_risk" in row.flags),
        "incomplete": sum(1 for row in rows if "incomplete" in row.flags),
        "payout": f"{sum(payouts):,.2f}",
    }


def agreement_scorecards(*, run, agreement: Agreement) -> list[Scorecard]:
    """The agreement's scorecard rows of the run, oldest month first."""
    if run is None:
        return []
    return list(Scorecard.objects.filter(run=run, agreement=agreement).order_by("period"))


def tier_since(*, scorecards: list[Scorecard], period: str) -> str:
    """The first month of the unbroken run of the tier the agreement has in `period`."""
    by_period = {card.period: card for card in scorecards}
    card = by_period.get(period)
    if card is None or not card.tier:
        return ""
    since = period
    while True:
        earlier = by_period.get(month_shift(since, -1))
        if earlier is None or earlier.tier != card.tier:
            return since
        since = earlier.period


def agreement_kpi_rows(*, run, agreement: Agreement, period: str) -> list[dict]:
    """The KPI table of a month: scores, the source side and the other side's value (Δ %)."""
    if run is None:
        return []
    scores = (KPIScore.objects.filter(run=run, agreement=agreement, period=period)
              .select_related("kpi").order_by("kpi__category", "kpi__code"))
    rows = []
    for item in scores:
        delta = None
        if item.actual is not None and item.other_side_actual is not None and item.actual != 0:
            delta = (item.other_side_actual - item.actual) / abs(item.actual) * 100
        rows.append({
            "kpi": item.kpi,
            "actual": one_decimal(item.actual),
            "target": one_decimal(item.target),
            "floor": one_decimal(item.floor),
            "score": one_decimal(item.score),
            "source": item.kpi.source,
            "other": one_decimal(item.other_side_actual),
            "delta": one_decimal(delta),
            "delta_large": delta is not None and abs(delta) > 5,
        })
    return rows
