"""`fledgling replay CALL_ID`: re-run a recorded call and show whether the answer is identical."""

from __future__ import annotations

import typer
from rich.table import Table

from fledgling.calls import Response
from fledgling.cli import options
from fledgling.cli.session import console, print_json, settings, store
from fledgling.swap.replay import rerun_call


def replay(call_id: str = typer.Argument(..., help="The call's id (X-Fledgling-Call-Id, or see "
                                                   "`fledgling traces list`)."),
           as_json: bool = options.as_json("Print the result as JSON.")) -> None:
    """Re-run a recorded call with the same model, adapter, decoding settings and seed, and
    compare. Exits 1 when the answer differs."""
    r = rerun_call(store(), settings(), call_id)
    if as_json:
        print_json({
            "call_id": r.call_id, "target": r.target, "model": r.model, "identical": r.identical,
            "error": r.error, "seed": r.seed, "adapter_recorded": r.adapter_recorded, "adapter_now": r.adapter_now,
            "recorded": r.recorded.message() if r.recorded else None, "now": r.now.message() if r.now else None})
    else:
        table = Table(title=f"replay of {r.call_id} ({r.target}: {r.model}, seed {r.seed})")
        table.add_column("")
        table.add_column("recorded")
        table.add_column("now")
        table.add_row("answer", _show(r.recorded), r.error or _show(r.now))
        if r.adapter_recorded or r.adapter_now:
            table.add_row("adapter sha256", r.adapter_recorded or "-", r.adapter_now or "-")
        console.print(table)
        if r.adapter_recorded != r.adapter_now:
            console.print("[yellow]the adapter changed since the call was recorded[/]")
        console.print("[green]identical[/]" if r.identical else "[red]different[/]")
    if not r.identical:
        raise typer.Exit(1)


def _show(resp: Response | None) -> str:
    if resp is None:
        return "-"
    calls = "; ".join(f"{tc.name}({tc.arguments})" for tc in resp.tool_calls)
    return calls or (resp.content or "")
