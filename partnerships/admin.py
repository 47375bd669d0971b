"""The admin: a place to look, not a second way to change the program.

Every row here is written by the services (partnerships/history.py and the `*_services`
modules), which validate, keep the change history and record the audit event; the program pages,
the program file and the API call them. So the admin shows these models read-only (view, filter,
search). The scoring settings have no page: their admin form saves through the settings service.
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from .models import (
    ActionItem,
    Agreement,
    AgreementKPI,
    ApiToken,
    AuditEvent,
    ImportBatch,
    IncentivePlan,
    KPIDefinition,
    KPITemplateItem,
    Membership,
    MetricObservation,
    MonthEvent,
    Objective,
    ObservationChange,
    Partner,
    PartnerAssessment,
    ProgramChange,
    ProgramMonth,
    ProgramSettings,
    Review,
    StageTransition,
)
from .program_services import SETTINGS_FIELDS, program_settings_update


class ReadOnly:
    """Viewed, filtered and searched in the admin, never written there: only the services write
    these rows (they check every value and keep the change history; the audit log is a record)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnly, admin.ModelAdmin):
    pass


class ReadOnlyInline(ReadOnly, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True


# Users come by invitation and change on the Users pages (partnerships/users.py: role changes,
# deactivation, each audited); groups are not used. The admin only shows users.
admin.site.unregister(Group)
admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class UserAdmin(ReadOnly, DjangoUserAdmin):
    pass


@admin.register(Partner)
class PartnerAdmin(ReadOnlyAdmin):
    list_display = ["name", "slug", "industry", "status", "updated_at"]
    list_filter = ["status", "industry"]
    search_fields = ["name", "slug", "website"]


@admin.register(KPIDefinition)
class KPIDefinitionAdmin(ReadOnlyAdmin):
    list_display = ["code", "name", "unit", "category", "aggregation", "source"]
    list_filter = ["category", "aggregation", "source"]
    search_fields = ["code", "name", "description"]


class AgreementKPIInline(ReadOnlyInline):
    model = AgreementKPI

    def get_queryset(self, request):
        # Each row's label names the agreement and KPI codes: load them with the rows.
        return super().get_queryset(request).select_related("agreement", "kpi")


class ObjectiveInline(ReadOnlyInline):
    model = Objective
    fields = ["goal_type", "success_metric", "kpi", "target_value", "set_on", "deadline",
              "priority"]


class IncentivePlanInline(ReadOnlyInline):
    model = IncentivePlan


@admin.register(Agreement)
class AgreementAdmin(ReadOnlyAdmin):
    list_display = ["code", "partner", "type", "stage", "start_date", "end_date", "owner"]
    list_filter = ["stage", "type", "review_cadence", "partner"]
    search_fields = ["code", "title", "partner__name", "partner__slug"]
    list_select_related = ["partner", "owner"]
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
class AgreementKPIAdmin(ReadOnlyAdmin):
    list_display = ["agreement", "kpi", "target", "floor", "weight"]
    list_filter = ["kpi__category"]
    search_fields = ["agreement__code", "kpi__code"]
    list_select_related = ["agreement", "kpi"]


@admin.register(Objective)
class ObjectiveAdmin(ReadOnlyAdmin):
    list_display = ["success_metric", "agreement", "goal_type", "target_value", "set_on",
                    "deadline", "priority"]
    list_filter = ["goal_type", "priority"]
    search_fields = ["success_metric", "agreement__code"]
    list_select_related = ["agreement"]


@admin.register(IncentivePlan)
class IncentivePlanAdmin(ReadOnlyAdmin):
    list_display = ["agreement", "base_amount", "currency", "baseline_score",
                    "multiplier_transactional", "multiplier_growth", "multiplier_strategic"]
    search_fields = ["agreement__code"]


@admin.register(ProgramSettings)
class ProgramSettingsAdmin(admin.ModelAdmin):
    """The scoring settings: no page edits them, so the admin does, through the write service."""

    list_display = ["tier_policy", "strategic_threshold", "growth_threshold", "hysteresis",
                    "updated_at"]

    def has_add_permission(self, request) -> bool:
        return not ProgramSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ProgramSettings, form, change: bool) -> None:
        try:
            program_settings_update(user=request.user, request=request,
                                    **{name: getattr(obj, name) for name in SETTINGS_FIELDS})
        except ValidationError as refused:
            # The form validated the same model: only a rule outside it can refuse here.
            self.message_user(request, "; ".join(refused.messages), level="error")


@admin.register(ImportBatch)
class ImportBatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "source", "status", "side", "partner", "user",
                    "file_name", "rows_total", "inserted", "updated", "unchanged", "error_count"]
    list_filter = ["source", "status", "side"]
    search_fields = ["file_name", "sha256", "user__username"]
    list_select_related = ["partner", "user"]
    readonly_fields = ["created_at", "finished_at"]


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
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["user", "role", "partner", "created_at"]
    list_filter = ["role", "partner"]
    search_fields = ["user__username", "user__email", "partner__name"]
    list_select_related = ["user", "partner"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "action", "username", "ip_address", "partner", "target"]
    list_filter = ["action", "partner"]
    search_fields = ["username", "target", "ip_address"]
    date_hierarchy = "at"
    readonly_fields = ["at", "action", "user", "username", "ip_address", "partner", "target",
                       "detail"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    exclude = ["key_hash"]


@admin.register(ProgramChange)
class ProgramChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "username", "kind", "object_type", "object_label", "agreement",
                    "partner"]
    list_filter = ["kind", "object_type"]
    search_fields = ["username", "object_label", "agreement__code", "partner__name", "reason"]
    list_select_related = ["agreement", "partner"]
    date_hierarchy = "at"


@admin.register(StageTransition)
class StageTransitionAdmin(ReadOnlyAdmin):
    list_display = ["at", "agreement", "from_stage", "to_stage", "by", "reason"]
    list_filter = ["to_stage"]
    search_fields = ["agreement__code", "reason"]
    list_select_related = ["agreement", "by"]


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ["agreement", "kind", "status", "held_on", "created_at"]
    list_filter = ["kind", "status"]
    search_fields = ["agreement__code"]
    list_select_related = ["agreement"]


@admin.register(ActionItem)
class ActionItemAdmin(ReadOnlyAdmin):
    list_display = ["description", "agreement", "owner_name", "owner_side", "status",
                    "due_date"]
    list_filter = ["status", "owner_side"]
    search_fields = ["description", "owner_name", "agreement__code"]
    list_select_related = ["agreement"]


@admin.register(PartnerAssessment)
class PartnerAssessmentAdmin(ReadOnlyAdmin):
    list_display = ["partner", "assessed_on"]
    search_fields = ["partner__name"]
    list_select_related = ["partner"]


@admin.register(KPITemplateItem)
class KPITemplateItemAdmin(ReadOnlyAdmin):
    list_display = ["agreement_type", "kpi", "target", "floor", "weight"]
    list_filter = ["agreement_type"]
    list_select_related = ["kpi"]


@admin.register(ProgramMonth)
class ProgramMonthAdmin(ReadOnlyAdmin):
    list_display = ["month", "closed", "closed_at", "closed_by"]
    list_filter = ["closed"]


@admin.register(MonthEvent)
class MonthEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "month", "action", "username", "reason"]
    list_filter = ["action"]
    search_fields = ["month", "username", "reason"]
