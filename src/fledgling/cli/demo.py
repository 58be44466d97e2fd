"""`fledgling demo`: the whole loop on bundled synthetic traffic; `fledgling demo generate`: just the files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fledgling.cli import session
from fledgling.cli.session import console, store
from fledgling.demo.pipeline import DEFAULT_OUT, NEXT_STEPS, STAGES, DemoContext, run_demo

app = typer.Typer(
    invoke_without_command=True,
    help="Run the end-to-end demo on synthetic traffic of a support agent (tool calls) and a ticket "
         "triager (structured output): generate -> import -> contracts -> check -> stats. Safe to rerun.")

SeedOpt = typer.Option(0, "--seed", "-s", help="Same seed, same traffic.")
CallsOpt = typer.Option(2000, "--calls", "-n", min=1, max=10_000_000,
                        help="How many calls to generate (try 100000 for scale).")
OutOpt = typer.Option(DEFAULT_OUT, "--out", "-o", file_okay=False,
                      help="Directory for the JSONL files (one per task).")


@app.callback()
def demo(ctx: typer.Context, seed: int = SeedOpt, calls: int = CallsOpt, out: Path = OutOpt,
         skip_models: bool = typer.Option(False, "--skip-models",
                                          help="Skip the stages that run or train models (minutes on a CPU): "
                                               "the data loop only, in seconds.")) -> None:
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
                                         settings=session.settings()), stages)
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


@app.command("generate")
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
