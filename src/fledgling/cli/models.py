"""`fledgling models list|add|select`: the model catalog and each task's chosen candidate."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.table import Table

from fledgling.cli import options
from fledgling.cli.session import console, print_json, store
from fledgling.models import catalog
from fledgling.urls import mask_url

app = typer.Typer(no_args_is_help=True, help="List, add and select models: bases and trained candidates.")


@app.command("list")
def list_models(task: str | None = options.task("Only models for this task (and task-less ones).", required=False),
                as_json: bool = options.as_json("Print the entries as JSON (endpoint credentials masked).")
                ) -> None:
    """Every model in the catalog; a star marks the task's selected candidate."""
    s = store()
    chosen = catalog.selected_model(s, task) if task else None
    if as_json:
        print_json([{**asdict(m), "base_url": mask_url(m.base_url) if m.base_url else None,
                     "selected": bool(chosen and chosen.name == m.name)} for m in catalog.list_models(s, task)])
        return
    table = Table(title="models" + (f" for {task}" if task else ""))
    for col in ("", "name", "kind", "origin", "task", "base", "where", "best val loss"):
        table.add_column(col)
    for m in catalog.list_models(s, task):
        where = (m.adapter or m.path or (f"{mask_url(m.base_url or '')} {m.model_id}" if m.model_id else "")
                 or m.manifest.get("description", ""))
        loss = m.manifest.get("metrics", {}).get("best_eval_loss")
        table.add_row("*" if chosen and chosen.name == m.name else "", m.name, m.kind, m.origin, m.task or "",
                      m.base or "", str(where), f"{loss:.4f}" if isinstance(loss, (int, float)) else "")
    console.print(table)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="A new, unique name for the entry."),
    kind: str = typer.Option(..., "--kind",
                             help="openai (an endpoint), hf (checkpoint + adapter) or gguf (a .gguf file)."),
    task: str | None = options.task("The task it is a candidate for (none: any task).", required=False),
    base: str | None = options.base(None, "hf/gguf: base model name or directory."),
    path: str | None = typer.Option(None, "--path", help="hf: checkpoint directory; gguf: the .gguf file."),
    adapter: str | None = typer.Option(None, "--adapter", help="hf: a PEFT adapter directory on top of the base."),
    base_url: str | None = typer.Option(None, "--base-url", help="openai: the endpoint, e.g. http://localhost:8000/v1."),
    model_id: str | None = typer.Option(None, "--model-id", help="openai: the model name the endpoint serves."),
) -> None:
    """Register a model reachable elsewhere (an OpenAI-compatible server, a checkpoint)."""
    if kind not in ("openai", "hf", "gguf"):
        raise typer.BadParameter("use openai, hf or gguf", param_hint="--kind")
    entry = catalog.add_model(store(), name, kind=kind, task=task, base=base, path=path, adapter=adapter,
                              base_url=base_url, model_id=model_id)
    console.print(f"[green]added[/] {entry.name} ({entry.kind})")


@app.command("select")
def select(
    name: str = typer.Argument(..., help="The model to use (see `fledgling models list`)."),
    task: str = options.task("The task it becomes the default candidate of."),
) -> None:
    """Make a model the task's default candidate (evals and the gateway use it)."""
    entry = catalog.select_model(store(), task, name)
    console.print(f"[green]selected[/] {entry.name} as the candidate for {task}")
