"""`fledgling import langfuse|otel|openai-jsonl PATH...`: bring captured calls into the store."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from fledgling.capture import FileResult, Prices, import_files
from fledgling.cli import options
from fledgling.cli.options import Renamed, spellings
from fledgling.cli.session import console, err_console, settings, store
from fledgling.errors import ConfigError, InputError

app = typer.Typer(
    no_args_is_help=True,
    help="Import LLM calls captured elsewhere. A malformed file is refused whole; a record whose "
         "shape is not understood is skipped with a warning naming it (--strict: refuse the file). "
         "Importing the same file again adds nothing.",
)

PathsArg = typer.Argument(..., exists=False, help="Files to import (JSON or JSON Lines).")
StrictOpt = options.strict()
TaskOpt = options.task("Put every call in this task. Default: the task named in the record "
                       "(metadata `fledgling.task`/`task`, Langfuse trace name), else one "
                       "derived from the system prompt.", required=False)


@app.command("openai-jsonl")
def openai_jsonl(paths: list[Path] = PathsArg, task: str | None = TaskOpt, strict: bool = StrictOpt) -> None:
    """Lines of {"request", "response"} chat-completions pairs, or fine-tuning lines
    {"messages": [...], "tools": [...]} whose last message is the answer."""
    _import("openai-jsonl", paths, task, strict)


@app.command("otel")
def otel(paths: list[Path] = PathsArg, task: str | None = TaskOpt, strict: bool = StrictOpt) -> None:
    """OTLP JSON trace exports (one payload, or one per line as the collector's file exporter
    writes) with OpenTelemetry GenAI spans, current or older conventions."""
    _import("otel", paths, task, strict)


@app.command("langfuse", cls=spellings(Renamed("--host", "--langfuse-url")))
def langfuse(
    paths: list[Path] = typer.Argument(None, help="Langfuse export files (JSON or JSONL of traces "
                                                  "or observations). Omit with --langfuse-url."),
    task: str | None = TaskOpt,
    langfuse_url: str | None = typer.Option(None, "--langfuse-url",
                                   help="Pull from this Langfuse server's public API instead, e.g. "
                                        "https://cloud.langfuse.com. Keys come from "
                                        "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY."),
    since: str | None = options.since("With --langfuse-url: pull calls from this time (ISO). "
                                      "Default: from the last pull."),
    strict: bool = StrictOpt,
) -> None:
    """Langfuse GENERATION observations: from exported files, or live with --langfuse-url."""
    if langfuse_url:
        if paths:
            raise InputError("give either export files or --langfuse-url, not both")
        _pull(langfuse_url, task, since, strict)
        return
    if not paths:
        raise InputError("no files given; pass Langfuse export files, or --langfuse-url URL (formerly --host) "
                         "to pull live")
    _import("langfuse", paths, task, strict)


def _import(kind: str, paths: list[Path], task: str | None, strict: bool = False) -> None:
    for p in paths:
        if not p.is_file():
            raise InputError("no such file", source=str(p))
    st = store()
    done: list[FileResult] = []
    sizes = {p: p.stat().st_size for p in paths}
    finished = 0
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                  DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        job = bar.add_task(f"importing {kind}", total=sum(sizes.values()) or 1)

        def progress(path: Path, offset: int, _total: int) -> None:
            bar.update(job, completed=finished + offset, description=f"{path.name}")

        for p in paths:
            try:
                done.extend(import_files(st, kind, [p], task=task, progress=progress, strict=strict,
                                         prices=_prices()).files)
            except InputError as exc:
                bar.stop()
                if done:
                    console.print(_table(kind, done))
                kept = (f"{len(done)} earlier file(s) were imported" if done else "nothing was imported")
                raise InputError(f"{exc.reason} (nothing from this file was written; {kept})",
                                 source=exc.source or str(p), record=exc.record, field=exc.field) from None
            finished += sizes[p]
    console.print(_table(kind, done))
    _warnings(done)


_COLUMNS = (("LLM calls seen", "seen"), ("calls read", "read"), ("new", "inserted"),
            ("already stored", "skipped"), ("tool calls", "tool_calls"), ("not understood", "not_understood"),
            ("not LLM calls", "ignored"))


def _prices() -> Prices:
    """The price table of fledgling.toml: each `[models.X]` with a price, by its name and by the
    model name it sends upstream."""
    table: Prices = {}
    for name, model in settings().models.items():
        if model.usd_per_mtok_in is not None or model.usd_per_mtok_out is not None:
            price = (model.usd_per_mtok_in, model.usd_per_mtok_out)
            table[name] = price
            if model.model:
                table.setdefault(model.model, price)
    return table


def _table(kind: str, files: list[FileResult]) -> Table:
    table = Table(title=f"{kind} import")
    table.add_column("file", overflow="fold")
    for col, _ in _COLUMNS:
        table.add_column(col, justify="right")

    def value(f: FileResult, attr: str) -> int:
        return len(f.warnings) if attr == "not_understood" else int(getattr(f, attr))

    for f in files:
        table.add_row(str(f.path), *(f"[green]{value(f, a)}[/]" if a == "inserted" else
                                     f"[yellow]{value(f, a)}[/]" if a == "not_understood" and f.warnings
                                     else str(value(f, a)) for _, a in _COLUMNS))
    if len(files) > 1:
        table.add_row("[bold]total", *(str(sum(value(f, a) for f in files)) for _, a in _COLUMNS))
    return table


def _warnings(files: list[FileResult]) -> None:
    """One line per record left out, naming file, record, field and shape, on stderr."""
    for f in files:
        for w in f.warnings:
            err_console.print(f"warning: {w} (skipped; --strict refuses the file instead)",
                              markup=False, highlight=False, soft_wrap=True)


def _pull(url: str, task: str | None, since: str | None, strict: bool = False) -> None:
    from fledgling.capture.langfuse import pull

    public, secret = os.environ.get("LANGFUSE_PUBLIC_KEY"), os.environ.get("LANGFUSE_SECRET_KEY")
    missing = [n for n, v in (("LANGFUSE_PUBLIC_KEY", public), ("LANGFUSE_SECRET_KEY", secret)) if not v]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} not set; export the project's API keys "
                          "(Langfuse > Settings > API Keys) before `fledgling import langfuse --langfuse-url`")
    start = None
    if since:
        try:
            start = datetime.fromisoformat(since)
        except ValueError:
            raise InputError(f"--since {since!r} is not a time; use ISO, e.g. 2026-11-25T14:00") from None
    with Progress(SpinnerColumn(), TextColumn("[bold]pulling from {task.description}"),
                  TextColumn("{task.completed} calls"), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        job = bar.add_task(url, total=None)
        result = pull(store(), url, public or "", secret or "", since=start, task=task, strict=strict,
                      progress=lambda n, _total: bar.update(job, completed=n))
    table = Table(title=f"langfuse pull ({result.api} API)")
    for col in ("host", "since", "pages", "read", "new", "skipped", "next pull from"):
        table.add_column(col)
    table.add_row(result.host, result.since or "the beginning", str(result.pages), str(result.read),
                  f"[green]{result.inserted}[/]", str(result.read - result.inserted), result.cursor or "-")
    console.print(table)
    for w in result.skipped:
        err_console.print(f"warning: {w} (skipped; --strict refuses the pull instead)",
                          markup=False, highlight=False, soft_wrap=True)
