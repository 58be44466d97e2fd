"""`fledgling contracts infer|show|check`: what a task's answers must look like."""

from __future__ import annotations

import json

import typer
from rich.console import Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table

from fledgling.cli.session import console, store
from fledgling.contracts import (CODES, CheckResult, Contract, check_calls, infer_contract, load_contract,
                                 save_contract)
from fledgling.errors import ContractError
from fledgling.store import CallFilter, Store

app = typer.Typer(no_args_is_help=True,
                  help="Infer a task's contract (tools, JSON Schemas, observed frequencies), show it, "
                       "and check recorded answers against it.")

TaskOpt = typer.Option(..., "--task", "-t", help="The task (see `fledgling traces stats`).")
VersionOpt = typer.Option(None, "--version", "-v", help="A stored version (a unique prefix works); "
                                                      "default: the newest.")


@app.command("infer")
def infer(task: str = TaskOpt) -> None:
    """Derive the task's contract from its calls and store it (versioned by content hash)."""
    contract, new = infer_and_save(store(), task)
    console.print(contract_summary(contract, new))
    console.print(contract_tables(contract))


@app.command("show")
def show(task: str = typer.Argument(..., help="The task."), version: str | None = VersionOpt,
         as_json: bool = typer.Option(False, "--json", help="Print the contract as JSON (for machines).")) -> None:
    """A stored contract: kind, tools with their schemas and call counts, the output schema."""
    contract = _load(store(), task, version)
    if as_json:
        typer.echo(json.dumps(contract.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return
    versions = [r["version"] for r in store().contracts(task)]
    console.print(contract_summary(contract, None))
    if len(versions) > 1:
        console.print(f"[dim]stored versions (newest first): {', '.join(versions)}[/]")
    console.print(contract_tables(contract))
    for tool in contract.tools:
        console.print(f"[bold]{tool.name}[/] {tool.description or ''}")
        console.print(Syntax(json.dumps(tool.parameters, indent=2, ensure_ascii=False), "json"))
    if contract.output_schema is not None:
        console.print("[bold]output schema[/]")
        console.print(Syntax(json.dumps(contract.output_schema, indent=2, ensure_ascii=False), "json"))


@app.command("check")
def check(task: str = TaskOpt, version: str | None = VersionOpt) -> None:
    """Validate the task's recorded answers against its contract; count violations per code."""
    s = store()
    contract = _load(s, task, version)
    result = check_with_progress(s, contract)
    console.print(check_table(contract, result))


def infer_and_save(s: Store, task: str) -> tuple[Contract, bool]:
    contract = infer_contract(s.iter_calls(CallFilter(task=task)), task)
    return contract, save_contract(s, contract)


def check_with_progress(s: Store, contract: Contract) -> CheckResult:
    flt = CallFilter(task=contract.task)
    total = s.count_calls(flt)
    with Progress(TextColumn("checking {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        job = bar.add_task(contract.task, total=total)

        def ticking():
            for i, call in enumerate(s.iter_calls(flt), 1):
                if i % 500 == 0:
                    bar.update(job, completed=i)
                yield call

        return check_calls(ticking(), contract)


def _load(s: Store, task: str, version: str | None) -> Contract:
    contract = load_contract(s, task, version)
    if contract is None:
        which = f"version {version} of " if version else ""
        raise ContractError(f"no stored contract for {which}task '{task}'; run "
                            f"`fledgling contracts infer --task {task}` first")
    return contract


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
    table.add_row("[bold]valid[/]", f"{result.valid:,}", f"{result.valid / result.checked:.2%}" if result.checked else "-")
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
