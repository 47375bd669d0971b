"""The rows of the portfolio table as HTML.

Built here rather than in the template: fifty rows of ten cells each cost a third of the page's
time through the template engine (and half as much through `format_html`, whose lazy-string
checks run for every value). Every value passes through `escape` below; the markup belongs
with the table's header in templates/dashboards/portfolio.html.
"""

from html import escape

from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from partnerships.models import AgreementType, Stage

from . import charts
from .selectors.rows import TIER_LABELS, PortfolioRow
from .templatetags.numbers import count_text, money_text, score_text, share_text

TYPE_LABELS = dict(AgreementType.choices)
STAGE_LABELS = {value: label.lower() for value, label in Stage.choices}
TIER_MOVES = {
    "up": ' <span class="change change--up" title="up from last month">▲'
          '<span class="visually-hidden"> up</span></span>',
    "down": ' <span class="change change--down" title="down from last month">▼'
            '<span class="visually-hidden"> down</span></span>',
    "": "",
}
FLAG_BADGES = {
    "at_risk": '<span class="badge flag-at-risk">at risk</span> ',
    "incomplete": '<span class="badge flag-incomplete">incomplete</span> ',
}


def _tier_cell(row: PortfolioRow) -> str:
    tier = row.tier
    if not tier:
        return '<span class="muted">—</span>'
    label = TIER_LABELS.get(tier, tier)
    return (f'<span class="badge tier-{escape(tier)}">{escape(label)}</span>'
            f"{TIER_MOVES[row.tier_move]}")


def _overdue_badges(row: PortfolioRow) -> str:
    """Today's overdue review (days late) and overdue actions, as badges after the flags."""
    days, actions = row.review_overdue_days, row.overdue_actions
    badges = ""
    if days:
        badges += (f'<span class="badge flag-overdue">review {count_text(days)} '
                   f'day{"s" if days != 1 else ""} late</span> ')
    if actions:
        badges += (f'<span class="badge flag-overdue">{count_text(actions)} action'
                   f'{"s" if actions != 1 else ""} late</span> ')
    return badges


def _flags_cell(row: PortfolioRow) -> str:
    flags = row.flags
    if not flags:
        scored = "" if row.has_scorecard else '<span class="muted">no scorecard</span> '
        return scored + _overdue_badges(row)
    return "".join(FLAG_BADGES[flag] for flag in flags) + _overdue_badges(row)


def _or_dash(text: str) -> str:
    return escape(text) if text else "—"


def portfolio_row_html(row: PortfolioRow, *, month: str) -> SafeString:
    """One `<tr>` of the table, every value escaped."""
    agreement = row.agreement
    url = reverse("agreement_dashboard", args=[agreement.code])
    coverage = share_text(row.coverage)
    return mark_safe(
        "<tr>"
        f'<td class="portfolio-table__agreement"><a href="{escape(url)}?month={escape(month)}">'
        f"{escape(agreement.code)}</a><br>"
        f'<small class="muted">{escape(agreement.partner.name)}</small></td>'
        f'<td class="col-wide-only">{escape(TYPE_LABELS.get(agreement.type, agreement.type))}'
        f'<br><small class="muted">'
        f"{escape(STAGE_LABELS.get(agreement.stage, agreement.stage))}</small></td>"
        f'<td class="col-wide-only">{_or_dash(row.owner_name)}</td>'
        f'<td data-label="Tier">{_tier_cell(row)}</td>'
        f'<td class="num" data-label="Overall">{_or_dash(score_text(row.overall))}</td>'
        f'<td class="num" data-label="Rolling">{_or_dash(score_text(row.rolling))}</td>'
        # Built with format_html by charts.trend_svg: escaped there.
        f'<td data-label="Trend">{row.sparkline_svg or charts.sparkline_svg(points=row.trend)}'
        "</td>"
        f'<td class="num" data-label="Coverage">'
        f'{escape(coverage) + " %" if coverage else "—"}</td>'
        f'<td data-label="Flags">{_flags_cell(row)}</td>'
        f'<td class="num" data-label="Payout">{_or_dash(money_text(row.payout))}</td>'
        "</tr>"
    )


def portfolio_rows_html(rows: list[PortfolioRow], *, month: str) -> list[SafeString]:
    return [portfolio_row_html(row, month=month) for row in rows]
