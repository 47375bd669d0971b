"""A published run's portfolio is computed right away, so that no one waits for it."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboards.cache import run_cached, run_cached_each
from partnerships.models import Agreement, Objective
from scoring.models import ScoringRun
from scoring.services import scoring_run_inline
from tests.conftest import write_observations

pytestmark = pytest.mark.django_db


def test_a_published_run_keeps_the_portfolios_figures_rows_and_cutoffs(
        client, host_manager, acme_agreement, globex_agreement, kpis):
    from dashboards.tasks import pages_warm

    rows = []
    for month, value in ((1, 50), (2, 80), (3, 120)):
        for agreement in (acme_agreement, globex_agreement):
            rows.append((agreement, kpis["revenue"], "host", f"2025-{month:02d}-10", value))
    write_observations(rows)
    Objective.objects.create(agreement=acme_agreement, goal_type="revenue_growth",
                             success_metric="Grow revenue", kpi=kpis["revenue"],
                             target_value=200, deadline=dt.date(2026, 12, 31))
    scoring_run_inline()
    run = ScoringRun.objects.current()
    assert pages_warm() == "kept 2 agreements"  # the beat's next turn

    def not_kept(*_args):
        pytest.fail("computed on demand: the run's warm-up did not keep it")

    ids = list(Agreement.objects.values_list("pk", flat=True))
    kept = run_cached_each(run=run, name="row-cards", parts=(run.last_period, 12), ids=ids,
                           compute=not_kept)
    assert set(kept) == set(ids)
    assert kept[acme_agreement.pk].card is not None
    run_cached(run=run, name="tier-cutoffs", parts=(run.last_period,), compute=not_kept)
    # The reconciliation page's first view reads no KPI score either.
    client.force_login(host_manager)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("reconciliation")).status_code == 200
    assert not [query for query in queries.captured_queries
                if "scoring_kpiscore" in query["sql"]]
    run_cached(run=run, name="portfolio-figures", parts=(run.last_period, 2, max(ids)),
               compute=not_kept)
    # The morning's first view of the portfolio reads no scorecard.
    client.force_login(host_manager)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("portfolio"))
    assert response.status_code == 200
    assert acme_agreement.code in response.text
    assert not [query for query in queries.captured_queries
                if "scoring_scorecard" in query["sql"]]
    # Nor counts the overdue reviews and actions of the program: the task kept them too (the
    # shown rows' own figures are index lookups inside the rows' query, not queries of their own).
    assert not [query for query in queries.captured_queries
                if ("partnerships_actionitem" in query["sql"]
                    or "partnerships_review" in query["sql"])
                and not query["sql"].startswith('SELECT "partnerships_agreement"."id"')]
    # Nor does the first view of an agreement's dashboard read its scores (its objective's
    # progress included).
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("agreement_dashboard", args=[acme_agreement.code]))
    assert response.status_code == 200
    assert "Grow revenue" in response.text
    assert not [query for query in queries.captured_queries
                if "scoring_scorecard" in query["sql"] or "scoring_kpiscore" in query["sql"]]


def test_each_run_is_kept_once_whichever_worker_gets_there_first(acme_agreement, kpis):
    from dashboards.tasks import pages_warm

    assert pages_warm() == "no published run"
    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-01-10", 50)])
    scoring_run_inline()
    assert pages_warm() == "kept 1 agreements"
    assert pages_warm() == "kept already"
    # A worker lost while keeping them: another one keeps them after KEEPING_SECONDS.
    from django.core.cache import cache

    from dashboards.cache import run_key

    run = ScoringRun.objects.current()
    cache.delete(run_key(run, "pages-kept"))
    cache.set(run_key(run, "pages-keeping"), True)
    assert pages_warm() == "being kept by another worker"
    cache.delete(run_key(run, "pages-keeping"))  # its time ran out
    assert pages_warm() == "kept 1 agreements"
    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-02-10", 60)])
    scoring_run_inline()  # a new run: kept again
    assert pages_warm() == "kept 1 agreements"


@pytest.mark.parametrize("kept", [None, 0, [], {}])
def test_a_kept_empty_value_is_read_back_not_computed_again(acme_agreement, kpis, kept):
    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-01-10", 50)])
    scoring_run_inline()
    run = ScoringRun.objects.current()

    def computed_again(*_args):
        pytest.fail("a kept empty value was taken for a miss")

    assert run_cached(run=run, name="empty", compute=lambda: kept) == kept
    assert run_cached(run=run, name="empty", compute=computed_again) == kept
    pk = acme_agreement.pk
    assert run_cached_each(run=run, name="empty-each", ids=[pk],
                           compute=lambda missing: dict.fromkeys(missing, kept)) == {pk: kept}
    assert run_cached_each(run=run, name="empty-each", ids=[pk],
                           compute=computed_again) == {pk: kept}
