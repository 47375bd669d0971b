from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from partnerships.models import Agreement, Stage

from .charts import agreements_by_stage_figure


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@login_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    counts = dict(
        Agreement.objects.visible_to(request.user)
        .order_by()
        .values_list("stage")
        .annotate(n=Count("id"))
    )
    total = sum(counts.values())
    return render(request, "dashboards/home.html", {
        "agreement_count": total,
        "active_count": counts.get(Stage.ACTIVE, 0),
        "stage_figure": agreements_by_stage_figure(counts=counts) if total else None,
    })
