"""Objectives: their progress from the linked KPI's published scores, the page where host
managers keep them, and their section on the agreement dashboard of both sides."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dashboards.program.kpi_forms import ObjectiveForm
from dashboards.program.progress import objectives_progress
from partnerships.demo import demo_generate
from partnerships.models import (
    AgreementKPI,
    AuditAction,
    AuditEvent,
    KPIDefinition,
    Objective,
    ProgramChange,
)
from partnerships.program import ProgramError, program_load
from scoring.objectives import AT_RISK, DONE, NO_DATA, NOT_MEASURED, ON_TRACK, OVERDUE
from scoring.services import scoring_run_inline
from tests.conftest import write_observations

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
DEADLINE = dt.date(2025, 12, 31)
EARLY = dt.date(2025, 4, 1)  # a quarter of the time from the start (2025-01-01) has passed
LATE = dt.date(2025, 11, 1)  # five sixths have passed


@pytest.fixture
def scored(acme_agreement, kpis):
    """Revenue (sum, higher is better) 40 in January, 100 + 50 = 150 in March; defect rate
    (mean of the partner's values, lower is better: target 2, floor 10) 4 and 8 → 6 in March."""
    revenue, defects = kpis["revenue"], kpis["defect_rate"]
    write_observations([
        (acme_agreement, revenue, "host", "2025-01-10", 40),
        (acme_agreement, revenue, "host", "2025-03-05", 100),
        (acme_agreement, revenue, "host", "2025-03-20", 50),
    ])
    write_observations([
        (acme_agreement, defects, "partner", "2025-01-10", 9),
        (acme_agreement, defects, "partner", "2025-03-05", 4),
        (acme_agreement, defects, "partner", "2025-03-20", 8),
    ], side="partner")
    summary = scoring_run_inline()
    assert summary.status == "succeeded"
    return acme_agreement


def objective(agreement, kpi=None, target=200.0, deadline=DEADLINE, text="Grow revenue",
              set_on=dt.date(2025, 1, 1)):
    # Entered today, whatever day it was set on: the day entered plays no part.
    return Objective.objects.create(agreement=agreement, goal_type="revenue_growth",
                                    success_metric=text, kpi=kpi, target_value=target,
                                    set_on=set_on, deadline=deadline)


def progress_of(item, today):
    return objectives_progress(objectives=[item], today=today)[0]


def test_higher_is_better_progress_from_the_latest_scored_month(scored, kpis):
    result = progress_of(objective(scored, kpis["revenue"], target=200), EARLY)
    assert (result.period, result.current) == ("2025-03", 150.0)
    assert result.higher_is_better and result.start == 0
    assert result.percent == pytest.approx(75.0)
    assert result.status == ON_TRACK


def test_behind_the_time_elapsed_is_at_risk(scored, kpis):
    result = progress_of(objective(scored, kpis["revenue"], target=200), LATE)
    assert result.expected_percent == pytest.approx(100 * 304 / 364)
    assert result.status == AT_RISK


def test_time_is_counted_from_the_day_the_objective_was_set(scored, kpis):
    # Set on 2025-09-01 with the deadline at the end of the year: a sixth of its time has
    # passed on 2025-09-21, and 75 % progress is on track although the agreement is older.
    item = objective(scored, kpis["revenue"], target=200, set_on=dt.date(2025, 9, 1))
    result = progress_of(item, dt.date(2025, 9, 21))
    assert result.expected_percent == pytest.approx(100 * 20 / 121)
    assert result.status == ON_TRACK


def test_lower_is_better_progress_starts_at_the_floor(scored, kpis):
    result = progress_of(objective(scored, kpis["defect_rate"], target=3), EARLY)
    assert result.current == pytest.approx(6.0)
    assert not result.higher_is_better and result.start == 10
    assert result.percent == pytest.approx(100 * (6 - 10) / (3 - 10))
    assert result.direction_label == "lower is better"


def test_reaching_the_target_is_done_even_after_the_deadline(scored, kpis):
    revenue = objective(scored, kpis["revenue"], target=120, deadline=dt.date(2025, 2, 1))
    defects = objective(scored, kpis["defect_rate"], target=7, text="Fewer defects")
    results = objectives_progress(objectives=[revenue, defects], today=LATE)
    assert [item.status for item in results] == [DONE, DONE]
    assert [item.percent for item in results] == [100.0, 100.0]


def test_missing_the_target_by_the_deadline_is_overdue(scored, kpis):
    result = progress_of(objective(scored, kpis["revenue"], target=200,
                                   deadline=dt.date(2025, 6, 30)), LATE)
    assert result.status == OVERDUE
    assert result.percent == pytest.approx(75.0)


def test_without_a_linked_kpi_progress_is_not_measured(scored):
    result = progress_of(objective(scored, None), EARLY)
    assert result.status == NOT_MEASURED and result.percent is None
    assert result.status_label == "not measured"


def test_a_linked_kpi_without_scores_has_no_data_yet(scored):
    leads = KPIDefinition.objects.create(code="leads", name="Leads", category="strategic",
                                         aggregation="sum", source="partner")
    AgreementKPI.objects.create(agreement=scored, kpi=leads, target=10, floor=0)
    result = progress_of(objective(scored, leads, target=10), EARLY)
    assert result.measured and result.current is None and result.status == NO_DATA


def test_a_kpi_no_longer_on_the_agreement_is_not_measured(scored, kpis):
    item = objective(scored, kpis["revenue"])
    AgreementKPI.objects.filter(agreement=scored, kpi=kpis["revenue"]).delete()
    assert progress_of(item, EARLY).status == NOT_MEASURED


def test_before_any_scoring_run_linked_objectives_have_no_data(acme_agreement, kpis):
    result = progress_of(objective(acme_agreement, kpis["revenue"]), EARLY)
    assert result.status == NO_DATA


def test_progress_takes_the_same_queries_for_2_and_12_objectives(scored, kpis, settings):
    from tests.conftest import cache_start_over

    def count(n: int) -> int:
        Objective.objects.all().delete()
        for index in range(n):
            objective(scored, kpis["revenue"] if index % 2 else kpis["defect_rate"],
                      target=100 + index)
        objectives = Objective.objects.select_related("agreement", "kpi")
        with CaptureQueriesContext(connection) as queries:
            results = objectives_progress(objectives=objectives, today=EARLY)
        assert len(results) == n
        return len(queries)

    first = count(2)
    cache_start_over(settings)  # or the second reads the run's scores from the cache
    assert count(12) == first <= 4


# ---- The time an objective has, from the day it was set ----------------------------------------
# Revenue's latest scored month is March 2025 with 150 (the `scored` fixture).


def test_set_today_with_58_percent_achieved_and_two_months_left_is_on_track(scored, kpis):
    # 150 of 258.6 is 58 %; set on 2025-04-01, the day it is read, due 2025-05-31: no time
    # has passed yet, and any progress is ahead of it.
    today = dt.date(2025, 4, 1)
    item = objective(scored, kpis["revenue"], target=258.6, set_on=today,
                     deadline=dt.date(2025, 5, 31))
    result = progress_of(item, today)
    assert result.percent == pytest.approx(100 * 150 / 258.6)  # 58.0
    assert result.expected_percent == 0.0 and result.time_start == today
    assert result.status == ON_TRACK


def test_half_way_through_its_time_with_20_percent_achieved_is_at_risk(scored, kpis):
    # Set on 2025-01-01, due 2025-12-31 (364 days); on 2025-07-02, 182 days have passed: 50 %.
    # 150 of 750 is 20 %, behind.
    item = objective(scored, kpis["revenue"], target=750)
    result = progress_of(item, dt.date(2025, 7, 2))
    assert result.expected_percent == pytest.approx(50.0)
    assert result.percent == pytest.approx(20.0)
    assert result.status == AT_RISK


def test_an_objective_set_long_ago_has_its_time_elapsed_even_if_entered_today(scored, kpis):
    # Entered (created) today, set on 2025-01-01: on 2025-11-01, 304 of 364 days (83.5 %) have
    # passed; 75 % progress is behind.
    item = objective(scored, kpis["revenue"], target=200)
    assert timezone.localdate(item.created_at) == timezone.localdate()
    result = progress_of(item, LATE)
    assert result.expected_percent == pytest.approx(100 * 304 / 364)
    assert result.status == AT_RISK


def test_time_set_before_the_agreement_started_runs_from_its_start(scored, kpis):
    # Agreed on 2024-07-01, before the agreement's start (2025-01-01): on 2025-04-01, 90 of
    # 364 days from the start have passed.
    item = objective(scored, kpis["revenue"], target=200, set_on=dt.date(2024, 7, 1))
    result = progress_of(item, EARLY)
    assert result.time_start == dt.date(2025, 1, 1)
    assert result.expected_percent == pytest.approx(100 * 90 / 364)


def test_the_page_says_from_when_the_time_runs_and_why_the_status(manager_client, scored,
                                                                  kpis):
    # Read today (December 2026 when written), well into its time: 20 % is behind.
    objective(scored, kpis["revenue"], target=750, deadline=dt.date(2027, 6, 30),
              set_on=dt.date(2025, 1, 1))
    text = manager_client.get(objectives_url(scored)).text
    assert "set on 2025-01-01" in text
    assert "of the time from 2025-01-01 to the deadline has passed; progress is behind it." \
        in text
    assert "target 750.00 USD by 2027-06-30" in text  # revenue is in USD: money


def test_the_form_keeps_the_day_set_and_refuses_a_deadline_before_it(acme_agreement, kpis):
    form = ObjectiveForm({**GOOD, "kpi": kpis["revenue"].pk, "set_on": "2026-01-01"},
                         agreement=acme_agreement)
    assert not form.is_valid()
    assert form.errors["deadline"] == ["The deadline comes before the day the objective was "
                                       "set (2026-01-01): choose a later one."]
    form = ObjectiveForm({**GOOD, "kpi": kpis["revenue"].pk, "set_on": "1/2/2025"},
                         agreement=acme_agreement)
    assert form.errors["set_on"] == ["Enter the date as YYYY-MM-DD."]


def test_the_form_without_a_day_set_takes_today_or_keeps_the_objectives(acme_agreement, kpis):
    blank = {**GOOD, "kpi": kpis["revenue"].pk, "set_on": "", "deadline": "2099-12-31"}
    form = ObjectiveForm(blank, agreement=acme_agreement)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["set_on"] == timezone.localdate()
    item = Objective.objects.create(
        agreement=acme_agreement, **{**form.cleaned_data, "set_on": dt.date(2025, 3, 1)})
    form = ObjectiveForm({**blank, "target_value": "300"}, instance=item,
                         agreement=acme_agreement)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["set_on"] == dt.date(2025, 3, 1)


def program_objectives(**extra) -> dict:
    return {"partners": [], "kpis": [], "agreements": [{
        "code": "ACME-CM-2025", "partner": "acme", "type": "co_marketing", "stage": "active",
        "start": "2025-01-01", "kpis": [{"kpi": "revenue", "target": 100, "floor": 0,
                                         "weight": 1}],
        "objectives": [{"goal_type": "revenue_growth", "success_metric": "Revenue",
                        "kpi": "revenue", "target_value": 200, "deadline": "2025-12-31",
                        **extra}],
    }]}


def test_a_program_file_carries_the_day_an_objective_was_set(acme_agreement, kpis):
    result = program_load(document=program_objectives(set_on="2025-02-01"))
    assert result.counts["objectives"].created == 1
    item = Objective.objects.get()
    assert item.set_on == dt.date(2025, 2, 1)
    # The same file again changes nothing; leaving set_on out keeps the day it has.
    assert result_counts(program_load(document=program_objectives(set_on="2025-02-01"))) \
        == (0, 0, 1, 0)
    assert result_counts(program_load(document=program_objectives())) == (0, 0, 1, 0)
    assert Objective.objects.get().set_on == dt.date(2025, 2, 1)
    # Another day updates it in place.
    assert result_counts(program_load(document=program_objectives(set_on="2025-03-01"))) \
        == (0, 1, 0, 0)
    assert Objective.objects.get(pk=item.pk).set_on == dt.date(2025, 3, 1)


def test_a_program_file_refuses_a_deadline_before_the_day_set(acme_agreement, kpis):
    with pytest.raises(ProgramError) as error:
        program_load(document=program_objectives(set_on="2026-01-01"))
    assert ("agreements[0] (ACME-CM-2025).objectives[0].deadline: comes before set_on "
            "(2026-01-01)") in str(error.value)
    with pytest.raises(ProgramError) as error:
        program_load(document=program_objectives(set_on="first of May"))
    assert "objectives[0].set_on: must be a date as YYYY-MM-DD" in str(error.value)


def result_counts(result) -> tuple[int, int, int, int]:
    kind = result.counts["objectives"]
    return kind.created, kind.updated, kind.unchanged, kind.deleted


def test_the_demo_sets_objectives_in_the_past_before_their_deadlines():
    summary = demo_generate(partners=3, agreements=8, months=6, kpis_per_agreement=5,
                            observations_per_month=1, seed=7, today=dt.date(2026, 12, 6))
    last = dt.date(2026, 11, 30)
    objectives = list(Objective.objects.select_related("agreement"))
    assert objectives and summary.agreements == 8
    assert all(item.set_on <= last and item.set_on <= item.deadline for item in objectives)
    assert all(item.set_on >= item.agreement.start_date or item.agreement.start_date > last
               for item in objectives)
    # Months or more before the last data: not all on one day, not all today.
    assert len({item.set_on for item in objectives}) > 3
    assert sum(item.set_on < dt.date(2026, 6, 1) for item in objectives) >= 2


# ---- The objectives page ----------------------------------------------------------------------


@pytest.fixture
def manager_client(client, host_manager):
    client.force_login(host_manager)
    return client


def objectives_url(agreement) -> str:
    return reverse("program_objectives", args=[agreement.code])


GOOD = {"success_metric": "Revenue of 200 a month", "goal_type": "revenue_growth",
        "kpi": "revenue", "target_value": "200", "set_on": "2025-01-01",
        "deadline": "2025-12-31", "priority": "high"}


def test_the_linked_kpi_must_be_on_this_agreement(acme_agreement, kpis):
    other = KPIDefinition.objects.create(code="nps", name="NPS", category="relationship",
                                         aggregation="last", source="partner")
    form = ObjectiveForm({**GOOD, "kpi": other.pk}, agreement=acme_agreement)
    assert not form.is_valid()
    assert form.errors["kpi"] == ["Choose one of this agreement's KPIs."]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("target_value", "lots", "Enter a number"),
    ("deadline", "31/12/2025", "Enter the date as YYYY-MM-DD."),
    ("success_metric", "", "This field is required"),
    ("priority", "urgent", "Select a valid choice"),
])
def test_objective_form_rules(acme_agreement, kpis, field, value, message):
    form = ObjectiveForm({**GOOD, "kpi": kpis["revenue"].pk, field: value},
                         agreement=acme_agreement)
    assert not form.is_valid()
    assert message in " ".join(form.errors[field])


def test_create_edit_delete_record_history(manager_client, host_manager, acme_agreement, kpis):
    response = manager_client.post(objectives_url(acme_agreement),
                                   {**GOOD, "kpi": kpis["revenue"].pk})
    assert response.status_code == 302
    item = Objective.objects.get()
    assert (item.kpi, item.target_value, item.priority) == (kpis["revenue"], 200, "high")
    edit = reverse("program_objective_edit", args=[acme_agreement.code, item.pk])
    assert manager_client.post(edit, {**GOOD, "kpi": "", "target_value": "250"}).status_code \
        == 302
    item.refresh_from_db()
    assert item.kpi is None and item.target_value == 250
    delete = reverse("program_objective_delete", args=[acme_agreement.code, item.pk])
    assert manager_client.post(delete, {"confirm": "yes"}).status_code == 302
    assert not Objective.objects.exists()
    changes = ProgramChange.objects.filter(object_type="objective", agreement=acme_agreement)
    assert sorted(changes.values_list("kind", flat=True)) == ["created", "deleted", "updated"]
    updated = changes.get(kind="updated")
    assert updated.fields["Target value"] == ["200", "250"]
    assert updated.fields["Linked KPI"] == ["Partner-sourced revenue (revenue)", ""]
    assert updated.user == host_manager
    events = AuditEvent.objects.filter(action=AuditAction.PROGRAM_CHANGED)
    assert sorted(event.detail["change"] for event in events) == sorted(
        changes.values_list("pk", flat=True))


def test_htmx_submission_with_errors_answers_the_form_and_keeps_input(
        manager_client, acme_agreement, kpis):
    response = manager_client.post(objectives_url(acme_agreement),
                                   {**GOOD, "kpi": kpis["revenue"].pk, "target_value": "lots"},
                                   headers=HTMX)
    assert response.status_code == 200
    assert "<html" not in response.text and 'id="objective-form"' in response.text
    assert "Enter a number" in response.text and 'value="Revenue of 200 a month"' in response.text
    assert not Objective.objects.exists()


def test_the_page_shows_progress_and_the_rule(manager_client, scored, kpis):
    objective(scored, kpis["revenue"], target=200)
    objective(scored, None, text="Launch the joint offer")
    text = manager_client.get(objectives_url(scored)).text
    assert "Grow revenue" in text and 'value="75"' in text
    assert "No linked KPI — progress not measured." in text
    assert "How progress is measured" in text


def test_partner_users_get_404_on_the_objectives_pages(client, acme_viewer, acme_agreement):
    item = objective(acme_agreement)
    client.force_login(acme_viewer)
    assert client.get(objectives_url(acme_agreement)).status_code == 404
    assert client.post(objectives_url(acme_agreement), GOOD).status_code == 404
    edit = reverse("program_objective_edit", args=[acme_agreement.code, item.pk])
    assert client.get(edit).status_code == 404
    assert Objective.objects.count() == 1


# ---- On the agreement dashboard ---------------------------------------------------------------


def test_partner_users_see_their_own_agreements_objectives_on_the_dashboard(
        client, acme_viewer, scored, kpis, globex_agreement):
    objective(scored, kpis["revenue"], target=200, text="Acme revenue goal")
    objective(globex_agreement, kpis["revenue"], text="Globex secret goal")
    client.force_login(acme_viewer)
    text = client.get(reverse("agreement_dashboard", args=[scored.code])).text
    assert "Acme revenue goal" in text and 'value="75"' in text
    assert "Globex secret goal" not in text
    assert "Manage objectives" not in text
    other = client.get(reverse("agreement_dashboard", args=[globex_agreement.code]))
    assert other.status_code == 404


def test_the_host_dashboard_links_to_the_objectives_page(client, host_manager, acme_agreement):
    client.force_login(host_manager)
    text = client.get(reverse("agreement_dashboard", args=[acme_agreement.code])).text
    assert "No objectives set for this partnership yet." in text
    assert objectives_url(acme_agreement) in text
