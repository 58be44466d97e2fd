"""Terminal tables of what the loop produced: contracts, contract checks, captured-call stats and
eval runs. The CLI and the demo print the same tables."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from fledgling.contracts import CODES, CheckResult, Contract
from fledgling.evals.runs import EvalRun, describe_latency


def run_table(run: EvalRun) -> Table:
    table = Table(title=f"{run.label} on {run.task} {run.split} (n={run.n_items}, "
                        f"labels: {', '.join(f'{k} {v}' for k, v in run.label_sources.items())})")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("95% CI", justify="right")
    for name, m in run.summary["metrics"].items():
        table.add_row(name, f"{m['mean']:.3f}", f"[{m['low']:.3f}, {m['high']:.3f}]")
    lat = run.summary["latency_ms"]
    if lat.get("p50") is not None:
        table.add_row("latency p50 / p95 ms", f"{lat['p50']:,.0f} / {lat['p95']:,.0f}",
                      describe_latency(run.summary.get("latency_basis")))
    table.add_row("errors / parse failures", f"{run.summary['errors']} / {run.summary['parse_failures']}", "")
    return table


def contract_summary(contract: Contract, new: bool | None) -> str:
    st = contract.stats
    state = "" if new is None else " [green](new version stored)[/]" if new else " [dim](already stored)[/]"
    line = (f"[bold]{contract.task}[/]: {contract.kind} contract, version [cyan]{contract.version}[/]{state}"
            f"\n  from {st.get('n', 0):,} calls ({st.get('errors', 0):,} errors)")
    if contract.kind == "toolcall":
        line += (f"; {len(contract.tools)} tools; {st.get('no_tool_call_share', 0):.1%} answers without a "
                 f"tool call; {st.get('parallel_share', 0):.1%} with parallel calls")
    changes = st.get("tool_schema_changes") or {}
    if changes:
        line += "\n  [yellow]declarations changed over time (newest kept):[/] " + ", ".join(
            f"{k} ({v} versions)" for k, v in changes.items())
    return line


def contract_tables(contract: Contract) -> Group:
    parts = []
    tools = contract.stats.get("tools", {})
    if contract.tools or tools:
        table = Table(title=f"{contract.task}: tools")
        table.add_column("tool")
        table.add_column("calls", justify="right")
        table.add_column("required")
        table.add_column("argument presence")
        for name, st in tools.items():
            spec = contract.tool(name)
            required = ", ".join(spec.parameters.get("required", [])) if spec else "[red]undeclared[/]"
            args = ", ".join(f"{k} {v:.0%}" for k, v in st.get("arguments", {}).items())
            if st.get("invalid_json_arguments"):
                args += f" [red]({st['invalid_json_arguments']} invalid JSON)[/]"
            table.add_row(name, f"{st.get('calls', 0):,}", required, args or "-")
        parts.append(table)
    fields = contract.stats.get("fields")
    if fields:
        table = Table(title=f"{contract.task}: output fields")
        table.add_column("field")
        table.add_column("present", justify="right")
        for k, v in fields.items():
            table.add_row(k, f"{v:.1%}")
        parts.append(table)
    return Group(*parts)


def check_table(contract: Contract, result: CheckResult, *, examples: bool = True) -> Group:
    table = Table(title=f"{contract.task} answers vs contract {contract.version}")
    table.add_column("violation")
    table.add_column("calls", justify="right")
    table.add_column("share", justify="right")
    for code in CODES:
        n = result.by_code.get(code, 0)
        if n:
            table.add_row(code, f"{n:,}", f"{n / result.checked:.2%}" if result.checked else "-")
    table.add_section()
    table.add_row("[bold]valid[/]", f"{result.valid:,}",
                  f"{result.valid / result.checked:.2%}" if result.checked else "-")
    table.add_row("no answer (upstream error)", f"{result.no_answer:,}", "")
    parts: list = [table]
    if examples and result.examples:
        ex = Table(title="examples", show_header=True)
        ex.add_column("call")
        ex.add_column("code")
        ex.add_column("path")
        ex.add_column("message")
        for call_id, v in result.examples:
            ex.add_row(call_id, v.code, v.path, v.message[:80])
        parts.append(ex)
    return Group(*parts)


def stats_table(groups: list) -> Table:
    table = Table(title="captured calls")
    for col in ("task", "model", "source"):
        table.add_column(col)
    for col in ("calls", "errors", "p50 ms", "p95 ms", "p99 ms", "tokens in", "tokens out", "cost $"):
        table.add_column(col, justify="right")
    total_calls = total_cost = 0.0
    for g in groups:
        pct = [g.latency_percentile(q) for q in (50, 95, 99)]
        table.add_row(str(g.key.get("task", "")), str(g.key.get("model") or ""),
                      str(g.key.get("source", "")), f"{g.calls:,}",
                      f"{g.errors:,} ({g.error_rate:.1%})",
                      *[f"{p:,.0f}" if p is not None else "-" for p in pct],
                      f"{g.input_tokens:,}", f"{g.output_tokens:,}", f"{g.cost_usd:,.4f}")
        total_calls += g.calls
        total_cost += g.cost_usd
    if len(groups) > 1:
        table.add_section()
        table.add_row("[bold]all[/]", "", "", f"[bold]{int(total_calls):,}[/]", "", "", "", "", "", "",
                      f"[bold]{total_cost:,.4f}[/]")
    return table
