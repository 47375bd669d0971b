"""The Reconciliation page and its CSV: the rows hand-checked on a small world (both sides
beyond and within tolerance, only the other side, only the source), the default month, filters,
sort, pages, CSV, scoping, the counts on the portfolio and the agreement dashboard, and the
database's condition agreeing with the one rule of partnerships/tolerance.py."""

import csv
import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from partnerships import program_services
from partnerships.models import AuditEvent, KPIDefinition
from partnerships.tolerance import beyond_tolerance
from scoring import services
from scoring.closing import months_close
from scoring.models import KPIScore, ScoringRun
from tests.conftest import make_agreement, write_observations

pytestmark = pytest.mark.django_db

PAGE = reverse("reconciliation")
CSV = reverse("reconciliation_csv")


@pytest.fixture
def world(acme_agreement, globex_agreement, kpis):
    """Revenue is the host's (5 %), defect rate the partner's (± 0.5 percentage points).

    2025-01  ACME revenue 100 / partner 105: exactly 5 %, within.
    2025-02  ACME revenue 100 / partner 104: within; ACME defect rate only the host's (3).
             GLOBEX revenue 0 / partner 1: beyond (the source reports 0);
             GLOBEX defect rate 5 / host 5.4: within ± 0.5.
    2025-03  ACME revenue 100 / partner 106: beyond (+6 %); ACME defect rate only the
             partner's (4): nothing to reconcile. GLOBEX defect rate 5 / host 6: beyond.
    """
    KPIDefinition.objects.filter(code="defect_rate").update(tolerance_kind="absolute",
                                                            tolerance=0.5)
    rev, defect = kpis["revenue"], kpis["defect_rate"]
    acme, globex = acme_agreement, globex_agreement
    write_observations([
        (acme, rev, "host", "2025-01-10", 100), (acme, rev, "partner", "2025-01-10", 105),
        (acme, defect, "partner", "2025-01-10", 4),
        (acme, rev, "host", "2025-02-10", 100), (acme, rev, "partner", "2025-02-10", 104),
        (acme, defect, "host", "2025-02-10", 3),
        (globex, rev, "host", "2025-02-10", 0), (globex, rev, "partner", "2025-02-10", 1),
        (globex, defect, "partner", "2025-02-10", 5), (globex, defect, "host", "2025-02-10", 5.4),
        (acme, rev, "host", "2025-03-10", 100), (acme, rev, "partner", "2025-03-10", 106),
        (acme, defect, "partner", "2025-03-10", 4),
        (globex, rev, "host", "2025-03-10", 50),
        (globex, defect, "partner", "2025-03-10", 5), (globex, defect, "host", "2025-03-10", 6),
    ])
    services.scoring_run_inline()
    return acme, globex


def shown(response) -> list[tuple]:
    return [(row.agreement_code, row.kpi.code, row.period, row.kind, row.source_value,
             row.other_value) for row in response.context["page"].object_list]


def csv_rows(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def test_rows_beyond_tolerance_and_of_the_other_side_only(client, host_manager, world):
    client.force_login(host_manager)

    february = client.get(PAGE, {"month": "2025-02"})
    march = client.get(PAGE, {"month": "2025-03"})
    january = client.get(PAGE, {"month": "2025-01"})

    assert shown(february) == [
        ("ACME-CM-2025", "defect_rate", "2025-02", "only_other", None, 3.0),
        ("GLOBEX-REF-2025", "revenue", "2025-02", "differs", 0.0, 1.0),
    ]
    assert shown(march) == [
        ("ACME-CM-2025", "revenue", "2025-03", "differs", 100.0, 106.0),
        ("GLOBEX-REF-2025", "defect_rate", "2025-03", "differs", 5.0, 6.0),
    ]
    assert shown(january) == []
    assert "No disagreement in 2025-01" in january.content.decode()
    body = march.content.decode()
    assert "+6.0 %" in body and "± 0.5 points" in body and "Globex" in body
    assert "source is 0" in february.content.decode()


def test_the_page_opens_on_the_last_closed_month(client, host_manager, world):
    client.force_login(host_manager)
    assert client.get(PAGE).context["month"] == "2025-03"  # nothing closed: the last ended

    months_close(through="2025-02", user=host_manager)
    response = client.get(PAGE)

    assert response.context["month"] == "2025-02"
    assert shown(response)[1][:2] == ("GLOBEX-REF-2025", "revenue")
    assert "closed" in response.content.decode()


def test_filters_by_partner_agreement_kpi_and_kind(client, host_manager, world):
    client.force_login(host_manager)

    assert [row[0] for row in shown(client.get(PAGE, {"month": "2025-02",
                                                      "partner": "globex"}))] == [
        "GLOBEX-REF-2025"]
    assert [row[0] for row in shown(client.get(PAGE, {"month": "2025-03",
                                                      "agreement": "ACME-CM-2025"}))] == [
        "ACME-CM-2025"]
    assert [row[1] for row in shown(client.get(PAGE, {"month": "2025-03",
                                                      "kpi": "defect_rate"}))] == [
        "defect_rate"]
    assert [row[3] for row in shown(client.get(PAGE, {"month": "2025-02",
                                                      "kind": "only_other"}))] == [
        "only_other"]
    refused = client.get(PAGE, {"agreement": "NO-SUCH"})
    assert refused.context["page"] is None
    assert "There is no agreement of yours with that code." in refused.content.decode()


def test_sort_by_a_column_either_way(client, host_manager, world):
    client.force_login(host_manager)

    by_difference = client.get(PAGE, {"month": "2025-02", "sort": "-difference"})
    by_partner = client.get(PAGE, {"month": "2025-03", "sort": "-partner"})

    # The row without the source's value (no difference) comes last either way.
    assert [row[1] for row in shown(by_difference)] == ["revenue", "defect_rate"]
    assert [row[0] for row in shown(by_partner)] == ["GLOBEX-REF-2025", "ACME-CM-2025"]
    assert 'aria-sort="descending"' in by_partner.content.decode()


def test_a_partner_user_sees_only_their_agreements(client, acme_viewer, world):
    client.force_login(acme_viewer)

    february = client.get(PAGE, {"month": "2025-02"})
    htmx = {"HX-Request": "true"}
    other = client.get(PAGE, {"agreement": "GLOBEX-REF-2025"}, headers=htmx)
    missing = client.get(PAGE, {"agreement": "NO-SUCH-AGREEMENT"}, headers=htmx)

    assert shown(february) == [
        ("ACME-CM-2025", "defect_rate", "2025-02", "only_other", None, 3.0)]
    assert "Globex" not in february.content.decode()
    assert "partner" not in february.context["form"].fields
    assert other.status_code == missing.status_code == 200
    assert other.content.decode().replace("GLOBEX-REF-2025", "X") \
        == missing.content.decode().replace("NO-SUCH-AGREEMENT", "X")
    assert client.get(CSV, {"agreement": "GLOBEX-REF-2025"}).status_code == 400


def test_csv_holds_the_filtered_rows_with_both_values_and_is_audited(client, host_manager,
                                                                      acme_viewer, world):
    client.force_login(host_manager)

    rows = csv_rows(client.get(CSV, {"month": "2025-03", "sort": "-partner"}))

    assert rows == [
        ["agreement", "partner", "kpi", "month", "month_state", "kind", "source_side",
         "source_value", "other_value", "difference", "difference_percent", "tolerance_kind",
         "tolerance"],
        ["GLOBEX-REF-2025", "globex", "defect_rate", "2025-03", "open", "differs", "partner",
         "5.0000", "6.0000", "1.0000", "20.0000", "absolute", "0.5000"],
        ["ACME-CM-2025", "acme", "revenue", "2025-03", "open", "differs", "host",
         "100.0000", "106.0000", "6.0000", "6.0000", "percent", "5.0000"],
    ]
    assert AuditEvent.objects.filter(action="export", target="reconciliation").exists()
    client.force_login(acme_viewer)
    assert [row[0] for row in csv_rows(client.get(CSV, {"month": "2025-03"}))[1:]] == [
        "ACME-CM-2025"]


def test_a_tolerance_edited_through_the_service_changes_the_rows(client, host_manager, world):
    client.force_login(host_manager)
    assert len(shown(client.get(PAGE, {"month": "2025-03"}))) == 2

    program_services.kpi_definition_update(
        kpi=KPIDefinition.objects.get(code="revenue"), user=host_manager, tolerance=10)

    assert [row[1] for row in shown(client.get(PAGE, {"month": "2025-03"}))] == [
        "defect_rate"]


def test_rows_come_a_page_at_a_time(client, host_manager, world, monkeypatch):
    from dashboards import reconciliation_views

    monkeypatch.setattr(reconciliation_views, "PAGE_SIZE", 1)
    client.force_login(host_manager)

    second = client.get(PAGE, {"month": "2025-03", "page": "2"})

    assert shown(second)[0][0] == "GLOBEX-REF-2025"
    assert "page 2 of 2" in second.content.decode()


def test_the_database_condition_agrees_with_the_rule(client, host_manager, world):
    run = ScoringRun.objects.current()
    client.force_login(host_manager)
    listed = {(row[0], row[1], row[2]) for month in ("2025-01", "2025-02", "2025-03")
              for row in shown(client.get(PAGE, {"month": month}))}
    expected = set()
    for score in KPIScore.objects.of_run(run).select_related("agreement", "kpi"):
        if score.other_side_actual is None:
            continue
        if score.actual is None or beyond_tolerance(
                source_value=score.actual, other_value=score.other_side_actual,
                kind=score.kpi.tolerance_kind, tolerance=score.kpi.tolerance):
            expected.add((score.agreement.code, score.kpi.code, score.period))

    assert listed == expected


def test_without_a_run_the_page_says_so(client, host_manager, acme_agreement):
    client.force_login(host_manager)

    response = client.get(PAGE)

    assert response.status_code == 200
    assert "No scores published yet" in response.content.decode()


def test_htmx_answers_the_results_only(client, host_manager, world):
    client.force_login(host_manager)

    response = client.get(PAGE, {"month": "2025-03"}, headers={"HX-Request": "true"})

    body = response.content.decode()
    assert body.lstrip().startswith('<section id="reconciliation-results"')
    assert "HX-Request" in response["Vary"]


def test_counts_on_the_portfolio_and_the_agreement_dashboard(client, host_manager, acme_viewer,
                                                             world):
    client.force_login(host_manager)

    portfolio = client.get(reverse("portfolio"), {"month": "2025-02"})
    acme_march = client.get(reverse("agreement_dashboard", args=["ACME-CM-2025"]),
                            {"month": "2025-03"})
    acme_january = client.get(reverse("agreement_dashboard", args=["ACME-CM-2025"]),
                              {"month": "2025-01"})

    assert portfolio.context["disagreements"] == 2
    assert f'href="{PAGE}?month=2025-02"' in portfolio.content.decode()
    assert acme_march.context["disagreements"] == 1
    assert f'href="{PAGE}?month=2025-03&amp;agreement=ACME-CM-2025"' in \
        acme_march.content.decode()
    assert acme_january.context["disagreements"] == 0
    assert "disagreement" not in acme_january.content.decode().split('id="kpi-heading"')[1] \
        .split("</section>")[0].replace("disagreements", "")
    client.force_login(acme_viewer)
    assert client.get(reverse("agreement_dashboard", args=["ACME-CM-2025"]),
                      {"month": "2025-02"}).context["disagreements"] == 1


def test_the_demo_has_disagreements_in_its_last_closed_month(client):
    from django.contrib.auth import get_user_model

    from partnerships.demo import demo_generate

    demo_generate(partners=3, agreements=6, months=6, kpis_per_agreement=4,
                  observations_per_month=1, seed=11, password="pw-demo")
    services.scoring_run_inline()
    call_command("close_demo_months", stdout=io.StringIO())
    months = ScoringRun.objects.current().periods
    client.force_login(get_user_model().objects.get(username="finance"))

    response = client.get(PAGE)

    assert response.context["month"] == months[-3]  # the last closed month
    rows = shown(response)
    # The showcase's first KPI: the other side's figure 12 % above the source's.
    assert any(row[3] == "differs" and row[5] == pytest.approx(row[4] * 1.12, rel=0.02)
               for row in rows)
    assert KPIDefinition.objects.filter(tolerance_kind="absolute").exists()


def _disagreeing_agreements(partners, kpis, *, start: int, count: int) -> None:
    """`count` agreements whose partner reports revenue 10 % above the host's in 2025-01."""
    agreements = [make_agreement(partners[index % 2], f"AG-{index:04d}", kpis)
                  for index in range(start, start + count)]
    write_observations(
        [(agreement, kpis["revenue"], "host", "2025-01-10", 100) for agreement in agreements]
        + [(agreement, kpis["revenue"], "partner", "2025-01-10", 110)
           for agreement in agreements])


def _queries(client, user, settings, **params) -> tuple[int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.conftest import cache_start_over

    client.force_login(user)
    cache_start_over(settings)
    counts = []
    for _view in ("first", "next"):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(PAGE, params).status_code == 200
        counts.append(len(queries))
    return counts[0], counts[1]


def test_queries_do_not_grow_with_the_number_of_agreements(client, host_manager, acme,
                                                           globex, acme_viewer, kpis,
                                                           settings):
    _disagreeing_agreements([acme, globex], kpis, start=0, count=4)
    services.scoring_run_inline()
    small = [_queries(client, host_manager, settings),
             _queries(client, host_manager, settings, kind="differs", sort="-percent"),
             _queries(client, acme_viewer, settings)]
    _disagreeing_agreements([acme, globex], kpis, start=4, count=60)
    services.scoring_run_inline()
    large = [_queries(client, host_manager, settings),
             _queries(client, host_manager, settings, kind="differs", sort="-percent"),
             _queries(client, acme_viewer, settings)]

    assert large == small
    assert all(next_view < first for first, next_view in large)
    client.force_login(host_manager)
    assert client.get(PAGE).context["page"].paginator.count == 64
