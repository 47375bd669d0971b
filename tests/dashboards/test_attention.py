"""Needs attention: each reason with a hand-made agreement, one agreement with none, the
filters, the CSV, the scoping of both sides and the home page's counts."""

import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dashboards.selectors.attention import attention_worklist
from partnerships.models import (
    ActionItem,
    Agreement,
    Dispute,
    Objective,
    ProgramSettings,
    Review,
)
from scoring.attention import (
    REASONS,
    AttentionFacts,
    attention_reasons,
    kpi_stale_month,
    renewal_due,
    tier_changed,
)
from scoring.models import Scorecard, ScoringRun
from tests.conftest import make_agreement, write_observations

pytestmark = pytest.mark.django_db

TODAY = dt.date(2025, 4, 20)
MONTH = "2025-03"
# The agreement (by code) that has each reason alone; "ACME-NONE" has none.
CASES = {
    "at_risk": "ACME-RISK", "incomplete": "ACME-INCOMPLETE",
    "review_overdue": "ACME-REVIEW", "actions_overdue": "ACME-ACTIONS",
    "stale_data": "ACME-STALE", "open_disputes": "ACME-DISPUTE",
    "tier_changed": "ACME-TIER", "objectives": "ACME-OBJECTIVE",
    "renewal_due": "ACME-RENEWAL",
}


def _run() -> ScoringRun:
    return ScoringRun.objects.create(
        trigger="command", status="succeeded", active=None, rules_version=1,
        first_period="2025-01", last_period=MONTH, published_at=timezone.now())


def _card(run, agreement, period, **values) -> Scorecard:
    return Scorecard.objects.create(run=run, agreement=agreement, period=period,
                                    overall=75.0, coverage=1.0, **values)


@pytest.fixture
def world(acme, globex, kpis, host_manager):
    """One Acme agreement per reason, one with none, and a Globex agreement with every
    reason; the manager owns the review case and the one with none."""
    run = _run()
    agreements = {}
    for code in [*CASES.values(), "ACME-NONE", "GLOBEX-ALL"]:
        agreement = make_agreement(globex if code.startswith("GLOBEX") else acme, code, kpis)
        agreements[code] = agreement
        tier = "strategic" if code == "ACME-TIER" else "growth"
        _card(run, agreement, "2025-02", tier="growth")
        _card(run, agreement, MONTH, tier=tier, at_risk=code in ("ACME-RISK", "GLOBEX-ALL"),
              incomplete=code in ("ACME-INCOMPLETE", "GLOBEX-ALL"))
        if code not in ("ACME-REVIEW", "GLOBEX-ALL"):
            Review.objects.create(agreement=agreement, kind="tactical_sync",
                                  held_on=dt.date(2025, 4, 1))
        if code not in ("ACME-STALE", "GLOBEX-ALL"):
            write_observations([(agreement, kpis["revenue"], "host", "2025-03-10", 50),
                                (agreement, kpis["defect_rate"], "partner", "2025-03-12", 3)])
    # A review only planned does not count: the agreement's review stays overdue.
    Review.objects.create(agreement=agreements["ACME-REVIEW"], kind="tactical_sync",
                          status="planned", held_on=dt.date(2025, 4, 10))
    for code in ("ACME-ACTIONS", "GLOBEX-ALL"):
        ActionItem.objects.create(agreement=agreements[code], description="Send the list",
                                  owner_name="Pat", owner_side="partner",
                                  due_date=dt.date(2025, 4, 1))
    # Due today is not overdue; done is never overdue.
    ActionItem.objects.create(agreement=agreements["ACME-NONE"], description="Call",
                              owner_name="Lee", owner_side="host", due_date=TODAY)
    ActionItem.objects.create(agreement=agreements["ACME-NONE"], description="Old",
                              owner_name="Lee", owner_side="host", status="done",
                              due_date=dt.date(2025, 1, 1))
    # Revenue (the host's KPI) last reported in January: February ended 51 days ago.
    write_observations([(agreements["ACME-STALE"], kpis["revenue"], "host", "2025-01-10", 50),
                        (agreements["ACME-STALE"], kpis["defect_rate"], "partner",
                         "2025-03-12", 3)])
    for code in ("ACME-DISPUTE", "GLOBEX-ALL"):
        Dispute.objects.create(agreement=agreements[code], kpi=kpis["revenue"], month=MONTH,
                               opened_side="partner", reason="Two deals are missing")
    Dispute.objects.create(agreement=agreements["ACME-NONE"], kpi=kpis["revenue"],
                           month="2025-02", opened_side="partner", reason="Settled",
                           status="withdrawn")
    for code in ("ACME-OBJECTIVE", "GLOBEX-ALL"):
        Objective.objects.create(agreement=agreements[code], goal_type="revenue_growth",
                                 success_metric="Revenue 1,000 a month", kpi=kpis["revenue"],
                                 target_value=1000, set_on=dt.date(2025, 1, 1),
                                 deadline=dt.date(2025, 4, 1))
    for code in ("ACME-RENEWAL", "GLOBEX-ALL"):
        Agreement.objects.filter(pk=agreements[code].pk).update(end_date=dt.date(2025, 6, 30))
    Agreement.objects.filter(code__in=["ACME-REVIEW", "ACME-NONE"]).update(owner=host_manager)
    return agreements


def _reasons_by_code(worklist) -> dict[str, list[str]]:
    return {row.agreement.code: row.reasons for row in worklist.rows}


def test_each_reason_with_its_own_agreement_and_none_for_the_clean_one(world):
    worklist = attention_worklist(agreements=Agreement.objects.all(), today=TODAY)
    found = _reasons_by_code(worklist)
    for reason, code in CASES.items():
        assert found[code] == [reason], code
    assert "ACME-NONE" not in found
    assert found["GLOBEX-ALL"] == [reason for reason in REASONS if reason != "tier_changed"]
    assert worklist.month == MONTH and worklist.checked == 11


def test_facts_behind_the_reasons(world):
    rows = {row.agreement.code: row.facts for row in attention_worklist(
        agreements=Agreement.objects.all(), today=TODAY).rows}
    # Started 2025-01-01, never reviewed; a growth tier asks for a review every 31 days.
    assert rows["ACME-REVIEW"].review_overdue_days == 78
    assert rows["ACME-ACTIONS"].overdue_actions == {"partner": 1}
    assert rows["ACME-STALE"].stale_kpis == [("revenue", "2025-02")]
    assert rows["ACME-DISPUTE"].open_disputes == 1
    assert (rows["ACME-TIER"].previous_tier, rows["ACME-TIER"].tier) == ("growth", "strategic")
    assert rows["ACME-OBJECTIVE"].objectives == {"overdue": 1}


def test_stale_after_days_is_the_programs_setting(world):
    ProgramSettings.objects.create(stale_after_days=60)
    found = _reasons_by_code(attention_worklist(agreements=Agreement.objects.all(), today=TODAY))
    assert "ACME-STALE" not in found


def test_queries_do_not_grow_with_the_number_of_agreements(world, acme, kpis):
    attention_worklist(agreements=Agreement.objects.all(), today=TODAY)  # warms the run cache
    with CaptureQueriesContext(connection) as few:
        attention_worklist(agreements=Agreement.objects.all(), today=TODAY)
    for number in range(15):
        make_agreement(acme, f"ACME-MORE-{number}", kpis)
    with CaptureQueriesContext(connection) as many:
        attention_worklist(agreements=Agreement.objects.all(), today=TODAY)
    assert len(many) == len(few)


@pytest.mark.parametrize(("last", "today", "expected"), [
    (dt.date(2025, 1, 31), dt.date(2025, 4, 15), "2025-02"),  # February ended 46 days before
    (dt.date(2025, 1, 31), dt.date(2025, 4, 14), ""),  # exactly 45 days: not yet
    (None, dt.date(2025, 3, 20), "2025-01"),  # nothing since the start
    (dt.date(2025, 3, 1), dt.date(2025, 12, 1), "2025-04"),
])
def test_kpi_stale_month(last, today, expected):
    assert kpi_stale_month(last_observed=last, start=dt.date(2025, 1, 1), end=None,
                           today=today, stale_after_days=45) == expected


def test_no_stale_month_after_the_agreements_end():
    assert kpi_stale_month(last_observed=dt.date(2025, 3, 5), start=dt.date(2025, 1, 1),
                           end=dt.date(2025, 3, 31), today=dt.date(2025, 12, 1),
                           stale_after_days=45) == ""


def test_renewal_and_tier_rules():
    today = dt.date(2025, 4, 20)
    assert renewal_due(end=today, today=today)
    assert renewal_due(end=today + dt.timedelta(days=90), today=today)
    assert not renewal_due(end=today + dt.timedelta(days=91), today=today)
    assert not renewal_due(end=today - dt.timedelta(days=1), today=today)
    assert not renewal_due(end=None, today=today)
    assert tier_changed(tier="growth", previous_tier="strategic")
    assert not tier_changed(tier="growth", previous_tier="")
    assert not tier_changed(tier="growth", previous_tier="growth")


def test_an_ended_agreement_needs_attention_only_for_what_is_still_owed():
    today = dt.date(2025, 4, 20)
    everything = {"at_risk": True, "incomplete": True, "tier": "growth",
                  "previous_tier": "strategic", "objectives": {"overdue": 2},
                  "overdue_actions": {"host": 1}, "open_disputes": 1}
    assert attention_reasons(facts=AttentionFacts(stage="active", **everything),
                             today=today) == [
        "at_risk", "incomplete", "actions_overdue", "open_disputes", "tier_changed",
        "objectives"]
    assert attention_reasons(facts=AttentionFacts(stage="ended", **everything),
                             today=today) == ["actions_overdue", "open_disputes"]


# ---- The page and its CSV -------------------------------------------------------------------

URL = "/attention/"


@pytest.fixture
def frozen_today(monkeypatch):
    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: TODAY)


def _codes(response) -> list[str]:
    return [row.agreement.code for row, _ in response.context["rows"]]


def test_urls():
    assert reverse("attention") == URL
    assert reverse("attention_csv") == "/attention/export.csv"


def test_anonymous_visitors_log_in(client):
    assert client.get(URL).status_code == 302
    assert client.get(reverse("attention_csv")).status_code == 302


def test_host_sees_mine_by_default_then_everyones(client, host_manager, world, frozen_today):
    client.force_login(host_manager)
    mine = client.get(URL)
    assert mine.status_code == 200
    assert _codes(mine) == ["ACME-REVIEW"]
    everyone = client.get(URL, {"scope": "all", "sort": "agreement"})
    assert _codes(everyone) == sorted([*CASES.values(), "GLOBEX-ALL"])
    assert "ACME-NONE" not in everyone.text


def test_partner_users_see_only_their_own(client, acme_viewer, world, frozen_today):
    client.force_login(acme_viewer)
    response = client.get(URL, {"scope": "all"})
    assert sorted(_codes(response)) == sorted(CASES.values())
    assert "GLOBEX" not in response.text and "Globex" not in response.text
    export = client.get(reverse("attention_csv"))
    body = b"".join(export.streaming_content).decode()
    assert "GLOBEX" not in body and "Globex" not in body
    assert "ACME-RISK" in body


def test_reasons_are_a_multi_select_filter(client, host_manager, world, frozen_today):
    client.force_login(host_manager)
    response = client.get(URL, {"scope": "all", "reason": ["at_risk", "stale_data"],
                                "sort": "agreement"})
    assert _codes(response) == ["ACME-RISK", "ACME-STALE", "GLOBEX-ALL"]
    # The counts are of every reason, whatever the filter; an unknown reason is ignored.
    counts = {reason: count for reason, _, count, _ in response.context["reason_counts"]}
    assert counts["renewal_due"] == 2 and counts["tier_changed"] == 1
    ignored = client.get(URL, {"scope": "all", "reason": "no-such-reason"})
    assert len(_codes(ignored)) == 10


def test_each_reason_links_where_it_is_dealt_with(client, host_manager, world, frozen_today):
    client.force_login(host_manager)
    response = client.get(URL, {"scope": "all"})
    links = {row.agreement.code: {reason: url for reason, _, url in row_links}
             for row, row_links in response.context["rows"]}
    assert links["ACME-REVIEW"]["review_overdue"] == "/agreements/ACME-REVIEW/reviews/"
    assert links["ACME-OBJECTIVE"]["objectives"] == reverse("program_objectives",
                                                            args=["ACME-OBJECTIVE"])
    assert links["ACME-RISK"]["at_risk"] == f"/agreements/ACME-RISK/?month={MONTH}"
    assert links["ACME-STALE"]["stale_data"] == reverse("import_upload")
    assert links["ACME-DISPUTE"]["open_disputes"] == (
        "/disputes/?status=open&agreement=ACME-DISPUTE")
    assert links["ACME-RENEWAL"]["renewal_due"] == reverse("program_agreement_edit",
                                                           args=["ACME-RENEWAL"])
    assert 'href="/agreements/ACME-REVIEW/reviews/"' in response.text


def test_sort_by_review_overdue(client, host_manager, world, frozen_today):
    client.force_login(host_manager)
    codes = _codes(client.get(URL, {"scope": "all", "sort": "review"}))
    assert codes[0] in ("ACME-REVIEW", "GLOBEX-ALL")
    assert _codes(client.get(URL, {"scope": "all", "sort": "-agreement"}))[0] == "GLOBEX-ALL"


def test_csv_has_the_filtered_rows_and_their_facts(client, host_manager, world, frozen_today):
    client.force_login(host_manager)
    response = client.get(reverse("attention_csv"),
                          {"scope": "all", "reason": ["actions_overdue", "review_overdue"],
                           "sort": "agreement"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(
        b"".join(response.streaming_content).decode().lstrip("\ufeff"))))
    assert [row["agreement"] for row in rows] == ["ACME-ACTIONS", "ACME-REVIEW", "GLOBEX-ALL"]
    actions = rows[0]
    assert actions["reasons"] == "actions_overdue"
    assert actions["overdue_actions_partner"] == "1" and actions["overdue_actions_host"] == "0"
    assert rows[1]["review_overdue_days"] == "78"
    assert rows[1]["review_due"] == "2025-02-01"
    assert rows[2]["stale_kpis"] == "defect_rate 2025-01;revenue 2025-01"


def test_csv_escapes_text_a_spreadsheet_would_run(client, host_manager, world, frozen_today):
    Agreement.objects.filter(code="ACME-RISK").update(title="=HYPERLINK(1)")
    client.force_login(host_manager)
    body = b"".join(client.get(reverse("attention_csv"), {"scope": "all"})
                    .streaming_content).decode()
    assert "'=HYPERLINK(1)" in body


def test_home_counts_what_needs_attention(client, host_manager, acme_viewer, world,
                                         frozen_today):
    client.force_login(acme_viewer)
    response = client.get("/")
    assert response.context["attention"]["total"] == 9
    assert reverse("attention") in response.text
    client.force_login(host_manager)
    response = client.get("/")
    assert response.context["attention"]["total"] == 1  # the manager's own


def test_fifty_rows_a_page(client, host_manager, world, acme, kpis, frozen_today):
    for number in range(45):  # never reviewed, no data: review overdue and stale
        make_agreement(acme, f"ACME-LATE-{number:02d}", kpis)
    client.force_login(host_manager)
    first = client.get(URL, {"scope": "all", "sort": "agreement"})
    assert len(first.context["rows"]) == 50 and first.context["shown_count"] == 55
    assert "page 1 of 2" in first.text
    second = client.get(URL + first.context["next_page_url"])
    assert [row.agreement.code for row, _ in second.context["rows"]] == [
        "ACME-REVIEW", "ACME-RISK", "ACME-STALE", "ACME-TIER", "GLOBEX-ALL"]
    body = b"".join(client.get(reverse("attention_csv"), {"scope": "all"})
                    .streaming_content).decode()
    assert len(body.strip().splitlines()) == 56  # the CSV holds every row


def test_stale_data_is_read_anew_once_an_import_finishes(world, kpis):
    found = _reasons_by_code(attention_worklist(agreements=Agreement.objects.all(), today=TODAY))
    assert found["ACME-STALE"] == ["stale_data"]
    write_observations([(world["ACME-STALE"], kpis["revenue"], "host", "2025-03-05", 40)])
    found = _reasons_by_code(attention_worklist(agreements=Agreement.objects.all(), today=TODAY))
    assert "ACME-STALE" not in found
