"""`fledgling demo`: the whole loop on bundled synthetic traffic; `fledgling demo generate`: just the files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fledgling.cli import options, session
from fledgling.cli.options import Renamed, group_spellings, spellings
from fledgling.cli.session import console, store
from fledgling.demo.pipeline import DEFAULT_OUT, DEMO_CALLS, NEXT_STEPS, STAGES, DemoContext, run_demo

_STAGE_LINES = "\n\n".join(f"{i}. {st.title}" + (" (runs models)" if st.uses_models else "")
                            for i, st in enumerate(STAGES, 1))
OLD_CALLS = Renamed("-n", "--calls")

app = typer.Typer(
    invoke_without_command=True, cls=group_spellings(OLD_CALLS),
    short_help=f"The whole loop in {len(STAGES)} stages on synthetic agent traffic, from capture to a live canary.",
    help="Run the whole loop on synthetic traffic of a support agent (tool calls) and a ticket "
         f"triager (structured output), in {len(STAGES)} stages:\n\n{_STAGE_LINES}\n\n"
         "--skip-models leaves out the stages that run models (minutes on a CPU). Safe to rerun.")

SeedOpt = options.seed("Same seed, same traffic.")
CallsOpt = typer.Option(DEMO_CALLS, "--calls", min=1, max=10_000_000,
                        help="How many calls to generate (try 100000 for scale).")
OutOpt = options.out(DEFAULT_OUT, "Directory for the JSONL files (one per task).")


@app.callback()
def demo(ctx: typer.Context, seed: int = SeedOpt, calls: int = CallsOpt, out: Path = OutOpt,
         skip_models: bool = typer.Option(False, "--skip-models",
                                          help="Skip the stages that run or train models (minutes on a CPU): "
                                               "the data loop only, in seconds."),
         quick: bool = typer.Option(False, "--quick",
                                    help="Train each specialist with the quick recipe (400 examples, one "
                                         "epoch) instead of the one chosen by measurement: far fewer "
                                         "minutes of training, a less accurate specialist (docs/demo.md)."),
         latency_scale: float = typer.Option(1.0, "--latency-scale", min=0.0,
                                             envvar="FLEDGLING_DEMO_LATENCY_SCALE",
                                             help="The stand-in LLM answers after each call's recorded "
                                                  "latency times this (1: as recorded, 600-1,400 ms a call; "
                                                  "0: at once), so captured calls carry that latency.")) -> None:
    """Run the demo into the configured store (default .fledgling/fledgling.db)."""
    if ctx.invoked_subcommand is not None:
        return
    # Libraries' own tqdm bars (transformers de-quantising the GGUF weights) would interleave
    # with the stages' rich progress; the stages report their own progress.
    os.environ.setdefault("TQDM_DISABLE", "1")
    s = store()
    t0 = time.perf_counter()
    stages = [st for st in STAGES if not (skip_models and st.uses_models)]
    outcomes = run_demo(DemoContext(store=s, console=console, seed=seed, calls=calls, out_dir=out,
                                    settings=session.settings(), latency_scale=latency_scale, quick=quick),
                        stages)
    console.rule("[bold]Summary[/]")
    table = Table(show_header=True)
    table.add_column("stage")
    table.add_column("what it did")
    table.add_column("time", justify="right")
    for o in outcomes:
        table.add_row(o.name, o.summary, f"{o.seconds:.1f} s")
    console.print(table)
    console.print(f"Done in {time.perf_counter() - t0:.1f} s. Store: {s.safe_url}")
    console.print("[bold]Next steps[/]")
    for step in NEXT_STEPS:
        console.print(f"  {step}", highlight=False)


@app.command("generate", cls=spellings(OLD_CALLS))
def generate(seed: int = SeedOpt, calls: int = CallsOpt, out: Path = OutOpt) -> None:
    """Write the synthetic traffic as OpenAI JSONL files (one per task), without importing it."""
    from fledgling.demo.export import write_traffic

    t0 = time.perf_counter()
    with Progress(TextColumn("generating calls"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        job = bar.add_task("generate", total=calls)
        files = write_traffic(out, seed=seed, n=calls, progress=lambda done: bar.update(job, completed=done))
    for f in files:
        console.print(f"{f.path}  {f.calls:,} calls  {f.bytes / 1e6:.1f} MB")
    console.print(f"{calls:,} calls in {time.perf_counter() - t0:.1f} s. Import them with "
                  f"`fledgling import openai-jsonl {out}/*.jsonl`.", highlight=False)
