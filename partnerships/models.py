"""Partners, agreements, KPI definitions, observations and imports: the inputs of scoring."""

import math
import re
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.lookups import Exact
from django.utils import timezone

from .validators import agreement_code_validator


class Side(models.TextChoices):
    HOST = "host", "Host"
    PARTNER = "partner", "Partner"


class Category(models.TextChoices):
    FINANCIAL = "financial", "Financial"
    STRATEGIC = "strategic", "Strategic"
    OPERATIONAL = "operational", "Operational"
    RELATIONSHIP = "relationship", "Relationship"


class Aggregation(models.TextChoices):
    SUM = "sum", "Sum"
    MEAN = "mean", "Mean"
    LAST = "last", "Last value"


class AgreementType(models.TextChoices):
    TECHNOLOGY_INTEGRATION = "technology_integration", "Technology integration"
    CO_MARKETING = "co_marketing", "Co-marketing"
    STRATEGIC_INVESTMENT = "strategic_investment", "Strategic investment"
    REFERRAL = "referral", "Referral"
    RESELLER = "reseller", "Reseller / co-selling"


class Stage(models.TextChoices):
    PROSPECT = "prospect", "Prospect"
    PILOT = "pilot", "Pilot"
    ACTIVE = "active", "Active"
    UNDER_REVIEW = "under_review", "Under review"
    EXITING = "exiting", "Exiting"
    ENDED = "ended", "Ended"


class Tier(models.TextChoices):
    STRATEGIC = "strategic", "Strategic"
    GROWTH = "growth", "Growth"
    TRANSACTIONAL = "transactional", "Transactional"


class TierPolicy(models.TextChoices):
    PERCENTILE = "percentile", "Percentile (top 10 % / next 20 % / rest)"
    THRESHOLD = "threshold", "Thresholds on the rolling score"


class Role(models.TextChoices):
    HOST_ADMIN = "host_admin", "Host admin"
    HOST_MANAGER = "host_manager", "Host manager"
    PARTNER_EDITOR = "partner_editor", "Partner editor"
    PARTNER_VIEWER = "partner_viewer", "Partner viewer"


HOST_ROLES = (Role.HOST_ADMIN, Role.HOST_MANAGER)
PARTNER_ROLES = (Role.PARTNER_EDITOR, Role.PARTNER_VIEWER)
CATEGORY_WEIGHT_FIELDS = {
    Category.FINANCIAL: "weight_financial",
    Category.STRATEGIC: "weight_strategic",
    Category.OPERATIONAL: "weight_operational",
    Category.RELATIONSHIP: "weight_relationship",
}
DEFAULT_CATEGORY_WEIGHTS = {
    Category.FINANCIAL: 30,
    Category.STRATEGIC: 25,
    Category.OPERATIONAL: 25,
    Category.RELATIONSHIP: 20,
}


class TimeStamped(models.Model):
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        abstract = True


class PartnerStatus(models.TextChoices):
    PROSPECT = "prospect", "Prospect"
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"


class Partner(TimeStamped):
    Status = PartnerStatus

    slug = models.SlugField("slug", max_length=64, unique=True)
    name = models.CharField("name", max_length=200)
    website = models.URLField("website", blank=True)
    industry = models.CharField("industry", max_length=100, blank=True)
    status = models.CharField(
        "status", max_length=16, choices=Status.choices, default=Status.ACTIVE
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "partner"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=PartnerStatus.values), name="partner_status_valid"
            ),
            models.CheckConstraint(condition=~Q(slug=""), name="partner_slug_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class ValueType(models.TextChoices):
    NUMBER = "number", "Number"
    COUNT = "count", "Count (a whole number ≥ 0)"
    PERCENTAGE = "percentage", "Percentage (within a stated range)"
    MONEY = "money", "Money (an amount in the unit's currency)"


# The largest magnitude a float column can hold: bounds beyond it are infinities or NaN.
FLOAT_MAX = 1.7976931348623157e308


def kpi_value_rules_problems(*, value_type: str, minimum: float | None,
                             maximum: float | None) -> dict[str, str]:
    """What is wrong with a KPI's allowed values (type, minimum, maximum), by field name."""
    limit = settings.METRIC_VALUE_MAX_ABS
    problems: dict[str, str] = {}
    if value_type not in ValueType.values:
        problems["value_type"] = (f"unknown type of value {value_type!r} (expected one of: "
                                  f"{', '.join(ValueType.values)})")
    for name, bound in (("minimum", minimum), ("maximum", maximum)):
        if bound is None:
            continue
        if not math.isfinite(bound) or abs(bound) > limit:
            problems[name] = (f"must be a number between -{limit:,} and {limit:,}, the "
                              "magnitude any observation may have")
        elif value_type == ValueType.COUNT and bound < 0:
            problems[name] = "a count is never negative: the bound must be 0 or more"
    if "minimum" not in problems and "maximum" not in problems and minimum is not None \
            and maximum is not None and minimum > maximum:
        problems["maximum"] = (f"the maximum ({number_text(maximum)}) is below the minimum "
                               f"({number_text(minimum)})")
    if value_type == ValueType.PERCENTAGE:
        for name, bound in (("minimum", minimum), ("maximum", maximum)):
            if bound is None:
                problems.setdefault(name, "a percentage states its range: give both the "
                                          "minimum and the maximum (e.g. 0 and 100)")
    return problems


def number_text(value: float) -> str:
    """A bound or value in a message: 100, 2.5, -1.9e+255 (never 100.0)."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


class ToleranceKind(models.TextChoices):
    PERCENT = "percent", "Percent of the source of truth's value"
    ABSOLUTE = "absolute", "Absolute (in the KPI's unit)"


# The tolerance a KPI gets unless its definition says otherwise (DOMAIN.md: the other side's
# value is flagged above 5 %).
DEFAULT_TOLERANCE_PERCENT = 5.0


class KPIDefinition(TimeStamped):
    ValueType = ValueType
    ToleranceKind = ToleranceKind

    code = models.SlugField("code", max_length=64, unique=True)
    name = models.CharField("name", max_length=200)
    unit = models.CharField("unit", max_length=32, blank=True)
    category = models.CharField("category", max_length=16, choices=Category.choices)
    aggregation = models.CharField("aggregation", max_length=8, choices=Aggregation.choices)
    source = models.CharField(
        "source of truth", max_length=8, choices=Side.choices,
        help_text="The side whose observations are scored.",
    )
    description = models.TextField("how it is measured and attributed", blank=True)
    # What an observation of this KPI may be, checked on every path that writes one (on top
    # of the program-wide magnitude limit, settings.METRIC_VALUE_MAX_ABS).
    value_type = models.CharField(
        "type of value", max_length=16, choices=ValueType.choices, default=ValueType.NUMBER,
        help_text="A count must be a whole number ≥ 0; a percentage states its range.",
    )
    minimum = models.FloatField(
        "minimum", null=True, blank=True,
        help_text="The lowest value an observation may have; empty: no lower bound.",
    )
    maximum = models.FloatField(
        "maximum", null=True, blank=True,
        help_text="The highest value an observation may have; empty: no upper bound.",
    )
    # How far the two sides' values of a month may differ before reconciliation lists them.
    tolerance_kind = models.CharField(
        "tolerance kind", max_length=8, choices=ToleranceKind.choices,
        default=ToleranceKind.PERCENT,
    )
    tolerance = models.FloatField(
        "tolerance", default=DEFAULT_TOLERANCE_PERCENT, validators=[MinValueValidator(0)],
        help_text="How far the other side's value may differ from the source of truth's before "
                  "it is listed as a disagreement: a percent of the source's value, or an "
                  "amount in the KPI's unit.",
    )

    class Meta:
        ordering = ["code"]
        verbose_name = "KPI definition"
        constraints = [
            models.CheckConstraint(
                condition=Q(tolerance_kind__in=ToleranceKind.values),
                name="kpi_tolerance_kind_valid",
            ),
            models.CheckConstraint(
                condition=Q(tolerance__gte=0, tolerance__lte=FLOAT_MAX),
                name="kpi_tolerance_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(value_type__in=ValueType.values), name="kpi_value_type_valid"
            ),
            # PostgreSQL sorts NaN above every number: these bounds keep out ±inf and NaN.
            models.CheckConstraint(
                condition=(Q(minimum__isnull=True)
                           | Q(minimum__gte=-FLOAT_MAX, minimum__lte=FLOAT_MAX))
                & (Q(maximum__isnull=True) | Q(maximum__gte=-FLOAT_MAX, maximum__lte=FLOAT_MAX)),
                name="kpi_bounds_finite",
            ),
            models.CheckConstraint(
                condition=Q(minimum__isnull=True) | Q(maximum__isnull=True)
                | Q(minimum__lte=F("maximum")),
                name="kpi_minimum_not_above_maximum",
            ),
            models.CheckConstraint(
                condition=~Q(value_type=ValueType.COUNT)
                | ((Q(minimum__isnull=True) | Q(minimum__gte=0))
                   & (Q(maximum__isnull=True) | Q(maximum__gte=0))),
                name="kpi_count_bounds_not_negative",
            ),
            models.CheckConstraint(
                condition=~Q(value_type=ValueType.PERCENTAGE)
                | Q(minimum__isnull=False, maximum__isnull=False),
                name="kpi_percentage_range_stated",
            ),
            models.CheckConstraint(
                condition=Q(category__in=Category.values), name="kpi_category_valid"
            ),
            models.CheckConstraint(
                condition=Q(aggregation__in=Aggregation.values), name="kpi_aggregation_valid"
            ),
            models.CheckConstraint(condition=Q(source__in=Side.values), name="kpi_source_valid"),
            models.CheckConstraint(condition=~Q(code=""), name="kpi_code_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def clean(self) -> None:
        problems = kpi_value_rules_problems(
            value_type=self.value_type, minimum=self.minimum, maximum=self.maximum
        )
        if problems:
            raise ValidationError({name: message[:1].upper() + message[1:] + "."
                                   for name, message in problems.items()})

    @property
    def label(self) -> str:
        """The KPI as value errors name it: Conversion rate (%)."""
        return f"{self.name} ({self.unit})" if self.unit else self.name

    @property
    def allowed_values(self) -> str:
        """The values an observation may have, in words: "whole number ≥ 0, at most 500"."""
        parts = ["whole number ≥ 0"] if self.value_type == ValueType.COUNT else []
        if self.minimum is not None and self.maximum is not None:
            parts.append(f"{number_text(self.minimum)} to {number_text(self.maximum)}")
        elif self.minimum is not None:
            parts.append(f"at least {number_text(self.minimum)}")
        elif self.maximum is not None:
            parts.append(f"at most {number_text(self.maximum)}")
        return ", ".join(parts) or "any number"


class AgreementQuerySet(models.QuerySet):
    def visible_to(self, user) -> "AgreementQuerySet":
        """Agreements the user may see: all for host staff, their partner's for partner users."""
        membership = getattr(user, "membership", None) if user.is_authenticated else None
        if membership is None or not user.is_active:
            return self.none()
        if membership.is_host:
            return self
        return self.filter(partner_id=membership.partner_id)


class ReviewCadence(models.TextChoices):
    BIWEEKLY = "biweekly", "Every two weeks"
    MONTHLY = "monthly", "Monthly"
    QUARTERLY = "quarterly", "Quarterly"
    SEMIANNUAL = "semiannual", "Every six months"
    ANNUAL = "annual", "Yearly"


class Agreement(TimeStamped):
    ReviewCadence = ReviewCadence

    partner = models.ForeignKey(
        Partner, on_delete=models.PROTECT, related_name="agreements", verbose_name="partner"
    )
    code = models.CharField("code", max_length=64, unique=True,
                            validators=[agreement_code_validator])
    title = models.CharField("title", max_length=200, blank=True)
    type = models.CharField("type", max_length=32, choices=AgreementType.choices)
    stage = models.CharField("stage", max_length=16, choices=Stage.choices, default=Stage.PROSPECT)
    start_date = models.DateField("start")
    end_date = models.DateField("end", null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="owned_agreements", verbose_name="host-side owner",
    )
    partner_contacts = models.TextField(
        "partner-side contacts", blank=True, help_text="Names, roles and e-mail addresses."
    )
    weight_financial = models.PositiveSmallIntegerField(
        "financial weight", default=30, validators=[MaxValueValidator(100)]
    )
    weight_strategic = models.PositiveSmallIntegerField(
        "strategic weight", default=25, validators=[MaxValueValidator(100)]
    )
    weight_operational = models.PositiveSmallIntegerField(
        "operational weight", default=25, validators=[MaxValueValidator(100)]
    )
    weight_relationship = models.PositiveSmallIntegerField(
        "relationship weight", default=20, validators=[MaxValueValidator(100)]
    )
    # The written terms: what each side gives, how success is attributed, what happens when
    # it is missed or exceeded, who does what, and how the partnership ends.
    value_financial = models.TextField("financial value exchanged", blank=True)
    value_strategic = models.TextField("strategic value exchanged", blank=True)
    value_operational = models.TextField("operational value exchanged", blank=True)
    attribution_method = models.TextField("attribution method", blank=True)
    qualified_lead_definition = models.TextField("qualified-lead definition", blank=True)
    underperformance_consequences = models.TextField(
        "consequences of under-performance", blank=True
    )
    overperformance_rewards = models.TextField("rewards for over-performance", blank=True)
    customer_relationship_owner = models.TextField("customer relationship owner", blank=True)
    support_responsibilities = models.TextField("support", blank=True)
    marketing_materials = models.TextField("marketing materials", blank=True)
    messaging_approval = models.TextField("messaging approval", blank=True)
    shared_costs = models.TextField("shared costs", blank=True)
    dispute_resolution = models.TextField("dispute resolution", blank=True)
    exit_criteria = models.TextField("exit criteria", blank=True)
    review_cadence = models.CharField(
        "review cadence", max_length=16, choices=ReviewCadence.choices,
        default=ReviewCadence.QUARTERLY,
    )

    objects = AgreementQuerySet.as_manager()

    class Meta:
        ordering = ["code"]
        verbose_name = "agreement"
        indexes = [models.Index(fields=["partner", "stage"], name="agreement_partner_stage")]
        constraints = [
            models.CheckConstraint(
                condition=Q(type__in=AgreementType.values), name="agreement_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(stage__in=Stage.values), name="agreement_stage_valid"
            ),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=F("start_date")),
                name="agreement_end_after_start",
            ),
            models.CheckConstraint(
                condition=Q(
                    weight_financial__lte=100,
                    weight_strategic__lte=100,
                    weight_operational__lte=100,
                    weight_relationship__lte=100,
                ),
                name="agreement_weights_at_most_100",
            ),
            models.CheckConstraint(
                condition=Exact(
                    F("weight_financial")
                    + F("weight_strategic")
                    + F("weight_operational")
                    + F("weight_relationship"),
                    100,
                ),
                name="agreement_weights_sum_100",
            ),
            models.CheckConstraint(condition=~Q(code=""), name="agreement_code_not_empty"),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def category_weights(self) -> dict[str, int]:
        return {
            category: getattr(self, field) for category, field in CATEGORY_WEIGHT_FIELDS.items()
        }


class AgreementKPI(models.Model):
    agreement = models.ForeignKey(
        Agreement, on_delete=models.CASCADE, related_name="agreement_kpis"
    )
    kpi = models.ForeignKey(
        KPIDefinition, on_delete=models.PROTECT, related_name="agreement_kpis", verbose_name="KPI"
    )
    target = models.FloatField("monthly target")
    floor = models.FloatField("floor", help_text="The worst acceptable value; never the target.")
    weight = models.FloatField("weight within its category", default=1.0)

    class Meta:
        ordering = ["agreement", "kpi"]
        verbose_name = "agreement KPI"
        constraints = [
            models.UniqueConstraint(fields=["agreement", "kpi"], name="agreement_kpi_unique"),
            models.CheckConstraint(
                condition=~Q(floor=F("target")), name="agreement_kpi_floor_not_target"
            ),
            models.CheckConstraint(condition=Q(weight__gt=0), name="agreement_kpi_weight_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.agreement.code} · {self.kpi.code}"

    @property
    def higher_is_better(self) -> bool:
        return self.target > self.floor


class GoalType(models.TextChoices):
    REVENUE_GROWTH = "revenue_growth", "Revenue growth"
    MARKET_ACCESS = "market_access", "Market access"
    COST_REDUCTION = "cost_reduction", "Cost reduction"
    BRAND_BUILDING = "brand_building", "Brand building"
    CAPABILITY = "capability", "Capability"


class Priority(models.TextChoices):
    CRITICAL = "critical", "Critical"
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


class Objective(TimeStamped):
    GoalType = GoalType

    Priority = Priority

    agreement = models.ForeignKey(Agreement, on_delete=models.CASCADE, related_name="objectives")
    goal_type = models.CharField("goal type", max_length=20, choices=GoalType.choices)
    success_metric = models.CharField("success metric", max_length=200)
    kpi = models.ForeignKey(
        KPIDefinition, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="objectives", verbose_name="linked KPI",
    )
    target_value = models.FloatField("target value")
    # When the two sides agreed on it, which may be long before it was entered here (a
    # program file loaded today, an objective typed in from last year's contract): the time
    # to its deadline, against which progress is judged, runs from this day.
    set_on = models.DateField(
        "set on", default=timezone.localdate,
        help_text="The day the objective was agreed; the time to the deadline runs from here.",
    )
    deadline = models.DateField("deadline")
    priority = models.CharField(
        "priority", max_length=10, choices=Priority.choices, default=Priority.MEDIUM
    )

    class Meta:
        ordering = ["deadline"]
        verbose_name = "objective"
        constraints = [
            models.CheckConstraint(
                condition=Q(goal_type__in=GoalType.values), name="objective_goal_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(priority__in=Priority.values), name="objective_priority_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.success_metric

    def clean(self) -> None:
        errors = {}
        if self.target_value is not None and not math.isfinite(self.target_value):
            errors["target_value"] = "Enter a finite number."
        if self.set_on and self.deadline and self.deadline < self.set_on:
            errors["deadline"] = (f"The deadline comes before the day the objective was set "
                                  f"({self.set_on:%Y-%m-%d}): choose a later one.")
        # Progress is measured from the KPI's scores on this agreement: another's has none.
        if self.kpi_id and self.agreement_id and not AgreementKPI.objects.filter(
                agreement_id=self.agreement_id, kpi_id=self.kpi_id).exists():
            errors["kpi"] = "Choose one of this agreement's KPIs."
        if errors:
            raise ValidationError(errors)


class IncentivePlan(TimeStamped):
    agreement = models.OneToOneField(
        Agreement, on_delete=models.CASCADE, related_name="incentive_plan"
    )
    base_amount = models.DecimalField("base amount per month", max_digits=12, decimal_places=2)
    currency = models.CharField("currency", max_length=3, default="USD")
    baseline_score = models.FloatField(
        "baseline rolling score", default=60.0,
        validators=[MinValueValidator(0), MaxValueValidator(120)],
    )
    multiplier_transactional = models.DecimalField(
        "transactional multiplier", max_digits=5, decimal_places=3, default=Decimal("1.0")
    )
    multiplier_growth = models.DecimalField(
        "growth multiplier", max_digits=5, decimal_places=3, default=Decimal("1.25")
    )
    multiplier_strategic = models.DecimalField(
        "strategic multiplier", max_digits=5, decimal_places=3, default=Decimal("1.5")
    )

    class Meta:
        verbose_name = "incentive plan"
        constraints = [
            models.CheckConstraint(condition=Q(base_amount__gte=0), name="incentive_base_nonneg"),
            models.CheckConstraint(
                condition=Q(
                    multiplier_transactional__gte=0,
                    multiplier_growth__gte=0,
                    multiplier_strategic__gte=0,
                ),
                name="incentive_multipliers_nonneg",
            ),
        ]

    def __str__(self) -> str:
        return f"Incentive plan of {self.agreement.code}"

    def clean(self) -> None:
        self.currency = (self.currency or "").strip().upper()
        errors = {}
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            errors["currency"] = "Enter a three-letter currency code, e.g. USD."
        if self.baseline_score is not None and not math.isfinite(self.baseline_score):
            errors["baseline_score"] = "Enter a finite number."
        if errors:
            raise ValidationError(errors)


# Days after a month's end without a KPI's value before its data is stale (needs attention).
STALE_AFTER_DAYS_DEFAULT, STALE_AFTER_DAYS_MAX = 45, 366


class ProgramSettings(models.Model):
    """The program's scoring policy; one row (id 1), edited by loading a program file."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    tier_policy = models.CharField(
        "tier policy", max_length=16, choices=TierPolicy.choices, default=TierPolicy.PERCENTILE
    )
    strategic_threshold = models.FloatField("strategic threshold", default=85.0)
    growth_threshold = models.FloatField("growth threshold", default=70.0)
    hysteresis = models.PositiveSmallIntegerField(
        "hysteresis (months)", default=2, validators=[MinValueValidator(1)]
    )
    stale_after_days = models.PositiveSmallIntegerField(
        "stale data after (days)", default=STALE_AFTER_DAYS_DEFAULT,
        validators=[MinValueValidator(1), MaxValueValidator(STALE_AFTER_DAYS_MAX)],
        help_text="A KPI with no observation this many days after its month ended needs "
                  "attention.",
    )
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        verbose_name = "program settings"
        verbose_name_plural = "program settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="program_settings_single_row"),
            models.CheckConstraint(
                condition=Q(tier_policy__in=TierPolicy.values), name="program_tier_policy_valid"
            ),
            models.CheckConstraint(
                condition=Q(growth_threshold__lte=F("strategic_threshold")),
                name="program_thresholds_ordered",
            ),
            models.CheckConstraint(condition=Q(hysteresis__gte=1), name="program_hysteresis_min"),
        ]

    def __str__(self) -> str:
        return "Program settings"

    @classmethod
    def current(cls) -> "ProgramSettings":
        return cls.objects.filter(pk=1).first() or cls()


class ImportSource(models.TextChoices):
    UPLOAD = "upload", "File upload"
    COMMAND = "command", "Command"
    API = "api", "API"
    DEMO = "demo", "Demo generator"
    CORRECTION = "correction", "Correction (dispute resolved)"


class ImportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ImportBatch(models.Model):
    Source = ImportSource

    Status = ImportStatus

    source = models.CharField("source", max_length=10, choices=Source.choices)
    status = models.CharField(
        "status", max_length=10, choices=Status.choices, default=Status.PENDING
    )
    side = models.CharField("uploader's side", max_length=8, choices=Side.choices)
    partner = models.ForeignKey(
        Partner, on_delete=models.PROTECT, null=True, blank=True, related_name="import_batches",
        help_text="The uploader's partner; empty for the host.",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="import_batches",
    )
    file_name = models.CharField("file name", max_length=255, blank=True)
    file = models.FileField(
        "uploaded file", upload_to="imports/%Y/%m/", blank=True,
        help_text="Kept so both sides can download exactly what was imported.",
    )
    sha256 = models.CharField("SHA-256", max_length=64, blank=True)
    # NULL, not "", when absent: the unique constraint must not join batches without a key.
    idempotency_key = models.CharField(  # noqa: DJ001
        "idempotency key", max_length=128, null=True, blank=True
    )
    rows_total = models.PositiveIntegerField("rows", default=0)
    inserted = models.PositiveIntegerField("inserted", default=0)
    updated = models.PositiveIntegerField("updated", default=0)
    unchanged = models.PositiveIntegerField("unchanged", default=0)
    error_count = models.PositiveIntegerField("errors", default=0)
    errors = models.JSONField("errors", default=list, blank=True)
    progress = models.PositiveSmallIntegerField("progress %", default=0)
    notes = models.JSONField(
        "notes", default=list, blank=True,
        help_text="What the reader noticed, e.g. which sheet of a workbook was read.",
    )
    # Read once by a task when the file is uploaded, so a page view never reads the file.
    preview = models.JSONField(
        "preview", null=True, blank=True,
        help_text="What reading the file found: format, columns, the first rows and the row "
                  "count. Empty until the file has been read.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    confirmed_at = models.DateTimeField(
        "confirmed", null=True, blank=True,
        help_text="When the uploader confirmed the previewed file; empty while awaiting it.",
    )
    heartbeat_at = models.DateTimeField(
        "last sign of life", null=True, blank=True,
        help_text="Set while the import runs; a running import silent for long has lost its "
                  "worker and is marked failed.",
    )
    finished_at = models.DateTimeField("finished", null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "import batch"
        verbose_name_plural = "import batches"
        indexes = [models.Index(fields=["-created_at"], name="import_batch_recent")]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"], name="import_batch_idempotency_unique"
            ),
            models.CheckConstraint(
                condition=Q(source__in=ImportSource.values), name="import_batch_source_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ImportStatus.values), name="import_batch_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(side__in=Side.values), name="import_batch_side_valid"
            ),
            models.CheckConstraint(
                condition=Q(progress__lte=100), name="import_batch_progress_percent"
            ),
        ]

    def __str__(self) -> str:
        return f"Import {self.pk} ({self.get_source_display()}, {self.file_name or 'no file'})"


class MetricObservation(models.Model):
    """One reported value: the fact table that every score is computed from.

    Its foreign keys are not enforced by the database (`db_constraint=False`): a per-row
    constraint check costs about 3 s per million imported rows per key, four times over, and
    the table grows by millions of rows. Integrity is held instead by the one write path
    (`partnerships.services.observations_write`), which only writes KPIs that are part of an
    existing agreement, under a lock, and by the ORM's `on_delete` rules, which Django applies
    itself: deleting an agreement deletes its observations, a KPI or an import batch with
    observations cannot be deleted, and deleting a user clears `recorded_by`.
    """

    agreement = models.ForeignKey(
        Agreement, on_delete=models.CASCADE, related_name="observations",
        db_constraint=False, db_index=False,
    )
    kpi = models.ForeignKey(
        KPIDefinition, on_delete=models.PROTECT, related_name="observations", verbose_name="KPI",
        db_constraint=False, db_index=False,
    )
    side = models.CharField("reported by side", max_length=8, choices=Side.choices)
    date = models.DateField("date")
    value = models.FloatField("value")
    note = models.CharField("note", max_length=500, blank=True)
    batch = models.ForeignKey(
        ImportBatch, on_delete=models.PROTECT, related_name="observations",
        verbose_name="import batch", db_constraint=False, db_index=False,
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", db_constraint=False, db_index=False,
    )
    recorded_at = models.DateTimeField("recorded")

    class Meta:
        ordering = ["agreement", "kpi", "side", "date"]
        verbose_name = "metric observation"
        constraints = [
            models.UniqueConstraint(
                fields=["agreement", "kpi", "side", "date"], name="observation_natural_key"
            ),
            models.CheckConstraint(
                condition=Q(side__in=Side.values), name="observation_side_valid"
            ),
        ]
        indexes = [
            # The month range of a scoring run: MIN/MAX over all observations.
            models.Index(fields=["date"], name="observation_date"),
            models.Index(fields=["batch"], name="observation_batch"),
        ]

    def __str__(self) -> str:
        return f"{self.agreement_id}/{self.kpi_id}/{self.side}/{self.date}={self.value}"


class ObservationChange(models.Model):
    """The audit history: every value an import replaced, with who, when and which batch."""

    observation = models.ForeignKey(
        MetricObservation, on_delete=models.SET_NULL, null=True, related_name="changes"
    )
    agreement = models.ForeignKey(Agreement, on_delete=models.CASCADE, related_name="+")
    kpi = models.ForeignKey(KPIDefinition, on_delete=models.PROTECT, related_name="+")
    side = models.CharField("side", max_length=8, choices=Side.choices)
    date = models.DateField("date")
    old_value = models.FloatField("old value")
    new_value = models.FloatField("new value")
    old_batch = models.ForeignKey(
        ImportBatch, on_delete=models.PROTECT, related_name="+", null=True
    )
    batch = models.ForeignKey(ImportBatch, on_delete=models.PROTECT, related_name="changes")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )
    changed_at = models.DateTimeField("changed")

    class Meta:
        ordering = ["-changed_at"]
        verbose_name = "observation change"
        indexes = [
            models.Index(fields=["agreement", "kpi", "date"], name="observation_change_key"),
        ]

    def __str__(self) -> str:
        return f"{self.old_value} → {self.new_value}"


class Membership(models.Model):
    """Ties a user to one side: the host, or exactly one partner, with a role."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership"
    )
    role = models.CharField("role", max_length=16, choices=Role.choices)
    partner = models.ForeignKey(
        Partner, on_delete=models.CASCADE, null=True, blank=True, related_name="memberships"
    )
    created_at = models.DateTimeField("created", auto_now_add=True)

    class Meta:
        verbose_name = "membership"
        constraints = [
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
            models.CheckConstraint(
                condition=(
                    Q(role__in=[r.value for r in HOST_ROLES], partner__isnull=True)
                    | Q(role__in=[r.value for r in PARTNER_ROLES], partner__isnull=False)
                ),
                name="membership_partner_matches_role",
            ),
        ]

    def __str__(self) -> str:
        where = self.partner.name if self.partner_id else "host"
        return f"{self.user} — {self.get_role_display()} ({where})"

    @property
    def side(self) -> str:
        return Side.HOST if self.role in HOST_ROLES else Side.PARTNER

    @property
    def is_host(self) -> bool:
        return self.role in HOST_ROLES

    @property
    def can_manage(self) -> bool:
        """Host managers and admins edit the program, import and start scoring runs."""
        return self.role in HOST_ROLES


class ApiToken(models.Model):
    """A per-user token for the metrics API. Only a hash is stored; the key is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField("name", max_length=100, help_text="What the token is used by.")
    prefix = models.CharField("key prefix", max_length=12, db_index=True)
    key_hash = models.CharField("key hash (SHA-256)", max_length=64, unique=True)
    created_at = models.DateTimeField("created", auto_now_add=True)
    last_used_at = models.DateTimeField("last used", null=True, blank=True)
    revoked_at = models.DateTimeField("revoked", null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class AuditAction(models.TextChoices):
    LOGIN = "login", "Logged in"
    LOGIN_FAILED = "login_failed", "Failed log-in"
    LOGOUT = "logout", "Logged out"
    LOCKED_OUT = "locked_out", "Locked out"
    INVITATION_SENT = "invitation_sent", "Invitation sent"
    INVITATION_ACCEPTED = "invitation_accepted", "Invitation accepted"
    INVITATION_WITHDRAWN = "invitation_withdrawn", "Invitation withdrawn"
    ROLE_CHANGED = "role_changed", "Role changed"
    USER_DEACTIVATED = "user_deactivated", "User deactivated"
    USER_REACTIVATED = "user_reactivated", "User reactivated"
    IMPORT = "import", "Metrics imported"
    PROGRAM_LOADED = "program_loaded", "Program loaded"
    PROGRAM_CHANGED = "program_changed", "Program changed"
    API_TOKEN = "api_token", "API token created or revoked"
    MONTH_CLOSED = "month_closed", "Months closed"
    MONTH_CLOSE_REFUSED = "month_close_refused", "Automatic close refused"
    MONTH_REOPENED = "month_reopened", "Month reopened"
    STATEMENT_APPROVED = "statement_approved", "Statement approved"
    DISPUTE = "dispute", "Dispute opened, answered, withdrawn or resolved"
    MAIL_PREFERENCES = "mail_preferences", "E-mail preferences changed"
    SCORING_RUN = "scoring_run", "Scoring run"
    EXPORT = "export", "Export downloaded"
    ADMIN_CHANGE = "admin_change", "Admin change"
    TWO_FACTOR = "two_factor", "Two-factor setting changed"
    PASSWORD_RESET_REQUESTED = "password_reset_requested", "Password reset requested"
    PASSWORD_RESET = "password_reset", "Password reset"


class AuditEvent(models.Model):
    """Who did what, when and from where: security-relevant actions, kept for host admins."""

    at = models.DateTimeField("when", auto_now_add=True, db_index=True)
    action = models.CharField("action", max_length=24, choices=AuditAction.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )
    username = models.CharField(
        "user name", max_length=150, blank=True,
        help_text="As typed or as it was then: kept when the user is deleted or unknown.",
    )
    ip_address = models.GenericIPAddressField("address", null=True, blank=True)
    partner = models.ForeignKey(
        Partner, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="The partner the action concerns, if any.",
    )
    target = models.CharField("object", max_length=200, blank=True)
    detail = models.JSONField("detail", default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit event"
        indexes = [models.Index(fields=["action", "-at"], name="audit_action_recent")]
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=AuditAction.values), name="audit_action_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.username or '-'} {self.get_action_display()}"


class InvitationQuerySet(models.QuerySet):
    def pending(self, *, now) -> "InvitationQuerySet":
        """Invitations whose link still works at `now`: not used, withdrawn or expired."""
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now)


class Invitation(models.Model):
    """A one-time, expiring link that lets someone create an account with a given role.

    Only a SHA-256 of the link's random token is stored: the token itself is in the e-mail
    and nowhere else, so a copy of the database cannot be used to accept invitations."""

    email = models.EmailField("e-mail")
    role = models.CharField("role", max_length=16, choices=Role.choices)
    partner = models.ForeignKey(
        Partner, on_delete=models.CASCADE, null=True, blank=True, related_name="invitations",
        help_text="The partner the new user will belong to; empty for the host.",
    )
    token_hash = models.CharField("token hash (SHA-256)", max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name="invited by",
    )
    created_at = models.DateTimeField("sent", auto_now_add=True)
    expires_at = models.DateTimeField("expires")
    accepted_at = models.DateTimeField("accepted", null=True, blank=True)
    accepted_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name="account created",
    )
    revoked_at = models.DateTimeField("withdrawn", null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "invitation"
        indexes = [models.Index(fields=["email"], name="invitation_email")]
        constraints = [
            models.CheckConstraint(condition=Q(role__in=Role.values), name="invitation_role_valid"),
            models.CheckConstraint(
                condition=(
                    Q(role__in=[r.value for r in HOST_ROLES], partner__isnull=True)
                    | Q(role__in=[r.value for r in PARTNER_ROLES], partner__isnull=False)
                ),
                name="invitation_partner_matches_role",
            ),
            models.CheckConstraint(
                condition=Q(accepted_at__isnull=True) | Q(revoked_at__isnull=True),
                name="invitation_not_accepted_and_withdrawn",
            ),
        ]

    def __str__(self) -> str:
        where = self.partner.name if self.partner_id else "host"
        return f"Invitation of {self.email} — {self.get_role_display()} ({where})"

    def state(self, *, now) -> str:
        """`accepted`, `withdrawn`, `expired` or `pending` at `now`."""
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "withdrawn"
        if self.expires_at <= now:
            return "expired"
        return "pending"


# ---- Program management: stage history, KPI templates, reviews, assessments, change history --

# The moves an agreement's stage may make. A pilot promoted to active keeps its id, its code,
# its observations and scores: promotion is a move, not a new agreement.
STAGE_TRANSITIONS: dict[str, tuple[str, ...]] = {
    Stage.PROSPECT: (Stage.PILOT, Stage.ACTIVE, Stage.ENDED),
    Stage.PILOT: (Stage.ACTIVE, Stage.UNDER_REVIEW, Stage.EXITING, Stage.ENDED),
    Stage.ACTIVE: (Stage.UNDER_REVIEW, Stage.EXITING),
    Stage.UNDER_REVIEW: (Stage.ACTIVE, Stage.EXITING),
    Stage.EXITING: (Stage.UNDER_REVIEW, Stage.ENDED),
    Stage.ENDED: (),
}


class StageTransition(models.Model):
    """One move of an agreement's stage: who, when and why."""

    agreement = models.ForeignKey(
        Agreement, on_delete=models.CASCADE, related_name="stage_transitions"
    )
    from_stage = models.CharField("from", max_length=16, choices=Stage.choices)
    to_stage = models.CharField("to", max_length=16, choices=Stage.choices)
    at = models.DateTimeField("when", default=timezone.now)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name="by",
    )
    reason = models.TextField("why")

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "stage transition"
        constraints = [
            models.CheckConstraint(
                condition=Q(from_stage__in=Stage.values) & Q(to_stage__in=Stage.values),
                name="stage_transition_stages_valid",
            ),
            models.CheckConstraint(
                condition=~Q(from_stage=F("to_stage")), name="stage_transition_moves"
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="stage_transition_has_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.agreement.code}: {self.from_stage} → {self.to_stage}"


class KPITemplateItem(models.Model):
    """One KPI of the standard set for an agreement type, copied onto new agreements."""

    agreement_type = models.CharField("agreement type", max_length=32,
                                      choices=AgreementType.choices)
    kpi = models.ForeignKey(
        KPIDefinition, on_delete=models.CASCADE, related_name="template_items",
        verbose_name="KPI",
    )
    target = models.FloatField("monthly target")
    floor = models.FloatField("floor")
    weight = models.FloatField("weight within its category", default=1.0)

    class Meta:
        ordering = ["agreement_type", "kpi__code"]
        verbose_name = "KPI template item"
        constraints = [
            models.UniqueConstraint(fields=["agreement_type", "kpi"],
                                    name="kpi_template_item_unique"),
            models.CheckConstraint(condition=Q(agreement_type__in=AgreementType.values),
                                   name="kpi_template_type_valid"),
            models.CheckConstraint(condition=~Q(floor=F("target")),
                                   name="kpi_template_floor_not_target"),
            models.CheckConstraint(condition=Q(weight__gt=0), name="kpi_template_weight_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.agreement_type}:{self.kpi_id}"


class ReviewKind(models.TextChoices):
    QUARTERLY_STRATEGY = "quarterly_strategy", "Quarterly strategy review"
    MONTHLY_RESULTS = "monthly_results", "Monthly results review"
    TACTICAL_SYNC = "tactical_sync", "Bi-weekly tactical sync"


class ReviewStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    HELD = "held", "Held"


class Review(TimeStamped):
    """A business review of an agreement: planned ahead (date, agenda, attendees), then
    recorded as held (notes, decisions, actions). Only held reviews count for the due dates."""

    Kind = ReviewKind
    Status = ReviewStatus

    agreement = models.ForeignKey(Agreement, on_delete=models.CASCADE, related_name="reviews")
    kind = models.CharField("kind", max_length=24, choices=ReviewKind.choices)
    status = models.CharField("status", max_length=8, choices=ReviewStatus.choices,
                              default=ReviewStatus.HELD)
    held_on = models.DateField("date")
    starts_at = models.TimeField("starts at", null=True, blank=True,
                                 help_text="Local time; empty: an all-day review.")
    duration_minutes = models.PositiveSmallIntegerField(
        "duration (minutes)", default=60, validators=[MinValueValidator(5),
                                                      MaxValueValidator(24 * 60)])
    agenda = models.TextField("agenda", blank=True)
    host_attendees = models.TextField("attendees (host)", blank=True)
    partner_attendees = models.TextField("attendees (partner)", blank=True)
    notes = models.TextField("notes", blank=True)
    decisions = models.TextField("decisions", blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-held_on", "-id"]
        verbose_name = "business review"
        indexes = [models.Index(fields=["agreement", "-held_on"], name="review_recent")]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=ReviewKind.values),
                                   name="review_kind_valid"),
            models.CheckConstraint(condition=Q(status__in=ReviewStatus.values),
                                   name="review_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.agreement.code} on {self.held_on}"

    def clean(self) -> None:
        if (self.status == ReviewStatus.HELD and self.held_on
                and self.held_on > timezone.localdate()):
            raise ValidationError({"held_on": "A review is recorded as held once it has been "
                                              "held: the date cannot be in the future (plan it "
                                              "instead)."})


class Raci(models.TextChoices):
    RESPONSIBLE = "responsible", "Responsible"
    ACCOUNTABLE = "accountable", "Accountable"
    CONSULTED = "consulted", "Consulted"
    INFORMED = "informed", "Informed"


class ActionStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class ActionItem(TimeStamped):
    """A task agreed in a review: what, who (name and side), their RACI role, by when."""

    Status = ActionStatus

    agreement = models.ForeignKey(Agreement, on_delete=models.CASCADE,
                                  related_name="action_items")
    review = models.ForeignKey(Review, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="action_items")
    description = models.TextField("action")
    owner_name = models.CharField("owner", max_length=200)
    owner_side = models.CharField("owner's side", max_length=8, choices=Side.choices)
    raci = models.CharField("RACI role", max_length=12, choices=Raci.choices,
                            default=Raci.RESPONSIBLE)
    due_date = models.DateField("due")
    status = models.CharField("status", max_length=12, choices=ActionStatus.choices,
                              default=ActionStatus.OPEN)
    completed_at = models.DateTimeField("completed", null=True, blank=True)

    class Meta:
        ordering = ["due_date", "id"]
        verbose_name = "action item"
        # Open actions are few beside the done ones piling up over the years: the overdue
        # counts and each agreement's open list read this small index alone.
        indexes = [models.Index(fields=["agreement", "due_date"], name="action_item_open",
                                condition=Q(status__in=["open", "in_progress"]))]
        constraints = [
            models.CheckConstraint(condition=Q(owner_side__in=Side.values),
                                   name="action_item_side_valid"),
            models.CheckConstraint(condition=Q(raci__in=Raci.values),
                                   name="action_item_raci_valid"),
            models.CheckConstraint(condition=Q(status__in=ActionStatus.values),
                                   name="action_item_status_valid"),
        ]

    def __str__(self) -> str:
        return self.description[:60]

    def clean(self) -> None:
        if (self.review_id and self.agreement_id
                and self.review.agreement_id != self.agreement_id):
            raise ValidationError({"review": "Choose a review of this agreement."})

    @property
    def is_closed(self) -> bool:
        return self.status in (ActionStatus.DONE, ActionStatus.CANCELLED)


# Days between business reviews by review cadence; a strategic partner gets at least a
# quarterly executive review, a growth partner a monthly check-in (DOMAIN.md § Concepts, Tier).
REVIEW_CADENCE_DAYS = {
    ReviewCadence.BIWEEKLY: 14,
    ReviewCadence.MONTHLY: 31,
    ReviewCadence.QUARTERLY: 92,
    ReviewCadence.SEMIANNUAL: 183,
    ReviewCadence.ANNUAL: 366,
}
TIER_REVIEW_DAYS = {Tier.STRATEGIC: 92, Tier.GROWTH: 31, Tier.TRANSACTIONAL: 92}

FIT_VALIDATORS = [MinValueValidator(1), MaxValueValidator(5)]


class PartnerAssessment(TimeStamped):
    """One assessment of a partner (DOMAIN.md § Partner assessment), kept over time."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="assessments")
    assessed_on = models.DateField("assessed on")
    assessed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )
    strategic_fit = models.PositiveSmallIntegerField("strategic fit", validators=FIT_VALIDATORS)
    cultural_compatibility = models.PositiveSmallIntegerField(
        "cultural compatibility", validators=FIT_VALIDATORS)
    operational_capability = models.PositiveSmallIntegerField(
        "operational capability", validators=FIT_VALIDATORS)
    market_position = models.PositiveSmallIntegerField("market position",
                                                       validators=FIT_VALIDATORS)
    # Cultural alignment: aligned on at least 4 of the 5 -> good cultural fit.
    aligned_decision_speed = models.BooleanField("decision-making speed aligned", default=False)
    aligned_communication = models.BooleanField("communication style aligned", default=False)
    aligned_risk_tolerance = models.BooleanField("risk tolerance aligned", default=False)
    aligned_innovation = models.BooleanField("innovation approach aligned", default=False)
    aligned_customer_focus = models.BooleanField("customer focus aligned", default=False)
    # Three-horizon test.
    horizon_today = models.TextField("H1: value today", blank=True)
    horizon_capabilities = models.TextField("H2: capabilities in 6–18 months", blank=True)
    horizon_options = models.TextField("H3: future options", blank=True)
    # Partnership value = (strategic fit × resource contribution) / implementation complexity.
    resource_contribution = models.PositiveSmallIntegerField(
        "resource contribution", validators=FIT_VALIDATORS)
    implementation_complexity = models.PositiveSmallIntegerField(
        "implementation complexity", validators=FIT_VALIDATORS)
    notes = models.TextField("notes", blank=True)

    ALIGNMENT_FIELDS = ("aligned_decision_speed", "aligned_communication",
                        "aligned_risk_tolerance", "aligned_innovation", "aligned_customer_focus")

    class Meta:
        ordering = ["partner", "-assessed_on", "-id"]
        verbose_name = "partner assessment"
        constraints = [
            models.CheckConstraint(
                condition=Q(strategic_fit__gte=1, strategic_fit__lte=5,
                            cultural_compatibility__gte=1, cultural_compatibility__lte=5,
                            operational_capability__gte=1, operational_capability__lte=5,
                            market_position__gte=1, market_position__lte=5,
                            resource_contribution__gte=1, resource_contribution__lte=5,
                            implementation_complexity__gte=1, implementation_complexity__lte=5),
                name="assessment_scores_1_to_5",
            ),
        ]

    def __str__(self) -> str:
        return f"Assessment of {self.partner.name} on {self.assessed_on}"

    @property
    def aligned_count(self) -> int:
        return sum(bool(getattr(self, name)) for name in self.ALIGNMENT_FIELDS)

    @property
    def good_cultural_fit(self) -> bool:
        return self.aligned_count >= 4

    @property
    def partnership_value(self) -> float:
        return self.strategic_fit * self.resource_contribution / self.implementation_complexity


class ChangeKind(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Changed"
    DELETED = "deleted", "Deleted"
    STAGE = "stage", "Stage moved"


class ProgramChange(models.Model):
    """The history of the program: who changed which partner, agreement, KPI, objective, review,
    action, assessment or incentive plan, when, and each field's old and new value."""

    at = models.DateTimeField("when", default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )
    username = models.CharField("user name", max_length=150, blank=True)
    kind = models.CharField("change", max_length=8, choices=ChangeKind.choices)
    object_type = models.CharField("object type", max_length=40)
    object_id = models.BigIntegerField("object id", null=True, blank=True)
    object_label = models.CharField("object", max_length=200)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, null=True, blank=True,
                                related_name="+")
    agreement = models.ForeignKey(Agreement, on_delete=models.CASCADE, null=True, blank=True,
                                  related_name="changes")
    # {field label: [old, new]} as text, so the history reads the same after the model changes.
    fields = models.JSONField("fields", default=dict, blank=True)
    # Why, when a change came with one of many (a what-if's save: "What-if: 3 tier moves, …").
    reason = models.TextField("reason", blank=True, default="")

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "program change"
        indexes = [
            models.Index(fields=["agreement", "-at"], name="program_change_agreement"),
            models.Index(fields=["partner", "-at"], name="program_change_partner"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=ChangeKind.values),
                                   name="program_change_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.username or '-'} {self.kind} {self.object_label}"


MONTH_REGEX = r"^\d{4}-(0[1-9]|1[0-2])\Z"


class MonthQuerySet(models.QuerySet):
    def closed(self) -> "MonthQuerySet":
        return self.filter(closed=True)

    def last_closed(self) -> str | None:
        """The last closed month ("YYYY-MM"), or None while every month is open."""
        return self.closed().order_by("-month").values_list("month", flat=True).first()


class ProgramMonth(models.Model):
    """A calendar month of the program and whether it is closed (DOMAIN.md § Closing months).

    A month without a row is open. Months close in calendar order, so the closed months are
    always every month up to the last closed one that has a row; `MonthEvent` keeps each close
    and reopening with who, when and why."""

    month = models.CharField("month", max_length=7, unique=True)
    closed = models.BooleanField("closed", default=False)
    closed_at = models.DateTimeField("closed at", null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name="closed by",
    )

    objects = MonthQuerySet.as_manager()

    class Meta:
        ordering = ["month"]
        verbose_name = "program month"
        constraints = [
            models.CheckConstraint(condition=Q(month__regex=MONTH_REGEX),
                                   name="program_month_format"),
            models.CheckConstraint(condition=Q(closed=False) | Q(closed_at__isnull=False),
                                   name="program_month_closed_when"),
        ]

    def __str__(self) -> str:
        return f"{self.month} ({'closed' if self.closed else 'open'})"


class MonthAction(models.TextChoices):
    CLOSED = "closed", "Closed"
    REOPENED = "reopened", "Reopened"


class MonthEvent(models.Model):
    """One close or reopening of a month: who, when and, for a reopening, why."""

    month = models.CharField("month", max_length=7)
    action = models.CharField("action", max_length=8, choices=MonthAction.choices)
    at = models.DateTimeField("when", default=timezone.now)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )
    username = models.CharField("user name", max_length=150, blank=True)
    reason = models.TextField("reason", blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "month event"
        indexes = [models.Index(fields=["month", "-at"], name="month_event_recent")]
        constraints = [
            models.CheckConstraint(condition=Q(action__in=MonthAction.values),
                                   name="month_event_action_valid"),
            models.CheckConstraint(condition=Q(month__regex=MONTH_REGEX),
                                   name="month_event_month_format"),
            models.CheckConstraint(condition=~Q(action="reopened") | ~Q(reason=""),
                                   name="month_event_reopen_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.month} {self.action} by {self.username or '-'}"


class DisputeStatus(models.TextChoices):
    OPEN = "open", "Open"
    WITHDRAWN = "withdrawn", "Withdrawn"
    RESOLVED = "resolved", "Resolved"


class DisputeResolution(models.TextChoices):
    KEPT = "kept", "Value kept"
    OTHER_SIDE = "other_side", "Other side's value taken"
    CORRECTED = "corrected", "Corrected value entered"


class Dispute(models.Model):
    """One side contests the value of one KPI of one agreement in one month.

    The thread (`DisputeEvent`) keeps every step with who and when; a corrected value is
    written through the observations' write path as a batch of its own (`correction_batch`)."""

    Status = DisputeStatus
    Resolution = DisputeResolution

    agreement = models.ForeignKey(Agreement, on_delete=models.CASCADE, related_name="disputes")
    kpi = models.ForeignKey(KPIDefinition, on_delete=models.PROTECT, related_name="disputes",
                            verbose_name="KPI")
    month = models.CharField("month", max_length=7)
    opened_side = models.CharField("opened by side", max_length=8, choices=Side.choices)
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )
    opened_at = models.DateTimeField("opened", default=timezone.now)
    reason = models.TextField("reason")
    proposed_value = models.FloatField("value believed right", null=True, blank=True)
    status = models.CharField("status", max_length=10, choices=DisputeStatus.choices,
                              default=DisputeStatus.OPEN)
    resolution = models.CharField("resolution", max_length=10, blank=True,
                                  choices=DisputeResolution.choices)
    resolved_value = models.FloatField("value after resolution", null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", help_text="Who withdrew or resolved it.",
    )
    closed_at = models.DateTimeField("withdrawn or resolved", null=True, blank=True)
    correction_batch = models.ForeignKey(
        ImportBatch, on_delete=models.PROTECT, null=True, blank=True, related_name="disputes",
        help_text="The batch that wrote the corrected or taken value.",
    )

    class Meta:
        ordering = ["-opened_at", "-id"]
        verbose_name = "dispute"
        indexes = [
            models.Index(fields=["agreement", "kpi", "month"], name="dispute_key"),
            models.Index(fields=["month"], name="dispute_open_month",
                         condition=Q(status="open")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["agreement", "kpi", "month"],
                                    condition=Q(status="open"), name="dispute_one_open"),
            models.CheckConstraint(condition=Q(month__regex=MONTH_REGEX),
                                   name="dispute_month_format"),
            models.CheckConstraint(condition=Q(opened_side__in=Side.values),
                                   name="dispute_side_valid"),
            models.CheckConstraint(condition=Q(status__in=DisputeStatus.values),
                                   name="dispute_status_valid"),
            models.CheckConstraint(
                condition=(Q(status="resolved") & Q(resolution__in=DisputeResolution.values))
                | (~Q(status="resolved") & Q(resolution="")),
                name="dispute_resolution_when_resolved"),
            models.CheckConstraint(condition=~Q(reason=""), name="dispute_reason_given"),
        ]

    def __str__(self) -> str:
        return f"Dispute of {self.kpi_id} in {self.month} ({self.status})"


class DisputeEventKind(models.TextChoices):
    OPENED = "opened", "Opened"
    COMMENT = "comment", "Commented"
    WITHDRAWN = "withdrawn", "Withdrawn"
    RESOLVED = "resolved", "Resolved"


class DisputeEvent(models.Model):
    """One step of a dispute's thread: opened, a comment, withdrawn or resolved."""

    Kind = DisputeEventKind

    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField("step", max_length=10, choices=DisputeEventKind.choices)
    at = models.DateTimeField("when", default=timezone.now)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )
    username = models.CharField("user name", max_length=150, blank=True)
    side = models.CharField("side", max_length=8, choices=Side.choices)
    text = models.TextField("text", blank=True)
    detail = models.JSONField("detail", default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = "dispute event"
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=DisputeEventKind.values),
                                   name="dispute_event_kind_valid"),
            models.CheckConstraint(condition=Q(side__in=Side.values),
                                   name="dispute_event_side_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} by {self.username or '-'}"


class MailPreference(models.Model):
    """What e-mail a user wants: the weekly digest and each kind of alert. A user without a
    row gets everything (the defaults); the unsubscribe link turns one of these off."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mail_preference"
    )
    digest = models.BooleanField("weekly digest", default=True)
    alert_at_risk = models.BooleanField("alert: an agreement is at risk", default=True)
    alert_tier = models.BooleanField("alert: an agreement's tier changed", default=True)
    alert_action = models.BooleanField("alert: an action is assigned to my side", default=True)
    alert_review_overdue = models.BooleanField("alert: a review is overdue", default=True)
    alert_dispute = models.BooleanField("alert: a dispute is opened, answered or resolved",
                                        default=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        verbose_name = "e-mail preference"

    def __str__(self) -> str:
        return f"E-mail preferences of {self.user}"


class SentMessage(models.Model):
    """One e-mail to one recipient, recorded before it is sent: the unique key makes a task
    that runs twice send nothing the second time."""

    kind = models.CharField("kind", max_length=24)
    key = models.CharField("key", max_length=200,
                           help_text="What the message is about, e.g. the week of a digest.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="sent_messages")
    email = models.EmailField("to")
    subject = models.CharField("subject", max_length=300, blank=True)
    created_at = models.DateTimeField("created", default=timezone.now)
    sent_at = models.DateTimeField("sent", null=True, blank=True)
    error = models.TextField("error", blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "sent message"
        constraints = [
            models.UniqueConstraint(fields=["kind", "key", "user"], name="sent_message_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} to {self.email}"
