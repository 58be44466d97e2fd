"""`fledgling demo`: the end-to-end demo as a list of named stages.

Each stage does one step of the loop on the demo traffic, prints what it did, and returns a
one-line summary. Later steps of the loop (curate, eval, train, report, rollout) are appended to
`STAGES`. Every stage is safe to rerun: files are rewritten identically, imports and contracts
are idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from fledgling.config import Settings
from fledgling.store import CallFilter, Store

DEFAULT_OUT = Path(".fledgling/demo")
# Enough traffic that the final tuned-vs-LLM comparison has 100+ test items per task that are
# calls (seed 0: 111 for support-agent, 174 for ticket-triage; 2,000 calls gave 94 and 147).
DEMO_CALLS = 2400


@dataclass
class DemoContext:
    store: Store
    console: Console
    seed: int = 0
    calls: int = DEMO_CALLS
    out_dir: Path = DEFAULT_OUT
    quick: bool = False  # train the quick recipe (demo/train_stage.py RECIPES["quick"]): minutes less, less accurate
    settings: Settings = field(default_factory=Settings)  # gates and prices the reports use
    latency_scale: float = 0.0  # the stand-in LLM takes each call's recorded latency times this (CLI: 1)
    results: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    run: Callable[[DemoContext], str]
    uses_models: bool = False  # runs or trains a model: minutes, not seconds (`--skip-models`)


@dataclass
class StageOutcome:
    name: str
    summary: str
    seconds: float


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


def _advancing(bar: Progress, job: TaskID) -> Callable[[int, int], None]:
    """A `(done, total)` progress callback that moves `job` on `bar`."""
    return lambda done, total: bar.update(job, completed=done, total=total)


def generate(ctx: DemoContext) -> str:
    from fledgling.demo.export import write_traffic

    with _progress(ctx.console) as bar:
        job = bar.add_task("generating calls", total=ctx.calls)
        files = write_traffic(ctx.out_dir, seed=ctx.seed, n=ctx.calls,
                              progress=lambda done: bar.update(job, completed=done))
    ctx.results["files"] = files
    for f in files:
        ctx.console.print(f"  {f.path}  {f.calls:,} calls  {f.bytes / 1e6:.1f} MB")
    return f"{ctx.calls:,} synthetic calls (seed {ctx.seed}) written to {ctx.out_dir}/"


def import_traffic(ctx: DemoContext) -> str:
    from fledgling.capture import import_files

    files = ctx.results.get("files") or sorted(ctx.out_dir.glob("*.jsonl"))
    paths = [getattr(f, "path", f) for f in files]
    with Progress(TextColumn("importing {task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=ctx.console, transient=True) as bar:
        jobs: dict[Path, Any] = {}

        def tick(path: Path, done: int, total: int) -> None:
            if path not in jobs:
                jobs[path] = bar.add_task(path.name, total=total or 1)
            bar.update(jobs[path], completed=done)

        result = import_files(ctx.store, "openai-jsonl", paths, progress=tick)
    for f in result.files:
        ctx.console.print(f"  {f.path.name}: read {f.read:,}, new {f.inserted:,}, already stored {f.skipped:,}")
    ctx.results["import"] = result
    return (f"{result.inserted:,} new calls imported ({result.read - result.inserted:,} already stored) "
            f"into {ctx.store.safe_url}")


CAPTURE_LIMIT = 20_000
"""Calls sent live (the stand-in upstream holds their answers in memory); beyond it, the rest of
a large demo arrives through the importer in the next stage."""


def capture(ctx: DemoContext) -> str:
    """Send the traffic through a real gateway to a stand-in LLM that replays the recorded
    answers: live capture end to end, as an agent pointed at the gateway would be captured."""
    from itertools import islice

    from fledgling.demo.live_capture import replay_through_gateway
    from fledgling.demo.pricing import MODEL, PRICES
    from fledgling.demo.traffic import generate_calls

    calls = list(islice(generate_calls(ctx.seed, ctx.calls), CAPTURE_LIMIT))
    before = ctx.store.count_calls()
    with _progress(ctx.console) as bar:
        job = bar.add_task("calls through the gateway", total=len(calls))
        result = replay_through_gateway(calls, ctx.store, spool_dir=ctx.out_dir.parent / "spool",
                                        price=PRICES[MODEL], latency_scale=ctx.latency_scale,
                                        progress=lambda done: bar.update(job, completed=done))
    new = ctx.store.count_calls() - before
    ctx.console.print(f"  {result.sent:,} sent, {result.identical:,} answers identical to the recorded "
                      f"ones, {result.failed:,} recorded failures reported as errors, "
                      f"{result.recorded:,} recorded by the gateway ({new:,} new)")
    return (f"{result.sent:,} calls captured live through the gateway "
            f"({result.identical + result.failed:,} answered as recorded)")


def contracts(ctx: DemoContext) -> str:
    from fledgling.contracts import infer_and_save
    from fledgling.demo.traffic import TASKS
    from fledgling.report.tables import contract_summary, contract_tables

    versions = []
    for task in TASKS:
        contract, new = infer_and_save(ctx.store, task)
        ctx.console.print(contract_summary(contract, new))
        ctx.console.print(contract_tables(contract))
        ctx.results.setdefault("contracts", {})[task] = contract
        versions.append(f"{task} {contract.kind} {contract.version}")
    return "contracts: " + "; ".join(versions)


def check(ctx: DemoContext) -> str:
    from fledgling.contracts import check_calls
    from fledgling.report.tables import check_table

    parts = []
    for task, contract in ctx.results.get("contracts", {}).items():
        result = check_calls(ctx.store.iter_calls(CallFilter(task=task)), contract)
        ctx.console.print(check_table(contract, result, examples=False))
        parts.append(f"{task} {result.invalid:,} of {result.checked:,} answers break the contract")
    return "; ".join(parts)


def stats(ctx: DemoContext) -> str:
    from fledgling.report.tables import stats_table

    groups = ctx.store.stats()
    ctx.console.print(stats_table(groups))
    total = sum(g.calls for g in groups)
    cost = sum(g.cost_usd for g in groups)
    return f"{total:,} calls in the store, {cost:,.2f} USD of hosted-model spend"


def curate_tasks(ctx: DemoContext) -> str:
    from fledgling.curate import curate
    from fledgling.curate.report import render
    from fledgling.demo.traffic import TASKS

    parts = []
    for task in TASKS:
        with _progress(ctx.console) as bar:
            job = bar.add_task(f"curating {task}", total=None)
            ds = curate(ctx.store, task, seed=ctx.seed, drop_flagged=True,  # clean training labels
                        progress=_advancing(bar, job))
        ctx.console.print(render(ds.report))
        ctx.results.setdefault("datasets", {})[task] = ds
        gt = ds.report.get("ground_truth") or {}
        caught = ""
        if gt.get("recall") is not None and gt.get("precision") is not None:
            caught = (f", planted wrong labels dropped or flagged: recall {gt['recall']:.0%}, "
                      f"precision {gt['precision']:.0%}")
        parts.append(f"{task} v{ds.version}: {ds.report['examples_out']:,} examples{caught}")
    return "; ".join(parts)


def evaluate(ctx: DemoContext) -> str:
    from fledgling.demo.eval_stage import evaluate_baselines

    return evaluate_baselines(ctx)


def train_candidate(ctx: DemoContext) -> str:
    from fledgling.demo.train_stage import train_tasks

    return train_tasks(ctx)


def canary(ctx: DemoContext) -> str:
    from fledgling.demo.canary_stage import canary_stage

    return canary_stage(ctx)


def selective(ctx: DemoContext) -> str:
    from fledgling.demo.selective_stage import selective_stage

    return selective_stage(ctx)


STAGES: list[Stage] = [
    Stage("generate", "Generate synthetic agent traffic", generate),
    Stage("capture", "Send it through the recording gateway, live", capture),
    Stage("import", "Import the same traffic as request logs", import_traffic),
    Stage("contracts", "Infer each task's contract", contracts),
    Stage("check", "Check recorded answers against the contracts", check),
    Stage("curate", "Curate each task into train/val/test datasets", curate_tasks),
    Stage("eval", "Evaluate the recorded LLM and the base SLM; write the reports", evaluate, uses_models=True),
    Stage("train", "Train a specialist per task on CPU (full fine-tune or LoRA); evaluate it", train_candidate,
          uses_models=True),
    Stage("stats", "What was captured", stats),
    Stage("canary", "Canary: support-agent's tuned SLM answers half the sessions, live", canary, uses_models=True),
    Stage("selective", "Swap support-agent for the share its SLM has earned: threshold on val, verdict on "
          "test, live", selective, uses_models=True),
]

NEXT_STEPS = [
    "fledgling ui                                    # the dashboard: http://127.0.0.1:8788/",
    "fledgling traces list --task support-agent      # browse the calls",
    "fledgling contracts show --task support-agent   # tools, schemas, argument frequencies",
    "fledgling contracts check --task ticket-triage  # which answers break the schema",
    "fledgling rollout show                          # support-agent is swapped at the report's threshold "
    "(or in canary); rollback with rollout rollback",
    "fledgling demo --calls 100000                   # the same at scale",
]


def run_demo(ctx: DemoContext, stages: list[Stage] | None = None) -> list[StageOutcome]:
    """Run the stages in order, each under a heading, timing each."""
    outcomes = []
    stages = STAGES if stages is None else stages
    for i, stage in enumerate(stages, 1):
        ctx.console.rule(f"[bold]{i}/{len(stages)} {stage.title}[/]  [dim]({stage.name})[/]")
        t0 = time.perf_counter()
        summary = stage.run(ctx)
        seconds = time.perf_counter() - t0
        ctx.console.print(f"[green]✓[/] {summary} [dim]({seconds:.1f} s)[/]")
        outcomes.append(StageOutcome(stage.name, summary, seconds))
    return outcomes
