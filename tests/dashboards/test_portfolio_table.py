"""The portfolio table's rows, built in Python: every cell as the table shows it, escaped."""

import datetime as dt

from django.contrib.auth import get_user_model

from dashboards.portfolio_table import portfolio_row_html
from dashboards.selectors.rows import MonthCard, PortfolioRow, TrendPoint
from partnerships.models import Agreement, Partner


def row(*, card: dict | None = None, previous_tier: str = "", owner=None,
        partner_name: str = "Acme <Labs>", code: str = "ACME-1") -> PortfolioRow:
    agreement = Agreement(code=code, type="referral", stage="under_review",
                          partner=Partner(name=partner_name, slug="acme"), owner=owner,
                          start_date=dt.date(2025, 1, 1))
    scorecard = None if card is None else MonthCard(**{
        "has_scorecard": True, "overall": 72.34, "rolling": 70.0, "coverage": 0.875,
        "tier": "growth", "at_risk": False, "incomplete": False, "payout": 1234.5, **card})
    previous = MonthCard(has_scorecard=True, overall=50.0, rolling=None, coverage=1.0,
                         tier=previous_tier, at_risk=False, incomplete=False, payout=None)
    trend = [TrendPoint(period=f"2025-{month:02d}", overall=60.0 + month, tier="growth")
             for month in range(1, 13)]
    return PortfolioRow(agreement=agreement, scorecard=scorecard, previous=previous,
                        trend=trend if card is not None else [])


def test_a_scored_row_shows_every_cell_escaped():
    owner = get_user_model()(username="sam", first_name="Sam", last_name="O'Kafor & Co")
    html = portfolio_row_html(row(card={}, previous_tier="transactional", owner=owner),
                              month="2025-12")
    assert html.startswith("<tr>") and html.endswith("</tr>")
    assert html.count("<td") == 10
    assert '<a href="/agreements/ACME-1/?month=2025-12">ACME-1</a>' in html
    assert "Acme &lt;Labs&gt;" in html and "<Labs>" not in html
    assert "Referral<br><small class=\"muted\">under review</small>" in html
    assert "Sam O&#x27;Kafor &amp; Co" in html
    assert '<span class="badge tier-growth">Growth</span>' in html
    assert 'class="change change--up"' in html  # transactional → growth
    assert '<td class="num" data-label="Overall">72.3</td>' in html
    assert '<td class="num" data-label="Rolling">70.0</td>' in html
    assert '<td class="num" data-label="Coverage">87.5 %</td>' in html
    assert '<td class="num" data-label="Payout">1,234.50</td>' in html
    assert '<svg class="sparkline"' in html


def test_flags_moves_down_and_missing_values():
    html = portfolio_row_html(row(card={"at_risk": True, "incomplete": True, "tier": "growth",
                                        "payout": None}, previous_tier="strategic"),
                              month="2025-12")
    assert ('<span class="badge flag-incomplete">incomplete</span> '
            '<span class="badge flag-at-risk">at risk</span> ') in html
    assert 'class="change change--down"' in html
    assert '<td class="num" data-label="Payout">—</td>' in html
    assert '<td class="col-wide-only">—</td>' in html  # no owner


def test_a_row_without_a_scorecard():
    html = portfolio_row_html(row(card=None), month="2025-12")
    assert '<span class="muted">—</span>' in html  # no tier
    assert '<span class="muted">no scores</span>' in html
    for label in ("Overall", "Rolling", "Coverage"):
        assert f'<td class="num" data-label="{label}">—</td>' in html
    assert '<span class="muted">no scorecard</span>' in html


def test_a_month_without_a_scorecard_keeps_rolling_and_tier():
    html = portfolio_row_html(row(card={"has_scorecard": False, "overall": None}),
                              month="2025-12")
    assert '<span class="badge tier-growth">Growth</span>' in html
    assert '<td class="num" data-label="Rolling">70.0</td>' in html
    assert '<span class="muted">no scorecard</span>' in html


def test_on_a_phone_every_card_labels_its_tier_scores_trend_coverage_flags_and_payout():
    # The table stacks into cards on a phone (.table--stack): each value shows its label.
    html = portfolio_row_html(row(card={"at_risk": True}), month="2025-12")
    for label in ("Tier", "Overall", "Rolling", "Trend", "Coverage", "Flags", "Payout"):
        assert f'data-label="{label}"' in html
    # Only the type, stage and owner are left to the agreement's page on a phone.
    assert html.count("col-wide-only") == 2


def test_overdue_review_and_actions_follow_the_flags():
    scored = row(card={"at_risk": True})
    scored.review_overdue_days, scored.overdue_actions = 1234, 1
    html = portfolio_row_html(scored, month="2025-12")
    assert ('<td data-label="Flags"><span class="badge flag-at-risk">at risk</span> '
            '<span class="badge flag-overdue">review 1,234 days late</span> '
            '<span class="badge flag-overdue">1 action late</span> </td>') in html
    unscored = row()
    unscored.overdue_actions = 2
    assert ('<td data-label="Flags"><span class="muted">no scorecard</span> '
            '<span class="badge flag-overdue">2 actions late</span> </td>'
            ) in portfolio_row_html(unscored, month="2025-12")
