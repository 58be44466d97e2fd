"""`fledgling autopilot --task T`: retrain on new traffic and move the rollout on evidence;
`approve`, `status` and `off` answer and follow it."""

from __future__ import annotations

import json
import os

import typer

from fledgling.cli import options
from fledgling.cli.session import console, print_json, settings, store
from fledgling.jobs import autopilot

app = typer.Typer(help="Retrain a task's candidate on new traffic and promote it stage by stage, on evidence.")


def _actor() -> str:
    return "cli:" + (os.environ.get("USER") or "unknown")


@app.callback(invoke_without_command=True)
def run(
    ctx: typer.Context,
    task: str | None = options.task("The task to drive.", required=False),
    require_approval: bool = typer.Option(
        False, "--require-approval",
        help="Every promotion waits for `fledgling autopilot approve` (or the dashboard's button)."),
    interval: float = typer.Option(5.0, "--interval", min=0.05, help="Seconds between rounds."),
    rounds: int | None = typer.Option(None, "--rounds", min=1, help="Stop after N rounds (default: until "
                                      "`fledgling autopilot off` or the dashboard's switch)."),
    as_json: bool = options.as_json("Print each decision as one JSON line."),
) -> None:
    """Each round: watch the live stage (roll back on a live-gate alarm), carry out approved
    promotions, retrain when [tasks.T.autopilot] min_new_calls new calls arrived (curate, train,
    eval, report), and on a SWAP verdict promote one stage (shadow -> canary steps -> swapped)
    once the current stage held for hold_requests requests. Every decision is stored with its
    evidence (`fledgling autopilot status`)."""
    if ctx.invoked_subcommand is not None:
        return
    if task is None:
        raise typer.BadParameter("--task is required", param_hint="--task")
    s, cfg = store(), settings()
    autopilot.switch(s, task, enabled=True, require_approval=require_approval, actor=_actor())
    pilot = autopilot.Autopilot(s, cfg, task, require_approval=require_approval)
    shown = {e["id"] for e in autopilot.decisions(s, task, limit=1000)}

    def show(_: int) -> None:
        for event in reversed(autopilot.decisions(s, task, limit=50)):
            if event["id"] in shown:
                continue
            shown.add(event["id"])
            if as_json:
                typer.echo(json.dumps(event, default=str))
            else:
                console.print(f"[bold]{event['decision']}[/] ({event['status']}): {event['summary']}",
                              highlight=False)

    if not as_json:
        console.print(f"autopilot on for [green]{task}[/]; stop with `fledgling autopilot off --task {task}`")
    done = pilot.watch(interval_s=interval, rounds=rounds, on_round=show)
    if not as_json:
        console.print(f"autopilot stopped after {done} rounds")


@app.command("approve")
def approve(task: str = options.task("The task whose pending promotion to answer."),
            event: int | None = typer.Option(None, "--event", min=1,
                                             help="The decision's number (default: the pending one)."),
            reject: bool = typer.Option(False, "--reject", help="Say no instead: the promotion is dropped."),
            as_json: bool = options.as_json("Print the answered decision as JSON.")) -> None:
    """Approve (or reject) the promotion the autopilot is waiting on; it acts on its next round."""
    answered = autopilot.answer(store(), task, approve=not reject, actor=_actor(), event_id=event)
    if as_json:
        print_json(answered)
        return
    console.print(f"decision #{answered['id']} {answered['status']}: {answered['summary']}", highlight=False)


@app.command("status")
def status(task: str = options.task("The task."),
           limit: int = options.limit(20, "The newest N decisions."),
           as_json: bool = options.as_json()) -> None:
    """The switch and the newest decisions with their evidence."""
    s = store()
    switch = s.autopilots.get(task)
    decisions = autopilot.decisions(s, task, limit=limit)
    if as_json:
        print_json({"switch": switch, "decisions": decisions})
        return
    state = "off" if not switch or not switch["enabled"] else (
        "on, approvals required" if switch["require_approval"] else "on")
    console.print(f"autopilot for [green]{task}[/]: {state}")
    for d in decisions:
        console.print(f"#{d['id']} {d['at']:%Y-%m-%d %H:%M:%S} [bold]{d['decision']}[/] ({d['status']}): "
                      f"{d['summary']}", highlight=False)


@app.command("off")
def off(task: str = options.task("The task."), as_json: bool = options.as_json("Print the switch as JSON.")) -> None:
    """Turn the task's autopilot off; a running one stops at its next round."""
    switched = autopilot.switch(store(), task, enabled=False, actor=_actor())
    if as_json:
        print_json(switched)
        return
    console.print(f"autopilot for [green]{task}[/] is off")
