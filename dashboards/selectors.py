"""Read-only queries behind the pages."""

from scoring.models import ScoringRun


def scoring_status() -> dict:
    """The published run (what pages show) and the newest run (which may be active or failed)."""
    latest = ScoringRun.objects.select_related("triggered_by").order_by("-created_at").first()
    published = ScoringRun.objects.current()
    return {
        "published_run": published,
        "latest_run": latest,
        "latest_failed": latest is not None and latest.status == ScoringRun.Status.FAILED,
        "active_run": latest if latest is not None and latest.active else None,
    }


def scoring_runs_recent(*, limit: int = 20) -> list[ScoringRun]:
    return list(ScoringRun.objects.select_related("triggered_by").order_by("-created_at")[:limit])
