"""What the print view, the phone layout and the partner page are built from: the print chart's
axes, the portfolio's stacked table, the partner page's full-width agreements, and the script
that makes a scrolling table reachable by keyboard. How they look is tested in a browser
(test_browser_main_pages.py)."""

from types import SimpleNamespace

import pytest
from django.urls import reverse

from dashboards.charts import score_history_svg
from scoring.services import scoring_run_inline
from tests.conftest import write_observations

pytestmark = pytest.mark.django_db


def cards(overall: list[float | None]) -> list[SimpleNamespace]:
    return [SimpleNamespace(period=f"2025-{index + 1:02d}", overall=value,
                            has_scorecard=value is not None, rolling=None)
            for index, value in enumerate(overall)]


def test_the_print_chart_has_both_axes_ticked_labelled_and_titled():
    chart = score_history_svg(scorecards=cards([50, 80, None, 120, 90, 60, 70, 75, 80, 85]),
                              bands=[(80.0, 125.0, "strategic")])

    assert chart["y_title"] == "Score (points, 0–120)"
    assert chart["x_title"] == "Month (YYYY-MM)"
    assert [tick["label"] for tick in chart["y_ticks"]] == ["0", "20", "40", "60", "80",
                                                            "100", "120"]
    # 0 at the bottom of the plot, 120 at its top, the same scale as the lines.
    assert chart["y_ticks"][0]["y"] == chart["plot_height"] - 2
    assert chart["y_ticks"][-1]["y"] == 2
    # Ten months: every second one labelled, the first at the left edge, none past the right.
    labels = [tick["label"] for tick in chart["x_ticks"]]
    assert labels == ["2025-01", "2025-03", "2025-05", "2025-07", "2025-09"]
    assert chart["x_ticks"][0]["x"] == 0
    assert all(0 <= tick["x"] <= chart["plot_width"] for tick in chart["x_ticks"])
    # The plot leaves room for the tick labels and titles inside the figure.
    assert chart["left"] + chart["plot_width"] < chart["width"]
    assert chart["top"] + chart["plot_height"] + 30 < chart["height"]
    assert chart["bands"][0]["label"] == "strategic ≥ 80"


def test_a_single_month_still_gets_its_label():
    chart = score_history_svg(scorecards=cards([64.0]))
    assert [tick["label"] for tick in chart["x_ticks"]] == ["2025-01"]


@pytest.fixture
def scored(acme_agreement, kpis):
    write_observations([(acme_agreement, kpis["revenue"], "host", f"2025-{month:02d}-10", 60)
                        for month in (1, 2, 3)])
    scoring_run_inline()
    return acme_agreement


def test_the_print_view_draws_the_chart_with_its_axis_titles(client, host_manager, scored):
    client.force_login(host_manager)
    html = client.get(reverse("agreement_print", args=[scored.code])).content.decode()
    assert "Score (points, 0–120)" in html and "Month (YYYY-MM)" in html
    assert ">2025-01</text>" in html


def test_the_portfolio_table_is_the_shared_table_that_stacks_on_a_phone(
        client, host_manager, scored):
    client.force_login(host_manager)
    html = client.get(reverse("portfolio")).content.decode()
    assert '<table class="table table--stack portfolio-table">' in html
    # The payout header is no longer left out on a phone.
    assert 'class="num col-wide-only"' not in html


def test_a_partner_page_gives_its_agreements_the_full_width(client, host_manager, scored):
    client.force_login(host_manager)
    html = client.get(reverse("program_partner", args=["acme"])).content.decode()
    assert html.index('id="agreements-heading"') < html.index('class="columns columns--partner"')
    assert 'aria-label="Manage ACME-CM-2025"' in html


def test_every_page_loads_the_script_that_makes_a_scrolling_table_focusable(
        client, host_manager):
    client.force_login(host_manager)
    assert "js/tables.js" in client.get(reverse("home")).content.decode()
