"""`fledgling contracts infer|show|check`: what a task's answers must look like."""

from __future__ import annotations

import json
from collections.abc import Iterator

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax

from fledgling.calls import Call
from fledgling.cli import options
from fledgling.cli.options import Renamed, spellings
from fledgling.cli.session import console, print_json, store
from fledgling.contracts import CheckResult, Contract, check_calls, infer_and_save, load_contract
from fledgling.errors import ContractError
from fledgling.report.tables import check_table, contract_summary, contract_tables
from fledgling.store import CallFilter, Store

app = typer.Typer(no_args_is_help=True,
                  help="Infer a task's contract (tools, JSON Schemas, observed frequencies), show it, "
                       "and check recorded answers against it.")

OLD_VERSION = (Renamed("--version", "--contract-version"), Renamed("-v", "--contract-version"))


@app.command("infer")
def infer(task: str = options.task()) -> None:
    """Derive the task's contract from its calls and store it (versioned by content hash)."""
    contract, new = infer_and_save(store(), task)
    console.print(contract_summary(contract, new))
    console.print(contract_tables(contract))


@app.command("show", cls=spellings(*OLD_VERSION, task_argument=True))
def show(task: str = options.task(), contract_version: str | None = options.contract_version(),
         as_json: bool = options.as_json("Print the contract as JSON.")) -> None:
    """A stored contract: kind, tools with their schemas and call counts, the output schema."""
    contract = _load(store(), task, contract_version)
    if as_json:
        print_json(contract.model_dump(mode="json"))
        return
    versions = [r["version"] for r in store().contracts(task)]
    console.print(contract_summary(contract, None))
    if len(versions) > 1:
        console.print(f"[dim]stored versions (newest first): {', '.join(versions)}[/]")
    console.print(contract_tables(contract))
    for tool in contract.tools:
        console.print(f"[bold]{tool.name}[/] {_strict(tool.strict)}{tool.description or ''}")
        console.print(Syntax(json.dumps(tool.parameters, indent=2, ensure_ascii=False), "json"))
    if contract.output_schema is not None:
        console.print(f"[bold]output schema[/] {_strict(contract.output_strict)}")
        console.print(Syntax(json.dumps(contract.output_schema, indent=2, ensure_ascii=False), "json"))


@app.command("check", cls=spellings(*OLD_VERSION))
def check(task: str = options.task(), contract_version: str | None = options.contract_version(),
          as_json: bool = options.as_json("Print the counts and examples as JSON.")) -> None:
    """Validate the task's recorded answers against its contract; count violations per code."""
    s = store()
    contract = _load(s, task, contract_version)
    result = check_with_progress(s, contract, shown=not as_json)
    if as_json:
        print_json({"task": contract.task, "version": contract.version, "checked": result.checked,
                    "valid": result.valid, "invalid": result.invalid, "no_answer": result.no_answer,
                    "by_code": dict(result.by_code),
                    "examples": [{"call_id": call_id, **v.model_dump()} for call_id, v in result.examples]})
        return
    console.print(check_table(contract, result))


def check_with_progress(s: Store, contract: Contract, *, shown: bool = True) -> CheckResult:
    flt = CallFilter(task=contract.task)
    total = s.count_calls(flt)
    with Progress(TextColumn("checking {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True, disable=not shown) as bar:
        job = bar.add_task(contract.task, total=total)

        def ticking() -> Iterator[Call]:
            for i, call in enumerate(s.iter_calls(flt), 1):
                if i % 500 == 0:
                    bar.update(job, completed=i)
                yield call

        return check_calls(ticking(), contract)


def _strict(flag: bool | None) -> str:
    """How the agent declared a schema: strict (OpenAI's strict mode), not strict, or silent."""
    return "" if flag is None else "(strict) " if flag else "(strict: false) "


def _load(s: Store, task: str, version: str | None) -> Contract:
    contract = load_contract(s, task, version)
    if contract is None:
        which = f"version {version} of " if version else ""
        raise ContractError(f"no stored contract for {which}task '{task}'; run "
                            f"`fledgling contracts infer --task {task}` first")
    return contract


