"""The portfolio's filters, sort and headline figures on rows already loaded, in Python: the
tests hold the database's answers (`portfolio_queryset`, `portfolio_figures`) against these."""

import math

from dashboards.selectors.portfolio import PORTFOLIO_SORTS
from dashboards.selectors.rows import TIER_RANK, PortfolioRow
from dashboards.templatetags.numbers import change_sign
from partnerships.models import Tier


def portfolio_filter(*, rows: list[PortfolioRow], type: str = "", stage: str = "",
                     tier: str = "", flag: str = "", search: str = "",
                     owner_id: int | None = None) -> list[PortfolioRow]:
    """Rows matching every given filter (empty filters match all): `portfolio_queryset`'s
    filters on rows already loaded."""
    needle = search.strip().casefold()
    return [
        row for row in rows
        if (not type or row.agreement.type == type)
        and (not stage or row.agreement.stage == stage)
        and (not tier or row.tier == tier)
        and (not flag or flag in row.flags)
        and (owner_id is None or row.agreement.owner_id == owner_id)
        and (not needle or needle in row.agreement.code.casefold()
             or needle in row.agreement.partner.name.casefold()
             or needle in row.agreement.title.casefold())
    ]


def portfolio_sort(*, rows: list[PortfolioRow], sort: str) -> list[PortfolioRow]:
    """Sorted by a column of PORTFOLIO_SORTS; '-' first for descending; missing values last.
    `portfolio_queryset`'s order on rows already loaded (the tests hold the two together)."""
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
        if column == "owner":
            return row.owner_name.casefold() or None
        if column == "tier":
            return TIER_RANK.get(row.tier) or None
        if column == "trend":
            return row.trend_change
        if column == "flags":
            # At risk weighs more than incomplete; rows without flags sort as 0, not missing.
            return ("at_risk" in row.flags) * 2 + ("incomplete" in row.flags)
        if column in ("overall", "coverage") and not row.has_scorecard:
            return None
        value = row.value(column)
        return None if value is None or math.isnan(value) else value

    rows = sorted(rows, key=lambda row: row.agreement.code)
    present = [row for row in rows if key(row) is not None]
    missing = [row for row in rows if key(row) is None]
    present.sort(key=lambda row: (key(row), row.agreement.code), reverse=descending)
    return present + missing


def portfolio_summary(*, rows: list[PortfolioRow]) -> dict:
    """The headline cards of rows already loaded (`portfolio_figures` computes them in SQL)."""

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
        "mean_overall": mean_now,
        "mean_change": change,
        "mean_change_sign": change_sign(change),
        "tiers": [(tier, label, tiers[tier]) for tier, label in
                  reversed(list(zip(Tier.values, Tier.labels, strict=True)))],
        "at_risk": sum(1 for row in rows if "at_risk" in row.flags),
        "incomplete": sum(1 for row in rows if "incomplete" in row.flags),
        "payout": sum(payouts),
    }
