"""The pages' SQL queries are bounded and do not grow with the program: the same count with
10 and with 200 agreements (every agreement scored, with a tier, an incentive plan and imports).
"""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from partnerships.models import Agreement, AgreementKPI, IncentivePlan, Partner
from scoring.services import scoring_run_inline
from tests.conftest import cache_start_over, write_observations

pytestmark = pytest.mark.django_db

# Generous ceilings: the point is that the counts do not depend on the number of agreements.
# A first view of the agreement dashboard reads, besides its scores, the month's disputes,
# the disagreement count, what the score is made of and the planned reviews (28 today).
MAX_QUERIES = 30


def add_agreements(*, partners: list[Partner], kpis: dict, start: int, count: int) -> None:
    """`count` more agreements spread over the partners, two KPIs each, three months of data
    of both sides, by bulk creates and one import."""
    agreements = Agreement.objects.bulk_create([
        Agreement(partner=partners[index % len(partners)], code=f"AG-{index:04d}",
                  type="referral", stage="active", start_date=dt.date(2025, 1, 1),
                  weight_financial=50, weight_strategic=0, weight_operational=50,
                  weight_relationship=0, exit_criteria="Three months below 50.")
        for index in range(start, start + count)
    ])
    AgreementKPI.objects.bulk_create(
        [AgreementKPI(agreement=agreement, kpi=kpis["revenue"], target=100, floor=0)
         for agreement in agreements]
        + [AgreementKPI(agreement=agreement, kpi=kpis["defect_rate"], target=2, floor=10)
           for agreement in agreements]
    )
    IncentivePlan.objects.bulk_create(
        [IncentivePlan(agreement=agreement, base_amount=1000) for agreement in agreements])
    rows = []
    for offset, agreement in enumerate(agreements):
        for month in (1, 2, 3):
            revenue = 40 + (start + offset) * 7 % 80 + month
            rows += [(agreement, kpis["revenue"], "host", f"2025-{month:02d}-10", revenue),
                     (agreement, kpis["revenue"], "partner", f"2025-{month:02d}-11", revenue),
                     (agreement, kpis["defect_rate"], "partner", f"2025-{month:02d}-12", 4)]
    write_observations(rows)


def count_queries(client, url: str, **kwargs) -> tuple[int, int]:
    """The queries of the page's first view (nothing kept yet) and of the next one (what it
    keeps of the published run read from the cache)."""
    counts = []
    for _attempt in ("first", "next"):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, **kwargs)
        assert response.status_code == 200
        counts.append(len(queries))
    return counts[0], counts[1]


def page_counts(client, host_manager, viewer, settings) -> dict[str, tuple[int, int]]:
    """Each page's first and next view, each first view with an empty cache."""
    agreement = reverse("agreement_dashboard", args=["AG-0000"])
    pages = {
        "portfolio": (host_manager, reverse("portfolio"), {}),
        "portfolio filtered": (host_manager, reverse("portfolio"),
                               {"query_params": {"stage": "active", "sort": "-overall"}}),
        "agreement": (host_manager, agreement, {}),
        "agreement, htmx month": (host_manager, agreement,
                                  {"query_params": {"month": "2025-02"},
                                   "headers": {"HX-Request": "true"}}),
        "agreement print": (host_manager, reverse("agreement_print", args=["AG-0000"]), {}),
        "agreement, partner": (viewer, agreement, {}),
    }
    counts = {}
    for name, (user, url, kwargs) in pages.items():
        client.force_login(user)
        cache_start_over(settings)
        counts[name] = count_queries(client, url, **kwargs)
    return counts


def test_page_queries_do_not_grow_with_the_number_of_agreements(
    client, host_manager, acme, globex, acme_viewer, kpis, settings
):
    partners = [acme, globex]
    add_agreements(partners=partners, kpis=kpis, start=0, count=10)
    scoring_run_inline()
    small = page_counts(client, host_manager, acme_viewer, settings)

    add_agreements(partners=partners, kpis=kpis, start=10, count=190)
    scoring_run_inline()
    large = page_counts(client, host_manager, acme_viewer, settings)

    assert Agreement.objects.count() == 200
    assert large == small
    assert max(first for first, _next in large.values()) <= MAX_QUERIES, large
    # What a page keeps of the run saves queries on the next view, and never adds any.
    assert all(next_view < first for first, next_view in large.values()), large
