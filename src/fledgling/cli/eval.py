"""`fledgling eval`: run a model on a curated split and store every prediction and score."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fledgling.cli import options
from fledgling.cli.session import console, settings, store
from fledgling.errors import InputError
from fledgling.evals.runs import load_items, run_eval, task_contract
from fledgling.models import open_backend, resolve_model
from fledgling.models.prompting import PROMPT_FORMATS
from fledgling.models.spec import SPEC_HELP
from fledgling.report.tables import run_table

_SPEC_HELP = SPEC_HELP.replace("[", "\\[")  # rich markup would eat "[models]"

app = typer.Typer(help="Evaluate a model on a task's curated dataset split (ParityBench).")


@app.callback(invoke_without_command=True)
def eval_command(
    task: str = options.task("The task whose dataset to use."),
    model: str = options.model(f"Which model: {_SPEC_HELP}."),
    split: str = options.split("test"),
    dataset_version: int | None = options.dataset_version(),
    constrained: bool = typer.Option(False, "--constrained/--no-constrained",
                                     help="Local models only: restrict decoding to outputs the contract allows."),
    lenient: bool = typer.Option(False, "--lenient", help="Normalise strings (case, spaces, punctuation) "
                                 "before comparing; the report names the mode."),
    limit: int | None = options.limit(None, "Only the first N items."),
    batch_size: int = options.batch_size(16, "Local models: requests per batch."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Local models: answer length cap."),
    latency_items: int | None = typer.Option(None, "--latency-items", min=0, help="Local models in batches: "
                                             "items answered again one at a time for the latency figures "
                                             "(default 8; 0: report in-batch times, named as such)."),
    prompt: str = options.prompt("auto", "Local models: how the request is shown. "
                                 "'compact': the specialist prompt (a short system line with the tool "
                                 "signatures, answers as compact JSON calls); 'lean': the same without the "
                                 "signatures, what Fledgling trains on by default; 'chat': the model's own "
                                 "chat template with the agent's full prompt and tools; 'auto': what the model "
                                 "was trained on (its manifest), else 'chat'."),
) -> None:
    """Score the model against the references, item by item; `fledgling report` compares runs."""
    s = store()
    spec = resolve_model(model, settings())
    found_version, contract_version, items = load_items(s, task, split, dataset_version, limit)
    contract = task_contract(s, task, contract_version, items)
    if prompt not in ("auto", *PROMPT_FORMATS):
        raise InputError(f"--prompt {prompt!r}: use auto, chat, compact or lean")
    with console.status(f"loading {spec.name}"):
        backend = open_backend(spec, constrained=constrained, recorded_calls=(i.call for i in items),
                               batch_size=batch_size, max_new_tokens=max_new_tokens,
                               prompt=None if prompt == "auto" else prompt, contract=contract)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        job = bar.add_task(f"{spec.name} on {task} {split}", total=len(items))
        run = run_eval(s, task, spec, backend, items, contract, split=split,
                       dataset_version=found_version, constrained=constrained, lenient=lenient,
                       progress=lambda n: bar.advance(job, n), chunk=batch_size, latency_items=latency_items)
    console.print(run_table(run))
    console.print(f"[dim]stored as {run.id}; compare with `fledgling report --task {task}`[/]")
