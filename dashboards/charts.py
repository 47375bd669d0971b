"""Plotly figures built on the server; the only module of the project that uses plotly."""

import plotly.graph_objects as go

from partnerships.models import Stage

from .selectors import one_decimal

# The page's accent colour (--accent in static/css/app.css) and font stack, so a chart reads as
# part of the page rather than a Plotly default.
ACCENT = "#33449c"
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'


def agreements_by_stage_figure(*, counts: dict[str, int]) -> dict:
    """A bar per stage in lifecycle order, zeros included so the chart keeps its shape."""
    values = [counts.get(stage, 0) for stage in Stage.values]
    figure = go.Figure(
        # Horizontal bars: stage names stay readable at 375 px instead of rotating.
        go.Bar(
            y=Stage.labels,
            x=values,
            orientation="h",
            marker_color=ACCENT,
            text=values,
            textposition="outside",
            cliponaxis=False,
            customdata=[f"{n} agreement{'' if n == 1 else 's'}" for n in values],
            hovertemplate="%{y}: %{customdata}<extra></extra>",
        ),
        layout={
            "template": "none",
            "title": {"text": "Agreements by stage, today", "x": 0, "xanchor": "left"},
            # Lifecycle order from top to bottom.
            "yaxis": {"autorange": "reversed", "automargin": True, "ticklabelstandoff": 6,
                      "fixedrange": True},
            # Whole agreements only: Plotly would otherwise tick a count of 2 at 0.5, 1, 1.5.
            "xaxis": {"title": {"text": "Agreements"}, "rangemode": "tozero",
                      "automargin": True, "fixedrange": True,
                      **({"dtick": 1} if max(values) <= 10 else {"tickformat": ",d"})},
            "font": {"family": FONT, "size": 13, "color": "#1d2433"},
            "margin": {"l": 8, "r": 24, "t": 48, "b": 8},
            "height": 300,
            "showlegend": False,
        },
    )
    return {**figure.to_plotly_json(), "config": {"displayModeBar": False}}


# ---- Agreement dashboard --------------------------------------------------------------------

CATEGORIES = ("financial", "strategic", "operational", "relationship")
CATEGORY_COLOURS = {
    "financial": "#56b4e9", "strategic": "#cc79a7", "operational": "#c9b300",
    "relationship": "#8c8c8c",
}


def _rounded(value: float | None) -> float | None:
    # The same one-decimal figure the page and the export show (format_number, then .1f).
    text = one_decimal(value)
    return float(text) if text else None


def _layout(title: str, **extra) -> dict:
    return {
        "template": "none",
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        "font": {"family": FONT, "size": 13, "color": "#1d2433"},
        "margin": {"l": 8, "r": 16, "t": 48, "b": 8},
        "height": 300,
        **extra,
    }


def score_history_figure(*, scorecards: list) -> dict:
    """Overall and rolling score per month: two lines, months on x, hover with one decimal."""
    months = [card.period for card in scorecards]
    # A date axis thins its ticks to the width (category ticks collide at 375 px).
    days = [f"{month}-01" for month in months]
    overall = [_rounded(card.overall) if card.has_scorecard else None for card in scorecards]
    rolling = [_rounded(card.rolling) for card in scorecards]
    figure = go.Figure(
        [
            go.Scatter(x=days, y=overall, customdata=months, name="overall",
                       mode="lines+markers", line={"color": ACCENT, "width": 2},
                       connectgaps=False,
                       hovertemplate="%{customdata}: overall %{y:.1f}<extra></extra>"),
            go.Scatter(x=days, y=rolling, customdata=months, name="rolling (3 months)",
                       mode="lines", line={"color": "#E69F00", "width": 2, "dash": "dot"},
                       connectgaps=False,
                       hovertemplate="%{customdata}: rolling %{y:.1f}<extra></extra>"),
        ],
        layout=_layout(
            "Overall and rolling score by month",
            xaxis={"type": "date", "tickformat": "%Y-%m", "automargin": True,
                   "fixedrange": True, "tickangle": 0},
            yaxis={"title": {"text": "score (0–120)"}, "range": [0, 125],
                   "automargin": True, "fixedrange": True},
            legend={"orientation": "h", "x": 0, "y": -0.2},
            showlegend=True,
        ),
    )
    return {**figure.to_plotly_json(), "config": {"displayModeBar": False}}


def category_scores_figure(*, scorecard, period: str) -> dict:
    """The four category scores of a month as bars in their fixed colours."""
    values = [_rounded(getattr(scorecard, name)) for name in CATEGORIES]
    figure = go.Figure(
        go.Bar(
            x=list(CATEGORIES), y=values,
            marker_color=[CATEGORY_COLOURS[name] for name in CATEGORIES],
            text=["no data" if value is None else f"{value:.1f}" for value in values],
            textposition="outside", cliponaxis=False,
            hovertemplate="%{x}, " + period + ": %{y:.1f}<extra></extra>",
        ),
        layout=_layout(
            f"Category scores, {period}",
            xaxis={"type": "category", "automargin": True, "fixedrange": True},
            yaxis={"title": {"text": "score (0–120)"}, "range": [0, 130],
                   "automargin": True, "fixedrange": True},
            showlegend=False,
        ),
    )
    return {**figure.to_plotly_json(), "config": {"displayModeBar": False}}
