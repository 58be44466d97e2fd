"""The swap-readiness report as Markdown (for pull requests and chat)."""

from __future__ import annotations

from typing import Any

from fledgling.report.selective import selective_markdown


def render_markdown(report: dict[str, Any]) -> str:
    r = report
    out = [f"# Swap readiness: {r['task']}", "",
           f"**Verdict: {r['verdict']}** for {r['primary'] or 'no candidate'} "
           f"(split {r['split']}, {r['generated_at']})", ""]
    ref = r["reference"]
    if ref:
        out += [f"Reference: {ref['label']}, n={ref['n']}, labels "
                + ", ".join(f"{k} {v}" for k, v in ref["label_sources"].items())
                + (", lenient matching" if ref["lenient"] else ", strict matching"), ""]
    if r["default_gates"]:
        out += ["_No gates in fledgling.toml for this task: default gates shown._", ""]
    for cand in r["candidates"]:
        out += [f"## {cand['label']}: {cand['verdict']}", "", "| gate | rule | outcome | why |", "|---|---|---|---|"]
        out += [f"| {g['metric']} | {g['rule']} | {g['outcome']} | {g['reason']} |" for g in cand["gates"]]
        out.append("")
    out += selective_markdown(r.get("selective"))
    runs = ([ref] if ref else []) + r["candidates"]
    names = sorted({m for run in runs for m in run["metrics"]})
    out += ["## Metrics (mean [95% CI])", "", "| metric | " + " | ".join(x["label"] for x in runs) + " |",
            "|---|" + "---|" * len(runs)]
    for m in names:
        cells = [f"{v['mean']:.3f} [{v['low']:.3f}, {v['high']:.3f}]" if (v := run["metrics"].get(m)) else ""
                 for run in runs]
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    calls = r.get("tool_call_items") or {}
    if calls:
        out += ["", "## Items that need a tool call (mean [95% CI])", "",
                "| run | n | tool_name_match | args_exact_match |", "|---|---|---|---|"]
        for label, row in calls.items():
            out.append(f"| {label} | {row['n']} | " + " | ".join(
                f"{row[m]['mean']:.3f} [{row[m]['low']:.3f}, {row[m]['high']:.3f}]"
                for m in ("tool_name_match", "args_exact_match")) + " |")
    out += ["", "## Latency and cost", "", "| run | p50 ms | p95 ms | cost / 1k calls | monthly saving |",
            "|---|---|---|---|---|"]
    for run in runs:
        lat = run["latency_ms"]
        cost = run["cost_per_1k_usd"]
        saving = run.get("monthly_saving_usd")
        estimate = (run.get("cost_basis") or {}).get("estimate")
        out.append(f"| {run['label']} | {_n(lat.get('p50'))} | {_n(lat.get('p95'))} | "
                   f"{('~$' if estimate else '$') + format(cost, '.4f') if cost is not None else 'unpriced'} | "
                   f"{'$' + format(saving, '.2f') if saving is not None else '-'} |")
    out.append("")
    for run in runs:
        out.append(f"- {run['label']}: latency {run.get('latency_note') or 'basis not recorded'}; "
                   f"cost {run.get('cost_note') or 'unpriced'}")
    volume = r.get("monthly_volume") or {}
    out.append(f"- Monthly volume: {volume.get('note') or 'unknown'}")
    if (usage := r.get("usage")) is not None:
        out.append(f"- Usage: {usage['note']}")
    out += ["", "## Worst failures", ""]
    for f in r["worst_failures"]:
        out.append(f"- `{f['call_id']}`: {f['differs']}; input: {str(f['input'])[:120]!r}")
    return "\n".join(out) + "\n"


def _n(x: float | None) -> str:
    return f"{x:,.0f}" if x is not None else "-"
