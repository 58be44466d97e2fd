"""`fledgling report`: the swap-readiness report of a task (HTML, Markdown, JSON)."""

from __future__ import annotations

from pathlib import Path

import typer

from fledgling.cli import options
from fledgling.cli.session import console, print_json, settings, store
from fledgling.report import build_report, write_report

app = typer.Typer(help="Write the swap-readiness report of a task from its latest eval runs.")


@app.callback(invoke_without_command=True)
def report_command(
    task: str = options.task("The task to report on."),
    split: str = options.split("test", "Which split's runs to compare."),
    out: Path | None = options.out(None, "Directory (default .fledgling/reports/<task>)."),
    as_json: bool = options.as_json("Print the report as JSON (report.json's content) after writing the files."),
) -> None:
    """Verdict and gates, metrics with intervals, per tool, latency, cost, worst failures."""
    report = build_report(store(), settings(), task, split)
    paths = write_report(report, out or Path(".fledgling/reports") / task)
    if as_json:
        print_json(report)
        return
    colour = {"SWAP": "green", "NOT YET": "yellow", "NO": "red"}[report["verdict"]]
    console.print(f"[bold {colour}]{report['verdict']}[/] for {report['primary']}")
    for cand in report["candidates"]:
        for g in cand["gates"]:
            console.print(f"  {cand['label']}: {g['metric']} {g['outcome']}: {g['reason']}", highlight=False)
    for ext, path in paths.items():
        console.print(f"[dim]{ext}: {path}[/]")
