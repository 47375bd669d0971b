"""What the what-if page and its CSV read of a simulation (scoring.whatif.Simulation): the
agreements whose results move, the tier moves as a matrix, the payout totals, the CSV rows."""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from partnerships.models import Agreement
from partnerships.spreadsheets import spreadsheet_escape
from scoring.exports import format_number
from scoring.whatif import TIER_ORDER, Simulation, tier_name, whatif_payout_total, whatif_tier_moves

# Rows shown on the page; the CSV has every agreement and month.
SHOWN_ROWS = 200
CSV_HEADER = [
    "agreement", "partner", "period", "overall_now", "overall_simulated", "rolling_now",
    "rolling_simulated", "tier_now", "tier_simulated", "payout_now", "payout_simulated",
    "payout_difference",
]
TIER_WORDS = {"strategic": "Strategic", "growth": "Growth", "transactional": "Transactional",
              "none": "No tier"}


@dataclass(frozen=True)
class WhatIfRow:
    code: str
    partner: str
    overall_now: float | None
    overall_simulated: float | None
    rolling_now: float | None
    rolling_simulated: float | None
    tier_now: str
    tier_simulated: str
    payout_now: float | None  # over the open months; None without an incentive plan
    payout_simulated: float | None

    @property
    def payout_difference(self) -> float | None:
        if self.payout_now is None and self.payout_simulated is None:
            return None
        return (self.payout_simulated or 0.0) - (self.payout_now or 0.0)

    @property
    def overall_change(self) -> float | None:
        return _difference(self.overall_simulated, self.overall_now)

    @property
    def rolling_change(self) -> float | None:
        return _difference(self.rolling_simulated, self.rolling_now)

    @property
    def tier_moved(self) -> bool:
        return self.tier_now != self.tier_simulated


@dataclass(frozen=True)
class MatrixRow:
    tier: str
    label: str
    cells: list[tuple[str, int, bool]]  # (simulated tier, count, on the diagonal)
    total: int


def _difference(after: float | None, before: float | None) -> float | None:
    if after is None or before is None:
        return None
    return after - before


def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _same(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Equal to the bit, NaN equal to NaN."""
    return before.view("int64") == after.view("int64")


def _moved(rows: pd.DataFrame) -> pd.Series:
    """Per row: whether anything differs between the published and the simulated results."""
    moved = rows["tier_now"].map(tier_name) != rows["tier_simulated"].map(tier_name)
    moved |= rows["has_scorecard_now"] != rows["has_scorecard_simulated"]
    for name in ("overall", "rolling", "payout"):
        moved |= ~_same(rows[f"{name}_now"].to_numpy(dtype="float64"),
                        rows[f"{name}_simulated"].to_numpy(dtype="float64"))
    return moved


def whatif_rows(*, simulation: Simulation, month: str, sort: str = "payout",
                agreement_id: int | None = None,
                limit: int = SHOWN_ROWS) -> tuple[list[WhatIfRow], int]:
    """The agreements whose results move in any open month (and the agreement in scope), at
    `month`, with their payouts over the open months; sorted by `sort` (the largest change
    first; "agreement": by code); at most `limit`, and how many there are in all."""
    rows = simulation.rows
    moved_ids = set(rows.loc[_moved(rows), "agreement_id"].tolist())
    if agreement_id is not None:
        moved_ids.add(agreement_id)
    if not moved_ids:
        return [], 0
    chosen = rows[rows["agreement_id"].isin(moved_ids)]
    payouts = chosen.groupby("agreement_id")[["payout_now", "payout_simulated"]].sum(min_count=1)
    at_month = chosen[chosen["period"] == month].set_index("agreement_id")
    names = {pk: (code, partner) for pk, code, partner in Agreement.objects.filter(
        pk__in=moved_ids).values_list("pk", "code", "partner__name")}
    result = []
    for pk in moved_ids:
        if pk not in names:
            continue
        line = at_month.loc[pk] if pk in at_month.index else None
        payout = payouts.loc[pk] if pk in payouts.index else None

        def value(name: str, line=line):
            return _number(line[name]) if line is not None else None

        result.append(WhatIfRow(
            code=names[pk][0], partner=names[pk][1],
            overall_now=value("overall_now"), overall_simulated=value("overall_simulated"),
            rolling_now=value("rolling_now"), rolling_simulated=value("rolling_simulated"),
            tier_now=tier_name(line["tier_now"] if line is not None else None),
            tier_simulated=tier_name(line["tier_simulated"] if line is not None else None),
            payout_now=_number(payout["payout_now"]) if payout is not None else None,
            payout_simulated=_number(payout["payout_simulated"]) if payout is not None else None,
        ))
    result.sort(key=lambda row: row.code)
    if sort != "agreement":
        change = {"overall": "overall_change", "rolling": "rolling_change"}.get(
            sort, "payout_difference")
        result.sort(key=lambda row: -abs(getattr(row, change) or 0.0))
    if agreement_id is not None:
        # The agreement in scope first, whatever the order.
        result.sort(key=lambda row: row.code != names.get(agreement_id, ("",))[0])
    return result[:limit], len(result)


def whatif_matrix(*, simulation: Simulation, month: str) -> list[MatrixRow]:
    """Agreements by tier now (rows) and simulated (columns) in `month`."""
    moves = whatif_tier_moves(simulation=simulation, month=month)
    return [
        MatrixRow(tier=now, label=TIER_WORDS[now],
                  cells=[(after, moves.get((now, after), 0), now == after)
                         for after in TIER_ORDER],
                  total=sum(moves.get((now, after), 0) for after in TIER_ORDER))
        for now in TIER_ORDER
    ]


def whatif_totals(*, simulation: Simulation, month: str) -> dict:
    """Payouts over the open months now and simulated, their difference, and tier moves."""
    now, simulated = whatif_payout_total(simulation=simulation)
    moves = whatif_tier_moves(simulation=simulation, month=month)
    moved = sum(count for (before, after), count in moves.items() if before != after)
    return {"payout_now": now, "payout_simulated": simulated, "payout_difference": simulated - now,
            "tier_moves": moved, "agreements": sum(moves.values())}


def _money(value) -> str:
    if value is None or pd.isna(value):
        return ""
    text = f"{float(value):.2f}"
    return "0.00" if text == "-0.00" else text


def whatif_csv_rows(*, simulation: Simulation) -> Iterator[list[str]]:
    """Every agreement and open month with a scorecard or a tier, now or simulated, sorted by
    agreement code (code points) then month; scores with 4 decimals, money with 2."""
    rows = simulation.rows
    shown = (rows["has_scorecard_now"] | rows["has_scorecard_simulated"]
             | rows["tier_now"].notna() | rows["tier_simulated"].notna())
    rows = rows[shown]
    names = pd.DataFrame.from_records(
        list(Agreement.objects.filter(pk__in=rows["agreement_id"].unique().tolist())
             .values_list("pk", "code", "partner__slug")),
        columns=["agreement_id", "code", "slug"])
    rows = rows.merge(names, on="agreement_id").sort_values(["code", "period"], kind="stable")
    now = rows["payout_now"].to_numpy(dtype="float64")
    simulated = rows["payout_simulated"].to_numpy(dtype="float64")
    difference = np.where(np.isnan(now) & np.isnan(simulated), np.nan,
                          np.nan_to_num(simulated) - np.nan_to_num(now))
    columns = [
        rows["code"].map(spreadsheet_escape), rows["slug"].map(spreadsheet_escape),
        rows["period"],
        *(rows[name].map(format_number) for name in (
            "overall_now", "overall_simulated", "rolling_now", "rolling_simulated")),
        rows["tier_now"].fillna(""), rows["tier_simulated"].fillna(""),
        rows["payout_now"].map(_money), rows["payout_simulated"].map(_money),
        pd.Series(difference).map(_money),
    ]
    for line in zip(*(column.tolist() for column in columns), strict=True):
        yield list(line)
