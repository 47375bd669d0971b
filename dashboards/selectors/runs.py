"""What was run: the published and the newest scoring run, and the tier policy of a run."""

from django.db.models import Count, Min, Q

from partnerships.models import Tier
from scoring.models import Scorecard, ScoringRun

from ..cache import run_cached


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


def tier_policy(*, run) -> dict:
    """The tier policy the run's scores were computed with (its settings snapshot)."""
    snapshot = (run.settings_snapshot if run is not None else None) or {}
    return {
        "policy": snapshot.get("policy", "percentile"),
        "strategic_threshold": float(snapshot.get("strategic_threshold", 85.0)),
        "growth_threshold": float(snapshot.get("growth_threshold", 70.0)),
        "hysteresis": int(snapshot.get("hysteresis", 2)),
    }


def tier_cutoffs(*, run, period: str, policy: dict) -> dict:
    """The lowest rolling score that made each candidate tier in `period`, and how many
    agreements were ranked. Thresholds need no query; percentiles take one aggregate."""
    if policy["policy"] == "threshold":
        return {"strategic": policy["strategic_threshold"],
                "growth": policy["growth_threshold"], "ranked": None}
    if run is None:
        return {"strategic": None, "growth": None, "ranked": 0}
    return Scorecard.objects.of_run(run).filter(period=period).aggregate(
        strategic=Min("rolling", filter=Q(candidate_tier=Tier.STRATEGIC)),
        growth=Min("rolling", filter=Q(candidate_tier__in=(Tier.STRATEGIC, Tier.GROWTH))),
        ranked=Count("pk", filter=~Q(candidate_tier="")),
    )


def tier_cutoffs_kept(*, run, period: str) -> dict:
    """`tier_cutoffs` of the run's policy, once per run: the cut-offs the run ranked with
    (an agreement deleted since then still counted)."""
    return run_cached(run=run, name="tier-cutoffs", parts=(period,),
                      compute=lambda: tier_cutoffs(run=run, period=period,
                                                   policy=tier_policy(run=run)))
