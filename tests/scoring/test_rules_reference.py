"""Differential tests: scoring/rules.py against a naive reference written from DOMAIN.md.

The reference below was written from the text of DOMAIN.md § "Scoring (rules version 1)" and
§ "Incentives (rules version 1)" only, without reading the implementation's internals: plain
Python, dicts and loops, one agreement and one month at a time, its own constants. Only the
public interface of ``rules`` (``score_agreements``, ``assign_tiers`` and the frames they take
and return) is used.

Floats are compared with ``math.isclose(rel_tol=1e-12, abs_tol=1e-9)`` (the reference adds in
another order than the implementation) and NaN-ness exactly.

Discrete decisions taken on floats (rank by R, R ≥ threshold, R ≥ baseline, overall < 50) are
compared only where they cannot depend on the order of summation. A decision is *clear* when
either the implementation computed bit-for-bit the same inputs as the reference (then it must
decide the same), or the reference's inputs are more than ``MARGIN`` = 1e-8 apart from each
other / from the boundary: the two implementations' values are asserted to agree within 1e-9
(see ``close``; R and overall lie in [0, 120], so 1e-12 relative is below 1e-9), so a gap
of more than 1e-8 keeps its sign in both. Exact ties produced the same way in both (for example
two identical agreements, or scores clamped at 0 or 120) stay clear and are checked, and the
generator deliberately makes them frequent (integer grid, clones of agreements, clamping).
Because the tier of a month depends on every earlier candidate (hysteresis), an agreement's
tier and payout are compared only up to its first month with an unclear candidate.
"""

import calendar
import datetime
import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring import rules

# --- The reference's own constants, straight from DOMAIN.md (not imported from rules). ---

CATEGORIES = ("financial", "strategic", "operational", "relationship")
DEFAULT_CATEGORY_WEIGHTS = {
    "financial": 30.0,
    "strategic": 25.0,
    "operational": 25.0,
    "relationship": 20.0,
}
AGGREGATIONS = ("sum", "mean", "last")
SIDES = ("host", "partner")
STAGES = ("prospect", "pilot", "active", "under_review", "exiting", "ended")
CANDIDATE_STAGES = ("pilot", "active", "under_review")
STRATEGIC, GROWTH, TRANSACTIONAL = "strategic", "growth", "transactional"
DEFAULT_BASELINE = 60.0
DEFAULT_MULTIPLIERS = {TRANSACTIONAL: 1.0, GROWTH: 1.25, STRATEGIC: 1.5}
NAN = float("nan")

MARGIN = 1e-8  # see the module docstring


# --- Reference implementation. ---
#
# A program is a plain dict:
#   agreements: [{"id", "stage", "weights": {category: W}, "plan": None | {...},
#                 "kpis": [{"kpi_id", "category", "aggregation", "source", "target", "floor",
#                           "weight"}]}]
#   observations: [{"agreement", "kpi", "side", "date": datetime.date, "value", "recorded"}]
#   policy, strategic_threshold, growth_threshold, hysteresis, plan_columns ("full" | "base")


def month_of(day: datetime.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def months_from_to(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:])
    months = []
    while True:
        key = f"{year:04d}-{month:02d}"
        months.append(key)
        if key == last:
            return months
        month += 1
        if month == 13:
            year, month = year + 1, 1


def ref_months(program: dict) -> list[str]:
    """Every month from the earliest to the latest month with any observation."""
    keys = [month_of(item["date"]) for item in program["observations"]]
    if not keys:
        return []
    return months_from_to(min(keys), max(keys))


def ref_period_value(observations: list[dict], aggregation: str) -> float | None:
    """Rule 1: sum, mean or last (latest date, then latest recorded); None when missing."""
    if not observations:
        return None
    if aggregation == "last":
        latest = observations[0]
        for item in observations[1:]:
            if (item["date"], item["recorded"]) > (latest["date"], latest["recorded"]):
                latest = item
        return latest["value"]
    total = 0.0
    for item in observations:
        total += item["value"]
    if aggregation == "sum":
        return total
    return total / len(observations)


def ref_kpi_score(actual: float | None, target: float, floor: float) -> float:
    """Rule 2: 100 × clamp((actual − F) / (T − F), 0, 1.2)."""
    if actual is None:
        return NAN
    ratio = (actual - floor) / (target - floor)
    if ratio < 0.0:
        ratio = 0.0
    if ratio > 1.2:
        ratio = 1.2
    return 100.0 * ratio


def reference_scores(program: dict) -> tuple[list[str], dict, dict]:
    """Rules 1–6: months, KPI rows by (agreement, KPI, month), cards by (agreement, month)."""
    months = ref_months(program)
    kpi_rows: dict = {}
    cards: dict = {}
    for agreement in program["agreements"]:
        a = agreement["id"]
        weights = agreement["weights"]
        total_weight = 0.0
        for category in CATEGORIES:
            total_weight += weights[category]
        for month in months:
            score_of = {}
            for kpi in agreement["kpis"]:
                own, other = [], []
                for item in program["observations"]:
                    if item["agreement"] != a or item["kpi"] != kpi["kpi_id"]:
                        continue
                    if month_of(item["date"]) != month:
                        continue
                    (own if item["side"] == kpi["source"] else other).append(item)
                actual = ref_period_value(own, kpi["aggregation"])
                other_actual = ref_period_value(other, kpi["aggregation"])
                score = ref_kpi_score(actual, kpi["target"], kpi["floor"])
                score_of[kpi["kpi_id"]] = score
                if own or other:
                    kpi_rows[(a, kpi["kpi_id"], month)] = {
                        "actual": NAN if actual is None else actual,
                        "other_side_actual": NAN if other_actual is None else other_actual,
                        "score": score,
                    }
            card = {}
            coverage = 0.0
            for category in CATEGORIES:
                members = [kpi for kpi in agreement["kpis"] if kpi["category"] == category]
                present = [kpi for kpi in members if not math.isnan(score_of[kpi["kpi_id"]])]
                if weights[category] == 0 or not present:
                    card[category] = NAN  # missing, or ignored altogether (weight 0)
                    continue
                weighted, weight_sum = 0.0, 0.0
                for kpi in present:
                    weighted += kpi["weight"] * score_of[kpi["kpi_id"]]
                    weight_sum += kpi["weight"]
                card[category] = weighted / weight_sum
                category_kpi_weight = 0.0
                for kpi in members:
                    category_kpi_weight += kpi["weight"]
                for kpi in present:
                    coverage += (
                        weights[category] * kpi["weight"] / category_kpi_weight / total_weight
                    )
            weighted, weight_sum = 0.0, 0.0
            for category in CATEGORIES:
                if not math.isnan(card[category]):
                    weighted += weights[category] * card[category]
                    weight_sum += weights[category]
            has_scorecard = weight_sum > 0
            incomplete = has_scorecard and coverage < 0.5 - 1e-9
            card.update(
                overall=weighted / weight_sum if has_scorecard else NAN,
                coverage=coverage,
                has_scorecard=has_scorecard,
                incomplete=incomplete,
                complete=has_scorecard and not incomplete,
            )
            cards[(a, month)] = card
        for index, month in enumerate(months):
            complete_overalls = [
                cards[(a, earlier)]["overall"]
                for earlier in months[max(0, index - 2) : index + 1]
                if cards[(a, earlier)]["complete"]
            ]
            if len(complete_overalls) >= 2:
                total = 0.0
                for value in complete_overalls:
                    total += value
                cards[(a, month)]["rolling"] = total / len(complete_overalls)
            else:
                cards[(a, month)]["rolling"] = NAN
    return months, kpi_rows, cards


def ref_ranked(program: dict, cards: dict, month: str) -> dict[int, float]:
    """The agreements that get a candidate in `month`, with their R."""
    return {
        agreement["id"]: cards[(agreement["id"], month)]["rolling"]
        for agreement in program["agreements"]
        if agreement["stage"] in CANDIDATE_STAGES
        and not math.isnan(cards[(agreement["id"], month)]["rolling"])
    }


def reference_tiers(program: dict, months: list[str], cards: dict) -> dict:
    """Rules 7–9 and incentives: (agreement, month) → candidate_tier, tier, at_risk, payout."""
    candidates = {}
    for month in months:
        ranked = ref_ranked(program, cards, month)
        n = len(ranked)
        for a, rolling in ranked.items():
            if program["policy"] == "percentile":
                rank = 1
                for other in ranked.values():
                    if other > rolling:
                        rank += 1
                if 10 * (rank - 1) < n:
                    candidates[(a, month)] = STRATEGIC
                elif 10 * (rank - 1) < 3 * n:
                    candidates[(a, month)] = GROWTH
                else:
                    candidates[(a, month)] = TRANSACTIONAL
            elif rolling >= program["strategic_threshold"]:
                candidates[(a, month)] = STRATEGIC
            elif rolling >= program["growth_threshold"]:
                candidates[(a, month)] = GROWTH
            else:
                candidates[(a, month)] = TRANSACTIONAL
    result = {}
    for agreement in program["agreements"]:
        a = agreement["id"]
        tier, streak = None, 0
        for index, month in enumerate(months):
            candidate = candidates.get((a, month))
            if tier is None:
                if candidate is not None:
                    tier, streak = candidate, 0
            elif candidate is None or candidate == tier:
                streak = 0
            else:
                streak += 1
                if streak >= program["hysteresis"]:
                    tier, streak = candidate, 0
            at_risk = index >= 2 and all(
                cards[(a, earlier)]["complete"] and cards[(a, earlier)]["overall"] < 50
                for earlier in months[index - 2 : index + 1]
            )
            card = cards[(a, month)]
            plan = agreement["plan"]
            if plan is None:
                payout = NAN
            elif (
                card["complete"]
                and tier is not None
                and not math.isnan(card["rolling"])
                and card["rolling"] >= plan.get("baseline", DEFAULT_BASELINE)
            ):
                multiplier = plan.get("multipliers", DEFAULT_MULTIPLIERS)[tier]
                payout = plan["base"] * multiplier * min(card["overall"], 120.0) / 100.0
            else:
                payout = 0.0
            result[(a, month)] = {
                "candidate_tier": candidate,
                "tier": tier,
                "at_risk": at_risk,
                "payout": payout,
            }
    return result


# --- Frames for the implementation (column names and dtypes as in test_rules.py). ---


def frames(program: dict) -> dict:
    observations = pd.DataFrame(
        [
            {
                "agreement_id": item["agreement"],
                "kpi_id": item["kpi"],
                "side": item["side"],
                "date": pd.Timestamp(item["date"]),
                "value": float(item["value"]),
                "recorded_order": item["recorded"],
            }
            for item in program["observations"]
        ],
        columns=["agreement_id", "kpi_id", "side", "date", "value", "recorded_order"],
    )
    observations["date"] = pd.to_datetime(observations["date"])
    observations = observations.astype(
        {"agreement_id": "int64", "kpi_id": "int64", "value": "float64", "recorded_order": "int64"}
    )
    agreement_kpis = pd.DataFrame(
        [
            {
                "agreement_id": agreement["id"],
                "kpi_id": kpi["kpi_id"],
                "category": kpi["category"],
                "aggregation": kpi["aggregation"],
                "source": kpi["source"],
                "target": float(kpi["target"]),
                "floor": float(kpi["floor"]),
                "weight": float(kpi["weight"]),
            }
            for agreement in program["agreements"]
            for kpi in agreement["kpis"]
        ]
    )
    agreements = pd.DataFrame(
        [
            {
                "agreement_id": agreement["id"],
                **{
                    f"weight_{category}": float(agreement["weights"][category])
                    for category in CATEGORIES
                },
            }
            for agreement in program["agreements"]
        ]
    )
    stages = pd.DataFrame(
        {
            "agreement_id": [agreement["id"] for agreement in program["agreements"]],
            "stage": [agreement["stage"] for agreement in program["agreements"]],
        }
    )
    plans = [agreement for agreement in program["agreements"] if agreement["plan"] is not None]
    incentives = None
    if plans and program["plan_columns"] == "base":
        incentives = pd.DataFrame(
            {
                "agreement_id": [agreement["id"] for agreement in plans],
                "base_amount": [float(agreement["plan"]["base"]) for agreement in plans],
            }
        )
    elif plans:
        incentives = pd.DataFrame(
            [
                {
                    "agreement_id": agreement["id"],
                    "base_amount": float(agreement["plan"]["base"]),
                    "baseline": float(agreement["plan"]["baseline"]),
                    **{
                        f"multiplier_{tier}": float(agreement["plan"]["multipliers"][tier])
                        for tier in (TRANSACTIONAL, GROWTH, STRATEGIC)
                    },
                }
                for agreement in plans
            ]
        )
    return {
        "observations": observations,
        "agreement_kpis": agreement_kpis,
        "agreements": agreements,
        "stages": stages,
        "incentives": incentives,
    }


def run_rules(program: dict, months: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    inputs = frames(program)
    kpi_scores, scorecards = rules.score_agreements(
        observations=inputs["observations"],
        agreement_kpis=inputs["agreement_kpis"],
        agreements=inputs["agreements"],
        periods=months,
    )
    tiers = rules.assign_tiers(
        scorecards=scorecards,
        stages=inputs["stages"],
        policy=program["policy"],
        strategic_threshold=program["strategic_threshold"],
        growth_threshold=program["growth_threshold"],
        hysteresis=program["hysteresis"],
        incentives=inputs["incentives"],
    )
    return kpi_scores, tiers


# --- Comparison. ---


def close(expected: float, actual: float) -> bool:
    expected, actual = float(expected), float(actual)
    if math.isnan(expected) or math.isnan(actual):
        return math.isnan(expected) and math.isnan(actual)
    return math.isclose(expected, actual, rel_tol=1e-12, abs_tol=1e-9)


def clear_of(reference: float, implementation: float, boundary: float) -> bool:
    """A comparison with `boundary` that cannot depend on the order of summation."""
    return reference == implementation or abs(reference - boundary) > MARGIN


def clear_pair(ref_a: float, impl_a: float, ref_b: float, impl_b: float) -> bool:
    """A comparison of two values that cannot depend on the order of summation."""
    return (ref_a == impl_a and ref_b == impl_b) or abs(ref_a - ref_b) > MARGIN


def tier_name(value) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def compare(program: dict) -> dict:
    """Assert the implementation agrees with the reference; return counts of what was checked."""
    months, ref_kpis, ref_cards = reference_scores(program)
    ref_tiers = reference_tiers(program, months, ref_cards)
    kpi_scores, tiers = run_rules(program, months)
    errors: list[str] = []
    checked = {"tier": 0, "tier_skipped": 0, "candidate": 0}

    # KPI rows: one per (agreement KPI, month) with data of either side; none of them differs.
    impl_kpis = {
        (int(item.agreement_id), int(item.kpi_id), item.period): item
        for item in kpi_scores.itertuples(index=False)
    }
    if len(impl_kpis) != len(kpi_scores):
        errors.append("duplicate KPI rows")
    for key in sorted(set(ref_kpis) - set(impl_kpis)):
        errors.append(f"KPI row {key} missing from kpi_scores")
    missing_kpi = {"actual": NAN, "other_side_actual": NAN, "score": NAN}
    for key, item in impl_kpis.items():
        expected = ref_kpis.get(key, missing_kpi)
        for field in ("actual", "other_side_actual", "score"):
            if not close(expected[field], getattr(item, field)):
                errors.append(
                    f"KPI {key} {field}: spec {expected[field]!r}, rules {getattr(item, field)!r}"
                )

    # Scorecards: dense agreement × month.
    impl_cards = {
        (int(item["agreement_id"]), item["period"]): item for item in tiers.to_dict("records")
    }
    expected_keys = {
        (agreement["id"], month) for agreement in program["agreements"] for month in months
    }
    if set(impl_cards) != expected_keys or len(tiers) != len(expected_keys):
        errors.append(f"scorecard rows {sorted(impl_cards)} != {sorted(expected_keys)}")
    for key in sorted(expected_keys & set(impl_cards)):
        expected, actual = ref_cards[key], impl_cards[key]
        for field in (*CATEGORIES, "overall", "coverage", "rolling"):
            if not close(expected[field], actual[field]):
                errors.append(
                    f"scorecard {key} {field}: spec {expected[field]!r}, rules {actual[field]!r}"
                )
        for field in ("has_scorecard", "incomplete", "complete"):
            if bool(expected[field]) != bool(actual[field]):
                errors.append(
                    f"scorecard {key} {field}: spec {expected[field]}, rules {actual[field]}"
                )
    if errors:
        pytest.fail("\n".join(errors[:30]))

    # Tiers, flags and payouts, where the decisions are clear (module docstring).
    def rolling_pair(a: int, month: str) -> tuple[float, float]:
        return ref_cards[(a, month)]["rolling"], float(impl_cards[(a, month)]["rolling"])

    for agreement in program["agreements"]:
        a = agreement["id"]
        history_clear = True
        for index, month in enumerate(months):
            key = (a, month)
            expected, actual = ref_tiers[key], impl_cards[key]
            ranked = ref_ranked(program, ref_cards, month)
            candidate_clear = True
            if a in ranked:
                ref_r, impl_r = rolling_pair(a, month)
                if program["policy"] == "percentile":
                    candidate_clear = all(
                        clear_pair(ref_r, impl_r, *rolling_pair(other, month))
                        for other in ranked
                        if other != a
                    )
                else:
                    candidate_clear = clear_of(
                        ref_r, impl_r, program["strategic_threshold"]
                    ) and clear_of(ref_r, impl_r, program["growth_threshold"])
            if candidate_clear:
                checked["candidate"] += 1
                if expected["candidate_tier"] != tier_name(actual["candidate_tier"]):
                    errors.append(
                        f"{key} candidate_tier: spec {expected['candidate_tier']}, "
                        f"rules {actual['candidate_tier']}"
                    )
            history_clear = history_clear and candidate_clear
            if history_clear:
                checked["tier"] += 1
                if expected["tier"] != tier_name(actual["tier"]):
                    errors.append(f"{key} tier: spec {expected['tier']}, rules {actual['tier']}")
            else:
                checked["tier_skipped"] += 1
            window = months[max(0, index - 2) : index + 1]
            risk_clear = all(
                not ref_cards[(a, earlier)]["complete"]
                or clear_of(
                    ref_cards[(a, earlier)]["overall"],
                    float(impl_cards[(a, earlier)]["overall"]),
                    50.0,
                )
                for earlier in window
            )
            if risk_clear and expected["at_risk"] != bool(actual["at_risk"]):
                errors.append(
                    f"{key} at_risk: spec {expected['at_risk']}, rules {actual['at_risk']}"
                )
            plan = agreement["plan"]
            payout_clear = history_clear
            if plan is not None and not math.isnan(ref_cards[key]["rolling"]):
                ref_r, impl_r = rolling_pair(a, month)
                payout_clear = payout_clear and clear_of(
                    ref_r, impl_r, plan.get("baseline", DEFAULT_BASELINE)
                )
            if payout_clear and not close(expected["payout"], actual["payout"]):
                errors.append(
                    f"{key} payout: spec {expected['payout']!r}, rules {actual['payout']!r}"
                )
    if errors:
        pytest.fail("\n".join(errors[:30]))
    return checked


# --- Generated programs. ---

WEIGHT_CUTS = [0, 0, 10, 20, 25, 30, 40, 50, 50, 60, 70, 75, 80, 90, 100, 100]
SPANS = [-80, -50, -40, -25, -10, -4, 3, 4, 7, 10, 25, 40, 50, 80, 100]
VALUES = st.one_of(
    st.integers(-20, 160).map(float),
    st.sampled_from([0.5, 12.25, 33.3, 99.5, 1e-3]),
)
DAYS = [1, 2, 15, 15, 28, 0]  # 0 stands for the last day of the month
# Shares of the way from floor to target: KPI scores on a coarse grid (exact ties, clamping).
FRACTIONS = [-0.5, 0.0, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0, 1.2, 2.0]


def kpi_values(kpi: dict):
    span = kpi["target"] - kpi["floor"]
    on_grid = st.sampled_from(FRACTIONS).map(lambda share: kpi["floor"] + share * span)
    return st.one_of(on_grid, on_grid, VALUES)


@st.composite
def category_weights(draw) -> dict[str, float]:
    if draw(st.integers(0, 4)) == 0:
        return dict(DEFAULT_CATEGORY_WEIGHTS)
    cuts = sorted(draw(st.lists(st.sampled_from(WEIGHT_CUTS), min_size=3, max_size=3)))
    shares = [cuts[0], cuts[1] - cuts[0], cuts[2] - cuts[1], 100 - cuts[2]]
    order = draw(st.permutations(CATEGORIES))
    return {category: float(share) for category, share in zip(order, shares, strict=True)}


@st.composite
def agreement_kpi(draw, kpi_id: int, position: int, weights: dict[str, float]) -> dict:
    floor = float(draw(st.integers(-20, 100)))
    # Mostly the weighted categories in turn (complete scorecards are frequent), else any.
    weighted = [category for category in CATEGORIES if weights[category] > 0]
    category = weighted[position % len(weighted)]
    return {
        "kpi_id": kpi_id,
        "category": draw(st.sampled_from([category, category, *CATEGORIES])),
        "aggregation": draw(st.sampled_from(AGGREGATIONS)),
        "source": draw(st.sampled_from(SIDES)),
        "target": floor + draw(st.sampled_from(SPANS)),
        "floor": floor,
        "weight": draw(st.sampled_from([1.0, 1.0, 2.0, 3.0, 5.0, 0.5, 2.5])),
    }


@st.composite
def incentive_plan(draw, full: bool) -> dict | None:
    if draw(st.booleans()):
        return None
    plan = {"base": draw(st.sampled_from([0.0, 100.0, 1000.0, 250.5]))}
    if full:
        plan["baseline"] = draw(st.sampled_from([DEFAULT_BASELINE, 0.0, 50.0, 75.0, 90.0]))
        plan["multipliers"] = (
            dict(DEFAULT_MULTIPLIERS)
            if draw(st.booleans())
            else {
                tier: draw(st.sampled_from([0.5, 1.0, 1.25, 2.0]))
                for tier in (TRANSACTIONAL, GROWTH, STRATEGIC)
            }
        )
    return plan


def day_in(first_month: int, offset: int, day: int) -> datetime.date:
    year, month = divmod(first_month + offset, 12)
    month += 1
    last = calendar.monthrange(year, month)[1]
    return datetime.date(year, month, day or last)


@st.composite
def programs(draw) -> dict:
    policy = draw(st.sampled_from(["percentile", "threshold"]))
    first_month = draw(st.integers(2024 * 12, 2025 * 12 + 11))  # 12 × year + month − 1
    month_count = draw(st.integers(2, 8))
    quiet = draw(st.sets(st.integers(1, month_count - 2), max_size=2)) if month_count > 2 else set()
    busy = [offset for offset in range(month_count) if offset not in quiet]
    plan_columns = draw(st.sampled_from(["full", "base"]))
    ids = draw(st.lists(st.integers(1, 40), min_size=1, max_size=6, unique=True))
    agreements, raw = [], []
    for a in ids:
        stage = draw(st.sampled_from(["active", "active", "pilot", *STAGES]))
        plan = draw(incentive_plan(plan_columns == "full"))
        if agreements and draw(st.integers(0, 3)) == 0:  # a clone: exact ties of R
            previous = agreements[-1]
            agreements.append({**previous, "id": a, "stage": stage, "plan": plan})
            raw += [(a, *item[1:]) for item in raw if item[0] == previous["id"]]
            continue
        kpi_ids = draw(st.lists(st.integers(1, 8), min_size=1, max_size=5, unique=True))
        weights = draw(category_weights())
        kpis = [
            draw(agreement_kpi(kpi_id, position, weights))
            for position, kpi_id in enumerate(kpi_ids)
        ]
        agreements.append(
            {
                "id": a,
                "stage": stage,
                "weights": weights,
                "plan": plan,
                "kpis": kpis,
            }
        )
        for kpi in kpis:
            # Mostly the source-of-truth side, in every busy month or in some of them.
            other_side = "partner" if kpi["source"] == "host" else "host"
            if draw(st.integers(0, 2)) > 0:
                offsets = busy
            else:
                offsets = sorted(draw(st.sets(st.sampled_from(busy))))
            for offset in offsets:
                for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
                    side = draw(st.sampled_from([kpi["source"]] * 3 + [other_side]))
                    value = draw(kpi_values(kpi))
                    raw.append((a, kpi["kpi_id"], side, offset, draw(st.sampled_from(DAYS)), value))
    # The first and last month of the window have data; then a little noise: an unknown
    # agreement and a KPI that is not one of the agreement's.
    for offset in (0, month_count - 1):
        agreement = draw(st.sampled_from(agreements))
        kpi = draw(st.sampled_from(agreement["kpis"]))
        raw.append(
            (
                agreement["id"],
                kpi["kpi_id"],
                draw(st.sampled_from(SIDES)),
                offset,
                draw(st.sampled_from(DAYS)),
                draw(VALUES),
            )
        )
    for a in draw(st.lists(st.sampled_from([99, *ids]), max_size=2)):
        raw.append((a, 50, "host", draw(st.sampled_from(busy)), 15, 1000.0))
    recorded = draw(st.permutations(range(len(raw))))
    observations = [
        {
            "agreement": a,
            "kpi": kpi_id,
            "side": side,
            "date": day_in(first_month, offset, day),
            "value": value,
            "recorded": order,
        }
        for (a, kpi_id, side, offset, day, value), order in zip(raw, recorded, strict=True)
    ]
    if draw(st.booleans()):
        growth, strategic = 70.0, 85.0
    else:
        growth = draw(st.sampled_from([0.0, 50.0, 60.0, 70.0, 75.0, 100.0]))
        strategic = growth + draw(st.sampled_from([0.0, 5.0, 15.0, 25.0]))
    return {
        "agreements": agreements,
        "observations": observations,
        "policy": policy,
        "strategic_threshold": strategic,
        "growth_threshold": growth,
        "hysteresis": draw(st.integers(1, 3)),
        "plan_columns": plan_columns,
    }


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(program=programs())
def test_rules_agree_with_the_naive_reference(program):
    compare(program)


# --- Deterministic regressions for the trickiest rule texts. ---

JAN, FEB, MAR, APR, MAY = "2025-01", "2025-02", "2025-03", "2025-04", "2025-05"
ONLY_FINANCIAL = {"financial": 100.0, "strategic": 0.0, "operational": 0.0, "relationship": 0.0}


def simple_program(values: dict[int, dict[str, float]], **options) -> dict:
    """One financial KPI (target 100, floor 0, host) per agreement: overall = min(value, 120)."""
    agreements = [
        {
            "id": a,
            "stage": "active",
            "weights": dict(ONLY_FINANCIAL),
            "plan": None,
            "kpis": [
                {
                    "kpi_id": 1,
                    "category": "financial",
                    "aggregation": "sum",
                    "source": "host",
                    "target": 100.0,
                    "floor": 0.0,
                    "weight": 1.0,
                }
            ],
        }
        for a in values
    ]
    observations = [
        {
            "agreement": a,
            "kpi": 1,
            "side": "host",
            "date": datetime.date(int(month[:4]), int(month[5:]), 15),
            "value": value,
            "recorded": 0,
        }
        for a, by_month in values.items()
        for month, value in by_month.items()
    ]
    return {
        "agreements": agreements,
        "observations": observations,
        "policy": "threshold",
        "strategic_threshold": 85.0,
        "growth_threshold": 70.0,
        "hysteresis": 2,
        "plan_columns": "base",
        **options,
    }


def rows_by_month(program: dict) -> dict:
    months, _, _ = reference_scores(program)
    _, tiers = run_rules(program, months)
    return {item["period"]: item for item in tiers.to_dict("records")}


def test_coverage_of_exactly_one_half_is_complete():
    # Financial 40 over KPIs of weights 3, 7, 7 plus strategic 10: 0.4 + 0.1 = 0.5, which the
    # naive left-to-right sum gives as 0.4999999999999999.
    def kpi(kpi_id, category, weight):
        return {
            "kpi_id": kpi_id,
            "category": category,
            "aggregation": "sum",
            "source": "host",
            "target": 100.0,
            "floor": 0.0,
            "weight": weight,
        }

    program = simple_program({1: {}})
    program["agreements"][0].update(
        weights={"financial": 40.0, "strategic": 10.0, "operational": 25.0, "relationship": 25.0},
        kpis=[
            kpi(1, "financial", 3.0),
            kpi(2, "financial", 7.0),
            kpi(3, "financial", 7.0),
            kpi(4, "strategic", 1.0),
            kpi(5, "operational", 1.0),
        ],
    )
    program["observations"] = [
        {
            "agreement": 1,
            "kpi": kpi_id,
            "side": "host",
            "date": datetime.date(2025, 1, 15),
            "value": 50.0,
            "recorded": kpi_id,
        }
        for kpi_id in (1, 2, 3, 4)
    ]
    _, _, cards = reference_scores(program)
    assert cards[(1, JAN)]["coverage"] == 0.4999999999999999  # the reference's own sum
    assert cards[(1, JAN)]["complete"]
    jan = rows_by_month(program)[JAN]
    assert close(0.5, jan["coverage"])
    assert jan["complete"] and not jan["incomplete"] and jan["has_scorecard"]
    compare(program)


def test_rolling_is_defined_in_a_month_without_scorecard():
    # Jan and Feb complete, nothing in Mar (only the partner side reports), Apr complete.
    program = simple_program({1: {JAN: 60.0, FEB: 90.0, APR: 30.0}})
    program["observations"].append(
        {
            "agreement": 1,
            "kpi": 1,
            "side": "partner",
            "date": datetime.date(2025, 3, 3),
            "value": 500.0,
            "recorded": 1,
        }
    )
    rows = rows_by_month(program)
    assert not rows[MAR]["has_scorecard"] and math.isnan(rows[MAR]["overall"])
    assert rows[MAR]["rolling"] == 75.0  # (60 + 90) / 2
    assert rows[APR]["rolling"] == 60.0  # (90 + 30) / 2
    compare(program)


def test_month_without_scorecard_can_change_the_tier():
    # R: Feb 40 (T, first tier), Mar 66.7 (T), Apr 93.3 (S, streak 1), May 120 (S, streak 2)
    # although May has no scorecard: its only observation is of the other side.
    program = simple_program({1: {JAN: 40.0, FEB: 40.0, MAR: 120.0, APR: 120.0}})
    program["observations"].append(
        {
            "agreement": 1,
            "kpi": 1,
            "side": "partner",
            "date": datetime.date(2025, 5, 3),
            "value": 1.0,
            "recorded": 1,
        }
    )
    rows = rows_by_month(program)
    assert not rows[MAY]["has_scorecard"]
    assert [rows[month]["candidate_tier"] for month in (FEB, MAR, APR, MAY)] == [
        TRANSACTIONAL,
        TRANSACTIONAL,
        STRATEGIC,
        STRATEGIC,
    ]
    assert [rows[month]["tier"] for month in (JAN, FEB, MAR, APR, MAY)] == [
        None,
        TRANSACTIONAL,
        TRANSACTIONAL,
        TRANSACTIONAL,
        STRATEGIC,
    ]
    compare(program)


def test_streak_of_differing_candidates_moves_to_the_last_one():
    # R: Feb 50 (T), Mar (50 + 50 + 114) / 3 = 71.3 (G), Apr (50 + 114 + 120) / 3 = 94.7 (S):
    # two months in a row differ from T, so with hysteresis 2 the tier becomes S in April.
    program = simple_program({1: {JAN: 50.0, FEB: 50.0, MAR: 114.0, APR: 120.0}})
    rows = rows_by_month(program)
    assert [rows[month]["candidate_tier"] for month in (FEB, MAR, APR)] == [
        TRANSACTIONAL,
        GROWTH,
        STRATEGIC,
    ]
    assert [rows[month]["tier"] for month in (FEB, MAR, APR)] == [
        TRANSACTIONAL,
        TRANSACTIONAL,
        STRATEGIC,
    ]
    compare(program)


def test_percentile_ties_share_the_best_rank_with_eleven_agreements():
    # R = the value of both months. n = 11: strategic if 10(r − 1) < 11 (r ≤ 2), growth if
    # 10(r − 1) < 33 (r ≤ 4). The two 90s share r = 2 (strategic, not r = 3: growth), the three
    # 85s share r = 4 (growth, not r = 5, 6: transactional).
    rolling = [95.0, 90.0, 90.0, 85.0, 85.0, 85.0, 70.0, 60.0, 50.0, 40.0, 30.0]
    program = simple_program(
        {a: {JAN: value, FEB: value} for a, value in enumerate(rolling, start=1)},
        policy="percentile",
    )
    months, _, _ = reference_scores(program)
    _, tiers = run_rules(program, months)
    february = tiers[tiers["period"] == FEB].sort_values("agreement_id")
    assert february["rolling"].tolist() == rolling
    assert february["candidate_tier"].tolist() == (
        [STRATEGIC] * 3 + [GROWTH] * 3 + [TRANSACTIONAL] * 5
    )
    assert february["tier"].tolist() == february["candidate_tier"].tolist()
    compare(program)
