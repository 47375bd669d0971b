"""Realistic synthetic partnership data for demos and benchmarks: `generate_demo` writes it.

Every observation goes through `observations_write`, the write path of the metric imports,
in one demo import batch per side and chunk of agreements. The values are drawn in score
space: a performance ratio r = (actual − floor) / (target − floor) per agreement, KPI and
month (r = 1 on target, 0 on the floor), so every agreement's scorecard follows its planned
profile (strong, average or poor; improving, declining or flat) whatever the KPI's unit.
"""

import datetime as dt
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from .changes import program_changed
from .demo_history import demo_history_create
from .models import (
    DEFAULT_CATEGORY_WEIGHTS,
    Aggregation,
    Agreement,
    AgreementKPI,
    AgreementType,
    Category,
    Dispute,
    GoalType,
    ImportBatch,
    ImportSource,
    ImportStatus,
    IncentivePlan,
    KPIDefinition,
    Membership,
    MetricObservation,
    Objective,
    ObservationChange,
    Partner,
    PartnerStatus,
    Priority,
    ReviewCadence,
    Role,
    Side,
    Stage,
    ToleranceKind,
)
from .services import observations_write

DEMO_PASSWORD = "partnership-demo"
DEMO_SEED = 20250101
DEMO_URL = "http://127.0.0.1:8000/"
MAX_OBSERVATIONS_PER_MONTH = 28  # one distinct day each, in February too
# Observation rows generated and written at once: bounds the memory of large demos.
ROWS_PER_CHUNK = 50_000

Progress = Callable[[int, int], None]


class DemoDataExists(Exception):
    """The database already holds partnership data and the caller did not ask for a reset."""


@dataclass(frozen=True)
class DemoKPI:
    """A KPI of the demo library, with the ranges its agreements' targets are drawn from."""

    code: str
    name: str
    unit: str
    category: str
    aggregation: str
    source: str
    description: str
    goal: str
    target_range: tuple[float, float]
    step: float  # targets, floors and objectives are rounded to multiples of this
    floor_factor: float = 1.0  # floor = target × floor_factor + floor_offset
    floor_offset: float = 0.0
    minimum: float = 0.0
    maximum: float = math.inf
    decimals: int = 2
    is_count: bool = False
    scales_with_size: bool = False
    seasonal: bool = False
    # Reconciliation's tolerance in the KPI's unit, where 5 % of its values says little (a
    # count of a few: 1 of 3 is 33 %); None: the default, 5 % of the source's value.
    absolute_tolerance: float | None = None

    @property
    def lower_is_better(self) -> bool:
        return self.floor_factor > 1 or self.floor_offset > 0


KPI_LIBRARY: tuple[DemoKPI, ...] = (
    DemoKPI(
        "revenue", "Partner-sourced revenue", "USD", Category.FINANCIAL, Aggregation.SUM,
        Side.HOST,
        "Closed-won first-year contract value of deals the partner registered or sourced, "
        "booked in the host CRM in the month; attribution per the agreement's method.",
        GoalType.REVENUE_GROWTH, (20_000, 150_000), 1000, floor_factor=0.4,
        scales_with_size=True, seasonal=True,
    ),
    DemoKPI(
        "joint_pipeline", "Joint pipeline", "USD", Category.FINANCIAL, Aggregation.LAST,
        Side.HOST,
        "Value of open opportunities co-owned with the partner (stage 2 and beyond) at the "
        "snapshot date.",
        GoalType.REVENUE_GROWTH, (150_000, 900_000), 5000, floor_factor=0.5, decimals=0,
        scales_with_size=True, seasonal=True,
    ),
    DemoKPI(
        "deals_closed", "Deals closed", "count", Category.FINANCIAL, Aggregation.SUM, Side.HOST,
        "Closed-won deals with the partner attached as sourcing or co-selling partner.",
        GoalType.REVENUE_GROWTH, (4, 20), 1, floor_factor=0.4, decimals=0, is_count=True,
        scales_with_size=True, seasonal=True, absolute_tolerance=1,
    ),
    DemoKPI(
        "avg_deal_size", "Average deal size", "USD", Category.FINANCIAL, Aggregation.MEAN,
        Side.HOST,
        "Average first-year contract value of the partner-attached deals closed.",
        GoalType.REVENUE_GROWTH, (8_000, 40_000), 500, floor_factor=0.6,
    ),
    DemoKPI(
        "qualified_leads", "Qualified leads", "count", Category.STRATEGIC, Aggregation.SUM,
        Side.PARTNER,
        "Leads passed to the host that meet the agreement's qualified-lead definition, from "
        "the partner's lead log.",
        GoalType.MARKET_ACCESS, (15, 120), 1, floor_factor=0.4, decimals=0, is_count=True,
        scales_with_size=True,
    ),
    DemoKPI(
        "new_logos", "New logos in target segments", "count", Category.STRATEGIC,
        Aggregation.SUM, Side.HOST,
        "New customer accounts in the agreed target segments or regions won with the partner.",
        GoalType.MARKET_ACCESS, (2, 8), 1, floor_factor=0.3, decimals=0, is_count=True,
        scales_with_size=True, seasonal=True, absolute_tolerance=1,
    ),
    DemoKPI(
        "co_marketing_campaigns", "Co-marketing campaigns", "count", Category.STRATEGIC,
        Aggregation.SUM, Side.PARTNER,
        "Joint campaigns, webinars and events that went live in the month.",
        GoalType.BRAND_BUILDING, (1, 4), 1, floor_factor=0.0, decimals=0, is_count=True,
        absolute_tolerance=1,
    ),
    DemoKPI(
        "certified_staff", "Certified partner staff", "count", Category.STRATEGIC,
        Aggregation.LAST, Side.PARTNER,
        "Partner employees holding a current host certification at the snapshot date.",
        GoalType.CAPABILITY, (6, 40), 1, floor_factor=0.5, decimals=0, is_count=True,
        scales_with_size=True,
    ),
    DemoKPI(
        "conversion_rate", "Lead-to-deal conversion rate", "%", Category.OPERATIONAL,
        Aggregation.MEAN, Side.HOST,
        "Share of partner-sourced qualified leads converted into opportunities within 90 days.",
        GoalType.REVENUE_GROWTH, (12, 30), 0.5, floor_factor=0.5, maximum=100.0, decimals=1,
    ),
    DemoKPI(
        "time_to_market", "Time to market", "days", Category.OPERATIONAL, Aggregation.MEAN,
        Side.PARTNER,
        "Days from the sign-off of a joint feature or offer to its general availability, per "
        "release. Lower is better.",
        GoalType.CAPABILITY, (30, 75), 1, floor_factor=1.8, minimum=1.0, decimals=1,
    ),
    DemoKPI(
        "defect_rate", "Defect rate", "%", Category.OPERATIONAL, Aggregation.MEAN,
        Side.PARTNER,
        "Share of integration transactions or deliveries failing acceptance, per weekly "
        "quality report. Lower is better.",
        GoalType.COST_REDUCTION, (0.8, 3.0), 0.1, floor_factor=3.0, maximum=100.0,
    ),
    DemoKPI(
        "integration_uptime", "Integration uptime", "%", Category.OPERATIONAL,
        Aggregation.MEAN, Side.PARTNER,
        "Availability of the production integration per weekly monitoring report, excluding "
        "announced maintenance.",
        GoalType.CAPABILITY, (99.5, 99.95), 0.05, floor_offset=-1.5, maximum=100.0,
        decimals=3,
    ),
    DemoKPI(
        "support_response_time", "Support response time", "hours", Category.OPERATIONAL,
        Aggregation.MEAN, Side.PARTNER,
        "Median time to first response on escalated joint-customer tickets. Lower is better.",
        GoalType.COST_REDUCTION, (2, 8), 0.5, floor_factor=3.0, minimum=0.1, decimals=1,
    ),
    DemoKPI(
        "training_completion", "Training completion", "%", Category.RELATIONSHIP,
        Aggregation.LAST, Side.PARTNER,
        "Share of the partner's customer-facing staff who completed the current enablement "
        "curriculum, at the snapshot date.",
        GoalType.CAPABILITY, (80, 95), 1, floor_offset=-30, maximum=100.0, decimals=1,
    ),
    DemoKPI(
        "partner_nps", "Partner satisfaction (NPS)", "points", Category.RELATIONSHIP,
        Aggregation.MEAN, Side.PARTNER,
        "Net Promoter Score of the partner's team about working with the host, per pulse "
        "survey.",
        GoalType.BRAND_BUILDING, (30, 60), 5, floor_offset=-40, minimum=-100.0,
        maximum=100.0, decimals=0,
    ),
    DemoKPI(
        "review_attendance", "Business-review attendance", "%", Category.RELATIONSHIP,
        Aggregation.MEAN, Side.HOST,
        "Share of the invited decision-makers of both sides attending the scheduled business "
        "reviews and check-ins.",
        GoalType.CAPABILITY, (85, 100), 5, floor_offset=-40, maximum=100.0, decimals=1,
    ),
    DemoKPI(
        "joint_csat", "Joint customer satisfaction (CSAT)", "%", Category.RELATIONSHIP,
        Aggregation.MEAN, Side.HOST,
        "Share of joint customers rating the combined offering 4 or 5 out of 5 in "
        "post-project surveys.",
        GoalType.BRAND_BUILDING, (80, 92), 1, floor_offset=-20, maximum=100.0, decimals=1,
    ),
)
LOWER_IS_BETTER_KPIS = tuple(kpi.code for kpi in KPI_LIBRARY if kpi.lower_is_better)

# Which KPIs each type of partnership is measured on first; the rest fill up by category.
TYPE_KPIS = {
    AgreementType.TECHNOLOGY_INTEGRATION: (
        "integration_uptime", "defect_rate", "time_to_market", "support_response_time",
        "certified_staff", "joint_csat", "revenue",
    ),
    AgreementType.CO_MARKETING: (
        "co_marketing_campaigns", "qualified_leads", "conversion_rate", "review_attendance",
        "revenue", "joint_pipeline",
    ),
    AgreementType.STRATEGIC_INVESTMENT: (
        "joint_pipeline", "revenue", "new_logos", "partner_nps", "review_attendance",
        "time_to_market",
    ),
    AgreementType.REFERRAL: (
        "qualified_leads", "conversion_rate", "revenue", "deals_closed", "partner_nps",
    ),
    AgreementType.RESELLER: (
        "revenue", "deals_closed", "joint_pipeline", "avg_deal_size", "certified_staff",
        "training_completion", "new_logos",
    ),
}
# Overrides of the default category weights (financial, strategic, operational, relationship).
TYPE_WEIGHTS = {
    AgreementType.TECHNOLOGY_INTEGRATION: (15, 20, 45, 20),
    AgreementType.CO_MARKETING: (25, 40, 15, 20),
    AgreementType.STRATEGIC_INVESTMENT: (20, 45, 15, 20),
    AgreementType.REFERRAL: (40, 30, 15, 15),
    AgreementType.RESELLER: (45, 20, 15, 20),
}
TYPE_CODES = {
    AgreementType.TECHNOLOGY_INTEGRATION: "TI",
    AgreementType.CO_MARKETING: "CM",
    AgreementType.STRATEGIC_INVESTMENT: "SI",
    AgreementType.REFERRAL: "REF",
    AgreementType.RESELLER: "RES",
}
TYPE_TITLES = {
    AgreementType.TECHNOLOGY_INTEGRATION: "integration partnership",
    AgreementType.CO_MARKETING: "co-marketing program",
    AgreementType.STRATEGIC_INVESTMENT: "strategic alliance",
    AgreementType.REFERRAL: "referral program",
    AgreementType.RESELLER: "reseller agreement",
}
TYPE_SHARES = (0.22, 0.22, 0.1, 0.22, 0.24)
STAGES = (
    Stage.ACTIVE, Stage.PILOT, Stage.UNDER_REVIEW, Stage.EXITING, Stage.ENDED, Stage.PROSPECT
)
STAGE_SHARES = (0.62, 0.1, 0.08, 0.07, 0.08, 0.05)

# Calendar-month factors of the sales KPIs: a Q4 peak and a summer dip, averaging ~1.
SEASON = np.array([0.88, 0.92, 1.02, 0.96, 0.98, 1.04, 0.88, 0.85, 1.0, 1.05, 1.12, 1.3])
GAP_SHARE = 0.02  # single (agreement KPI, month) cells nobody reported
LONG_GAP_SHARE = 0.05  # agreement KPIs with 2-3 months missing in a row
OUTAGE_SHARE = 0.06  # agreements with a reporting outage of 2-3 months...
OUTAGE_LOSS = 0.75  # ...when most KPIs went unreported: incomplete scorecards
DUAL_SHARE = 0.35  # agreement KPIs the other side reports too
DISAGREE_SHARE = 0.07  # months where the other side's figure is 6-15 % off
MONTHLY_NOISE = 0.08  # in score space: 0.08 = 8 points
DRIFT_NOISE = 0.025

NAME_PREFIXES = (
    "Northwind", "Bluefin", "Cobalt Ridge", "Helios", "Meridian", "Quantum Leaf", "Redwood",
    "Silverline", "Tidewater", "Alder & Finch", "Brightpath", "Crescent", "Evergreen",
    "Foxglove", "Granite Peak", "Harborview", "Ironclad", "Juniper", "Keystone", "Lumen",
    "Mosaic", "Nimbus", "Orchard", "Pinecrest", "Quill", "Riverstone", "Summit", "Trellis",
    "Upland", "Vantage", "Westbrook", "Yellowtail", "Zephyr", "Aurora", "Beacon", "Cedar",
    "Driftwood", "Ember", "Fjord", "Gullwing",
)
NAME_SUFFIXES = (
    ("Analytics", "Data & analytics"), ("Payments", "Financial services"),
    ("Health Systems", "Healthcare IT"), ("Logistics", "Logistics"),
    ("Security", "Cybersecurity"), ("Cloud", "Cloud infrastructure"),
    ("Retail Group", "Retail"), ("Telecom", "Telecommunications"), ("Energy", "Energy"),
    ("Learning", "Education technology"), ("Media", "Media & advertising"),
    ("Robotics", "Industrial automation"), ("Consulting", "IT consulting"),
    ("Software", "Enterprise software"), ("Insurance", "Insurance"),
    ("Labs", "Developer tools"), ("Marketplaces", "E-commerce"), ("Networks", "Networking"),
    ("Mobility", "Transportation"), ("Foods", "Food & beverage"),
)
FIRST_NAMES = (
    "Amara", "Ben", "Chloé", "Daniel", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kavya", "Liam", "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Samir", "Tess",
)
LAST_NAMES = (
    "Okafor", "Lindqvist", "Moreau", "Schneider", "Yilmaz", "Haddad", "Kim", "Tanaka",
    "García", "Novak", "Patel", "Murphy", "Cohen", "Silva", "Ivanova", "Rossi", "Fischer",
    "Nguyen", "Mensah", "Dubois",
)
CONTACT_ROLES = (
    "VP Alliances", "Partner manager", "Head of channel sales", "Solutions architect",
    "Marketing lead", "Customer success director",
)


@dataclass(frozen=True)
class DemoSummary:
    partners: int
    agreements: int
    kpi_definitions: int
    agreement_kpis: int
    observations: int
    batches: int
    months: int
    first_month: dt.date
    last_month: dt.date
    viewer_partner: str
    seconds: float


@dataclass
class _Plan:
    """What the observations of each agreement follow, as arrays indexed by agreement."""

    agreement_ids: np.ndarray  # (A,) int64
    partner_ids: np.ndarray  # (A,) int64
    start: np.ndarray  # (A,) datetime64[D]
    last_day: np.ndarray  # (A,) datetime64[D]: the end date or the end of the data window
    base: np.ndarray  # (A,) performance ratio in the middle of the window
    trend: np.ndarray  # (A,) change of the ratio from the first to the last month
    kpi_index: np.ndarray  # (A, K) index into KPI_LIBRARY
    kpi_offset: np.ndarray  # (A, K) how much better or worse than the agreement each KPI runs
    target: np.ndarray  # (A, K)
    floor: np.ndarray  # (A, K)
    dual: np.ndarray  # (A, K) bool: the other side reports this KPI too


def _add_months(day: dt.date, months: int) -> dt.date:
    """The first day of the month `months` after `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_end(day: dt.date) -> dt.date:
    return _add_months(day, 1) - dt.timedelta(days=1)


def demo_window(*, months: int, today: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day of the `months` complete calendar months before `today`'s month."""
    last_day = today.replace(day=1) - dt.timedelta(days=1)
    return _add_months(last_day, -(months - 1)), last_day


def observation_dates(*, month: dt.date, per_month: int) -> list[dt.date]:
    """The days a KPI is reported in `month`: evenly spread, the last one on the month's end."""
    days_in_month = _month_end(month).day
    return [
        month.replace(day=-(-(i + 1) * days_in_month // per_month)) for i in range(per_month)
    ]


def demo_data_exists() -> bool:
    """Whether any partner, KPI definition, agreement, import or observation is stored."""
    return any(
        model.objects.exists()
        for model in (Partner, KPIDefinition, Agreement, ImportBatch, MetricObservation)
    )


def _delete_partnership_data() -> None:
    # Raw DELETEs for the two big tables: the ORM would load every observation to null the
    # audit rows' links first (SET_NULL), which does not fit in memory at benchmark size.
    with connection.cursor() as cursor:
        for model in (ObservationChange, MetricObservation):
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)}")
    Dispute.objects.all().delete()  # before the batches: a resolved one keeps its correction's
    ImportBatch.objects.all().delete()
    Agreement.objects.all().delete()  # cascades to KPIs, objectives, plans and score results
    KPIDefinition.objects.all().delete()
    Partner.objects.all().delete()  # cascades to the partner users' memberships


def demo_reset() -> None:
    """Delete all partners, KPI definitions, agreements, imports and observations (not users)."""
    with transaction.atomic():
        _delete_partnership_data()
        program_changed()


def _demo_user(*, username: str, password: str, role: str, partner: Partner | None = None,
               is_staff: bool = False, is_superuser: bool = False, first_name: str = "",
               last_name: str = ""):
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.first_name, user.last_name = first_name, last_name
    user.email = f"{username}@demo.example.com"
    user.is_active, user.is_staff, user.is_superuser = True, is_staff, is_superuser
    user.set_password(password)
    user.save()
    Membership.objects.update_or_create(user=user, defaults={"role": role, "partner": partner})
    return user


def _round_to(values: np.ndarray, step: np.ndarray) -> np.ndarray:
    # Rounded again to the step's decimals, so 0.1 steps give 2.3, not 2.3000000000000003.
    decimals = np.maximum(0, -np.floor(np.log10(step)))
    return _round_decimals(np.round(values / step) * step, decimals)


def _round_decimals(values: np.ndarray, decimals: np.ndarray) -> np.ndarray:
    scale = 10.0 ** decimals
    return np.round(values * scale) / scale


def _pick(rng: np.random.Generator, options: tuple) -> object:
    return options[int(rng.integers(len(options)))]


def _spread(rng: np.random.Generator, count: int, required: tuple, shares: tuple) -> list:
    """`count` values with each of `required` at least once (room permitting), then by share."""
    values = list(required[:count])
    shares = np.asarray(shares) / np.sum(shares)
    values += [required[i] for i in rng.choice(len(required), size=count - len(values),
                                                p=shares)]
    return values


def _partner_specs(rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    combos = [(f"{prefix} {suffix}", industry)
              for prefix in NAME_PREFIXES for suffix, industry in NAME_SUFFIXES]
    order = rng.permutation(len(combos))
    specs = []
    for number in range(count):
        name, industry = combos[order[number % len(combos)]]
        if number >= len(combos):
            name = f"{name} {number // len(combos) + 1}"
        specs.append((name, industry))
    return specs


def _contacts(rng: np.random.Generator, slug: str) -> str:
    lines = []
    for _ in range(int(rng.integers(1, 3))):
        first, last = _pick(rng, FIRST_NAMES), _pick(rng, LAST_NAMES)
        email = f"{slugify(first)}.{slugify(last)}@{slug}.example.com"
        lines.append(f"{first} {last}, {_pick(rng, CONTACT_ROLES)} <{email}>")
    return "\n".join(lines)


def _terms(rng: np.random.Generator, agreement_type: str, partner: str) -> dict[str, str]:
    """Plausible written terms, varied by type and by a few drawn numbers."""
    fee = int(_pick(rng, (8, 10, 12, 15, 20)))
    budget = int(_pick(rng, (15, 25, 40, 60)))
    notice = int(_pick(rng, (60, 90, 120)))
    financial = {
        AgreementType.TECHNOLOGY_INTEGRATION:
            f"Revenue share of {fee} % on the joint SKU; the host funds ${budget}k of "
            "integration engineering per year.",
        AgreementType.CO_MARKETING:
            f"Marketing development funds of ${budget}k per half-year, split 50/50; no revenue "
            "share.",
        AgreementType.STRATEGIC_INVESTMENT:
            "The host holds a minority stake; the joint business plan targets $2M ARR from "
            f"joint offers by the end of year two and ${budget}k of shared go-to-market budget.",
        AgreementType.REFERRAL:
            f"Referral fee of {fee} % of the first-year contract value of every accepted "
            "referral, paid quarterly.",
        AgreementType.RESELLER:
            f"{partner} buys at {20 + fee} % off list price; the margin rises by 5 points above "
            "the annual revenue target.",
    }[agreement_type]
    strategic = {
        AgreementType.TECHNOLOGY_INTEGRATION:
            "A certified integration listed in both marketplaces; a joint roadmap reviewed "
            "each quarter.",
        AgreementType.CO_MARKETING:
            f"Access to {partner}'s audience in the mid-market; co-branded thought leadership.",
        AgreementType.STRATEGIC_INVESTMENT:
            "Entry into two new regions through the partner's field teams; a seat on the "
            "partner's product advisory board.",
        AgreementType.REFERRAL:
            "Warm introductions into accounts the host's sales team does not cover.",
        AgreementType.RESELLER:
            "Coverage of the partner's installed base and regions without a host sales team.",
    }[agreement_type]
    return {
        "value_financial": financial,
        "value_strategic": strategic,
        "value_operational": _pick(rng, (
            "Shared implementation playbook; the partner runs first-line onboarding.",
            "A joint solution architect for the first six customers; shared sandbox "
            "environments.",
            "Monthly data exchange of leads, opportunities and usage through the partner "
            "portal.",
        )),
        "attribution_method": _pick(rng, (
            "Deal registration in the host CRM: the first approved registration wins, with a "
            "90-day protection window.",
            "Partner-sourced when the partner registered the lead before the first host touch; "
            "partner-influenced otherwise (not counted as revenue).",
            "Referral link or code on the sign-up form, with a 60-day attribution window; "
            "disputed cases go to the monthly pipeline review.",
        )),
        "qualified_lead_definition": _pick(rng, (
            "A company in the ideal customer profile (200+ employees, in an agreed region) with "
            "a named budget holder who accepted a discovery call within 30 days.",
            "A lead with a confirmed project, budget and timeline (under 6 months) that the "
            "host's sales development team accepted within 5 business days.",
        )),
        "underperformance_consequences": _pick(rng, (
            "Two consecutive quarters below the floor on a critical KPI start a 90-day "
            "remediation plan; a third quarter starts an exit review.",
            "Below the floor for three months in a row: tier downgrade and loss of the MDF "
            "budget for the next half-year.",
        )),
        "overperformance_rewards": _pick(rng, (
            "Above 110 % of target for two quarters: tier upgrade review, extra MDF and a "
            "co-branded case study.",
            f"An accelerator of {fee // 2} % on the fee above the annual target, and priority "
            "access to the beta program.",
        )),
        "customer_relationship_owner": {
            AgreementType.RESELLER: f"{partner} owns the customer relationship and the "
                                    "contract; the host owns the product relationship.",
            AgreementType.REFERRAL: "The host owns the relationship from the accepted "
                                    "referral on.",
        }.get(agreement_type, "The host owns the contract; the partner owns delivery of its "
                              "services, each introduced as such to the customer."),
        "support_responsibilities": _pick(rng, (
            f"{partner} provides first-line support; the host provides second line within "
            "8 business hours.",
            "Each side supports its own product; joint escalations go to a shared channel "
            "with a 4-hour response target.",
        )),
        "marketing_materials": "The host supplies a co-branded kit (deck, battle cards, two "
                               "case studies), refreshed every quarter.",
        "messaging_approval": "Joint messaging needs the written approval of both marketing "
                              "leads within 5 business days; silence is not approval.",
        "shared_costs": f"Event and campaign costs are split 50/50 up to ${budget}k a year; "
                        "anything above needs written approval of both sponsors.",
        "dispute_resolution": "The partner managers first, then the executive sponsors within "
                              "30 days, then mediation before any other remedy.",
        "exit_criteria": f"Either side may exit with {notice} days' notice; at once on a "
                         "material breach. A scorecard at risk three months in a row (overall "
                         "below 50) triggers an exit review.",
    }


def _pick_kpis(rng: np.random.Generator, agreement_type: str, count: int) -> list[int]:
    """`count` library indices, spread over the categories, the type's own KPIs first."""
    preferred = TYPE_KPIS[agreement_type]
    queues = []
    for category in Category.values:
        members = [i for i, kpi in enumerate(KPI_LIBRARY) if kpi.category == category]
        # Preferred KPIs rank in [0, 1), the others in [1, 2): a random order within each.
        rank = [(KPI_LIBRARY[i].code not in preferred) + rng.random() for i in members]
        queues.append([members[j] for j in np.argsort(rank, kind="stable")])
    picked: list[int] = []
    while len(picked) < count:
        for queue_index in rng.permutation(len(queues)):
            queue = queues[queue_index]
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return sorted(picked)


def _category_weights(rng: np.random.Generator, agreement_type: str,
                      categories: set[str]) -> tuple[int, ...]:
    """Default weights mostly, the type's override sometimes; 0 for unmeasured categories."""
    if len(categories) == len(Category.values):
        if rng.random() < 0.2:
            return TYPE_WEIGHTS[agreement_type]
        return tuple(DEFAULT_CATEGORY_WEIGHTS[c] for c in Category.values)
    defaults = [DEFAULT_CATEGORY_WEIGHTS[c] if c in categories else 0 for c in Category.values]
    shares = [100 * w / sum(defaults) for w in defaults]
    weights = [math.floor(s) for s in shares]
    # Largest remainders get the points lost to rounding, so the weights sum to 100.
    for i in sorted(range(4), key=lambda i: weights[i] - shares[i])[: 100 - sum(weights)]:
        weights[i] += 1
    return tuple(weights)


def _agreement_dates(rng: np.random.Generator, stage: str, first: dt.date, last: dt.date,
                     today: dt.date, months: int) -> tuple[dt.date, dt.date | None]:
    last_month = last.replace(day=1)
    start_day = 15 if rng.random() < 0.2 else 1
    if stage == Stage.PROSPECT:
        return _add_months(today, int(rng.integers(1, 4))), None
    if stage == Stage.PILOT:
        start = _add_months(last_month, -int(rng.integers(3, 10))).replace(day=start_day)
        end = _add_months(start, 6) - dt.timedelta(days=1) if rng.random() < 0.7 else None
        return start, end
    if stage == Stage.ACTIVE and months >= 12 and rng.random() < 0.15:
        start = _add_months(first, int(rng.integers(1, months - 5))).replace(day=start_day)
    else:
        start = _add_months(first, -int(rng.integers(1, 25))).replace(day=start_day)
    end = None
    if stage == Stage.ACTIVE and rng.random() < 0.3:
        end = _month_end(_add_months(last_month, int(rng.integers(2, 19))))
    elif stage == Stage.EXITING:
        end = _month_end(_add_months(last_month, int(rng.integers(1, 5))))
    elif stage == Stage.ENDED:
        ended_ago = int(rng.integers(1, max(1, min(12, months // 2)) + 1))
        end = max(_month_end(_add_months(last_month, -ended_ago)), start)
    return start, end


def _profile(rng: np.random.Generator, stage: str) -> tuple[float, float]:
    """Base performance ratio and its trend over the window, by stage (poor ones get reviewed)."""
    magnitude = rng.uniform(0.15, 0.4)
    if stage in (Stage.UNDER_REVIEW, Stage.EXITING) or (
        stage == Stage.ENDED and rng.random() < 0.5
    ) or (stage == Stage.ACTIVE and rng.random() < 0.08):
        return rng.uniform(0.05, 0.3), -magnitude * float(rng.random() < 0.5)
    if stage == Stage.PILOT:
        return rng.uniform(0.55, 0.9), magnitude
    base = rng.uniform(1.0, 1.12) if rng.random() < 0.2 else rng.uniform(0.6, 0.95)
    direction = rng.choice([1.0, -1.0, 0.0], p=[0.3, 0.25, 0.45])
    return base, direction * magnitude


def _targets(rng: np.random.Generator, kpi_index: np.ndarray,
             size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Monthly targets and floors per agreement KPI; lower-is-better floors lie above targets."""
    low = np.array([kpi.target_range[0] for kpi in KPI_LIBRARY])[kpi_index]
    high = np.array([kpi.target_range[1] for kpi in KPI_LIBRARY])[kpi_index]
    step = np.array([kpi.step for kpi in KPI_LIBRARY])[kpi_index]
    scales = np.array([kpi.scales_with_size for kpi in KPI_LIBRARY])[kpi_index]
    target = np.exp(rng.uniform(np.log(low), np.log(high)))
    target = np.where(scales, target * size[:, None], target)
    target = np.maximum(_round_to(target, step), step)
    maximum = np.array([kpi.maximum for kpi in KPI_LIBRARY])[kpi_index]
    target = np.minimum(target, maximum)
    factor = np.array([kpi.floor_factor for kpi in KPI_LIBRARY])[kpi_index]
    offset = np.array([kpi.floor_offset for kpi in KPI_LIBRARY])[kpi_index]
    floor = _round_to(target * factor + offset, step)
    lower_is_better = np.array([kpi.lower_is_better for kpi in KPI_LIBRARY])[kpi_index]
    floor = np.where(floor == target, np.where(lower_is_better, target + step, target - step),
                     floor)
    return target, floor


def demo_generate(
    *,
    partners: int = 12,
    agreements: int = 30,
    months: int = 24,
    kpis_per_agreement: int = 6,
    observations_per_month: int = 4,
    seed: int = DEMO_SEED,
    password: str = DEMO_PASSWORD,
    reset: bool = False,
    today: dt.date | None = None,
    progress: Progress | None = None,
) -> DemoSummary:
    """Write a synthetic program: partners, KPIs, agreements, observations and demo users.

    The same arguments (and `today`) give the same data. Refuses with DemoDataExists when
    partnership data is stored, unless `reset` deletes it first, in the same transaction.
    """
    _check_sizes(partners=partners, agreements=agreements, months=months,
                 kpis_per_agreement=kpis_per_agreement,
                 observations_per_month=observations_per_month)
    started = time.perf_counter()
    today = today or timezone.localdate()
    first, last = demo_window(months=months, today=today)
    rng = np.random.default_rng(seed)
    with transaction.atomic():
        if reset:
            _delete_partnership_data()
        elif demo_data_exists():
            raise DemoDataExists(
                "The database already holds partnership data; pass --reset to replace it."
            )
        manager = _demo_user(username="manager", password=password, role=Role.HOST_MANAGER,
                             is_staff=True, first_name="Morgan", last_name="Reyes")
        _demo_user(username="admin", password=password, role=Role.HOST_ADMIN, is_staff=True,
                   is_superuser=True, first_name="Avery", last_name="Stone")
        # A second host admin: the demo's months are closed by one admin and their statements
        # approved by another (scoring/demo.py), as a statement is never approved by its closer.
        _demo_user(username="finance", password=password, role=Role.HOST_ADMIN,
                   first_name="Riley", last_name="Chen")
        # A colleague owns every third agreement, so the portfolio's owner filter has a choice.
        colleague = _demo_user(username="sam.okafor", password=password,
                               role=Role.HOST_MANAGER, first_name="Sam", last_name="Okafor")
        kpi_ids = _create_kpis()
        plan, partner_rows = _create_program(
            rng, partners=partners, agreements=agreements, months=months,
            kpis_per_agreement=kpis_per_agreement, first=first, last=last, today=today,
            manager=manager, kpi_ids=kpi_ids, colleague=colleague,
        )
        _demo_user(username="viewer", password=password, role=Role.PARTNER_VIEWER,
                   partner=partner_rows[0], first_name="Jordan", last_name="Lee")
        observations, batches = _write_observations(
            rng, plan=plan, kpi_ids=kpi_ids, first=first, months=months,
            per_month=observations_per_month, manager=manager, progress=progress,
        )
        # Its own random stream, so the history never changes the observations of a seed.
        demo_history_create(
            np.random.default_rng(seed + 1), agreements=list(Agreement.objects.all()),
            partners=partner_rows, manager=manager, today=today,
        )
        # Agreements, reviews and actions written in bulk, not through the services: told once.
        program_changed()
    return DemoSummary(
        partners=partners, agreements=agreements, kpi_definitions=len(KPI_LIBRARY),
        agreement_kpis=agreements * kpis_per_agreement, observations=observations,
        batches=batches, months=months, first_month=first, last_month=last.replace(day=1),
        viewer_partner=partner_rows[0].name, seconds=time.perf_counter() - started,
    )


def _check_sizes(*, partners: int, agreements: int, months: int, kpis_per_agreement: int,
                 observations_per_month: int) -> None:
    limits = {
        "partners": (partners, 1, 100_000),
        "agreements": (agreements, 1, 1_000_000),
        "months": (months, 1, 240),
        "KPIs per agreement": (kpis_per_agreement, 1, len(KPI_LIBRARY)),
        "observations per month": (observations_per_month, 1, MAX_OBSERVATIONS_PER_MONTH),
    }
    for name, (value, low, high) in limits.items():
        if not low <= value <= high:
            raise ValueError(f"{name} must be between {low} and {high}, not {value}")


def _create_kpis() -> np.ndarray:
    """The KPI library as definitions; returns their ids in library order."""
    created = KPIDefinition.objects.bulk_create(
        KPIDefinition(code=kpi.code, name=kpi.name, unit=kpi.unit, category=kpi.category,
                      aggregation=kpi.aggregation, source=kpi.source,
                      description=kpi.description,
                      **({} if kpi.absolute_tolerance is None else {
                          "tolerance_kind": ToleranceKind.ABSOLUTE,
                          "tolerance": kpi.absolute_tolerance}))
        for kpi in KPI_LIBRARY
    )
    return np.array([kpi.pk for kpi in created], dtype=np.int64)


def _create_program(rng: np.random.Generator, *, partners: int, agreements: int, months: int,
                    kpis_per_agreement: int, first: dt.date, last: dt.date, today: dt.date,
                    manager, kpi_ids: np.ndarray, colleague) -> tuple[_Plan, list[Partner]]:
    partner_rows = [
        Partner(slug=slugify(name), name=name, industry=industry,
                website=f"https://{slugify(name)}.example.com")
        for name, industry in _partner_specs(rng, partners)
    ]
    # Every partner gets one agreement while there are enough; the viewer's partner (the
    # first) a second one; the rest go anywhere.
    owners = list(range(min(partners, agreements)))
    if agreements > partners:
        owners.append(0)
    owners += rng.integers(partners, size=agreements - len(owners)).tolist()
    stages = _spread(rng, agreements, STAGES, STAGE_SHARES)
    stages = [stages[0], *rng.permutation(stages[1:]).tolist()]
    types = _spread(rng, agreements, tuple(AgreementType.values), TYPE_SHARES)
    types = rng.permutation(types).tolist()
    size = np.clip(rng.lognormal(0.0, 0.5, size=agreements), 0.3, 4.0)

    codes: set[str] = set()
    agreement_rows, kpi_index, bases, trends = [], [], [], []
    for number in range(agreements):
        partner, stage, agreement_type = partner_rows[owners[number]], stages[number], types[number]
        start, end = _agreement_dates(rng, stage, first, last, today, months)
        code = f"{partner.slug.upper()}-{TYPE_CODES[agreement_type]}-{start.year}"
        suffix = 2
        while code in codes:
            code = f"{partner.slug.upper()}-{TYPE_CODES[agreement_type]}-{start.year}-{suffix}"
            suffix += 1
        codes.add(code)
        picked = _pick_kpis(rng, agreement_type, kpis_per_agreement)
        weights = _category_weights(rng, agreement_type,
                                    {KPI_LIBRARY[i].category for i in picked})
        base, trend = _profile(rng, stage)
        if number == 0:  # the viewer's showcase: a healthy agreement with a clear trend
            base, trend = rng.uniform(0.75, 0.95), rng.uniform(0.15, 0.3)
        bases.append(base)
        trends.append(trend)
        kpi_index.append(picked)
        agreement_rows.append(Agreement(
            partner=partner, code=code, stage=stage, type=agreement_type,
            title=f"{partner.name} {TYPE_TITLES[agreement_type]} {start.year}",
            start_date=start, end_date=end, owner=colleague if number % 3 == 2 else manager,
            partner_contacts=_contacts(rng, partner.slug),
            weight_financial=weights[0], weight_strategic=weights[1],
            weight_operational=weights[2], weight_relationship=weights[3],
            review_cadence=_pick(rng, (ReviewCadence.MONTHLY, ReviewCadence.QUARTERLY,
                                       ReviewCadence.QUARTERLY, ReviewCadence.SEMIANNUAL)),
            **_terms(rng, agreement_type, partner.name),
        ))
    for number, partner in enumerate(partner_rows):
        own = {stages[i] for i, owner in enumerate(owners) if owner == number}
        partner.status = (
            PartnerStatus.ACTIVE if own & {Stage.PILOT, Stage.ACTIVE, Stage.UNDER_REVIEW,
                                           Stage.EXITING}
            else PartnerStatus.INACTIVE if own == {Stage.ENDED}
            else PartnerStatus.PROSPECT
        )
    Partner.objects.bulk_create(partner_rows, batch_size=1000)
    Agreement.objects.bulk_create(agreement_rows, batch_size=1000)

    kpi_index = np.array(kpi_index, dtype=np.int64)
    target, floor = _targets(rng, kpi_index, size)
    kpi_offset = rng.normal(0.0, 0.12, size=kpi_index.shape)
    dual = rng.random(kpi_index.shape) < DUAL_SHARE
    dual[0, : min(2, kpis_per_agreement)] = True  # both sides report on the showcase
    _create_agreement_details(rng, agreement_rows, kpi_index, target, floor, kpi_ids,
                              last=last, types=types, stages=stages)

    plan = _Plan(
        agreement_ids=np.array([a.pk for a in agreement_rows], dtype=np.int64),
        partner_ids=np.array([a.partner_id for a in agreement_rows], dtype=np.int64),
        start=np.array([a.start_date for a in agreement_rows], dtype="datetime64[D]"),
        last_day=np.array([min(a.end_date or last, last) for a in agreement_rows],
                          dtype="datetime64[D]"),
        base=np.array(bases), trend=np.array(trends), kpi_index=kpi_index,
        kpi_offset=kpi_offset, target=target, floor=floor, dual=dual,
    )
    return plan, partner_rows


def _create_agreement_details(rng: np.random.Generator, agreement_rows: list[Agreement],
                              kpi_index: np.ndarray, target: np.ndarray, floor: np.ndarray,
                              kpi_ids: np.ndarray, *, last: dt.date, types: list[str],
                              stages: list[str]) -> None:
    """Agreement KPIs (a few weighted double), objectives and some incentive plans."""
    agreement_kpis, objectives, plans = [], [], []
    for number, agreement in enumerate(agreement_rows):
        primary = TYPE_KPIS[types[number]][0]
        for slot, library_index in enumerate(kpi_index[number]):
            kpi = KPI_LIBRARY[library_index]
            agreement_kpis.append(AgreementKPI(
                agreement=agreement, kpi_id=int(kpi_ids[library_index]),
                target=float(target[number, slot]), floor=float(floor[number, slot]),
                weight=2.0 if kpi.code == primary else 1.0,
            ))
        slots = rng.permutation(len(kpi_index[number]))[: int(rng.integers(1, 4))]
        for rank, slot in enumerate(slots):
            kpi = KPI_LIBRARY[kpi_index[number, slot]]
            objectives.append(_objective(rng, agreement, kpi, int(kpi_ids[kpi_index[number, slot]]),
                                         float(target[number, slot]), rank, last))
        if stages[number] in (Stage.PILOT, Stage.ACTIVE, Stage.UNDER_REVIEW) and (
            number == 0 or rng.random() < 0.35
        ):
            plans.append(IncentivePlan(
                agreement=agreement,
                base_amount=Decimal(int(_pick(rng, (1000, 2500, 5000, 7500, 10000)))),
            ))
    AgreementKPI.objects.bulk_create(agreement_kpis, batch_size=2000)
    Objective.objects.bulk_create(objectives, batch_size=2000)
    IncentivePlan.objects.bulk_create(plans, batch_size=2000)


def _objective(rng: np.random.Generator, agreement: Agreement, kpi: DemoKPI, kpi_id: int,
               target: float, rank: int, last: dt.date) -> Objective:
    deadline = _month_end(_add_months(last, int(rng.integers(-6, 13))))
    deadline = max(deadline, _month_end(_add_months(agreement.start_date, 6)))
    # Progress reads one month's value (dashboards/program/progress.py), so a summed KPI's
    # objective is a monthly rate too, as the agreement's targets are.
    if kpi.aggregation == Aggregation.SUM:
        value = round(target * rng.uniform(1.0, 1.2) / kpi.step) * kpi.step
        unit = "" if kpi.unit == "count" else f" {kpi.unit}"
        metric = f"{kpi.name}: {value:,.0f}{unit} a month by {deadline:%B %Y}"
    else:
        better = 0.9 if kpi.lower_is_better else 1.05
        value = min(round(target * better / kpi.step) * kpi.step, kpi.maximum)
        metric = f"{kpi.name} at {value:,g} {kpi.unit} sustained by {deadline:%B %Y}"
    priorities = (Priority.CRITICAL, Priority.HIGH, Priority.MEDIUM, Priority.LOW)
    shares = (0.4, 0.4, 0.15, 0.05) if rank == 0 else (0.1, 0.3, 0.4, 0.2)
    return Objective(
        agreement=agreement, goal_type=kpi.goal, success_metric=metric, kpi_id=kpi_id,
        target_value=float(value), set_on=_objective_set_on(agreement, deadline, rank, last),
        deadline=deadline, priority=priorities[int(rng.choice(4, p=shares))],
    )


def _objective_set_on(agreement: Agreement, deadline: dt.date, rank: int,
                      last: dt.date) -> dt.date:
    """A day in the past the objective was agreed: 6 to 18 months before its deadline, not
    before the agreement started, not after the last month of data. Drawn from the code
    rather than the demo's random stream, so the rest of the demo stays as it was."""
    horizon = 6 + (zlib.crc32(f"{agreement.code}/{rank}".encode()) % 13)
    set_on = max(_add_months(deadline, -horizon), agreement.start_date)
    return min(set_on, last)


def _write_observations(rng: np.random.Generator, *, plan: _Plan, kpi_ids: np.ndarray,
                        first: dt.date, months: int, per_month: int, manager,
                        progress: Progress | None) -> tuple[int, int]:
    """Generate and write the observations chunk by chunk; returns (observations, batches)."""
    month_starts = [_add_months(first, m) for m in range(months)]
    dates = np.array(
        [observation_dates(month=month, per_month=per_month) for month in month_starts],
        dtype="datetime64[D]",
    )
    month_of_year = np.array([month.month - 1 for month in month_starts])
    total_agreements, kpis = plan.kpi_index.shape
    chunk = max(1, ROWS_PER_CHUNK // (kpis * months * per_month))
    written = batches = 0
    for number, low in enumerate(range(0, total_agreements, chunk)):
        high = min(low + chunk, total_agreements)
        frames = _chunk_rows(rng, plan, slice(low, high), kpi_ids=kpi_ids, dates=dates,
                             month_of_year=month_of_year, force_gap=number == 0)
        partner_ids = np.unique(plan.partner_ids[low:high])
        for side, rows in frames.items():
            if rows.empty:
                continue
            # One batch per month and side, dated a few days after the month ends, as the
            # monthly reports of both sides would arrive (the ecosystem page counts them).
            month_index = rows["date"].to_numpy().astype("datetime64[M]")
            for month in np.unique(month_index):
                monthly = rows[month_index == month]
                batches += _write_demo_batch(
                    monthly, side=side, month=month.astype(dt.date), manager=manager,
                    partner_ids=partner_ids, label=f"agreements {low + 1}-{high}",
                )
                written += len(monthly)
        if progress is not None:
            progress(high, total_agreements)
    return written, batches


def _write_demo_batch(rows: pd.DataFrame, *, side: str, month: dt.date, manager,
                      partner_ids: np.ndarray, label: str) -> int:
    # Partner-side batches name their partner when a chunk holds only one.
    single_partner = side == Side.PARTNER and len(partner_ids) == 1
    user = manager if side == Side.HOST else None
    batch = ImportBatch.objects.create(
        source=ImportSource.DEMO, side=side, status=ImportStatus.RUNNING, user=user,
        partner_id=int(partner_ids[0]) if single_partner else None,
        file_name=f"demo {month:%Y-%m} {label} ({side} side)", rows_total=len(rows),
    )
    counts = observations_write(rows=rows, batch=batch, user=user)
    arrived = min(timezone.now(), timezone.make_aware(dt.datetime.combine(
        _month_end(month) + dt.timedelta(days=3 if side == Side.HOST else 5), dt.time(9))))
    ImportBatch.objects.filter(pk=batch.pk).update(
        status=ImportStatus.SUCCEEDED, progress=100, created_at=arrived,
        confirmed_at=arrived, finished_at=arrived, inserted=counts.inserted,
        updated=counts.updated, unchanged=counts.unchanged,
    )
    return 1


def _chunk_rows(rng: np.random.Generator, plan: _Plan, agreements: slice, *,
                kpi_ids: np.ndarray, dates: np.ndarray, month_of_year: np.ndarray,
                force_gap: bool) -> dict[str, pd.DataFrame]:
    """The observation rows of a slice of agreements, by side, as `observations_write` takes.

    Axes: agreement a, KPI slot k, month m, observation n within the month.
    """
    kpi_index = plan.kpi_index[agreements]
    count, kpis = kpi_index.shape
    months, per_month = dates.shape
    library = {
        field: np.array([getattr(kpi, field) for kpi in KPI_LIBRARY])[kpi_index]
        for field in ("aggregation", "source", "minimum", "maximum", "decimals", "is_count",
                      "seasonal")
    }
    target, floor = plan.target[agreements], plan.floor[agreements]
    span = target - floor

    # Monthly performance ratio: level, trend, drift and noise, then the value it stands for.
    t = np.arange(months) / max(months - 1, 1)
    ratio = (
        plan.base[agreements, None, None]
        + plan.kpi_offset[agreements][:, :, None]
        + plan.trend[agreements, None, None] * (t - 0.5)
        + np.cumsum(rng.normal(0.0, DRIFT_NOISE, (count, kpis, months)), axis=2)
        + rng.normal(0.0, MONTHLY_NOISE, (count, kpis, months))
    )
    monthly = floor[:, :, None] + ratio * span[:, :, None]
    monthly = np.where(library["seasonal"][:, :, None], monthly * SEASON[month_of_year], monthly)
    monthly = np.clip(monthly, library["minimum"][:, :, None], library["maximum"][:, :, None])

    # Spread over the month's observations, as each aggregation reads them back.
    noise = rng.normal(size=(count, kpis, months, per_month))
    shares = rng.gamma(5.0, size=(count, kpis, months, per_month))
    shares /= shares.sum(axis=3, keepdims=True)
    is_count = library["is_count"][:, :, None, None]
    split = monthly[..., None] * shares
    # Counts: each share rounded up with the probability of its fraction, so that a month's
    # total stays the monthly value on average, in whole units.
    counts = np.floor(split + rng.random(split.shape))
    summed = np.where(is_count, counts, split)
    averaged = monthly[..., None] + noise * 0.15 * np.abs(span)[:, :, None, None]
    previous = np.concatenate([monthly[:, :, :1], monthly[:, :, :-1]], axis=2)
    ramp = (np.arange(per_month) + 1) / per_month
    latest = (previous[..., None] + (monthly - previous)[..., None] * ramp
              + noise * 0.03 * np.abs(span)[:, :, None, None])
    aggregation = library["aggregation"][:, :, None, None]
    values = np.where(aggregation == Aggregation.SUM, summed,
                      np.where(aggregation == Aggregation.MEAN, averaged, latest))
    values = _finish(values, library)

    # Who reported what: gaps, partner outages, dates outside the agreement.
    gap = rng.random((count, kpis, months)) < GAP_SHARE
    month_number = np.arange(months)
    long_gap = rng.random((count, kpis)) < LONG_GAP_SHARE
    gap_start = rng.integers(0, months, (count, kpis))
    gap_length = rng.integers(2, 4, (count, kpis))
    gap |= long_gap[..., None] & (month_number >= gap_start[..., None]) & (
        month_number < (gap_start + gap_length)[..., None]
    )
    outage = rng.random(count) < OUTAGE_SHARE
    outage_start = rng.integers(0, months, count)
    outage_length = rng.integers(2, 4, count)
    in_outage = outage[:, None] & (month_number >= outage_start[:, None]) & (
        month_number < (outage_start + outage_length)[:, None]
    )
    gap |= in_outage[:, None, :] & (rng.random((count, kpis, months)) < OUTAGE_LOSS)
    if force_gap and kpis >= 2 and months >= 3:
        gap[0, kpis - 1, months - 2] = True  # a demo always shows a missing month somewhere
    in_term = (dates >= plan.start[agreements, None, None]) & (
        dates <= plan.last_day[agreements, None, None]
    )
    reported = ~gap[..., None] & in_term[:, None, :, :]

    # The other side: the same days for dual-reported KPIs, close to the source side's figure
    # (rounding, timing), a few months off by 6-15 %, now and then a report missing.
    other = reported & plan.dual[agreements][:, :, None, None] & (
        rng.random(reported.shape) >= 0.03
    )
    off = np.where(rng.random((count, kpis, months)) < 0.5, -1.0, 1.0) * rng.uniform(
        0.06, 0.15, (count, kpis, months)
    )
    disagree = rng.random((count, kpis, months)) < DISAGREE_SHARE
    factor = np.where(disagree[..., None], 1.0 + off[..., None],
                      1.0 + rng.normal(0.0, 0.01, reported.shape))
    if force_gap and months >= 3:
        # The showcase's first KPI (both sides report it): the other side's figure 12 % above
        # the source's in the third month from the end, the last one the demo closes, so that
        # reconciliation always has a disagreement to show in the month it opens on.
        factor[0, 0, months - 3] = 1.12
    other_values = _finish(values * factor, library)

    source_is_host = (library["source"] == Side.HOST)[:, :, None, None]
    agreement_ids = plan.agreement_ids[agreements]
    slot_kpi_ids = kpi_ids[kpi_index]
    frames = {}
    for side, source_mask, other_mask in (
        (Side.HOST, reported & source_is_host, other & ~source_is_host),
        (Side.PARTNER, reported & ~source_is_host, other & source_is_host),
    ):
        parts = [
            _rows(mask, chosen, agreement_ids, slot_kpi_ids, dates, side)
            for mask, chosen in ((source_mask, values), (other_mask, other_values))
        ]
        frames[side] = pd.concat(parts, ignore_index=True)
    return frames


def _finish(values: np.ndarray, library: dict[str, np.ndarray]) -> np.ndarray:
    """Clip to the unit's range and round to its reporting precision."""
    values = np.clip(values, library["minimum"][:, :, None, None],
                     library["maximum"][:, :, None, None])
    return _round_decimals(values, library["decimals"][:, :, None, None])


def _rows(mask: np.ndarray, values: np.ndarray, agreement_ids: np.ndarray,
          slot_kpi_ids: np.ndarray, dates: np.ndarray, side: str) -> pd.DataFrame:
    agreement, slot, month, number = np.nonzero(mask)
    return pd.DataFrame({
        "agreement_id": agreement_ids[agreement],
        "kpi_id": slot_kpi_ids[agreement, slot],
        "side": side,
        "date": dates[month, number].astype(object),  # datetime.date, as the writer compares
        "value": values[mask].astype(float),
    })
