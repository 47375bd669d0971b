"""Month axes write each month once, however few months a chart has; the ecosystem page opens
on the latest month that has data, not on the calendar month whose metrics have not arrived."""

import datetime as dt
from types import SimpleNamespace

import plotly.graph_objects as go
import pytest
from django.urls import reverse
from django.utils import timezone

from dashboards import charts
from dashboards.selectors.ecosystem import ecosystem_latest_month
from partnerships.models import MetricObservation
from scoring.models import ScoringRun
from scoring.services import scoring_run_inline
from tests.conftest import write_observations


def month_range(first: str, count: int) -> list[str]:
    year, month = (int(part) for part in first.split("-"))
    return [f"{(year * 12 + month - 1 + n) // 12:04d}-{(year * 12 + month - 1 + n) % 12 + 1:02d}"
            for n in range(count)]


def tick_labels(axis: dict) -> list[str]:
    """The labels Plotly writes for a date axis with tick0, dtick "M<n>", a range and
    tickformat "%Y-%m": one per tick within the range."""
    assert axis["type"] == "date" and axis["tickformat"] == "%Y-%m"
    step = int(axis["dtick"].removeprefix("M"))
    low, high = (dt.date.fromisoformat(day) for day in axis["range"])
    tick = dt.date.fromisoformat(axis["tick0"])
    labels = []
    while tick <= high:
        if tick >= low:
            labels.append(tick.strftime("%Y-%m"))
        index = tick.year * 12 + tick.month - 1 + step
        tick = dt.date(index // 12, index % 12 + 1, 1)
    return labels


def card(period: str, overall: float) -> SimpleNamespace:
    return SimpleNamespace(period=period, overall=overall, rolling=None, has_scorecard=True)


def test_a_new_agreements_two_months_are_each_labelled_once():
    figure = charts.score_history_figure(scorecards=[card("2026-10", 61.0),
                                                     card("2026-11", 64.5)])
    axis = figure["layout"]["xaxis"]
    assert axis["dtick"] == "M1" and axis["tick0"] == "2026-10-01"
    assert axis["range"] == ["2026-09-16", "2026-11-17"]
    assert tick_labels(axis) == ["2026-10", "2026-11"]
    go.Figure(figure["data"], figure["layout"])  # valid for plotly.py's own checks


def test_a_single_month_is_labelled_once():
    axis = charts.score_history_figure(scorecards=[card("2026-11", 64.5)])["layout"]["xaxis"]
    assert tick_labels(axis) == ["2026-11"]


@pytest.mark.parametrize(("count", "dtick", "labels"), [
    (1, "M1", 1), (3, "M1", 3), (6, "M1", 6), (7, "M2", 4), (12, "M2", 6), (24, "M4", 6),
    (36, "M6", 6),
])
def test_long_ranges_label_every_few_months_and_at_most_six(count, dtick, labels):
    months = month_range("2024-01", count)
    figure = charts.monthly_figure(title="Imports per month", months=months,
                                   series=[("imports", [1] * count)], y_title="imports")
    axis = figure["layout"]["xaxis"]
    assert axis["dtick"] == dtick
    written = tick_labels(axis)
    assert len(written) == labels and len(set(written)) == len(written)
    assert written[0] == months[0]


def test_the_portfolios_tier_chart_labels_each_month_once():
    counts = {"2026-10": {"growth": 1}, "2026-11": {"growth": 1, "strategic": 1}}
    axis = charts.tier_distribution_figure(counts=counts, period="2026-11")["layout"]["xaxis"]
    assert tick_labels(axis) == ["2026-10", "2026-11"]


# ---- The ecosystem's opening month ----------------------------------------------------------


@pytest.fixture
def observed(acme_agreement, kpis):
    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-02-10", 40),
                        (acme_agreement, kpis["revenue"], "host", "2025-03-10", 50)])
    return acme_agreement


@pytest.mark.django_db
def test_the_ecosystem_opens_on_the_latest_month_with_data(client, host_manager, observed):
    assert timezone.localdate().strftime("%Y-%m") > "2025-03"
    client.force_login(host_manager)
    response = client.get(reverse("ecosystem"))
    assert response.context["end"] == "2025-03"
    assert response.context["months"][-1] == "2025-03"
    assert 'value="2025-03"' in response.text
    assert "2024-04 to 2025-03" in response.text


@pytest.mark.django_db
def test_a_month_asked_for_is_kept(client, host_manager, observed):
    client.force_login(host_manager)
    response = client.get(reverse("ecosystem"), {"end": "2025-01", "span": "6"})
    assert response.context["end"] == "2025-01"


@pytest.mark.django_db
def test_without_any_data_the_ecosystem_opens_on_this_month(client, host_manager):
    client.force_login(host_manager)
    response = client.get(reverse("ecosystem"))
    assert response.context["end"] == timezone.localdate().strftime("%Y-%m")


@pytest.mark.django_db
def test_the_latest_month_takes_the_published_run_and_ignores_the_future(observed, kpis):
    assert scoring_run_inline().status == ScoringRun.Status.SUCCEEDED
    run = ScoringRun.objects.current()
    observations = MetricObservation.objects.all()
    assert ecosystem_latest_month(observations=observations, run=run,
                                  today=dt.date(2026, 12, 6)) == "2025-03"
    # Seen from 2025-02-20, March's observation lies ahead, and so does the run's March.
    assert ecosystem_latest_month(observations=observations, run=None,
                                  today=dt.date(2025, 2, 20)) == "2025-02"
    assert ecosystem_latest_month(observations=MetricObservation.objects.none(), run=run,
                                  today=dt.date(2026, 12, 6)) == "2025-03"
    assert ecosystem_latest_month(observations=MetricObservation.objects.none(), run=None,
                                  today=dt.date(2026, 12, 6)) == "2026-12"
