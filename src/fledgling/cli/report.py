"""`fledgling report`: the swap-readiness report of a task (HTML, Markdown, JSON)."""

from __future__ import annotations

from pathlib import Path

import typer

from fledgling.cli.session import console, settings, store
from fledgling.report import build_report, write_report

app = typer.Typer(help="Write the swap-readiness report of a task from its latest eval runs.")


@app.callback(invoke_without_command=True)
def report_command(
    task: str = typer.Option(..., "--task", "-t", help="The task to report on."),
    split: str = typer.Option("test", "--split", help="Which split's runs to compare."),
    out: Path | None = typer.Option(None, "--out", "-o", file_okay=False,
                                    help="Directory (default .fledgling/reports/<task>)."),
) -> None:
    """Verdict and gates, metrics with intervals, per tool, latency, cost, worst failures."""
    report = build_report(store(), settings(), task, split)
    paths = write_report(report, out or Path(".fledgling/reports") / task)
    colour = {"SWAP": "green", "NOT YET": "yellow", "NO": "red"}[report["verdict"]]
    console.print(f"[bold {colour}]{report['verdict']}[/] for {report['primary']}")
    for cand in report["candidates"]:
        for g in cand["gates"]:
            console.print(f"  {cand['label']}: {g['metric']} {g['outcome']}: {g['reason']}", highlight=False)
    for ext, path in paths.items():
        console.print(f"[dim]{ext}: {path}[/]")
