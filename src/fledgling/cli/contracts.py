"""`fledgling contracts infer|show|check`: what a task's answers must look like."""

from __future__ import annotations

import json

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax

from fledgling.cli.session import console, store
from fledgling.contracts import CheckResult, Contract, check_calls, infer_and_save, load_contract
from fledgling.errors import ContractError
from fledgling.report.tables import check_table, contract_summary, contract_tables
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


