"""`fledgling curate --task T`: turn a task's captured calls into a versioned training dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fledgling.cli import options
from fledgling.cli.session import console, store

if TYPE_CHECKING:
    from fledgling.curate.formats import Format

app = typer.Typer(help="Curate a task's calls into train/val/test files with a curation report.")


@app.callback(invoke_without_command=True)
def run(
    task: str = options.task("The task to curate (see `fledgling traces stats`)."),
    seed: int = options.seed("Seed of the split; same seed and calls give byte-identical files."),
    near_dup_threshold: float = typer.Option(
        0.9, "--near-dup-threshold", min=0.0, max=1.0,
        help="Estimated Jaccard similarity (character 5-grams of the conversation, system prompt "
             "excluded) at which two inputs count as duplicates; 1 keeps near-duplicates."),
    fmt: str = typer.Option("chat", "--format", "-f",
                            help="chat: messages+tools JSONL for TRL / Unsloth; openai: OpenAI fine-tuning files."),
    val: float = typer.Option(0.1, "--val", help="Share of examples for validation."),
    test: float = typer.Option(0.2, "--test", help="Share of examples for test."),
    drop_label_noise: bool = typer.Option(
        False, "--drop-label-noise",
        help="Drop duplicate clusters whose answers disagree (default: keep the best one, flag it)."),
    keep_tool_failures: bool = typer.Option(
        False, "--keep-tool-failures",
        help="Keep conversations whose tool results show a failure (to learn the agent's recovery)."),
    label_checks: str = typer.Option(
        "grounding,consistency,model_disagreement", "--label-checks",
        help="Checks for well-formed wrong labels, comma-separated (or 'none'): grounding (a copied "
             "value not in the conversation), consistency (near-identical inputs answered otherwise), "
             "model_disagreement (cross-validated small models contradict the label)."),
    drop_flagged: bool = typer.Option(
        False, "--drop-flagged",
        help="Leave the examples the label checks flag out of train and val (default: flag them "
             "in the report; test is never changed)."),
    out: Path | None = options.out(None, "Root directory of datasets (default .fledgling/datasets)."),
    workers: int | None = options.workers(
        "Processes that filter, redact and format calls (0: this process only). Default: "
        "one per core from 5,000 calls up, else 0. Changes the speed, never the output."),
) -> None:
    """Filter bad calls, redact secrets and PII, remove duplicates, split without leakage, and
    write `<out>/<task>/v<N>/{train,val,test}.jsonl` with `report.json` and `manifest.json`.
    The version is recorded in the trace store."""
    from fledgling.curate import curate  # heavy (datasketch, detectors): only when curating
    from fledgling.curate.report import render

    s = store()  # `curate` checks --format and the shares itself: a bad value is one clear line
    with Progress(TextColumn("curating [bold]{task.fields[name]}[/]"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
        job = bar.add_task("curate", total=None, name=task)
        dataset = curate(s, task, seed=seed, val=val, test=test, near_dup_threshold=near_dup_threshold,
                         fmt=cast("Format", fmt), drop_label_noise=drop_label_noise,
                         keep_tool_failures=keep_tool_failures, out_dir=out, workers=workers,
                         label_checks=[c.strip() for c in label_checks.split(",")
                                       if c.strip() and c.strip() != "none"],
                         drop_flagged=drop_flagged,
                         progress=lambda done, total: bar.update(job, completed=done, total=total))
    console.print(render(dataset.report))
    same = "" if dataset.new else " (unchanged: same calls and options as this version)"
    console.print(f"[green]dataset {dataset.task} v{dataset.version}[/]{same} -> {dataset.path}")
