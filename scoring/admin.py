"""Scoring runs and their results, read-only: only a run writes them, and a published run is
the record of what both sides saw."""

from django.contrib import admin

from partnerships.admin import ReadOnlyAdmin

from .models import KPIScore, Scorecard, ScoringRun, StatementApproval, StatementLine


@admin.register(ScoringRun)
class ScoringRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "trigger", "triggered_by", "status", "stage", "progress",
                    "months", "agreements", "scorecards", "tier_changes", "rules_version",
                    "published_at"]
    list_filter = ["status", "trigger", "rules_version"]
    search_fields = ["fingerprint", "error"]
    # The runs are the record of what was published when; results of older runs are removed
    # by the cleanup task, not here.


@admin.register(Scorecard)
class ScorecardAdmin(ReadOnlyAdmin):
    list_display = ["agreement", "period", "overall", "coverage", "rolling", "tier",
                    "incomplete", "at_risk", "payout", "run", "frozen"]
    list_filter = ["tier", "incomplete", "at_risk", "frozen", "period"]
    search_fields = ["agreement__code"]
    list_select_related = ["agreement"]
    show_full_result_count = False


@admin.register(KPIScore)
class KPIScoreAdmin(ReadOnlyAdmin):
    list_display = ["agreement", "kpi", "period", "actual", "other_side_actual", "target",
                    "floor", "score", "run"]
    list_filter = ["period"]
    search_fields = ["agreement__code", "kpi__code"]
    list_select_related = ["agreement", "kpi"]
    show_full_result_count = False


@admin.register(StatementLine)
class StatementLineAdmin(ReadOnlyAdmin):
    # Written by closing a month, never changed: a correction is an adjustment line.
    list_display = ["period", "agreement", "kind", "tier", "overall", "rolling", "multiplier",
                    "base_amount", "currency", "amount", "reason", "created_at", "username"]
    list_filter = ["kind", "period"]
    search_fields = ["agreement__code", "reason"]
    list_select_related = ["agreement"]


@admin.register(StatementApproval)
class StatementApprovalAdmin(ReadOnlyAdmin):
    list_display = ["month", "approved_by", "approved_at", "closing"]
    list_select_related = ["approved_by", "closing"]
