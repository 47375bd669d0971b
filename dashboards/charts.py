"""Plotly figures built on the server; the only module of the project that uses plotly."""

import plotly.graph_objects as go

from partnerships.models import Stage

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
