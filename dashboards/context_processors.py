from django.http import HttpRequest

from .selectors.runs import scoring_status


def freshness(request: HttpRequest) -> dict:
    """When scores were last computed, and whether the newest run failed: on every page."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"scoring": scoring_status()}
