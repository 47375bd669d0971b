"""Plotly figures built on the server; the only module of the project that uses plotly."""

import datetime as dt

import plotly.graph_objects as go
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from partnerships.models import Stage

from .templatetags.numbers import rounded, score_text

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


def _layout(title: str, **extra) -> dict:
    return {
        "template": "none",
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        "font": {"family": FONT, "size": 13, "color": "#1d2433"},
        "margin": {"l": 8, "r": 16, "t": 48, "b": 8},
        "height": 300,
        **extra,
    }


# The tiers in Okabe–Ito, the colour-blind-safe palette of the tier badges (--tier-* in
# app.css): the tier distribution and the bands behind the score history, faint enough there
# that the lines stay readable; the tier name is always written too, so colour is never alone.
TIER_COLOURS = {"strategic": "#0072B2", "growth": "#009E73", "transactional": "#E69F00"}


def tier_bands(*, policy: dict) -> list[tuple[float, float, str]]:
    """(low, high, tier) bands of the rolling score under the threshold policy; none under
    the percentile policy, whose cut-offs move every month."""
    if policy.get("policy") != "threshold":
        return []
    growth, strategic = policy["growth_threshold"], policy["strategic_threshold"]
    return [(strategic, 125.0, "strategic"), (growth, strategic, "growth"),
            (0.0, growth, "transactional")]


def _band_shapes(bands: list[tuple[float, float, str]]) -> tuple[list, list]:
    shapes, annotations = [], []
    for low, high, tier in bands:
        if high <= low:
            continue
        shapes.append({"type": "rect", "xref": "paper", "x0": 0, "x1": 1, "yref": "y",
                       "y0": low, "y1": high, "fillcolor": TIER_COLOURS[tier],
                       "opacity": 0.08, "line": {"width": 0}, "layer": "below"})
        annotations.append({"xref": "paper", "x": 1, "xanchor": "right", "yref": "y",
                            "y": high, "yanchor": "top", "showarrow": False,
                            "text": f"{tier} ≥ {low:g}" if low else tier,
                            "font": {"size": 11, "color": "#4a5163"}})
    return shapes, annotations


def _unchecked_figure(data: list[dict], layout: dict) -> dict:
    """A figure of plain trace and layout dicts, wrapped by plotly.py without validating each
    property again: validation costs ~5 ms a figure, a large part of a page's time. Tests run
    every such figure through a validating go.Figure instead."""
    # What the validating path makes of template="none": an all-but-empty template.
    layout = {**layout, "template": {"data": {"scatter": [{"type": "scatter"}]}}}
    figure = go.Figure(data=data, layout=layout, _validate=False)
    return {**figure.to_plotly_json(), "config": {"displayModeBar": False}}


def score_history_figure(*, scorecards: list, bands: list | None = None) -> dict:
    """Overall and rolling score per month: two lines, months on x, hover with one decimal;
    the tier bands of the rolling score shaded behind them when the policy has fixed ones."""
    shapes, annotations = _band_shapes(bands or [])
    months = [card.period for card in scorecards]
    days = _month_days(months)
    overall = [rounded(card.overall) if card.has_scorecard else None for card in scorecards]
    rolling = [rounded(card.rolling) for card in scorecards]
    return _unchecked_figure(
        [
            {"type": "scatter", "x": days, "y": overall, "customdata": months,
             "name": "overall", "mode": "lines+markers", "line": {"color": ACCENT, "width": 2},
             "connectgaps": False,
             "hovertemplate": "%{customdata}: overall %{y:,.1f}<extra></extra>"},
            {"type": "scatter", "x": days, "y": rolling, "customdata": months,
             "name": "rolling (3 months)", "mode": "lines",
             "line": {"color": "#E69F00", "width": 2, "dash": "dot"}, "connectgaps": False,
             "hovertemplate": "%{customdata}: rolling %{y:,.1f}<extra></extra>"},
        ],
        _layout(
            "Overall and rolling score by month",
            xaxis=_month_axis(months),
            yaxis={"title": {"text": "score (0–120)"}, "range": [0, 125],
                   "automargin": True, "fixedrange": True},
            legend={"orientation": "h", "x": 0, "y": -0.2},
            showlegend=True,
            shapes=shapes,
            annotations=annotations,
        ),
    )


def category_scores_figure(*, scorecard, period: str) -> dict:
    """The four category scores of a month as bars in their fixed colours."""
    values = [rounded(getattr(scorecard, name)) for name in CATEGORIES]
    return _unchecked_figure(
        [{
            "type": "bar", "x": list(CATEGORIES), "y": values,
            "marker": {"color": [CATEGORY_COLOURS[name] for name in CATEGORIES]},
            "text": [score_text(value) or "no data" for value in values],
            "textposition": "outside", "cliponaxis": False,
            "hovertemplate": "%{x}, " + period + ": %{y:,.1f}<extra></extra>",
        }],
        _layout(
            f"Category scores, {period}",
            xaxis={"type": "category", "automargin": True, "fixedrange": True},
            yaxis={"title": {"text": "score (0–120)"}, "range": [0, 130],
                   "automargin": True, "fixedrange": True},
            showlegend=False,
        ),
    )


# ---- Portfolio and ecosystem pages ------------------------------------------------------------

TIER_ORDER = tuple(TIER_COLOURS)
AT_RISK_COLOUR = "#D55E00"
# Further Okabe–Ito colours for series that are not tiers or categories.
SERIES_COLOURS = (ACCENT, "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#0072B2")


def _month_days(months: list[str]) -> list[str]:
    # A date axis thins its ticks to the width; category ticks collide at 375 px.
    return [f"{month}-01" for month in months]


# At most this many month labels on an axis: six "2026-10" fit the narrowest chart (390 px).
MONTH_LABELS = 6


def _day(month: str, days: int = 0) -> str:
    return (dt.date.fromisoformat(f"{month}-01") + dt.timedelta(days=days)).isoformat()


def _month_axis(months: list[str]) -> dict:
    """A date axis with each month labelled once: a tick on the first day of every month (of
    every few months on a long range), from half a month before the first to half a month
    after the last. Left to itself, Plotly ticks a range of two or three months every few
    days or weeks, and "%Y-%m" then writes each month two or three times."""
    # No axis title: the ticks read YYYY-MM and the chart title says "per month"; a title
    # would collide with the legend below the plot on a phone.
    axis = {"type": "date", "tickformat": "%Y-%m", "automargin": True, "fixedrange": True,
            "tickangle": 0, "tickfont": {"size": 11}}
    if not months:
        return axis
    step = max(1, -(-len(months) // MONTH_LABELS))
    first, last = min(months), max(months)
    return {**axis, "tick0": _day(first), "dtick": f"M{step}",
            "range": [_day(first, -15), _day(last, 16)]}


def _count_axis(title: str, values: list[float]) -> dict:
    top = max(values, default=0)
    return {"title": {"text": title}, "rangemode": "tozero", "automargin": True,
            "fixedrange": True, **({"dtick": 1} if top <= 10 else {"tickformat": ",d"})}


def _figure(traces: list, layout: dict, subtitle: str = "") -> dict:
    if subtitle:
        # What in the title, when in a subtitle: one long title would be cut at 375 px.
        layout["title"]["subtitle"] = {"text": subtitle, "font": {"size": 12,
                                                                  "color": "#556070"}}
        layout["margin"] = {**layout.get("margin", {}), "t": 64}
    return {**go.Figure(traces, layout=layout).to_plotly_json(),
            "config": {"displayModeBar": False}}


def tier_distribution_figure(*, counts: dict[str, dict[str, int]], period: str) -> dict:
    """Agreements per tier and month: stacked bars in the tier colours, months on x."""
    months = sorted(counts)
    traces = [
        go.Bar(
            x=_month_days(months), y=[counts[month].get(tier, 0) for month in months],
            name=tier, marker_color=TIER_COLOURS[tier], customdata=months,
            hovertemplate="%{customdata}: %{y} " + tier + "<extra></extra>",
        )
        for tier in TIER_ORDER
    ]
    totals = [sum(counts[month].values()) for month in months]
    subtitle = f"{months[0]} to {period}, whole portfolio" if months else "whole portfolio"
    return _figure(traces, subtitle=subtitle, layout=_layout(
        "Agreements per tier",
        barmode="stack", xaxis=_month_axis(months), yaxis=_count_axis("agreements", totals),
        legend={"orientation": "h", "x": 0, "y": -0.12, "yanchor": "top"}, showlegend=True,
        margin={"l": 8, "r": 16, "t": 48, "b": 8},
    ))


SCORE_BIN = 10
SCORE_TOP = 120


def score_bins(values: list[float]) -> list[int]:
    """Counts per 10-point bin of 0–120; 120 (the cap) falls in the last bin."""
    counts = [0] * (SCORE_TOP // SCORE_BIN)
    for value in values:
        index = min(max(int(value // SCORE_BIN), 0), len(counts) - 1)
        counts[index] += 1
    return counts


def score_distribution_figure(*, values: list[float], period: str,
                              cut_lines: list[tuple[float, str, str]]) -> dict:
    """A histogram of the month's overall scores in 10-point bins, with labelled cut lines
    (the at-risk line at 50, and the tier thresholds when tiers follow thresholds)."""
    counts = score_bins(values)
    edges = list(range(0, SCORE_TOP, SCORE_BIN))
    ranges = [f"{low}–{low + SCORE_BIN}" for low in edges]
    figure = _figure(
        [go.Bar(
            x=[low + SCORE_BIN / 2 for low in edges], y=counts, width=SCORE_BIN * 0.92,
            marker_color=ACCENT, customdata=ranges,
            hovertemplate="overall %{customdata}: %{y} agreements<extra></extra>",
        )],
        subtitle=f"{period}, all {len(values)} scorecard{'' if len(values) == 1 else 's'}",
        layout=_layout(
            "Overall scores",
            xaxis={"title": {"text": "overall score (0–120)"},
                   "range": [0, SCORE_TOP], "dtick": 20, "automargin": True,
                   "fixedrange": True},
            yaxis=_count_axis("agreements", counts),
            showlegend=False, bargap=0,
            shapes=[{"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x,
                     "y0": 0, "y1": 1, "line": {"color": colour, "dash": "dash", "width": 1.5}}
                    for x, _, colour in cut_lines],
            # Labels inside the plot, one line lower each, so neighbouring lines' labels
            # never overlap; a white backing keeps them readable over the bars.
            annotations=[{"xref": "x", "yref": "paper", "x": x, "y": 1 - 0.09 * index,
                          "text": label, "showarrow": False, "xanchor": "left",
                          "yanchor": "top", "bgcolor": "rgba(255,255,255,0.85)",
                          "font": {"size": 11, "color": colour}}
                         for index, (x, label, colour) in enumerate(cut_lines)],
        ),
    )
    return figure


def score_cut_lines(*, settings_snapshot: dict) -> list[tuple[float, str, str]]:
    """The lines drawn across the score histogram: the at-risk line (overall < 50), and the
    tier thresholds when the run ranked by threshold (percentile tiers have no fixed line)."""
    lines = [(50.0, "at risk < 50", AT_RISK_COLOUR)]
    if settings_snapshot.get("policy") == "threshold":
        # Tiers compare the rolling score with these lines, so the labels say so.
        growth = float(settings_snapshot["growth_threshold"])
        strategic = float(settings_snapshot["strategic_threshold"])
        lines += [(growth, f"growth ≥ {growth:g} rolling", TIER_COLOURS["growth"]),
                  (strategic, f"strategic ≥ {strategic:g} rolling", TIER_COLOURS["strategic"])]
    return lines


def monthly_figure(*, title: str, subtitle: str = "", months: list[str],
                   series: list[tuple[str, list]],
                   y_title: str, kind: str = "bar", stacked: bool = False,
                   colours: dict[str, str] | None = None, value_format: str = ",d",
                   tick_format: str | None = None,
                   y_range: list[float] | None = None) -> dict:
    """One or more monthly series as bars (counts) or lines (amounts, means); months on x.
    A legend only when there is more than one series."""
    days = _month_days(months)
    traces = []
    for index, (name, values) in enumerate(series):
        colour = (colours or {}).get(name, SERIES_COLOURS[index % len(SERIES_COLOURS)])
        hover = "%{customdata}: %{y:" + value_format + "} " + name + "<extra></extra>"
        if kind == "bar":
            traces.append(go.Bar(x=days, y=values, name=name, marker_color=colour,
                                 customdata=months, hovertemplate=hover))
        else:
            traces.append(go.Scatter(x=days, y=values, name=name, mode="lines+markers",
                                     line={"color": colour, "width": 2}, connectgaps=False,
                                     customdata=months, hovertemplate=hover))
    all_values = [value for _, values in series for value in values if value is not None]
    if kind == "bar" and value_format == ",d":
        stack = [sum(values[i] or 0 for _, values in series) for i in range(len(months))]
        yaxis = _count_axis(y_title, stack if stacked else all_values)
    else:
        yaxis = {"title": {"text": y_title}, "automargin": True, "fixedrange": True,
                 "rangemode": "tozero", "tickformat": tick_format or value_format}
    if y_range:
        yaxis["range"] = y_range
    return _figure(traces, subtitle=subtitle, layout=_layout(
        title, barmode="stack" if stacked else "group", xaxis=_month_axis(months),
        yaxis=yaxis,
        showlegend=len(series) > 1,
        legend={"orientation": "h", "x": 0, "y": -0.12, "yanchor": "top"},
    ))


def category_bars_figure(*, title: str, labels: list[str], values: list[int],
                         x_title: str, subtitle: str = "") -> dict:
    """Horizontal bars of counts per category (labels stay readable at 375 px)."""
    return _figure(
        [go.Bar(y=labels, x=values, orientation="h", marker_color=ACCENT, text=values,
                textposition="outside", cliponaxis=False,
                hovertemplate="%{y}: %{x}<extra></extra>")],
        _layout(title, yaxis={"autorange": "reversed", "automargin": True,
                              "ticklabelstandoff": 6, "fixedrange": True},
                xaxis=_count_axis(x_title, values), showlegend=False,
                margin={"l": 8, "r": 24, "t": 48, "b": 8}),
        subtitle=subtitle,
    )


def trend_line(*, values: list[float | None], width: int = 96, height: int = 24,
               top: float = 120.0, reference: float = 100.0) -> dict | None:
    """An inline-SVG sparkline (no script, no Plotly): one polyline per run of months with a
    value on a fixed 0–`top` scale (so rows compare), a dot for a lone month and for the last
    value, and a faint line at the `reference` score. None without any value."""
    if not any(value is not None for value in values):
        return None
    pad = 2.0
    slots = max(len(values) - 1, 1)

    def xy(index: int, value: float) -> tuple[float, float]:
        clamped = min(max(value, 0.0), top)
        return (round(index * width / slots, 1),
                round(height - pad - clamped / top * (height - 2 * pad), 1))

    segments, current = [], []
    for index, value in enumerate(values):
        if value is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append(xy(index, value))
    if current:
        segments.append(current)
    last = max(index for index, value in enumerate(values) if value is not None)
    return {
        "width": width, "height": height,
        # A lone month between gaps is a dot rather than an invisible one-point line.
        "lines": [" ".join(f"{x},{y}" for x, y in segment) for segment in segments
                  if len(segment) > 1],
        "dots": [segment[0] for segment in segments if len(segment) == 1],
        "last": xy(last, values[last]),
        "reference_y": xy(0, reference)[1],
    }


def trend_svg(*, trend: dict | None, label: str, name: str = "trend",
              reference: str = "target", missing: str = "no data") -> SafeString:
    """The markup of a trend_line, its CSS classes named `name`: built here rather than by an
    {% include %} per table row, which cost more than the rest of the row."""
    if trend is None:
        return format_html('<span class="muted">{}</span>', missing)
    return format_html(
        '<svg class="{name}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        'aria-label="{label}" focusable="false"><title>{label}</title>'
        '<line class="{name}__{reference}" x1="0" x2="{w}" y1="{ref}" y2="{ref}"/>'
        '{lines}{dots}<circle class="{name}__last" cx="{lx}" cy="{ly}" r="2.5"/></svg>',
        name=name, reference=reference, w=trend["width"], h=trend["height"], label=label,
        ref=trend["reference_y"],
        lines=format_html_join("", '<polyline class="{}__line" points="{}"/>',
                               ((name, line) for line in trend["lines"])),
        dots=format_html_join("", '<circle class="{}__dot" cx="{}" cy="{}" r="1.5"/>',
                              ((name, x, y) for x, y in trend["dots"])),
        lx=trend["last"][0], ly=trend["last"][1],
    )


def sparkline(*, points: list, width: int = 100, height: int = 24) -> dict | None:
    """A row's overall score over its trend window (points with `period` and `overall`, None
    for a month without a scorecard) as a trend_line over a baseline at 0, with the label
    a screen reader reads. None when no month of the window has a score."""
    trend = trend_line(values=[point.overall for point in points], width=width, height=height,
                       reference=0.0)
    if trend is None:
        return None
    scored = [point for point in points if point.overall is not None]
    trend["label"] = (
        f"Overall score {points[0].period} to {points[-1].period}: "
        f"{len(scored)} of {len(points)} months scored, "
        f"from {score_text(scored[0].overall)} ({scored[0].period}) "
        f"to {score_text(scored[-1].overall)} ({scored[-1].period}); "
        f"low {score_text(min(point.overall for point in scored))}, "
        f"high {score_text(max(point.overall for point in scored))}"
    )
    return trend


def sparkline_svg(*, points: list) -> SafeString:
    """The sparkline of a row's trend as inline SVG; "no scores" without any."""
    trend = sparkline(points=points)
    return trend_svg(trend=trend, label=trend["label"] if trend else "", name="sparkline",
                     reference="baseline", missing="no scores")


# The print chart's frame: room on the left for the score ticks and the axis title, below for
# the month labels and theirs.
PRINT_CHART_MARGIN = {"left": 52, "right": 24, "top": 8, "bottom": 40}
PRINT_CHART_MONTH_LABELS = 8


def score_history_svg(*, scorecards: list, bands: list | None = None, width: int = 640,
                      height: int = 220) -> dict | None:
    """The score history as static SVG for the print view: the overall line, the rolling
    line and the tier bands on the 0–120 scale, with both axes ticked, labelled and titled
    (score in points, month as YYYY-MM)."""
    margin = PRINT_CHART_MARGIN
    plot_width = width - margin["left"] - margin["right"]
    plot_height = height - margin["top"] - margin["bottom"]
    overall = trend_line(values=[card.overall if card.has_scorecard else None
                                 for card in scorecards], width=plot_width, height=plot_height)
    if overall is None:
        return None
    rolling = trend_line(values=[card.rolling for card in scorecards], width=plot_width,
                         height=plot_height)

    def y(value: float) -> float:
        # trend_line's scale: 2 px of padding at either end of 0–120.
        return round(plot_height - 2 - min(value, 120.0) / 120.0 * (plot_height - 4), 1)

    months = [card.period for card in scorecards]
    slots = max(len(months) - 1, 1)
    step = max(1, -(-len(months) // PRINT_CHART_MONTH_LABELS))
    return {
        "width": width, "height": height, "overall": overall, "rolling": rolling,
        "left": margin["left"], "top": margin["top"],
        "plot_width": plot_width, "plot_height": plot_height,
        "bands": [{"y": y(high), "height": round(y(low) - y(high), 1), "tier": tier,
                   "colour": TIER_COLOURS[tier], "label": f"{tier} ≥ {low:g}" if low else tier,
                   "label_y": y(high) + 12}
                  for low, high, tier in (bands or []) if high > low],
        "y_ticks": [{"y": y(value), "label": f"{value:g}"} for value in range(0, 121, 20)],
        "x_ticks": [{"x": round(index * plot_width / slots, 1), "label": months[index]}
                    for index in range(0, len(months), step)],
        "y_title": "Score (points, 0–120)", "x_title": "Month (YYYY-MM)",
        "y_title_x": -margin["left"] + 12, "y_title_y": round(plot_height / 2, 1),
        "x_title_x": round(plot_width / 2, 1), "x_title_y": plot_height + 34,
        "first": months[0], "last": months[-1],
    }
