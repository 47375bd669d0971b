"""Scoring runs and their results. Readers see the results of the last published run only."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from partnerships.models import Agreement, KPIDefinition, MonthEvent, Tier


class ScoringRunQuerySet(models.QuerySet):
    def published(self) -> "ScoringRunQuerySet":
        return self.filter(status=ScoringRun.Status.SUCCEEDED, published_at__isnull=False)

    def current(self) -> "ScoringRun | None":
        """The run whose results pages and exports show: the last one published."""
        return self.published().order_by("-published_at", "-id").first()


class ScoringRun(models.Model):
    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Nightly schedule"
        USER = "user", "Started by a user"
        COMMAND = "command", "Command line"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    trigger = models.CharField("trigger", max_length=10, choices=Trigger.choices)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name="started by",
    )
    status = models.CharField(
        "status", max_length=10, choices=Status.choices, default=Status.PENDING
    )
    # True while pending or running, NULL afterwards: the unique constraint below lets the
    # database, not a check-then-act in Python, refuse a second concurrent run.
    active = models.BooleanField("active", null=True, default=True, editable=False)
    scheduled_for = models.DateField(
        "nightly run of", null=True, blank=True,
        help_text="Set for scheduled runs: a second beat sending the same night is refused.",
    )
    # A failed nightly run is tried again that night: each try is a run of its own, and the
    # database refuses a second run with the same night and attempt.
    attempt = models.PositiveSmallIntegerField("attempt", default=1)
    # Bookkeeping of the supervisor (scoring_run_supervise): how often the run's own task was
    # queued, how often publishing started, and when a task of the run was last queued again.
    dispatches = models.PositiveSmallIntegerField("run task queued", default=0)
    publish_attempts = models.PositiveSmallIntegerField("publishing started", default=0)
    requeued_at = models.DateTimeField("last queued again", null=True, blank=True)
    rules_version = models.PositiveSmallIntegerField("rules version")
    # The first month the run computed ("YYYY-MM"); blank when it computed every month. The
    # months before it are shown from the frozen results of the closed months.
    open_from = models.CharField("first month computed", max_length=7, blank=True)
    fingerprint = models.CharField("input fingerprint", max_length=64, blank=True)
    settings_snapshot = models.JSONField("scoring settings", default=dict, blank=True)
    stage = models.CharField("stage", max_length=40, blank=True)
    progress = models.PositiveSmallIntegerField("progress %", default=0)
    chunks_total = models.PositiveIntegerField("chunks", default=0)
    chunks_done = models.PositiveIntegerField("chunks done", default=0)
    first_period = models.CharField("first month", max_length=7, blank=True)
    last_period = models.CharField("last month", max_length=7, blank=True)
    months = models.PositiveIntegerField("months", default=0)
    agreements = models.PositiveIntegerField("agreements", default=0)
    scorecards = models.PositiveIntegerField("scorecards", default=0)
    tier_changes = models.PositiveIntegerField("tier changes", default=0)
    error = models.TextField("error", blank=True)
    created_at = models.DateTimeField("requested", auto_now_add=True)
    started_at = models.DateTimeField("started", null=True, blank=True)
    heartbeat_at = models.DateTimeField("last heartbeat", null=True, blank=True)
    finished_at = models.DateTimeField("finished", null=True, blank=True)
    published_at = models.DateTimeField("published", null=True, blank=True)

    objects = ScoringRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "scoring run"
        constraints = [
            models.UniqueConstraint(fields=["active"], name="scoring_run_one_active"),
            models.UniqueConstraint(
                fields=["scheduled_for", "attempt"], name="scoring_run_one_attempt_per_night"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "running"], active=True)
                | Q(status__in=["succeeded", "failed"], active__isnull=True),
                name="scoring_run_active_matches_status",
            ),
            models.CheckConstraint(
                condition=Q(trigger__in=["schedule", "user", "command"]),
                name="scoring_run_trigger_valid",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="scoring_run_percent"),
            models.CheckConstraint(condition=Q(attempt__gte=1), name="scoring_run_attempt_from_1"),
        ]
        indexes = [models.Index(fields=["status", "-published_at"], name="scoring_run_published")]

    def __str__(self) -> str:
        return f"Scoring run {self.pk} ({self.status})"

    @property
    def periods(self) -> list[str]:
        """The months this run scored, "YYYY-MM", oldest first."""
        if not self.first_period or not self.last_period:
            return []
        first_year, first_month = (int(part) for part in self.first_period.split("-"))
        last_year, last_month = (int(part) for part in self.last_period.split("-"))
        return [
            f"{index // 12:04d}-{index % 12 + 1:02d}"
            for index in range(first_year * 12 + first_month - 1, last_year * 12 + last_month)
        ]

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class ScoringChunk(models.Model):
    """One slice of agreements of a run, scored by one task of the per-agreement stage."""

    run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField("index")
    agreement_ids = models.JSONField("agreements")
    done = models.BooleanField("done", default=False)
    # A digest of each agreement's inputs, combined by the program-wide stage into the run's
    # fingerprint in agreement order, so the fingerprint does not depend on the chunk size.
    digests = models.JSONField("input digests", default=dict)
    # A chunk's task may be lost (a killed worker, a restarted broker): the supervisor sends it
    # again, a bounded number of times. A started chunk holds its row lock until it commits, so
    # "started, not done, not locked" means its worker is gone.
    sends = models.PositiveSmallIntegerField("times queued", default=0)
    attempts = models.PositiveSmallIntegerField("times started", default=0)
    sent_at = models.DateTimeField("last queued", null=True, blank=True)
    started_at = models.DateTimeField("last started", null=True, blank=True)
    error = models.TextField("last error", blank=True)

    class Meta:
        ordering = ["run", "index"]
        verbose_name = "scoring chunk"
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="scoring_chunk_unique"),
        ]

    def __str__(self) -> str:
        return f"Chunk {self.index} of run {self.run_id}"


def run_results_q(run: ScoringRun, prefix: str = "") -> Q:
    """The results a reader sees for `run`: its own rows, and the frozen rows of the closed
    months before the first month it computed. `prefix` names the relation ("scorecards__")."""
    own = Q(**{f"{prefix}run": run})
    if not run.open_from:
        return own
    return own | Q(**{f"{prefix}frozen": True, f"{prefix}period__lt": run.open_from})


class RunResultsQuerySet(models.QuerySet):
    def of_run(self, run: ScoringRun) -> "RunResultsQuerySet":
        """The rows readers see for `run` (`run_results_q`): use it instead of filter(run=)."""
        return self.filter(run_results_q(run))


class Scorecard(models.Model):
    """One agreement and month of a run. Months without a scorecard still carry rolling and tier.

    Closing a month marks the current run's rows of that month `frozen`: they are kept (the
    cleanup of old runs leaves them) and shown by every later run that starts after them."""

    # The unique (run, agreement, period) index serves every lookup by run and agreement.
    run = models.ForeignKey(
        ScoringRun, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # `scorecards` lets a query of agreements join one month's scorecard (FilteredRelation).
    agreement = models.ForeignKey(
        Agreement, on_delete=models.CASCADE, related_name="scorecards", db_index=False
    )
    period = models.CharField("month", max_length=7)
    has_scorecard = models.BooleanField("has a scorecard", default=True)
    financial = models.FloatField("financial", null=True)
    strategic = models.FloatField("strategic", null=True)
    operational = models.FloatField("operational", null=True)
    relationship = models.FloatField("relationship", null=True)
    overall = models.FloatField("overall", null=True)
    coverage = models.FloatField("coverage")
    rolling = models.FloatField("rolling score", null=True)
    incomplete = models.BooleanField("incomplete", default=False)
    at_risk = models.BooleanField("at risk", default=False)
    candidate_tier = models.CharField(
        "candidate tier", max_length=16, choices=Tier.choices, blank=True
    )
    tier = models.CharField("tier", max_length=16, choices=Tier.choices, blank=True)
    payout = models.FloatField("payout", null=True)
    # The hysteresis streak at the end of the month (rule 8), kept with the tier at close.
    # Defaults in the database too: runs write their rows by COPY, naming the columns they fill.
    streak = models.SmallIntegerField("streak", default=0, db_default=0)
    frozen = models.BooleanField("frozen (closed month)", default=False, db_default=False)

    objects = RunResultsQuerySet.as_manager()

    class Meta:
        ordering = ["agreement", "period"]
        verbose_name = "scorecard"
        constraints = [
            models.UniqueConstraint(
                fields=["run", "agreement", "period"], name="scorecard_unique"
            ),
            models.UniqueConstraint(
                fields=["agreement", "period"], condition=Q(frozen=True),
                name="scorecard_one_frozen",
            ),
            models.CheckConstraint(
                condition=Q(coverage__gte=0, coverage__lte=1), name="scorecard_coverage_range"
            ),
        ]
        indexes = [
            models.Index(fields=["run", "period"], name="scorecard_run_period"),
            # Serves of_run's `frozen AND period < open_from`.
            models.Index(fields=["period"], condition=Q(frozen=True),
                         name="scorecard_frozen_period"),
        ]

    def __str__(self) -> str:
        return f"{self.agreement_id} {self.period}"

    @property
    def flags(self) -> list[str]:
        flags = (("incomplete", self.incomplete), ("at_risk", self.at_risk))
        return [name for name, on in flags if on]


class KPIScore(models.Model):
    # The largest table (agreements × KPIs × months per run), written by COPY and derived from
    # rows that exist: its references to agreements and KPIs are not checked row by row at
    # commit (a third of a run's time), and the unique (run, agreement, KPI, period) index
    # serves every lookup. Deleting an agreement or KPI still cascades here through the ORM.
    run = models.ForeignKey(
        ScoringRun, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    agreement = models.ForeignKey(
        Agreement, on_delete=models.CASCADE, related_name="+", db_index=False,
        db_constraint=False,
    )
    kpi = models.ForeignKey(
        KPIDefinition, on_delete=models.CASCADE, related_name="+", db_index=False,
        db_constraint=False,
    )
    period = models.CharField("month", max_length=7)
    actual = models.FloatField("actual (source side)", null=True)
    other_side_actual = models.FloatField("other side's value", null=True)
    target = models.FloatField("target")
    floor = models.FloatField("floor")
    score = models.FloatField("score", null=True)
    frozen = models.BooleanField("frozen (closed month)", default=False, db_default=False)

    objects = RunResultsQuerySet.as_manager()

    class Meta:
        ordering = ["agreement", "kpi", "period"]
        verbose_name = "KPI score"
        constraints = [
            models.UniqueConstraint(
                fields=["run", "agreement", "kpi", "period"], name="kpi_score_unique"
            ),
            models.UniqueConstraint(
                fields=["agreement", "kpi", "period"], condition=Q(frozen=True),
                name="kpi_score_one_frozen",
            ),
        ]
        indexes = [
            models.Index(fields=["period"], condition=Q(frozen=True),
                         name="kpi_score_frozen_period"),
        ]

    def __str__(self) -> str:
        return f"{self.agreement_id}/{self.kpi_id} {self.period}"


class StatementKind(models.TextChoices):
    PAYOUT = "payout", "Payout"
    ADJUSTMENT = "adjustment", "Adjustment"


class StatementLine(models.Model):
    """One line of a closed month's payout statement (DOMAIN.md § Closing months).

    Written when a month closes, never changed or deleted: a different amount at a later close
    is an `adjustment` line, so the sum of an agreement's lines of a month is what is due."""

    agreement = models.ForeignKey(
        Agreement, on_delete=models.PROTECT, related_name="statement_lines"
    )
    period = models.CharField("month", max_length=7)
    kind = models.CharField("kind", max_length=10, choices=StatementKind.choices)
    tier = models.CharField("tier", max_length=16, choices=Tier.choices, blank=True)
    overall = models.FloatField("overall", null=True)
    rolling = models.FloatField("rolling score", null=True)
    multiplier = models.DecimalField("multiplier", max_digits=5, decimal_places=3, null=True)
    base_amount = models.DecimalField("base amount", max_digits=12, decimal_places=2, null=True)
    currency = models.CharField("currency", max_length=3, blank=True)
    amount = models.DecimalField("amount", max_digits=14, decimal_places=2)
    reason = models.TextField("reason", blank=True)
    # The close that wrote the line.
    closing = models.ForeignKey(
        MonthEvent, on_delete=models.PROTECT, related_name="+", verbose_name="close"
    )
    created_at = models.DateTimeField("written", auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name="written by",
    )
    username = models.CharField("user name", max_length=150, blank=True)

    class Meta:
        ordering = ["period", "agreement", "id"]
        verbose_name = "statement line"
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=StatementKind.values),
                                   name="statement_line_kind_valid"),
            models.CheckConstraint(condition=Q(kind="adjustment") | Q(reason=""),
                                   name="statement_line_reason_on_adjustments"),
        ]
        indexes = [models.Index(fields=["period", "agreement"], name="statement_line_month")]

    def __str__(self) -> str:
        return f"{self.period} {self.agreement_id} {self.kind} {self.amount}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("A statement line is never changed: add an adjustment line.")
        super().save(*args, **kwargs)


class StatementApproval(models.Model):
    """A closed month's statement approved for payment, for one close of the month: a month
    reopened and closed again needs a new approval."""

    month = models.CharField("month", max_length=7)
    closing = models.OneToOneField(
        MonthEvent, on_delete=models.PROTECT, related_name="+", verbose_name="close approved"
    )
    approved_at = models.DateTimeField("approved at", auto_now_add=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
        verbose_name="approved by",
    )

    class Meta:
        ordering = ["-approved_at", "-id"]
        verbose_name = "statement approval"

    def __str__(self) -> str:
        return f"{self.month} approved by {self.approved_by_id}"
