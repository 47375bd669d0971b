"""What-if: the scoring rules run again with changed targets, floors and weights of agreement
KPIs, category weights, tier settings and incentive plans, beside the published run.

A simulation reads the inputs a scoring run reads (`services.load_chunk_inputs` for every
agreement, the stages, plans and settings of `services._program_inputs` and
`services._settings_snapshot`), applies the changes to those frames, and runs the pure rules
of `rules.py` over the open months only: the months up to the last closed month are frozen
(rules version 2) and never change, so they are carried in as a scoring run carries them
(`services.closed_state`). It writes nothing to the database. With no change it gives the
published run's results to the bit, when that run is current.

Reading the observations is nearly all of its cost, and no what-if changes them: rule 1 is done
once (`rules.period_observations`, one value per agreement KPI and month, which scores to the
bit as the observations it comes from) and kept in the cache under a key naming the open
months, the finished import batches and the agreements' KPIs. Beat prepares it ahead
(`whatif_inputs_warm`); a page that finds nothing kept runs `whatif_inputs_prepare` in a task
and shows its progress (`whatif_job_*`).

Saving (`whatif_apply`) applies the same changes through the program's services, each with its
history and audit event, and records one more audit event with the simulation's summary (tier
moves and payout difference); every history row of the save carries that summary as its
reason. The next scoring run then scores the open months with them; the closed months keep
their frozen results.

A save applies what was confirmed, once. The confirmation carries a signed token of the state
it was asked in (`whatif_state_token`: the published run, the program's change counter, the
last closed month, the changes and the month); the save refuses when the state is no longer
that one (a change in percent is computed from the values as they are), and the state names
the save's job, so a second POST of the same confirmation finds the job claimed and applies
nothing more.
"""

import hashlib
import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Max
from django.http import HttpRequest

from partnerships import governance_services, program_services
from partnerships.audit import audit_record
from partnerships.changes import program_version
from partnerships.history import change_reason
from partnerships.models import (
    Agreement,
    AgreementKPI,
    AuditAction,
    ImportBatch,
    ImportStatus,
    IncentivePlan,
)
from partnerships.months import last_closed_month, month_after

from . import rules
from .bulk import query_frame
from .models import Scorecard, ScoringRun
from .services import (
    _computed_periods,
    _program_inputs,
    _program_periods,
    _settings_snapshot,
    closed_state,
    load_chunk_inputs,
)

KPI_FIELDS = ("target", "floor", "weight")
WEIGHT_COLUMNS = tuple(f"weight_{category}" for category in rules.CATEGORIES)
MULTIPLIER_COLUMNS = tuple(f"multiplier_{tier}" for tier in rules.TIERS)
# Incentive plans store multipliers with 3 decimals: a simulation uses the stored value.
MULTIPLIER_PLACES = Decimal("0.001")
MULTIPLIER_LIMIT = 100  # DecimalField(max_digits=5, decimal_places=3)
BASELINE_RANGE = (0.0, 120.0)
NO_TIER = "none"
# The period values of the open months are kept under a key naming what they come from.
INPUTS_FORMAT = 1
INPUTS_SECONDS = 6 * 3600
PREPARE_CHUNK = 250
PACKED_DTYPES = {"agreement_id": "int32", "kpi_id": "int32", "host": bool, "month": "int16",
                 "value": "float64"}
MISSING = object()
WARM_LOCK_KEY = "whatif:warming"
WARM_LOCK_SECONDS = 15 * 60  # longer than preparing takes; a worker lost frees it by then
# Saving: progress told every this many objects; more objects than SAVE_IN_REQUEST are saved
# by a task (each is a service call with its history and audit event, about 10 ms of CPU).
PROGRESS_EVERY = 25
SAVE_IN_REQUEST = 50
TIER_ORDER = (*rules.TIERS, NO_TIER)


@dataclass(frozen=True)
class Change:
    """A new value, or a change in percent of the value each row has (+10 % → × 1.1)."""

    value: float
    percent: bool = False

    def apply(self, old: np.ndarray) -> np.ndarray:
        old = np.asarray(old, dtype="float64")
        if self.percent:
            return old * (1.0 + self.value / 100.0)
        return np.full(old.shape, float(self.value))

    def __str__(self) -> str:
        if self.percent:
            return f"{self.value:+g} %"
        return f"{self.value:g}"


@dataclass(frozen=True)
class WhatIf:
    """The changes of one simulation. `agreement_id` None: every agreement; `kpi_id` None:
    every KPI of the agreements in scope. Settings apply to the whole program."""

    agreement_id: int | None = None
    kpi_id: int | None = None
    target: Change | None = None
    floor: Change | None = None
    weight: Change | None = None
    category_weights: tuple[int, int, int, int] | None = None
    tier_policy: str | None = None
    strategic_threshold: float | None = None
    growth_threshold: float | None = None
    hysteresis: int | None = None
    multipliers: dict[str, Change] = field(default_factory=dict)
    baseline: Change | None = None

    @property
    def kpi_changes(self) -> dict[str, Change]:
        return {name: getattr(self, name) for name in KPI_FIELDS
                if getattr(self, name) is not None}

    @property
    def settings_changes(self) -> dict:
        return {name: getattr(self, name) for name in
                ("tier_policy", "strategic_threshold", "growth_threshold", "hysteresis")
                if getattr(self, name) is not None}

    @property
    def plan_changes(self) -> bool:
        return bool(self.multipliers) or self.baseline is not None

    def is_empty(self) -> bool:
        return not (self.kpi_changes or self.category_weights or self.settings_changes
                    or self.plan_changes)

    def as_json(self) -> dict:
        """The changes as JSON values, for a task (`from_json` reads them back)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "WhatIf":
        def change(value: dict | None) -> Change | None:
            return Change(**value) if value is not None else None

        return cls(**{
            **data,
            **{name: change(data.get(name)) for name in (*KPI_FIELDS, "baseline")},
            "category_weights": tuple(data["category_weights"])
            if data.get("category_weights") is not None else None,
            "multipliers": {tier: change(value)
                            for tier, value in (data.get("multipliers") or {}).items()},
        })

    def described(self) -> dict:
        """The changes as plain values (for the audit event)."""
        described = {key: value for key, value in asdict(self).items()
                     if value not in (None, {}, ())}
        for name in (*KPI_FIELDS, "baseline"):
            if getattr(self, name) is not None:
                described[name] = str(getattr(self, name))
        if self.multipliers:
            described["multipliers"] = {tier: str(change)
                                        for tier, change in self.multipliers.items()}
        if self.category_weights:
            described["category_weights"] = list(self.category_weights)
        return described


@dataclass(frozen=True)
class Simulation:
    """A simulation beside the published run, per agreement and open month.

    rows: agreement_id, period, and for each of has_scorecard, overall, rolling, tier (a name
    or None) and payout (NaN without a plan) the published value `<name>_now` and the
    simulated one `<name>_simulated`.
    """

    run_id: int | None
    last_closed: str  # "" when no month is closed
    periods: list[str]  # the open months simulated
    rows: pd.DataFrame
    changed_kpis: int
    changed_agreements: int
    changed_plans: int
    seconds: float

    def month_rows(self, month: str) -> pd.DataFrame:
        return self.rows[self.rows["period"] == month]


def _kpi_rows_changed(frame: pd.DataFrame, whatif: WhatIf) -> tuple[pd.DataFrame, np.ndarray]:
    """The agreement KPIs with the what-if's targets, floors and weights, and which rows the
    what-if reaches. The frame has agreement_id, kpi_id, target, floor and weight."""
    reached = np.ones(len(frame), dtype=bool)
    if whatif.agreement_id is not None:
        reached &= frame["agreement_id"].to_numpy() == whatif.agreement_id
    if whatif.kpi_id is not None:
        reached &= frame["kpi_id"].to_numpy() == whatif.kpi_id
    changed = frame.copy()
    for name, change in whatif.kpi_changes.items():
        values = changed[name].to_numpy(dtype="float64").copy()
        values[reached] = change.apply(values[reached])
        changed[name] = values
    return changed, reached


def _kpi_problems(changed: pd.DataFrame, reached: np.ndarray, codes: dict[int, str]) -> list[str]:
    problems = []
    values = {name: changed[name].to_numpy(dtype="float64")[reached] for name in KPI_FIELDS}
    where = changed.loc[reached, "agreement_id"].to_numpy()

    def first(mask: np.ndarray) -> str:
        return codes.get(int(where[mask][0]), "?")

    infinite = ~(np.isfinite(values["target"]) & np.isfinite(values["floor"])
                 & np.isfinite(values["weight"]))
    if infinite.any():
        problems.append(f"The changes give {int(infinite.sum())} KPI(s) a value that is not a "
                        f"finite number (first: {first(infinite)}).")
    same = values["target"] == values["floor"]
    if same.any():
        problems.append(f"The changes make the target equal the floor for {int(same.sum())} "
                        f"KPI(s) (first: {first(same)}): a KPI needs a floor that differs "
                        "from its target.")
    light = ~(values["weight"] > 0)
    if light.any():
        problems.append(f"The changes give {int(light.sum())} KPI(s) a weight that is not "
                        f"above 0 (first: {first(light)}).")
    return problems


def _settings_changed(snapshot: dict, whatif: WhatIf) -> dict:
    changed = dict(snapshot)
    if whatif.tier_policy is not None:
        changed["policy"] = whatif.tier_policy
    for name in ("strategic_threshold", "growth_threshold"):
        if getattr(whatif, name) is not None:
            changed[name] = float(getattr(whatif, name))
    if whatif.hysteresis is not None:
        changed["hysteresis"] = int(whatif.hysteresis)
    return changed


def _settings_problems(settings: dict) -> list[str]:
    problems = []
    if settings["policy"] not in rules.POLICIES:
        problems.append("Choose the percentile or the threshold tier policy.")
    for name in ("strategic_threshold", "growth_threshold"):
        if not math.isfinite(settings[name]):
            problems.append(f"The {name.replace('_', ' ')} must be a finite number.")
    if settings["growth_threshold"] > settings["strategic_threshold"]:
        problems.append("The growth threshold is above the strategic one: a growth tier needs "
                        "the lower score.")
    if settings["hysteresis"] < 1:
        problems.append("The hysteresis is at least 1 month.")
    return problems


def _multiplier(value: float) -> float:
    """A multiplier as the plan stores it (3 decimals, half up)."""
    return float(Decimal(repr(float(value))).quantize(MULTIPLIER_PLACES, rounding=ROUND_HALF_UP))


def _plans_changed(plans: pd.DataFrame, whatif: WhatIf) -> tuple[pd.DataFrame, np.ndarray]:
    """The incentive plans with the what-if's multipliers and baseline, and which it reaches."""
    reached = np.ones(len(plans), dtype=bool)
    if whatif.agreement_id is not None:
        reached &= plans["agreement_id"].to_numpy() == whatif.agreement_id
    changed = plans.copy()
    for tier, change in whatif.multipliers.items():
        column = f"multiplier_{tier}"
        values = changed[column].to_numpy(dtype="float64").copy()
        if reached.any():
            values[reached] = [_multiplier(value) for value in change.apply(values[reached])]
        changed[column] = values
    if whatif.baseline is not None:
        values = changed["baseline"].to_numpy(dtype="float64").copy()
        values[reached] = whatif.baseline.apply(values[reached])
        changed["baseline"] = values
    return changed, reached


def _plan_problems(changed: pd.DataFrame, reached: np.ndarray) -> list[str]:
    problems = []
    for column in MULTIPLIER_COLUMNS:
        values = changed[column].to_numpy(dtype="float64")[reached]
        if ((values < 0) | (values >= MULTIPLIER_LIMIT) | ~np.isfinite(values)).any():
            problems.append(f"The changes put a {column.removeprefix('multiplier_')} multiplier "
                            f"outside 0 to {MULTIPLIER_LIMIT}.")
    baseline = changed["baseline"].to_numpy(dtype="float64")[reached]
    low, high = BASELINE_RANGE
    if ((baseline < low) | (baseline > high) | ~np.isfinite(baseline)).any():
        problems.append(f"The changes put a baseline outside {low:g} to {high:g}.")
    return problems


def _weights_problems(weights: tuple[int, int, int, int] | None) -> list[str]:
    if weights is None:
        return []
    if any(weight < 0 for weight in weights):
        return ["Category weights are 0 or more."]
    if sum(weights) != 100:
        return [program_services.weights_sum_message(sum(weights))
                + " Change them so that they add up to exactly 100."]
    return []


def _agreement_codes() -> dict[int, str]:
    return dict(Agreement.objects.values_list("id", "code"))


def _published_rows(*, run: ScoringRun | None, open_from: str) -> pd.DataFrame:
    """The published results of the open months (from `open_from`; every month when blank)."""
    columns = ["agreement_id", "period", "has_scorecard", "overall", "rolling", "tier",
               "payout"]
    dtypes = {"agreement_id": "int64", "period": object, "has_scorecard": bool,
              "overall": "float64", "rolling": "float64", "tier": object, "payout": "float64"}
    if run is None:
        return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})
    queryset = Scorecard.objects.of_run(run)
    if open_from:
        queryset = queryset.filter(period__gte=open_from)
    sql, params = queryset.values_list(*columns).query.sql_with_params()
    frame = query_frame(sql=sql, params=list(params), columns=columns, dtypes=dtypes)
    frame["tier"] = frame["tier"].where(frame["tier"].notna() & (frame["tier"] != ""), None)
    return frame


def _kpi_composition() -> str:
    """A digest of which KPIs each agreement has and how they aggregate, from which side: what
    the period values depend on besides the observations (targets and weights do not count)."""
    rows = AgreementKPI.objects.order_by("agreement_id", "kpi_id").values_list(
        "agreement_id", "kpi_id", "kpi__aggregation", "kpi__source")
    return hashlib.sha256(repr(list(rows)).encode()).hexdigest()


def _observations_state() -> tuple:
    """What moves on whenever observations are written: every write is a finished batch."""
    batches = ImportBatch.objects.filter(status=ImportStatus.SUCCEEDED).aggregate(
        count=Count("id"), last=Max("id"), finished=Max("finished_at"))
    return (batches["count"], batches["last"],
            batches["finished"].isoformat() if batches["finished"] else "")


@dataclass(frozen=True)
class Months:
    last_closed: str  # "" when no month is closed
    open_from: str  # "" when no month is closed
    periods: list[str]  # the open months


def _months() -> Months:
    last_closed = last_closed_month() or ""
    open_from = month_after(last_closed) if last_closed else ""
    return Months(last_closed=last_closed, open_from=open_from,
                  periods=_computed_periods(periods=_program_periods(), open_from=open_from))


def open_months() -> list[str]:
    """The months a simulation computes: those after the last closed month."""
    return _months().periods


def whatif_inputs_key(months: Months | None = None) -> str:
    """The cache key of the open months' period values as the observations are now."""
    months = months or _months()
    parts = (months.periods[:1], months.periods[-1:], _observations_state(), _kpi_composition())
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:32]
    return f"whatif:period-values:{INPUTS_FORMAT}:{digest}"


def _packed(frame: pd.DataFrame, periods: list[str]) -> dict:
    first = int(rules.month_number(periods=periods[:1])[0]) if periods else 0
    months = frame["date"].to_numpy().astype("datetime64[M]").astype("int64") + 1970 * 12
    return {"agreement_id": frame["agreement_id"].to_numpy(dtype="int32"),
            "kpi_id": frame["kpi_id"].to_numpy(dtype="int32"),
            "host": (frame["side"] == "host").to_numpy(),
            "month": (months - first).astype("int16"),
            "value": frame["value"].to_numpy(dtype="float64")}


def _unpacked(packed: dict, periods: list[str]) -> pd.DataFrame:
    first = int(rules.month_number(periods=periods[:1])[0]) if periods else 0
    month = (packed["month"].astype("int64") + first - 1970 * 12).astype("datetime64[M]")
    return pd.DataFrame({
        "agreement_id": packed["agreement_id"].astype("int64"),
        "kpi_id": packed["kpi_id"].astype("int64"),
        "side": pd.Series(np.where(packed["host"], "host", "partner"), dtype=object),
        "date": pd.Series(month.astype("datetime64[s]")),
        "value": packed["value"],
        "recorded_order": np.zeros(len(packed["value"]), dtype="int64"),
    })


def whatif_inputs_prepare(*, months: Months | None = None,
                          progress: Callable[[int, str], None] | None = None) -> pd.DataFrame:
    """Read the open months' observations, agreements by chunk, reduce them to their period
    values (rules.period_observations), keep those in the cache and return them.

    This is the slow part of a simulation (every observation is read); `progress(percent,
    stage)` is told after each chunk."""
    months = months or _months()
    key = whatif_inputs_key(months)
    agreement_ids = list(Agreement.objects.order_by("id").values_list("id", flat=True))
    packed = []
    for start in range(0, len(agreement_ids), PREPARE_CHUNK):
        chunk = agreement_ids[start:start + PREPARE_CHUNK]
        if months.periods:
            inputs = load_chunk_inputs(agreement_ids=chunk, periods=months.periods)
            packed.append(_packed(rules.period_observations(
                observations=inputs["observations"], agreement_kpis=inputs["agreement_kpis"],
                periods=months.periods), months.periods))
        if progress:
            done = min(start + PREPARE_CHUNK, len(agreement_ids))
            progress(int(95 * done / max(len(agreement_ids), 1)),
                     f"reading observations ({done:,} of {len(agreement_ids):,} agreements)")
    joined = {name: np.concatenate([part[name] for part in packed]) if packed
              else np.zeros(0, dtype=dtype) for name, dtype in PACKED_DTYPES.items()}
    cache.set(key, {"periods": months.periods, "packed": joined}, INPUTS_SECONDS)
    return _unpacked(joined, months.periods)


def whatif_inputs_warm() -> str:
    """Beat: prepare the period values when the observations moved on since they were kept,
    so that the first simulation afterwards does not wait for them; one worker at a time."""
    if whatif_inputs_ready():
        return "kept already"
    if not cache.add(WARM_LOCK_KEY, True, WARM_LOCK_SECONDS):
        return "being prepared by another worker"
    try:
        whatif_inputs_prepare()
    finally:
        cache.delete(WARM_LOCK_KEY)
    return "prepared"


def _open_observations(months: Months) -> pd.DataFrame:
    """The period values of the open months: kept ones, or read now."""
    kept = cache.get(whatif_inputs_key(months), MISSING)
    if kept is not MISSING and kept["periods"] == months.periods:
        return _unpacked(kept["packed"], months.periods)
    return whatif_inputs_prepare(months=months)


def whatif_inputs_ready() -> bool:
    """Whether the period values of the observations as they are now are in the cache."""
    return cache.get(whatif_inputs_key(), MISSING) is not MISSING


def whatif_simulate(*, whatif: WhatIf) -> Simulation:
    """The open months scored by the rules with `whatif`'s changes, beside the published run.

    Reads the period values kept by `whatif_inputs_prepare` (prepared here first when they
    are not kept). Raises ValidationError (with nothing computed) when a change gives a value
    the services would refuse: a target equal to its floor, a weight not above 0, weights not
    adding up to 100, thresholds out of order, a multiplier or baseline out of range.
    """
    started = time.perf_counter()
    problems = _weights_problems(whatif.category_weights)
    settings = _settings_changed(_settings_snapshot(), whatif)
    problems += _settings_problems(settings)
    months = _months()
    observations = _open_observations(months)
    agreement_ids = list(Agreement.objects.order_by("id").values_list("id", flat=True))
    # Without months: the agreements and their KPIs only (the observations are the above).
    inputs = load_chunk_inputs(agreement_ids=agreement_ids, periods=[])
    stages, plans, _ = _program_inputs()

    agreement_kpis, kpis_reached = _kpi_rows_changed(inputs["agreement_kpis"], whatif)
    if whatif.kpi_changes:
        problems += _kpi_problems(agreement_kpis, kpis_reached, _agreement_codes())
    agreements = inputs["agreements"].copy()
    agreements_reached = np.zeros(len(agreements), dtype=bool)
    if whatif.category_weights is not None:
        agreements_reached = (np.ones(len(agreements), dtype=bool)
                              if whatif.agreement_id is None else
                              agreements["agreement_id"].to_numpy() == whatif.agreement_id)
        for column, weight in zip(WEIGHT_COLUMNS, whatif.category_weights, strict=True):
            values = agreements[column].to_numpy(dtype="float64").copy()
            values[agreements_reached] = float(weight)
            agreements[column] = values
    plans, plans_reached = _plans_changed(plans, whatif)
    if whatif.plan_changes:
        problems += _plan_problems(plans, plans_reached)
    if problems:
        raise ValidationError(problems)

    closed = closed_state(open_from=months.open_from)
    run = ScoringRun.objects.current()
    published = _published_rows(run=run, open_from=months.open_from)
    if months.periods:
        _, scorecards = rules.score_agreements(
            observations=observations, agreement_kpis=agreement_kpis,
            agreements=agreements, periods=months.periods, closed=closed)
        simulated = rules.assign_tiers(
            scorecards=scorecards, stages=stages, policy=settings["policy"],
            strategic_threshold=settings["strategic_threshold"],
            growth_threshold=settings["growth_threshold"], hysteresis=settings["hysteresis"],
            incentives=plans, closed=closed)
        simulated = simulated[["agreement_id", "period", "has_scorecard", "overall", "rolling",
                               "tier", "payout"]]
    else:
        simulated = published.iloc[:0]
    rows = simulated.merge(published, on=["agreement_id", "period"], how="outer",
                           suffixes=("_simulated", "_now"), sort=True)
    for name in ("has_scorecard_now", "has_scorecard_simulated"):
        rows[name] = rows[name].fillna(False).astype(bool)
    for name in ("tier_now", "tier_simulated"):
        rows[name] = rows[name].astype(object).where(rows[name].notna(), None)
    kpi_changed = np.zeros(len(agreement_kpis), dtype=bool)
    for name in whatif.kpi_changes:
        kpi_changed |= (agreement_kpis[name].to_numpy()
                        != inputs["agreement_kpis"][name].to_numpy())
    return Simulation(
        run_id=run.pk if run else None, last_closed=months.last_closed,
        periods=months.periods, rows=rows, changed_kpis=int(kpi_changed.sum()),
        changed_agreements=int(agreements_reached.sum()),
        changed_plans=int(plans_reached.sum()) if whatif.plan_changes else 0,
        seconds=time.perf_counter() - started)


# ---- What a page shows of a simulation ---------------------------------------------------


def tier_name(tier: str | None) -> str:
    return tier or NO_TIER


def whatif_tier_moves(*, simulation: Simulation, month: str) -> dict[tuple[str, str], int]:
    """How many agreements have each (tier now, tier simulated) in `month` ("none": no tier)."""
    rows = simulation.month_rows(month)
    return dict(Counter(zip(map(tier_name, rows["tier_now"]),
                            map(tier_name, rows["tier_simulated"]), strict=True)))


def whatif_payout_total(*, simulation: Simulation) -> tuple[float, float]:
    """The payouts due over the open months: (now, simulated); NaN (no plan) counts as 0."""
    rows = simulation.rows
    return (float(np.nansum(rows["payout_now"].to_numpy(dtype="float64"))),
            float(np.nansum(rows["payout_simulated"].to_numpy(dtype="float64"))))


def whatif_summary(*, simulation: Simulation, month: str) -> dict:
    """Tier moves in `month` and the payout difference over the open months, as plain values."""
    moves = whatif_tier_moves(simulation=simulation, month=month)
    now, simulated = whatif_payout_total(simulation=simulation)
    return {
        "month": month,
        "open_months": [simulation.periods[0], simulation.periods[-1]]
        if simulation.periods else [],
        "tier_moves": sum(count for (before, after), count in moves.items() if before != after),
        "moves": {f"{before}>{after}": count for (before, after), count in sorted(moves.items())
                  if before != after},
        "payout_now": round(now, 2),
        "payout_simulated": round(simulated, 2),
        "payout_difference": round(simulated - now, 2),
    }


# ---- Saving the changes -----------------------------------------------------------------


def _changed_kpi_rows(whatif: WhatIf) -> list[tuple[AgreementKPI, dict]]:
    if not whatif.kpi_changes:
        return []
    rows = AgreementKPI.objects.select_related("agreement", "kpi").order_by("agreement_id",
                                                                             "kpi_id")
    if whatif.agreement_id is not None:
        rows = rows.filter(agreement_id=whatif.agreement_id)
    if whatif.kpi_id is not None:
        rows = rows.filter(kpi_id=whatif.kpi_id)
    rows = list(rows)
    frame = pd.DataFrame({
        "agreement_id": [row.agreement_id for row in rows],
        "kpi_id": [row.kpi_id for row in rows],
        **{name: pd.Series([getattr(row, name) for row in rows], dtype="float64")
           for name in KPI_FIELDS},
    })
    # The same arithmetic as the simulation's, so the saved values are the simulated ones.
    changed, _ = _kpi_rows_changed(frame, replace(whatif, agreement_id=None, kpi_id=None))
    return [(row, {name: float(changed[name].iloc[index]) for name in whatif.kpi_changes})
            for index, row in enumerate(rows)]


def _changed_plans(whatif: WhatIf) -> list[tuple[IncentivePlan, dict]]:
    if not whatif.plan_changes:
        return []
    plans = IncentivePlan.objects.select_related("agreement").order_by("agreement_id")
    if whatif.agreement_id is not None:
        plans = plans.filter(agreement_id=whatif.agreement_id)
    plans = list(plans)
    frame = pd.DataFrame({
        "agreement_id": [plan.agreement_id for plan in plans],
        "baseline": pd.Series([plan.baseline_score for plan in plans], dtype="float64"),
        **{column: pd.Series([float(getattr(plan, column)) for plan in plans], dtype="float64")
           for column in MULTIPLIER_COLUMNS},
    })
    changed, _ = _plans_changed(frame, replace(whatif, agreement_id=None))
    result = []
    for index, plan in enumerate(plans):
        fields = {f"multiplier_{tier}": Decimal(repr(float(changed[f"multiplier_{tier}"]
                                                           .iloc[index])))
                  .quantize(MULTIPLIER_PLACES) for tier in whatif.multipliers}
        if whatif.baseline is not None:
            fields["baseline_score"] = float(changed["baseline"].iloc[index])
        result.append((plan, fields))
    return result


def _writes(whatif: WhatIf) -> list[tuple[Callable, dict]]:
    """The service calls that apply `whatif`, in order: (service, its keyword arguments)."""
    writes: list[tuple[Callable, dict]] = []
    if whatif.settings_changes:
        writes.append((program_services.program_settings_update, whatif.settings_changes))
    if whatif.category_weights is not None:
        agreements = Agreement.objects.order_by("id")
        if whatif.agreement_id is not None:
            agreements = agreements.filter(pk=whatif.agreement_id)
        weights = dict(zip(WEIGHT_COLUMNS, whatif.category_weights, strict=True))
        writes += [(program_services.agreement_update, {"agreement": agreement, **weights})
                   for agreement in agreements]
    writes += [(program_services.agreement_kpi_update, {"agreement_kpi": row, **fields})
               for row, fields in _changed_kpi_rows(whatif)]
    writes += [(governance_services.incentive_plan_save, {"agreement": plan.agreement, **fields})
               for plan, fields in _changed_plans(whatif)
               if {name: getattr(plan, name) for name in fields} != fields]
    return writes


def whatif_writes_count(*, whatif: WhatIf) -> int:
    """How many objects saving `whatif` writes at most (one service call each)."""
    count = 1 if whatif.settings_changes else 0
    if whatif.category_weights is not None:
        count += 1 if whatif.agreement_id is not None else Agreement.objects.count()
    if whatif.kpi_changes:
        rows = AgreementKPI.objects.all()
        if whatif.agreement_id is not None:
            rows = rows.filter(agreement_id=whatif.agreement_id)
        if whatif.kpi_id is not None:
            rows = rows.filter(kpi_id=whatif.kpi_id)
        count += rows.count()
    if whatif.plan_changes:
        plans = IncentivePlan.objects.all()
        if whatif.agreement_id is not None:
            plans = plans.filter(agreement_id=whatif.agreement_id)
        count += plans.count()
    return count


def whatif_reason(*, summary: dict) -> str:
    """The reason each history row of a save carries: "What-if: 3 tier moves in 2025-04,
    payout over the open months +1,250.00 USD" (the currency when every plan has one)."""
    currencies = list(IncentivePlan.objects.order_by().values_list("currency", flat=True)
                      .distinct()[:2])
    currency = f" {currencies[0]}" if len(currencies) == 1 else ""
    moves = summary["tier_moves"]
    return (f"What-if: {moves:,} tier move{'' if moves == 1 else 's'} in {summary['month']}, "
            f"payout over the open months {summary['payout_difference']:+,.2f}{currency}")


def whatif_apply(*, whatif: WhatIf, simulation: Simulation, month: str, user,
                 request: HttpRequest | None = None,
                 progress: Callable[[int, str], None] | None = None) -> int:
    """Apply the what-if through the program's services (each change with its history and
    audit event), in one transaction, and record the simulation's summary in one more audit
    event; return the number of objects changed. The next scoring run scores the open months
    with the new values; closed months keep their frozen results. `progress(percent, stage)`
    is told every PROGRESS_EVERY objects."""
    if whatif.is_empty():
        return 0
    summary = whatif_summary(simulation=simulation, month=month)
    saved = 0
    with transaction.atomic(), change_reason(whatif_reason(summary=summary)):
        writes = _writes(whatif)
        for index, (service, fields) in enumerate(writes, start=1):
            result = service(user=user, request=request, **fields)
            # Updates return None when nothing changed; plans return the plan.
            saved += result is not None
            if progress and (index % PROGRESS_EVERY == 0 or index == len(writes)):
                progress(int(95 * index / len(writes)),
                         f"saving ({index:,} of {len(writes):,} objects)")
        scope = (Agreement.objects.get(pk=whatif.agreement_id).code
                 if whatif.agreement_id is not None else "the whole program")
        audit_record(
            action=AuditAction.PROGRAM_CHANGED, request=request, user=user,
            target=f"What-if saved for {scope}",
            detail={"whatif": whatif.described(), "summary": summary, "objects_changed": saved,
                    "run": simulation.run_id, "last_closed": simulation.last_closed})
    return saved


# ---- Preparing the period values in a task, with progress --------------------------------

JOB_SECONDS = 3600


def _job_key(job_id: str) -> str:
    return f"whatif:job:{job_id}"


def whatif_job_new() -> str:
    """A new job of preparing the period values, queued: its id (random, not guessable)."""
    job_id = uuid.uuid4().hex
    cache.set(_job_key(job_id), {"progress": 0, "stage": "waiting for a worker", "done": False,
                                 "error": ""}, JOB_SECONDS)
    return job_id


def whatif_job_status(*, job_id: str) -> dict | None:
    """{progress, stage, done, error} of a job; None when there is no such job (or it expired)."""
    return cache.get(_job_key(job_id))


def whatif_job_run(*, job_id: str) -> None:
    """Prepare the period values, telling the job's progress; safe to run twice."""
    key = _job_key(job_id)

    def progress(percent: int, stage: str) -> None:
        cache.set(key, {"progress": percent, "stage": stage, "done": False, "error": ""},
                  JOB_SECONDS)

    try:
        whatif_inputs_prepare(progress=progress)
    except Exception as error:
        cache.set(key, {"progress": 100, "stage": "failed", "done": True,
                        "error": f"{type(error).__name__}: {error}"}, JOB_SECONDS)
        raise
    cache.set(key, {"progress": 100, "stage": "done", "done": True, "error": ""}, JOB_SECONDS)


def whatif_job_failed(*, job_id: str, error: str) -> None:
    """Record that a job could not be queued or run."""
    cache.set(_job_key(job_id), {"progress": 100, "stage": "failed", "done": True,
                                 "error": error}, JOB_SECONDS)


# ---- Saving what was confirmed, once ----------------------------------------------------

STATE_SALT = "scoring.whatif.state"
STATE_CHANGED = "The program changed since you confirmed: simulate again."


def _state(*, whatif: WhatIf, month: str) -> dict:
    """What a confirmation was asked in: a save applies only in the same state. JSON values."""
    run = ScoringRun.objects.current()
    return json.loads(json.dumps({
        "run": run.pk if run else None, "program": program_version(),
        "last_closed": last_closed_month() or "", "changes": whatif.as_json(), "month": month}))


def whatif_state_token(*, whatif: WhatIf, month: str) -> str:
    """The signed state of the program as `whatif` is confirmed now, for the confirmation."""
    return signing.dumps(_state(whatif=whatif, month=month), salt=STATE_SALT, compress=True)


def _token_state(token: str) -> dict | None:
    try:
        # No older than a job is kept: a replayed token always finds its job.
        return signing.loads(token, salt=STATE_SALT, max_age=JOB_SECONDS)
    except signing.BadSignature:
        return None


def whatif_state_job(*, token: str, whatif: WhatIf, month: str) -> str | None:
    """The id of the save job of a confirmation (one per confirmed state, so a replayed POST
    names the same job); None when `token` is not a valid confirmation of these changes."""
    state = _token_state(token)
    if state is None or state.get("changes") != json.loads(json.dumps(whatif.as_json())) \
            or state.get("month") != month:
        return None
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:32]


def whatif_state_check(*, token: str) -> None:
    """Raise ValidationError(STATE_CHANGED) unless the program is as it was confirmed: the same
    published run, last closed month and change counter (no change of the program since)."""
    state = _token_state(token)
    if state is None or state != _state(whatif=WhatIf.from_json(state["changes"]),
                                        month=state["month"]):
        raise ValidationError(STATE_CHANGED)


def whatif_job_claim(*, job_id: str) -> bool:
    """Claim the save job `job_id`: False when it is claimed already (a replayed POST)."""
    return cache.add(_job_key(job_id), {"progress": 0, "stage": "waiting for a worker",
                                        "done": False, "error": ""}, JOB_SECONDS)


def whatif_job_release(*, job_id: str) -> None:
    """Forget a claimed job that never ran (the queue was down), so the same confirmation may
    be sent again."""
    cache.delete(_job_key(job_id))


def whatif_save_job_run(*, job_id: str, token: str, user_id: int,
                        request: HttpRequest | None = None) -> None:
    """Simulate and save the confirmed changes of `token` as `whatif_apply` does, telling the
    job's progress; refused (STATE_CHANGED) when the program is no longer as confirmed. Runs
    once per job: a second delivery finds the job claimed and does nothing, so a change in
    percent is never applied twice."""
    from django.contrib.auth import get_user_model

    key = _job_key(job_id)
    if not cache.add(f"{key}:claimed", True, JOB_SECONDS):
        return

    def progress(percent: int, stage: str) -> None:
        cache.set(key, {"progress": percent, "stage": stage, "done": False, "error": ""},
                  JOB_SECONDS)

    try:
        whatif_state_check(token=token)
        state = _token_state(token)
        whatif = WhatIf.from_json(state["changes"])
        progress(2, "simulating")
        simulation = whatif_simulate(whatif=whatif)
        user = get_user_model().objects.get(pk=user_id)
        saved = whatif_apply(whatif=whatif, simulation=simulation, month=state["month"],
                             user=user, request=request, progress=progress)
    except ValidationError as refused:
        whatif_job_failed(job_id=job_id, error=" ".join(refused.messages))
        return
    except Exception as error:
        whatif_job_failed(job_id=job_id, error=f"{type(error).__name__}: {error}")
        raise
    cache.set(key, {"progress": 100, "stage": "done", "done": True, "error": "",
                    "saved": saved}, JOB_SECONDS)
