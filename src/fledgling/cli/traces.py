"""`fledgling traces list|show|stats|quarantine`: look at what has been captured (or refused)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import typer
from rich.syntax import Syntax
from rich.table import Table

from fledgling.calls import Call
from fledgling.capture.recording.quarantine import quarantine_report
from fledgling.cli import options
from fledgling.cli.session import console, print_json, settings, store
from fledgling.errors import InputError
from fledgling.report.tables import stats_table
from fledgling.store import CallFilter

app = typer.Typer(no_args_is_help=True, help="List, show and summarise captured calls.")


def _filter(task: str | None, model: str | None, source: str | None, status: str | None,
            since: str | None, until: str | None) -> CallFilter:
    return CallFilter(task=task, model=model, source=source, status=status,
                      since=_when(since, "--since"), until=_when(until, "--until"))


def _when(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{flag} {value!r} is not a date; use ISO format, e.g. 2026-11-25 or "
                         "2026-11-25T14:00") from None


TaskOpt = options.task("Only this task.", required=False)
ModelOpt = options.model("Only calls to this model.", required=False)
SourceOpt = options.source()
StatusOpt = typer.Option(None, "--status", help="ok or error.")
SinceOpt = options.since()
UntilOpt = options.until()


@app.command("list")
def list_calls(task: str | None = TaskOpt, model: str | None = ModelOpt,
               source: str | None = SourceOpt, status: str | None = StatusOpt,
               since: str | None = SinceOpt, until: str | None = UntilOpt,
               limit: int = options.limit(20, "Calls per page.", max=1000),
               page: int = typer.Option(1, "--page", min=1, help="Page number (newest first)."),
               as_json: bool = options.as_json("Print the page as JSON: the whole call records.")) -> None:
    """The newest calls, one line each."""
    flt = _filter(task, model, source, status, since, until)
    result = store().query_calls(flt, limit=limit, offset=(page - 1) * limit)
    if as_json:
        print_json({"total": result.total, "offset": result.offset, "limit": result.limit,
                    "has_more": result.has_more,
                    "calls": [_dump(c) for c in result.items]})
        return
    table = Table(title=f"calls {result.offset + 1}-{result.offset + len(result.items)} of {result.total}")
    for col in ("id", "created", "task", "model", "source", "status", "answer", "ms", "$"):
        table.add_column(col, no_wrap=col in ("id", "created"), justify="right" if col in ("ms", "$") else "left")
    for c in result.items:
        if c.status == "error":
            answer = f"[red]{(c.error or '')[:40]}[/]"
        elif c.response and c.response.tool_calls:
            answer = ", ".join(tc.name for tc in c.response.tool_calls)
        else:
            answer = ((c.response.content if c.response else "") or "").replace("\n", " ")[:40]
        table.add_row(c.id, c.created_at.strftime("%Y-%m-%d %H:%M:%S"), c.task, c.model or "",
                      c.source, c.status, answer,
                      f"{c.latency_ms:.0f}" if c.latency_ms is not None else "",
                      f"{c.cost_usd:.5f}" if c.cost_usd is not None else "")
    console.print(table)
    if result.has_more:
        console.print(f"[dim]more: --page {page + 1}[/]")


@app.command("show")
def show(call_id: str = typer.Argument(..., help="The call id (see `fledgling traces list`)."),
         as_json: bool = options.as_json("Print the call as plain JSON (no colours, no wrapping).")) -> None:
    """One call in full: request, answer, usage, metadata."""
    call = store().get_call(call_id)
    if call is None:
        raise InputError(f"no call with id {call_id}; list ids with `fledgling traces list`")
    if as_json:
        print_json(_dump(call))
        return
    console.print(Syntax(json.dumps(_dump(call), indent=2,
                                    ensure_ascii=False), "json", word_wrap=True))


def _dump(call: Call) -> dict[str, Any]:
    """A call as JSON: unknown usage shows as null tokens and a null cost, never as 0 or left out."""
    out = call.model_dump(mode="json", exclude_none=True)
    if call.usage.missing:
        out["cost_usd"] = None
    return out


@app.command("stats")
def stats(task: str | None = TaskOpt, model: str | None = ModelOpt,
          source: str | None = SourceOpt, since: str | None = SinceOpt,
          until: str | None = UntilOpt,
          as_json: bool = options.as_json("Print one JSON object per task, model and source.")) -> None:
    """Counts, error rates, latency percentiles and cost per task, model and source."""
    groups = store().stats(_filter(task, model, source, None, since, until))
    if as_json:
        print_json([{**g.key, "calls": g.calls, "errors": g.errors, "error_rate": g.error_rate,
                     "input_tokens": g.input_tokens, "output_tokens": g.output_tokens, "cost_usd": g.cost_usd,
                     "calls_without_usage": g.without_usage,
                     "latency_ms": {f"p{q}": g.latency_percentile(q) for q in (50, 95, 99)}} for g in groups])
        return
    console.print(stats_table(groups))
    unknown = sum(g.without_usage for g in groups)
    if unknown:
        console.print(f"{unknown:,} of {sum(g.calls for g in groups):,} calls have no usage reported by their "
                      "source: their tokens and cost are unknown, so the totals above leave them out")


@app.command("quarantine")
def quarantine(as_json: bool = options.as_json("Print the listing as JSON."),
               limit: int = options.limit(20, "Newest records shown.")) -> None:
    """Records the store refused (kept in the spool directory's quarantine.jsonl): how many, why."""
    report = quarantine_report(settings().gateway.spool_dir)
    if as_json:
        print_json(report)
        return
    if not report["count"]:
        console.print(f"nothing quarantined ({report['file']})")
        return
    console.print(f"[bold]{report['count']}[/] quarantined records in {report['file']}")
    reasons = Table(title="by reason")
    reasons.add_column("records", justify="right")
    reasons.add_column("reason")
    for reason, n in sorted(report["by_reason"].items(), key=lambda kv: -kv[1]):
        reasons.add_row(f"{n:,}", reason)
    console.print(reasons)
    table = Table(title=f"newest {min(limit, report['count'])}")
    for col in ("at", "id", "reason"):
        table.add_column(col, no_wrap=col != "reason")
    for e in report["records"][-limit:][::-1]:
        table.add_row(str(e["at"] or ""), str(e["id"] or ""), e["reason"])
    console.print(table)
