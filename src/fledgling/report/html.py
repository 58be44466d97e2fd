"""One self-contained HTML file: inline CSS and SVG, no script, nothing fetched from a network."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from fledgling.report.selective import render_selective

COLOURS = {"SWAP": "#1a7f37", "NOT YET": "#9a6700", "NO": "#cf222e",
           "pass": "#1a7f37", "not_yet": "#9a6700", "fail": "#cf222e"}
PALETTE = ["#0969da", "#8250df", "#bf3989", "#1a7f37", "#9a6700", "#57606a"]

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2328;padding:0 1rem}
h1{margin-bottom:.2rem} h2{margin-top:2.2rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
.verdict{display:inline-block;font-size:2rem;font-weight:700;color:#fff;padding:.3rem 1rem;border-radius:8px}
table{border-collapse:collapse;margin:.6rem 0;width:100%} td,th{border:1px solid #d0d7de;padding:.35rem .5rem;
text-align:left;vertical-align:top} th{background:#f6f8fa} .num{text-align:right;font-variant-numeric:tabular-nums}
.pill{color:#fff;border-radius:4px;padding:0 .4rem;font-weight:600} pre{white-space:pre-wrap;margin:0;font-size:12px}
.muted{color:#57606a} svg text{font:11px system-ui,sans-serif}
"""


def render_html(report: dict[str, Any]) -> str:
    r = report
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Fledgling parity report: "
             f"{escape(r['task'])}</title><style>{CSS}</style></head><body>",
             f"<h1>Swap readiness: {escape(r['task'])}</h1>",
             f"<p class=muted>split {escape(r['split'])} · generated {escape(r['generated_at'])}</p>",
             f"<p><span id=verdict class=verdict style='background:{COLOURS[r['verdict']]}'>"
             f"{escape(r['verdict'])}</span>"
             f" &nbsp;for <b>{escape(r['primary'] or 'no candidate')}</b></p>"]
    ref = r["reference"]
    if ref:
        sources = ", ".join(f"{k}: {v}" for k, v in ref["label_sources"].items())
        silver = (" (silver labels: the reference is scored against its own answers)"
                  if "recorded" in ref["label_sources"] else "")
        parts.append(f"<p>Reference: <b>{escape(ref['label'])}</b> · n={ref['n']} · labels {escape(sources)}{silver}"
                     f"{' · lenient string matching' if ref['lenient'] else ' · strict matching'}</p>")
    parts.append("<h2>Gates</h2>")
    if r["default_gates"]:
        parts.append("<p class=muted>No gates in fledgling.toml for this task: default gates shown.</p>")
    for cand in r["candidates"]:
        parts.append(f"<h3>{escape(cand['label'])} <span class=pill style='background:{COLOURS[cand['verdict']]}'>"
                     f"{escape(cand['verdict'])}</span></h3><table><tr><th>gate</th><th>rule</th><th>outcome</th><th>why</th></tr>")
        for g in cand["gates"]:
            parts.append(f"<tr><td>{escape(g['metric'])}</td><td>{escape(g['rule'])}</td><td><span class=pill "
                         f"style='background:{COLOURS[g['outcome']]}'>"
                         f"{escape(g['outcome'].replace('_', ' '))}</span></td>"
                         f"<td>{escape(g['reason'])}</td></tr>")
        parts.append("</table>")
    parts.append(render_selective(r.get("selective")))
    runs = ([ref] if ref else []) + r["candidates"]
    parts.append("<h2>Metrics (mean and 95% interval)</h2>")
    parts.append(_metric_bars(runs))
    if r.get("tool_call_items"):
        parts.append("<h2>Items that need a tool call</h2>" + _tool_call_table(r["tool_call_items"]))
    parts.append("<h2>Per tool: success rate</h2>" + _per_tool(r["per_tool"], [x["label"] for x in runs]))
    parts.append("<h2>Latency</h2>" + _latency_table(runs) + _latency_plot(runs))
    parts.append("<h2>Cost</h2>" + _cost(r, runs))
    parts.append("<h2>Worst failures</h2>" + _failures(r["worst_failures"], r["primary"]))
    parts.append("</body></html>")
    return "".join(parts)


def _metric_bars(runs: list[dict[str, Any]]) -> str:
    metrics = [m for m in ("success", "tool_name_match", "args_exact_match", "arg_precision", "arg_recall",
                           "schema_valid", "exact_match", "field_accuracy")
               if any(m in run["metrics"] for run in runs)]
    row_h, label_w, width = 16, 160, 700
    height = len(metrics) * (len(runs) * row_h + 14) + 30
    svg = [f"<svg role=img aria-label='metric bars' width={width + label_w + 60} height={height}>"]
    y = 10
    for m in metrics:
        svg.append(f"<text x=0 y={y + 12}>{escape(m)}</text>")
        for i, run in enumerate(runs):
            v = run["metrics"].get(m)
            if v:
                colour = PALETTE[i % len(PALETTE)]
                w = max(0.0, v["mean"]) * width
                lo, hi = max(0.0, v["low"]) * width, min(1.0, v["high"]) * width
                svg.append(f"<rect x={label_w} y={y} width={w:.1f} height={row_h - 4} fill='{colour}' opacity=.8>"
                           f"<title>{escape(run['label'])}: {v['mean']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"
                           "</title></rect>")
                cy = y + (row_h - 4) / 2
                svg.append(f"<line x1={label_w + lo:.1f} x2={label_w + hi:.1f} y1={cy} y2={cy} "
                           "stroke='#1f2328' stroke-width=1.5 />")
                svg.append(f"<text x={label_w + width + 6} y={y + 10}>{v['mean']:.3f}</text>")
            y += row_h
        y += 14
    legend = "".join(f"<span style='color:{PALETTE[i % len(PALETTE)]}'>■</span> {escape(run['label'])} &nbsp; "
                     for i, run in enumerate(runs))
    return "".join(svg) + "</svg><p>" + legend + "</p>"


def _heat(value: float) -> str:
    red, green = int(207 - 181 * value), int(34 + 93 * value)
    return f"rgba({red},{green},55,.25)"


def _per_tool(per_tool: dict[str, Any], labels: list[str]) -> str:
    head = "".join(f"<th class=num>{escape(label)}</th>" for label in labels)
    rows = []
    for tool, by_run in per_tool.items():
        cells = []
        for label in labels:
            v = by_run.get(label)
            cells.append(f"<td class=num style='background:{_heat(v['mean'])}'>{v['mean']:.2f} "
                         f"<span class=muted>(n={v['n']})</span></td>" if v else "<td></td>")
        rows.append(f"<tr><td>{escape(tool)}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>reference tool / class</th>{head}</tr>{''.join(rows)}</table>"


def _tool_call_table(rows: dict[str, Any]) -> str:
    metrics = ("tool_name_match", "args_exact_match")
    head = "".join(f"<th class=num>{m}</th>" for m in metrics)
    body = []
    for label, row in rows.items():
        cells = "".join(f"<td class=num style='background:{_heat(row[m]['mean'])}'>{row[m]['mean']:.2f} "
                        f"<span class=muted>[{row[m]['low']:.2f}, {row[m]['high']:.2f}]</span></td>" for m in metrics)
        body.append(f"<tr><td>{escape(label)}</td><td class=num>{row['n']}</td>{cells}</tr>")
    return (f"<p class=muted>Only the items whose reference answer calls a tool (95% Wilson intervals); "
            f"over all items, turns answered in text count too.</p>"
            f"<table><tr><th>run</th><th class=num>n</th>{head}</tr>{''.join(body)}</table>")


def _latency_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        lat = run["latency_ms"]
        cells = "".join(f"<td class=num>{lat[k]:,.0f}</td>" if lat.get(k) is not None else "<td class=num>-</td>"
                        for k in ("p50", "p95", "p99"))
        rows.append(f"<tr><td>{escape(run['label'])}</td>{cells}<td class=num>{run['errors']}</td>"
                    f"<td class=num>{run['parse_failures']}</td>"
                    f"<td class=muted>{escape(run.get('latency_note') or '')}</td></tr>")
    return ("<table><tr><th>run</th><th class=num>p50 ms</th><th class=num>p95 ms</th><th class=num>p99 ms</th>"
            "<th class=num>errors</th><th class=num>parse failures</th><th>what the times measure</th></tr>"
            f"{''.join(rows)}</table>")


def _latency_plot(runs: list[dict[str, Any]]) -> str:
    """Empirical CDF of each run's latencies on a log axis."""
    import math

    values = [v for run in runs for v in run["latencies"] if v > 0]
    if not values:
        return ""
    lo, hi = math.log10(min(values)), math.log10(max(values))
    span = (hi - lo) or 1.0
    w, h, pad = 760, 220, 40
    svg = [f"<svg role=img aria-label='latency distribution' width={w + 2 * pad} height={h + 2 * pad}>",
           f"<rect x={pad} y={pad} width={w} height={h} fill='none' stroke='#d0d7de'/>"]
    for i, run in enumerate(runs):
        lats = [v for v in run["latencies"] if v > 0]
        if not lats:
            continue
        pts = " ".join(f"{pad + (math.log10(v) - lo) / span * w:.1f},{pad + h - (k + 1) / len(lats) * h:.1f}"
                       for k, v in enumerate(lats))
        svg.append(f"<polyline points='{pts}' fill=none stroke='{PALETTE[i % len(PALETTE)]}' stroke-width=2>"
                   f"<title>{escape(run['label'])}</title></polyline>")
    for frac in (0, 0.5, 1):
        ms = 10 ** (lo + frac * span)
        svg.append(f"<text x={pad + frac * w - 10:.0f} y={pad + h + 16}>{ms:,.0f} ms</text>")
    svg.append(f"<text x=4 y={pad + 4}>100%</text><text x=4 y={pad + h}>0%</text>")
    return "".join(svg) + "</svg><p class=muted>Share of items answered within a given time (log scale).</p>"


def _cost(report: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        c = run["cost_per_1k_usd"]
        saving = run.get("monthly_saving_usd")
        estimate = (run.get("cost_basis") or {}).get("estimate")
        rows.append(f"<tr><td>{escape(run['label'])}</td><td class=num>"
                    f"{('~$' if estimate else '$') + format(c, '.4f') if c is not None else 'unpriced'}</td>"
                    f"<td class=num>{'$' + format(saving, '.2f') if saving is not None else '-'}</td>"
                    f"<td class=muted>{escape(run.get('cost_note') or '')}</td></tr>")
    volume = report.get("monthly_volume") or {}
    note = f"<p class=muted>Monthly volume: {escape(volume.get('note') or 'unknown')}.</p>"
    if (usage := report.get("usage")) is not None:
        note += f"<p class=muted>Usage: {escape(usage['note'])}.</p>"
    return ("<table><tr><th>run</th><th class=num>cost per 1,000 calls</th>"
            "<th class=num>monthly saving vs reference</th><th>how it is priced</th></tr>"
            + "".join(rows) + "</table>" + note)


def _pre(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=1, ensure_ascii=False)
    return "<pre>" + escape(text) + "</pre>"


def _failures(items: list[dict[str, Any]], who: str | None) -> str:
    if not items:
        return "<p>No failures.</p>"
    rows = "".join(f"<tr><td>{_pre(i['input'])}</td><td>{_pre(i['reference'])}</td><td>{_pre(i['candidate'])}</td>"
                   f"<td>{escape(i['differs'])}</td></tr>" for i in items)
    return (f"<table><tr><th>input</th><th>reference</th><th>{escape(who or 'candidate')}</th>"
            "<th>what differs</th></tr>"
            f"{rows}</table>")
