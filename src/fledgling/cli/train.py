"""`fledgling train --task T`: fine-tune a candidate; `fledgling train status`: watch runs."""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.live import Live
from rich.table import Table

from fledgling.cli import options
from fledgling.cli.options import Renamed, group_spellings, spellings
from fledgling.cli.session import console, print_json, store
from fledgling.models.specialist import SPECIALIST_PROMPTS
from fledgling.store import Store
from fledgling.store.train_runs import TrainRun
from fledgling.train import runs
from fledgling.train.backend import BACKENDS, Plan, TrainSpec
from fledgling.train.bases import SMOLLM2

STALE_AFTER_S = 600  # a live run writes its record at least every step; longer silence is suspicious

app = typer.Typer(help="Fine-tune a small model on a task's curated dataset, and follow the runs.",
                  cls=group_spellings(Renamed("--max-examples", "--limit")))


@app.callback(invoke_without_command=True)
def train(
    ctx: typer.Context,
    task: str | None = options.task("The task whose curated dataset to train on.", required=False),
    base: str = options.base(SMOLLM2, "Base model: smollm2-135m-instruct (bundled), a checkpoint directory, a "
                                      ".gguf file, or for --backend openai the hosted model to fine-tune."),
    backend: str = typer.Option("lora", "--backend",
                                help="lora (CPU/CUDA, default), unsloth (QLoRA on CUDA), openai (hosted "
                                     "fine-tuning job), dry-run (token counts and estimates only)."),
    epochs: int = typer.Option(3, "--epochs", min=1,
                               help="Passes over the train split (early stopping may end sooner)."),
    lr: float = typer.Option(2e-4, "--lr", help="Learning rate."),
    method: str = typer.Option("lora", "--method",
                               help="lora (low-rank adapters, default) or full (every weight of the base; "
                                    "lora backend; saves the whole model)."),
    rank: int = typer.Option(16, "--rank", min=1, help="LoRA rank (alpha is 2 x rank)."),
    seed: int = options.seed("Seed of initialisation and data order: same seed, same result."),
    limit: int | None = options.limit(None, "Train on the first N examples only (a quick run)."),
    batch_size: int = options.batch_size(2, "Examples per forward pass (memory grows with it)."),
    grad_accum: int = typer.Option(4, "--grad-accum", min=1,
                                   help="Forward passes per optimizer step (effective batch = batch-size x this)."),
    max_length: int = typer.Option(512, "--max-length", min=16,
                                   help="Longest example in tokens (longer ones are cut)."),
    prompt: str = options.prompt("lean", "Specialist prompt to teach: lean (the task line alone; half the tokens "
                                         "of compact on the demo data) or compact (with the tool signatures)."),
    precision: str = typer.Option("auto", "--precision",
                                  help="auto (bf16 autocast where the GPU or CPU has bf16 units, else fp32), "
                                       "fp32 or bf16."),
    patience: int = typer.Option(1, "--patience", min=1, help="Epochs without val improvement before stopping."),
    select_on: str = typer.Option("loss", "--select-on",
                                  help="What picks the best epoch and stops early: loss (val loss) or answers "
                                       "(the share of val answers generated exactly right; a generation pass "
                                       "per epoch, lora backend)."),
    merge: bool = typer.Option(False, "--merge", help="Also save base+adapter merged into full weights."),
    resume: bool = typer.Option(False, "--resume", help="Continue the newest unfinished run of this task and "
                                                        "backend from its last checkpoint."),
    dataset: Path | None = typer.Option(None, "--dataset",
                                        help="Dataset directory (default: the task's newest curated version)."),
    dataset_version: int | None = options.dataset_version(),
    out: Path | None = options.out(None, "Run directory (default .fledgling/runs/<run id>)."),
    launcher: str = typer.Option("none", "--launcher", help="none, or accelerate (multi-GPU, DeepSpeed ZeRO-2)."),
    num_processes: int = typer.Option(1, "--num-processes", min=1, help="GPUs for --launcher accelerate."),
    suffix: str | None = typer.Option(None, "--suffix", help="openai: suffix of the fine-tuned model's name."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Write the plan (data, configs, command line) and stop before training."),
) -> None:
    """Train a candidate for a task. It shows a progress bar, keeps a status record that
    `fledgling train status` reads live, writes the adapter with a manifest, and adds the result
    to the model catalog (`fledgling models list`).

    Before paying for GPUs: `--backend dry-run` counts tokens and estimates time and memory per
    backend; `--dry-run` on any backend writes what the run would use and stops."""
    if ctx.invoked_subcommand is not None:
        return
    if task is None:
        raise typer.BadParameter("--task is required (or use `fledgling train status`)", param_hint="--task")
    if backend not in BACKENDS:
        raise typer.BadParameter(f"use one of {', '.join(BACKENDS)}", param_hint="--backend")
    if precision not in ("auto", "fp32", "bf16"):
        raise typer.BadParameter("use auto, fp32 or bf16", param_hint="--precision")
    if prompt not in SPECIALIST_PROMPTS:
        raise typer.BadParameter("use lean or compact", param_hint="--prompt")
    if method not in ("lora", "full"):
        raise typer.BadParameter("use lora or full", param_hint="--method")
    if method == "full" and backend not in ("lora", "dry-run"):
        raise typer.BadParameter(f"full fine-tuning runs on the lora backend, not {backend}", param_hint="--method")
    if select_on not in ("loss", "answers"):
        raise typer.BadParameter("use loss or answers", param_hint="--select-on")
    if launcher not in ("none", "accelerate"):
        raise typer.BadParameter("use none or accelerate", param_hint="--launcher")
    from fledgling.train.orchestrator import train as run_training
    from fledgling.train.progress import TerminalView

    # the choices were checked above; the spec validates its fields again
    spec = TrainSpec.model_validate(dict(
        task=task, backend=backend, base=base, epochs=epochs, lr=lr, method=method, rank=rank, seed=seed,
        max_examples=limit, batch_size=batch_size, grad_accum=grad_accum, max_length=max_length,
        prompt=prompt, precision=precision, patience=patience, select_on=select_on, merge=merge, launcher=launcher,
        num_processes=num_processes, suffix=suffix))
    if dry_run:
        outcome = run_training(spec, store(), dataset_dir=dataset, dataset_version=dataset_version,
                               out_dir=out, resume=resume, dry_run=True)
        _print_plan(outcome.plan)
        return
    with TerminalView(console, title=f"{backend} {task}") as view:
        outcome = run_training(spec, store(), dataset_dir=dataset, dataset_version=dataset_version,
                               out_dir=out, resume=resume, view=view)
    metrics = outcome.result.metrics if outcome.result is not None else {}
    if backend == "dry-run":
        _print_dry_run(metrics)
        return
    _print_metrics(metrics)
    if outcome.model is not None:
        console.print(f"[green]trained[/] {outcome.model.name} -> {outcome.plan.run_dir}")
        console.print(f"next: `fledgling models select --task {task} {outcome.model.name}` makes it the "
                      "task's candidate")


@app.command("status", cls=spellings(Renamed("-w", "--watch")))
def status(
    run_id: str | None = typer.Argument(None, help="One run in detail (default: the newest runs)."),
    task: str | None = options.task("Only this task's runs.", required=False),
    watch: bool = options.watch("Refresh every second until the run ends."),
    as_json: bool = options.as_json("Print the run records as JSON (once)."),
) -> None:
    """Training runs as the store records them: state, step, loss, val loss, ETA."""
    s = store()
    if as_json:
        if watch:
            raise typer.BadParameter("--watch redraws a table; --json prints once: give one", param_hint="--json")
        print_json([{**asdict(r), "active": r.active} for r in _runs(s, run_id, task)])
        return
    if not watch:
        console.print(_status_table(s, run_id, task))
        return
    with Live(_status_table(s, run_id, task), console=console, refresh_per_second=2) as live:
        while True:
            time.sleep(1.0)
            live.update(_status_table(s, run_id, task))
            shown = [runs.get(s, run_id)] if run_id else runs.list_runs(s, task, limit=1)
            if not any(r.active for r in shown):
                return


def _runs(s: Store, run_id: str | None, task: str | None) -> list[TrainRun]:
    return [runs.get(s, run_id)] if run_id else runs.list_runs(s, task)


def _status_table(s: Store, run_id: str | None, task: str | None) -> Table:
    rows = _runs(s, run_id, task)
    table = Table(title="training runs")
    for col in ("run", "task", "backend", "state", "step", "epoch", "loss", "val loss", "eta", "updated"):
        table.add_column(col, justify="right" if col in ("step", "epoch", "loss", "val loss", "eta") else "left")
    for r in rows:
        val = r.metrics.get("eval_loss") or r.metrics.get("best_eval_loss")
        color = {"completed": "green", "failed": "red", "interrupted": "yellow"}.get(r.state, "cyan")
        state = r.state
        silent = (datetime.now(UTC) - _utc(r.updated_at)).total_seconds()
        if r.active and silent > STALE_AFTER_S:
            state = f"{r.state}, silent {silent / 60:.0f} min (process gone?)"
        table.add_row(r.id, r.task, r.backend, f"[{color}]{state}[/]",
                      f"{r.step}/{r.total_steps}" if r.total_steps else str(r.step),
                      f"{r.epoch:.2f}" if r.epoch is not None else "",
                      f"{r.loss:.4f}" if r.loss is not None else "",
                      f"{val:.4f}" if isinstance(val, (int, float)) else "",
                      f"{r.eta_s:.0f}s" if r.eta_s is not None and r.active else "",
                      r.updated_at.strftime("%H:%M:%S"))
    if run_id and rows and rows[0].error:
        table.caption = f"[red]{rows[0].error}[/]"
    elif run_id and rows and rows[0].message:
        table.caption = rows[0].message
    return table


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _print_plan(plan: Plan) -> None:
    table = Table(title=f"plan: {plan.spec.backend} on {plan.data.task} {plan.data.version}")
    table.add_column("what")
    table.add_column("where")
    for name, path in plan.files.items():
        table.add_row(name, str(path))
    console.print(table)
    if plan.command:
        console.print("command:", shlex.join(plan.command), highlight=False, soft_wrap=True)
    if plan.details:
        console.print_json(json.dumps(plan.details, default=str))


def _print_metrics(metrics: dict) -> None:
    table = Table(title="result")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, list) else str(v))
    console.print(table)


def _print_dry_run(report: dict) -> None:
    tokens = Table(title=f"tokens ({report['base']['name']}, {report['base']['parameters']:,} parameters)")
    for col in ("split", "examples", "tokens", "answer tokens", "max", "over max-length", "full prompt", "saved"):
        tokens.add_column(col, justify="left" if col == "split" else "right")
    for split in ("train", "val"):
        r = report[split]
        if r.get("examples"):
            tokens.add_row(split, str(r["examples"]), f"{r['tokens']:,}", f"{r['answer_tokens']:,}",
                           str(r["max_tokens"]), str(r["over_max_length"]), f"{r['full_prompt_tokens']:,}",
                           f"{r['compact_saves']:.0%}")
    console.print(tokens)
    est = Table(title="estimates per backend")
    for col in ("backend", "where", "time", "memory", "basis"):
        est.add_column(col)
    for name, e in report["estimates"].items():
        seconds = e.get("seconds")
        memory = e.get("memory_mb") or e.get("memory_mb_per_gpu")
        basis = (f"measured {e['measured_tokens_per_s']} tok/s" if "measured_tokens_per_s" in e
                 else e.get("assumption") or e.get("note", ""))
        est.add_row(name, e["where"], f"{seconds:,.0f} s" if seconds is not None else
                    f"{e.get('billed_training_tokens', 0):,} billed tokens",
                    f"{memory:,} MB" if memory else "", basis)
    console.print(est)
