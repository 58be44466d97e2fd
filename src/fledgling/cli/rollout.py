"""`fledgling rollout show|set|rollback`: which model answers each task, changed at run time."""

from __future__ import annotations

import os
from dataclasses import asdict

import typer
from rich.table import Table

from fledgling.cli import options
from fledgling.cli.options import Renamed, spellings
from fledgling.cli.session import console, print_json, settings, store
from fledgling.errors import ConfigError, InputError, UpstreamError
from fledgling.swap import rollout
from fledgling.swap.figures import figures_table

app = typer.Typer(no_args_is_help=True, help=(
    "Show and change each task's rollout: record (LLM only), shadow (the candidate runs beside "
    "the LLM), canary (a sticky share goes to the candidate), swapped (the candidate answers, "
    "the LLM is the fallback). Changes are stored; running gateways apply them within a second, "
    "or at once with --gateway-url."))

GatewayOpt = options.gateway_url()
OLD_GATEWAY = Renamed("--gateway", "--gateway-url")


def _admin(gateway: str, method: str, path: str, body: dict | None = None) -> dict:
    import httpx

    key = os.environ.get("FLEDGLING_ADMIN_KEY")
    if not key:
        raise ConfigError("--gateway-url needs FLEDGLING_ADMIN_KEY set to the gateway's admin key")
    try:
        r = httpx.request(method, gateway.rstrip("/") + path, json=body, timeout=30,
                          headers={"authorization": f"Bearer {key}"})
    except httpx.HTTPError as exc:
        raise UpstreamError(f"cannot reach the gateway at {gateway}: {exc}; is it running?") from None
    data = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code != 200:
        message = (data.get("error") or {}).get("message") or r.text[:200]
        raise UpstreamError(f"the gateway refused ({r.status_code}): {message}")
    return data


@app.command("show", cls=spellings(OLD_GATEWAY))
def show(task: str | None = options.task("Only this task.", required=False),
         events: int = typer.Option(10, "--events", "-e", min=0, help="How many recent changes to list."),
         gateway_url: str | None = GatewayOpt,
         as_json: bool = options.as_json("Print the tasks, recent changes and live figures as JSON.")) -> None:
    """Each task's mode, canary share and candidate; recent changes; live figures with --gateway-url."""
    s, cfg = store(), settings()
    states = rollout.all_current(s, cfg)
    if as_json:
        live = _admin(gateway_url, "GET", "/admin/swap")["tasks"] if gateway_url else None
        print_json({"tasks": [{**asdict(st), "candidate": rollout.candidate_of(s, cfg, name)}
                              for name, st in sorted(states.items()) if not task or name == task],
                    "events": rollout.events(s, task, limit=events) if events else [],
                    "live": {n: f for n, f in live.items() if not task or n == task} if live is not None else None})
        return
    table = Table(title="rollout")
    for col in ("task", "mode", "canary %", "candidate", "set by", "since"):
        table.add_column(col)
    for name, st in sorted(states.items()):
        if task and name != task:
            continue
        table.add_row(name, st.mode, f"{st.canary_percent:g}", rollout.candidate_of(s, cfg, name) or "-",
                      st.updated_by or st.source, st.updated_at.isoformat(timespec="seconds") if st.updated_at else "")
    console.print(table)
    if events:
        history = Table(title="recent changes")
        for col in ("at", "task", "kind", "from", "to", "by", "reason"):
            history.add_column(col)
        for e in rollout.events(s, task, limit=events):
            history.add_row(e.at.isoformat(timespec="seconds"), e.task, e.kind,
                            f"{e.from_mode} {e.from_percent:g}%" if e.from_mode else "",
                            f"{e.to_mode} {e.to_percent:g}%",
                            e.actor, e.reason or "")
        console.print(history)
    if gateway_url:
        console.print(figures_table(_admin(gateway_url, "GET", "/admin/swap")["tasks"], task))


@app.command("set", cls=spellings(OLD_GATEWAY, Renamed("-m", "--mode"), task_argument=True))
def set_mode(task: str = options.task("The task, e.g. support-agent."),
             mode: str = typer.Option(..., "--mode", help="record | shadow | canary | swapped"),
             percent: float = typer.Option(0.0, "--percent", "-p", min=0, max=100,
                                           help="canary: the share of sessions for the candidate."),
             reason: str | None = options.reason(None),
             from_report: str | None = typer.Option(
                 None, "--from-report", metavar="REPORT",
                 help="Swap at the confidence threshold the report chose on val and tested on test: "
                      "its report.json or directory (`fledgling report` writes .fledgling/reports/<task>)."),
             audit_percent: float = typer.Option(
                 5.0, "--audit-percent", min=0, max=100,
                 help="With --from-report: the share of the candidate's answers also asked of the LLM, "
                      "in shadow, so agreement keeps being measured."),
             gateway_url: str | None = GatewayOpt) -> None:
    """Move a task to another mode (needs a candidate: `fledgling models select NAME --task T`)."""
    chosen = None
    if from_report is not None:
        chosen = rollout.from_report(_read_report(from_report, task), task, audit_percent)
        console.print(f"report: {chosen.text}", highlight=False, markup=False)
    if gateway_url:
        data = _admin(gateway_url, "POST", f"/admin/rollout/{task}",
                      {"mode": mode, "percent": percent, "reason": reason,
                       "selective": asdict(chosen) if chosen else None})
        if data.get("candidate_error"):
            console.print(f"[yellow]warning:[/] {data['candidate_error']}; the LLM answers meanwhile")
        console.print(f"[green]{task}[/] is now {data['mode']} ({data['canary_percent']:g}%) on {gateway_url}")
        return
    st = rollout.set_mode(store(), settings(), task, mode, percent, actor=_actor(), reason=reason,
                          selective=chosen)
    at = (f" at {st.confidence_score} >= {st.min_confidence:.4g}, audit {st.audit_percent:g}%"
          if st.min_confidence is not None else "")
    console.print(f"[green]{task}[/] is now {st.mode} ({st.canary_percent:g}%){at}; running gateways apply it "
                  "within a second")


def _read_report(where: str, task: str) -> dict:
    import json
    from pathlib import Path

    path = Path(where)
    if path.is_dir():
        path = path / "report.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no report at {path}; run `fledgling report --task {task}` first") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the report {path}: {exc}") from None


@app.command("rollback", cls=spellings(OLD_GATEWAY, task_argument=True))
def rollback(task: str = options.task("The task to roll back."),
             to: str = typer.Option("shadow", "--to", help="shadow (keep measuring the candidate) or record."),
             reason: str = options.reason("rolled back by hand"),
             gateway_url: str | None = GatewayOpt) -> None:
    """Send all of a task's traffic back to the LLM."""
    if gateway_url:
        data = _admin(gateway_url, "POST", f"/admin/rollout/{task}/rollback", {"reason": reason, "to": to})
        console.print(f"[green]{task}[/] rolled back to {data['mode']} on {gateway_url}")
        return
    st = rollout.rollback(store(), settings(), task, actor=_actor(), reason=reason, to_mode=to)
    console.print(f"[green]{task}[/] rolled back to {st.mode}")


def _actor() -> str:
    return "cli:" + (os.environ.get("USER") or "unknown")


@app.command("calibrate")
def calibrate(task: str = options.task("The task whose candidate to calibrate."),
              target_accuracy: float = typer.Option(0.95, "--target-accuracy", "-a", min=0.0, max=1.0,
                                                    help="Agreement with the reference the kept answers must reach."),
              split: str = options.split("val", "The curated split to calibrate on."),
              limit: int | None = options.limit(None, "At most this many items."),
              delta: float | None = typer.Option(
                  None, "--delta", min=0.0, max=1.0,
                  help="Margin of the parity check per confidence score (default: the task's "
                       "non-inferiority gate, else 0.05)."),
              ) -> None:
    """Calibrate the low-confidence fallback: run the task's candidate over its curated val split
    and find the lowest mean token log-probability at which its answers agree with the
    reference at the target rate. Prints the threshold to set as the task's swap min_confidence
    in fledgling.toml (with "low_confidence" in its fallback_on)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from fledgling.evals.runs import load_items
    from fledgling.swap.calibrate import calibrate_task

    s, cfg = store(), settings()
    total = len(load_items(s, task, split, limit=limit)[2])
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console) as bar:
        job = bar.add_task(f"{task}: candidate answers on {split}", total=total)
        result = calibrate_task(s, cfg, task, target_accuracy, split=split, limit=limit,
                                progress=lambda n: bar.advance(job, n), delta=delta)
    cal = result.calibration
    table = Table(title=f"confidence calibration: {task} ({result.candidate}, {result.split})")
    for col in ("answers scored", "no score", "failed (error/contract)", "accuracy, all scored",
                "threshold", "accuracy kept", "coverage"):
        table.add_column(col, justify="right")
    table.add_row(str(result.scored), str(result.unscored), str(result.failed), f"{cal.overall_accuracy:.1%}",
                  f"{cal.threshold:.4f}" if cal.threshold is not None else "-",
                  f"{cal.accuracy:.1%}" if cal.threshold is not None else "-", f"{cal.coverage:.1%}")
    console.print(table)
    if result.parity:
        parity = Table(title=f"coverage at parity with the LLM (delta {result.delta:g}), per confidence score")
        for col in ("score", "threshold", "coverage", "candidate (covered)", "LLM (same items)", "paired 95% CI"):
            parity.add_column(col, justify="right")
        for name, point in result.parity.items():
            chosen = " (best)" if name == result.best_score else ""
            if point is None:
                parity.add_row(name, "-", "none at parity", "-", "-", "-")
                continue
            cmp = point.comparison
            parity.add_row(name + chosen, f"{point.threshold:.4f}", f"{point.coverage:.1%}",
                           f"{cmp.candidate:.1%}", f"{cmp.reference:.1%}", f"[{cmp.low:+.3f}, {cmp.high:+.3f}]")
        console.print(parity)
    if cal.threshold is None:
        console.print(f"[yellow]no threshold reaches {target_accuracy:.0%} agreement[/] on {result.scored} scored "
                      "answers: the candidate is not ready for this target (train more, or lower it)")
        raise typer.Exit(1)
    console.print(f"Set in fledgling.toml:\n\n  [tasks.{task}]\n  fallback_on = [\"error\", \"timeout\", "
                  f"\"contract\", \"low_confidence\"]\n\n  [tasks.{task}.swap]\n  min_confidence = "
                  f"{cal.threshold:.4f}\n", highlight=False, markup=False)
