"""The portfolio's overdue reviews and actions (column, filters, sort, CSV), its flags chosen
several at once, and its headline cards linking to the rows they count."""

import csv
import datetime as dt
import io

import pytest
from django.utils import timezone

from partnerships.models import ActionItem, Review
from scoring.models import Scorecard, ScoringRun
from scoring.services import scoring_run_inline
from tests.conftest import make_agreement, write_observations

pytestmark = pytest.mark.django_db

URL = "/portfolio/"


@pytest.fixture
def portfolio(acme, globex, kpis):
    """Four scored agreements: RISK at risk in March, LATE-REVIEW never reviewed, ACTIONS with
    two overdue actions (one each side) and a held review, CLEAN reviewed and up to date."""
    codes = ("ACTIONS", "CLEAN", "LATE-REVIEW", "RISK")
    agreements = {code: make_agreement(acme if code != "RISK" else globex, code, kpis)
                  for code in codes}
    rows = []
    for agreement in agreements.values():
        for month in (1, 2, 3):
            rows += [(agreement, kpis["revenue"], "host", f"2025-{month:02d}-10", 60),
                     (agreement, kpis["defect_rate"], "partner", f"2025-{month:02d}-12", 4)]
    write_observations(rows)
    scoring_run_inline()
    Scorecard.objects.filter(run=ScoringRun.objects.current(), agreement=agreements["RISK"],
                             period="2025-03").update(at_risk=True)
    today = timezone.localdate()
    for code in ("ACTIONS", "CLEAN", "RISK"):
        Review.objects.create(agreement=agreements[code], kind="tactical_sync", held_on=today)
    # Planned only: LATE-REVIEW stays overdue.
    Review.objects.create(agreement=agreements["LATE-REVIEW"], kind="tactical_sync",
                          status="planned", held_on=today + dt.timedelta(days=3))
    for side in ("host", "partner"):
        ActionItem.objects.create(agreement=agreements["ACTIONS"], description="Follow up",
                                  owner_name="Kim", owner_side=side,
                                  due_date=today - dt.timedelta(days=2))
    ActionItem.objects.create(agreement=agreements["CLEAN"], description="Not yet",
                              owner_name="Kim", owner_side="host", due_date=today)
    return agreements


def codes(response) -> list[str]:
    return [row.agreement.code for row in response.context["page"]]


def test_overdue_column_shows_days_and_actions(client, host_manager, portfolio):
    client.force_login(host_manager)
    response = client.get(URL)
    rows = {row.agreement.code: row for row in response.context["page"]}
    # Started 2025-01-01, never held a review: long overdue (92 days at most between reviews).
    assert rows["LATE-REVIEW"].review_overdue_days > 300
    assert rows["ACTIONS"].overdue_actions == 2 and rows["ACTIONS"].review_overdue_days == 0
    assert rows["CLEAN"].overdue_actions == 0 and rows["CLEAN"].review_overdue_days == 0
    assert '<span class="badge flag-overdue">2 actions late</span>' in response.text


def test_flags_are_a_multi_select_and_one_flag_still_works(client, host_manager, portfolio):
    client.force_login(host_manager)
    assert codes(client.get(URL, {"flag": "at_risk"})) == ["RISK"]
    assert codes(client.get(URL, {"flag": "review_overdue"})) == ["LATE-REVIEW"]
    assert codes(client.get(URL, {"flag": "actions_overdue"})) == ["ACTIONS"]
    response = client.get(URL, {"flag": ["at_risk", "actions_overdue", "review_overdue"]})
    assert codes(response) == ["ACTIONS", "LATE-REVIEW", "RISK"]
    assert response.context["filters"]["flag"] == ["at_risk", "review_overdue",
                                                    "actions_overdue"]
    # The boxes stay ticked, and the next page's and the export's links keep every flag.
    assert 'value="actions_overdue" checked' in response.text
    assert "flag=at_risk&flag=review_overdue&flag=actions_overdue" in response.context[
        "export_url"]
    # Unknown flags are ignored rather than matching nothing.
    assert len(codes(client.get(URL, {"flag": "nonsense"}))) == 4


def test_sort_by_overdue_review_and_actions(client, host_manager, portfolio):
    client.force_login(host_manager)
    assert codes(client.get(URL, {"sort": "-review"}))[0] == "LATE-REVIEW"
    assert codes(client.get(URL, {"sort": "-actions"}))[0] == "ACTIONS"
    assert codes(client.get(URL, {"sort": "actions"}))[-1] == "ACTIONS"


def test_csv_has_the_overdue_columns_and_follows_the_flags(client, host_manager, portfolio):
    client.force_login(host_manager)
    response = client.get("/portfolio/export.csv", {"flag": ["review_overdue",
                                                              "actions_overdue"]})
    body = b"".join(response.streaming_content).decode().lstrip("\ufeff")
    rows = {row["agreement"]: row for row in csv.DictReader(io.StringIO(body))}
    assert sorted(rows) == ["ACTIONS", "LATE-REVIEW"]
    assert rows["ACTIONS"]["overdue_actions"] == "2"
    assert rows["ACTIONS"]["review_overdue_days"] == "0"
    assert int(rows["LATE-REVIEW"]["review_overdue_days"]) > 300


def test_cards_link_to_the_rows_they_count(client, host_manager, portfolio):
    client.force_login(host_manager)
    response = client.get(URL)
    for query in ("flag=at_risk", "flag=incomplete", "flag=review_overdue",
                  "flag=actions_overdue", "stage=active", "tier=growth"):
        assert f'href="/portfolio/?month=2025-03&amp;{query}"' in response.text, query
    assert response.context["review_figures"]["overdue_reviews"] == 1
    # Following the overdue reviews card lists exactly the agreements it counts.
    assert codes(client.get(URL, {"month": "2025-03", "flag": "review_overdue"})) == [
        "LATE-REVIEW"]
    # The overdue actions card counts actions (two) and says in how many agreements they are,
    # the rows its link lists.
    assert "overdue actions of 3 open (both sides), in 1 agreement<" in response.text
    assert codes(client.get(URL, {"month": "2025-03", "flag": "actions_overdue"})) == [
        "ACTIONS"]
