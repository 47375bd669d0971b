from django.contrib import admin

from .models import (
    Agreement,
    AgreementKPI,
    ApiToken,
    AuditEvent,
    ImportBatch,
    IncentivePlan,
    KPIDefinition,
    Membership,
    MetricObservation,
    Objective,
    ObservationChange,
    Partner,
    ProgramSettings,
)


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "industry", "status", "updated_at"]
    list_filter = ["status", "industry"]
    search_fields = ["name", "slug", "website"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(KPIDefinition)
class KPIDefinitionAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "unit", "category", "aggregation", "source"]
    list_filter = ["category", "aggregation", "source"]
    search_fields = ["code", "name", "description"]


class AgreementKPIInline(admin.TabularInline):
    model = AgreementKPI
    extra = 0
    autocomplete_fields = ["kpi"]

    def get_queryset(self, request):
        # Each row's label names the agreement and KPI codes: load them with the rows.
        return super().get_queryset(request).select_related("agreement", "kpi")


class ObjectiveInline(admin.TabularInline):
    model = Objective
    extra = 0
    fields = ["goal_type", "success_metric", "kpi", "target_value", "set_on", "deadline",
              "priority"]


class IncentivePlanInline(admin.StackedInline):
    model = IncentivePlan
    extra = 0


@admin.register(Agreement)
class AgreementAdmin(admin.ModelAdmin):
    list_display = ["code", "partner", "type", "stage", "start_date", "end_date", "owner"]
    list_filter = ["stage", "type", "review_cadence", "partner"]
    search_fields = ["code", "title", "partner__name", "partner__slug"]
    list_select_related = ["partner", "owner"]
    autocomplete_fields = ["partner", "owner"]
    date_hierarchy = "start_date"
    inlines = [AgreementKPIInline, ObjectiveInline, IncentivePlanInline]
    fieldsets = [
        (None, {"fields": ["partner", "code", "title", "type", "stage", "start_date", "end_date",
                           "owner", "partner_contacts", "review_cadence"]}),
        ("Category weights (sum 100)", {"fields": [
            "weight_financial", "weight_strategic", "weight_operational", "weight_relationship",
        ]}),
        ("Terms", {"classes": ["collapse"], "fields": [
            "value_financial", "value_strategic", "value_operational", "attribution_method",
            "qualified_lead_definition", "underperformance_consequences",
            "overperformance_rewards", "customer_relationship_owner", "support_responsibilities",
            "marketing_materials", "messaging_approval", "shared_costs", "dispute_resolution",
            "exit_criteria",
        ]}),
    ]


@admin.register(AgreementKPI)
class AgreementKPIAdmin(admin.ModelAdmin):
    list_display = ["agreement", "kpi", "target", "floor", "weight"]
    list_filter = ["kpi__category"]
    search_fields = ["agreement__code", "kpi__code"]
    list_select_related = ["agreement", "kpi"]
    autocomplete_fields = ["agreement", "kpi"]


@admin.register(Objective)
class ObjectiveAdmin(admin.ModelAdmin):
    list_display = ["success_metric", "agreement", "goal_type", "target_value", "set_on",
                    "deadline", "priority"]
    list_filter = ["goal_type", "priority"]
    search_fields = ["success_metric", "agreement__code"]
    list_select_related = ["agreement"]
    autocomplete_fields = ["agreement", "kpi"]


@admin.register(IncentivePlan)
class IncentivePlanAdmin(admin.ModelAdmin):
    list_display = ["agreement", "base_amount", "currency", "baseline_score",
                    "multiplier_transactional", "multiplier_growth", "multiplier_strategic"]
    search_fields = ["agreement__code"]
    autocomplete_fields = ["agreement"]


@admin.register(ProgramSettings)
class ProgramSettingsAdmin(admin.ModelAdmin):
    list_display = ["tier_policy", "strategic_threshold", "growth_threshold", "hysteresis",
                    "updated_at"]


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "source", "status", "side", "partner", "user",
                    "file_name", "rows_total", "inserted", "updated", "unchanged", "error_count"]
    list_filter = ["source", "status", "side"]
    search_fields = ["file_name", "sha256", "user__username"]
    list_select_related = ["partner", "user"]
    readonly_fields = ["created_at", "finished_at"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewed, filtered and searched in the admin, never written there: only the services write
    these rows (imports check every value and keep the change history; the audit log is a
    record)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(MetricObservation)
class MetricObservationAdmin(ReadOnlyAdmin):
    list_display = ["agreement", "kpi", "side", "date", "value", "batch", "recorded_at"]
    list_filter = ["side", "kpi__category", "kpi"]
    search_fields = ["agreement__code", "kpi__code", "note"]
    list_select_related = ["agreement", "kpi", "batch"]
    raw_id_fields = ["agreement", "kpi", "batch", "recorded_by"]
    date_hierarchy = "date"
    show_full_result_count = False


@admin.register(ObservationChange)
class ObservationChangeAdmin(ReadOnlyAdmin):
    list_display = ["changed_at", "agreement", "kpi", "side", "date", "old_value", "new_value",
                    "batch", "changed_by"]
    list_filter = ["side"]
    search_fields = ["agreement__code", "kpi__code"]
    list_select_related = ["agreement", "kpi", "batch", "changed_by"]
    raw_id_fields = ["observation", "agreement", "kpi", "batch", "old_batch", "changed_by"]
    date_hierarchy = "changed_at"


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "partner", "created_at"]
    list_filter = ["role", "partner"]
    search_fields = ["user__username", "user__email", "partner__name"]
    list_select_related = ["user", "partner"]
    autocomplete_fields = ["user", "partner"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "action", "username", "ip_address", "partner", "target"]
    list_filter = ["action", "partner"]
    search_fields = ["username", "target", "ip_address"]
    date_hierarchy = "at"
    readonly_fields = ["at", "action", "user", "username", "ip_address", "partner", "target",
                       "detail"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
