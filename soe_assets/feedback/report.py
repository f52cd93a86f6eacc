"""The S&OP feedback report: one self-contained HTML page, charts as inline SVG (no scripts, no network)."""

from __future__ import annotations

import html
import math
import os
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from soe_assets.feedback.patterns import last_ended_week

REPORT_FILE = "sop_report.html"

TREND_KPIS = [  # (kpi_name, title, is_rate, higher_is_better)
    ("otif_line_rate", "OTIF (lines)", True, True),
    ("fill_rate_units", "Fill rate (units)", True, True),
    ("schedule_adherence", "Schedule adherence", True, True),
    ("supplier_on_time_rate", "Supplier on time", True, True),
    ("forecast_wape", "Forecast WAPE", True, False),
    ("forecast_bias", "Forecast bias", True, None),
    ("forecast_mape", "Forecast MAPE", True, False),
    ("inventory_value", "Inventory value", False, None),
    ("days_of_supply", "Days of supply", False, None),
    ("inventory_turns", "Inventory turns", False, True),
    ("exception_resolution_days", "Days to resolve", False, False),
]

INK, MUTED, GRID, ACCENT, GOOD, BAD = "#1f2933", "#6b7785", "#e4e7eb", "#2f6fdf", "#2e8b57", "#c8553d"

CSS = f"""
body {{ font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: {INK};
       margin: 0; background: #f5f7fa; }}
main {{ max-width: 1180px; margin: 0 auto; padding: 28px 32px 48px; }}
h1 {{ font-size: 26px; margin: 0 0 4px; }} h2 {{ font-size: 18px; margin: 32px 0 12px; }}
.sub {{ color: {MUTED}; margin: 0 0 20px; }}
.tiles {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px; }}
.tile, .card {{ background: white; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }}
.tile {{ padding: 12px 14px; }} .tile .name {{ color: {MUTED}; font-size: 12px; text-transform: uppercase;
       letter-spacing: .04em; }}
.tile .value {{ font-size: 24px; font-weight: 600; margin-top: 4px; }} .tile .delta {{ font-size: 12px; }}
.tile .week {{ font-size: 12px; font-style: italic; }}
.good {{ color: {GOOD}; }} .bad {{ color: {BAD}; }} .flat {{ color: {MUTED}; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(270px, 1fr)); gap: 12px; }}
.card {{ padding: 10px 12px 6px; }} .card h3 {{ font-size: 13px; margin: 0 0 2px; }}
.two {{ display: grid; grid-template-columns: 3fr 2fr; gap: 12px; }}
table {{ border-collapse: collapse; width: 100%; background: white; font-size: 13px; border-radius: 8px;
        overflow: hidden; box-shadow: 0 1px 3px rgba(0,0,0,.08); }}
th, td {{ text-align: left; padding: 8px 10px; border-bottom: 1px solid {GRID}; vertical-align: top; }}
th {{ background: #eef1f5; font-weight: 600; }} td.num {{ text-align: right; white-space: nowrap; }}
.pill {{ display: inline-block; padding: 1px 8px; border-radius: 10px; background: #e8effc; color: {ACCENT};
        font-size: 12px; white-space: nowrap; }}
.empty {{ color: {MUTED}; padding: 16px; background: white; border-radius: 8px; }}
.note {{ color: {MUTED}; font-size: 12px; margin: 6px 0 4px; }}
footer {{ color: {MUTED}; font-size: 12px; margin-top: 28px; }}
"""


def _e(text: object) -> str:
    return html.escape("" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text))


def _format(value: float, is_rate: bool) -> str:
    """A KPI value as the report shows it; one that rounds to zero is 0, never '-0.0'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if is_rate:
        return f"{round(value * 100, 1) + 0.0:.1f}%"
    if abs(value) >= 10_000:
        return f"{round(value / 1000) + 0:,.0f}k"
    return f"{round(value, 1) + 0.0:,.1f}"


def line_chart(points: list[tuple[date, float]], *, is_rate: bool, width: int = 270, height: int = 120) -> str:
    """A small line chart of one KPI per week (inline SVG)."""
    left, right, top, bottom = 44, 8, 8, 20
    if not points:
        return f'<svg width="{width}" height="{height}" role="img"><text x="{width / 2}" y="{height / 2}" ' \
               f'text-anchor="middle" fill="{MUTED}" font-size="12">no data yet</text></svg>'
    values = [v for _, v in points]
    low, high = min(values), max(values)
    if is_rate:
        low, high = min(low, 0.0) if low < 0 else min(low, 0.5), max(high, 1.0) if low >= 0 else max(high, 0.1)
    if high == low:
        high, low = high + 1, low - 1 if low > 0 else 0
    span_x = max(len(points) - 1, 1)
    x = lambda i: left + (width - left - right) * i / span_x  # noqa: E731
    y = lambda v: top + (height - top - bottom) * (1 - (v - low) / (high - low))  # noqa: E731
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for tick in (low, (low + high) / 2, high):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="{GRID}"/>')
        parts.append(f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="10" '
                     f'fill="{MUTED}">{_e(_format(tick, is_rate))}</text>')
    if low < 0 < high:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="{MUTED}" '
                     f'stroke-dasharray="3 3"/>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(v):.1f}" for i, (_, v) in enumerate(points))
    parts.append(f'<path d="{path}" fill="none" stroke="{ACCENT}" stroke-width="2"/>')
    for i, (week, v) in enumerate(points):
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{ACCENT}">'
                     f'<title>{week}: {_e(_format(v, is_rate))}</title></circle>')
    for i in sorted({0, len(points) - 1}):
        anchor = "start" if i == 0 and len(points) > 1 else "end"
        parts.append(f'<text x="{x(i):.1f}" y="{height - 5}" text-anchor="{anchor}" font-size="10" '
                     f'fill="{MUTED}">{points[i][0]:%d %b}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(items: list[tuple[str, float]], *, is_rate: bool = False, width: int = 640,
              color: str = ACCENT, diverging: bool = False) -> str:
    """Horizontal bars, one per labelled value (diverging around 0 when asked)."""
    label_w, bar_h, gap, value_w = 250, 18, 8, 70
    height = max(len(items), 1) * (bar_h + gap) + gap
    if not items:
        return '<div class="empty">nothing to show</div>'
    top = max(abs(v) for _, v in items) or 1.0
    plot_w = width - label_w - value_w
    zero = label_w + (plot_w / 2 if diverging else 0)
    scale = (plot_w / 2 if diverging else plot_w) / top
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for i, (label, value) in enumerate(items):
        y = gap + i * (bar_h + gap)
        fill = (BAD if value > 0 else GOOD) if diverging else color
        x0 = zero if value >= 0 else zero + value * scale
        short = label if len(label) <= 38 else label[:36] + "…"
        parts.append(f'<text x="{label_w - 8}" y="{y + 13}" text-anchor="end" font-size="12" fill="{INK}">'
                     f'{_e(short)}<title>{_e(label)}</title></text>')
        parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(abs(value) * scale, 1):.1f}" height="{bar_h}" '
                     f'rx="3" fill="{fill}"/>')
        text_x = (zero + max(value, 0) * scale + 6) if not diverging else label_w + plot_w + 6
        parts.append(f'<text x="{text_x:.1f}" y="{y + 13}" font-size="12" fill="{INK}">'
                     f'{_e(_format(value, is_rate) if is_rate else f"{value:,.0f}")}</text>')
    if diverging:
        parts.append(f'<line x1="{zero}" x2="{zero}" y1="0" y2="{height}" stroke="{MUTED}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _tile(series: pd.Series, latest: date, title: str, is_rate: bool, higher_better: bool | None) -> str:
    """One KPI's tile: its value of the latest complete week, else its last earlier value labelled with its week
    (a planner must not read an old week as this week's), and the change against the week before the one shown."""
    shown = series.index.max()
    stale = f'<div class="week">week of {shown} · no value for {latest}</div>' if shown != latest else ""
    previous = shown - timedelta(weeks=1)
    delta_html = ""
    if previous in series.index:
        delta = series[shown] - series[previous]
        step = round(delta * 100 if is_rate else delta, 1) + 0.0  # the change as shown (no "-0.0"): it sets the arrow
        tone = "flat" if higher_better is None or step == 0 else ("good" if (step > 0) == higher_better else "bad")
        arrow = "▲" if step > 0 else "▼" if step < 0 else "■"
        change = f"{step:+.1f} pts" if is_rate else f"{step:+,.1f}"
        against = "previous week" if shown == latest else f"week of {previous}"
        delta_html = f'<div class="delta {tone}">{arrow} {change} vs {against}</div>'
    return (f'<div class="tile"><div class="name">{_e(title)}</div>'
            f'<div class="value">{_e(_format(series[shown], is_rate))}</div>{stale}{delta_html}</div>')


def _tiles(totals: pd.DataFrame, latest: date) -> str:
    """The latest-week tiles, one per KPI with a value in or before the latest complete week."""
    past = totals[totals.week_start <= latest]
    values = {name: kpi.set_index("week_start").value.astype(float) for name, kpi in past.groupby("kpi_name")}
    tiles = [_tile(values[name], latest, title, is_rate, higher_better)
             for name, title, is_rate, higher_better in TREND_KPIS if name in values]
    return '<div class="tiles">' + "".join(tiles) + "</div>" if tiles else '<div class="empty">no KPIs yet</div>'


def _where(row: pd.Series) -> str:
    parts = [row.get("supplier_id"), row.get("resource_id"), row.get("sku_id"), row.get("location_id")]
    return " · ".join(str(p) for p in parts if isinstance(p, str) and p)


def render_report(kpis: pd.DataFrame, feedback: pd.DataFrame, *, as_of: date, sop_cycle: date,
                  window_start: date) -> str:
    """The whole page as a string."""
    kpis = kpis.copy()
    if not kpis.empty:
        kpis["week_start"] = pd.to_datetime(kpis["week_start"]).dt.date
    totals = kpis[kpis.scope_type == "total"] if not kpis.empty else kpis
    cards = []
    for name, title, is_rate, _ in TREND_KPIS:
        series = totals[totals.kpi_name == name].sort_values("week_start") if not totals.empty else totals
        if series.empty:
            continue
        points = list(zip(series.week_start, series.value.astype(float)))[-26:]
        cards.append(f'<div class="card"><h3>{_e(title)}</h3>{line_chart(points, is_rate=is_rate)}</div>')
    trends = '<div class="grid">' + "".join(cards) + "</div>" if cards else '<div class="empty">no KPIs yet</div>'

    top = feedback.head(10)
    pattern_bars = bar_chart([(f"{r.pattern.replace('_', ' ')} — {_where(r)}", float(r.impact_value or 0))
                              for _, r in top.iterrows()], width=660)
    family_bias = []
    if not kpis.empty:
        fam = kpis[(kpis.kpi_name == "forecast_bias") & (kpis.scope_type == "product_family")
                   & (kpis.week_start >= window_start)]
        grouped = fam.groupby("scope_id")[["numerator", "denominator"]].sum()
        family_bias = sorted(((str(f), float(r.numerator / r.denominator)) for f, r in grouped.iterrows()
                              if r.denominator), key=lambda item: -abs(item[1]))[:12]
    bias_bars = bar_chart(family_bias, is_rate=True, width=440, diverging=True)

    if feedback.empty:
        table = '<div class="empty">No recurring pattern since the previous cycle: nothing to change in the plan.</div>'
    else:
        body = []
        for _, r in feedback.iterrows():
            bias = "" if pd.isna(r.mean_bias) else f"{r.mean_bias:+.0%}"
            body.append(
                f'<tr><td><span class="pill">{_e(r.pattern.replace("_", " "))}</span></td><td>{_e(_where(r))}</td>'
                f'<td class="num">{_e(r.occurrences)} / {_e(r.weeks_observed)}</td><td class="num">{_e(bias)}</td>'
                f'<td class="num">{_e(f"{r.impact_value:,.0f}" if pd.notna(r.impact_value) else "")}</td>'
                f'<td><b>{_e(r.suggested_sop_action)}</b><br><span class="sub">{_e(r.explanation)}</span></td></tr>'
            )
        table = ("<table><thead><tr><th>Pattern</th><th>Where</th><th>Occurrences / weeks</th><th>Mean bias</th>"
                 "<th>Impact</th><th>Suggested S&amp;OP action</th></tr></thead><tbody>"
                 + "".join(body) + "</tbody></table>")

    latest = last_ended_week(as_of)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>S&amp;OP feedback — cycle {sop_cycle}</title><style>{CSS}</style></head>
<body><main>
<h1>S&amp;OP feedback for the cycle of {sop_cycle:%A %d %B %Y}</h1>
<p class="sub">Data as of {as_of} · patterns since {window_start} · latest complete week {latest} ·
{len(feedback)} recurring pattern{"s" if len(feedback) != 1 else ""}</p>
<h2>Latest week</h2>{_tiles(totals, latest) if not totals.empty else '<div class="empty">no KPIs yet</div>'}
<h2>What to change in the plan</h2>{table}
<div class="two">
<div><h2>Top recurring patterns by impact</h2><div class="card">{pattern_bars}</div></div>
<div><h2>Forecast bias by family since {window_start}</h2><div class="card">{bias_bars}
<p class="note">(plan − actual) / actual; red = over-forecast, green = under-forecast.</p></div></div>
</div>
<h2>KPI trends per week (whole network)</h2>{trends}
<footer>Generated by soe from marts.kpi_weekly and marts.sop_feedback. Definitions: docs/kpis.md.</footer>
</main></body></html>
"""


def write_report(text: str, publish_dir: Path) -> Path:
    """Write ``<publish_dir>/sop_report.html`` atomically (a reader sees the old page or the new one)."""
    publish_dir.mkdir(parents=True, exist_ok=True)
    target = publish_dir / REPORT_FILE
    staging = publish_dir / f".{REPORT_FILE}.{os.getpid()}.tmp"
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, target)
    return target
