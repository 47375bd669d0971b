from django.contrib import admin

from .models import KPIScore, Scorecard, ScoringRun


@admin.register(ScoringRun)
class ScoringRunAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "trigger", "triggered_by", "status", "stage", "progress",
                    "months", "agreements", "scorecards", "tier_changes", "rules_version",
                    "published_at"]
    list_filter = ["status", "trigger", "rules_version"]
    search_fields = ["fingerprint", "error"]
    readonly_fields = [field.name for field in ScoringRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # The runs are the record of what was published when; pages keep what they show of
        # the published one. Results of older runs are removed by the cleanup task.
        return False


@admin.register(Scorecard)
class ScorecardAdmin(admin.ModelAdmin):
    list_display = ["agreement", "period", "overall", "coverage", "rolling", "tier",
                    "incomplete", "at_risk", "payout", "run"]
    list_filter = ["tier", "incomplete", "at_risk", "period"]
    search_fields = ["agreement__code"]
    list_select_related = ["agreement"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(KPIScore)
class KPIScoreAdmin(admin.ModelAdmin):
    list_display = ["agreement", "kpi", "period", "actual", "other_side_actual", "target",
                    "floor", "score", "run"]
    list_filter = ["period"]
    search_fields = ["agreement__code", "kpi__code"]
    list_select_related = ["agreement", "kpi"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
