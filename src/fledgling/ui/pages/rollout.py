"""Rollout: each task's mode and canary share, changed through a confirmation step; the history
of changes and rollbacks. Writes go through `fledgling.swap.rollout`, which the gateway reads."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from fledgling.config import Settings
from fledgling.errors import InputError
from fledgling.jobs import autopilot, runner
from fledgling.store import Store
from fledgling.swap import rollout
from fledgling.ui.pages.deps import form, settings, store
from fledgling.ui.render import page

router = APIRouter()

ACTOR = "dashboard"


@router.get("/rollout")
def rollout_page(request: Request, s: Store = Depends(store), cfg: Settings = Depends(settings),
                 changed: str = "") -> Response:
    tasks = sorted({t for t, _ in s.tasks()} | set(cfg.tasks))
    states = [(rollout.current(s, cfg, t), rollout.candidate_of(s, cfg, t)) for t in tasks]
    switches = {row["task"]: row for row in s.autopilots.find()}
    pilots = {j.task: j for j in runner.list_jobs(s, kind="autopilot", active=True, limit=100)}
    return page(request, "rollout.html", title="Rollout", states=states, modes=rollout.MODES,
                history=rollout.events(s, limit=50), changed=changed, switches=switches, pilots=pilots,
                decisions=autopilot.decisions(s, limit=50))


@router.get("/rollout/confirm")
def confirm(request: Request, task: str, mode: str, percent: float = 0.0, s: Store = Depends(store),
            cfg: Settings = Depends(settings)) -> Response:
    if mode not in rollout.MODES:
        raise InputError(f"mode '{mode}' is not one of {', '.join(rollout.MODES)}")
    return page(request, "rollout_confirm.html", title="Confirm rollout change", task=task, mode=mode,
                percent=percent, state=rollout.current(s, cfg, task),
                candidate=rollout.candidate_of(s, cfg, task))


@router.post("/rollout")
def change(request: Request, s: Store = Depends(store), cfg: Settings = Depends(settings)) -> Response:
    data = form(request)
    task = data.get("task", "")
    if data.get("action") == "rollback":
        rollout.rollback(s, cfg, task, actor=ACTOR, reason=data.get("reason") or "rolled back from the dashboard")
    else:
        try:
            percent = float(data.get("percent") or 0)
        except ValueError:
            raise InputError(f"canary percent {data.get('percent')!r} is not a number") from None
        rollout.set_mode(s, cfg, task, data.get("mode", ""), percent, actor=ACTOR,
                         reason=data.get("reason") or None)
    target = "/rollout?" + urlencode({"changed": task})
    return RedirectResponse(request.scope.get("root_path", "") + target, status_code=303)


@router.post("/rollout/autopilot")
def autopilot_switch(request: Request, s: Store = Depends(store), cfg: Settings = Depends(settings)) -> Response:
    """Turn a task's autopilot on (it runs as an `autopilot` job in a worker) or off."""
    data = form(request)
    task = data.get("task", "")
    if not task:
        raise InputError("which task's autopilot? (no task given)")
    enabled = data.get("enabled") == "1"
    switched = autopilot.switch(s, task, enabled=enabled, require_approval=data.get("require_approval") == "1",
                                actor=ACTOR)
    active = runner.list_jobs(s, task=task, kind="autopilot", active=True, limit=1)
    if enabled and not active:
        runner.start(s, cfg, "autopilot", task, {"require_approval": switched["require_approval"]},
                     jobs_dir=request.app.state.jobs_dir)
    elif not enabled and active:
        runner.cancel(s, active[0].id)
    target = "/rollout?" + urlencode({"changed": task})
    return RedirectResponse(request.scope.get("root_path", "") + target, status_code=303)


@router.post("/rollout/autopilot/answer")
def autopilot_answer(request: Request, s: Store = Depends(store)) -> Response:
    """Approve or reject a promotion the autopilot proposed; it carries out an approval next round."""
    data = form(request)
    task = data.get("task", "")
    try:
        event_id = int(data.get("event_id", ""))
    except ValueError:
        raise InputError(f"decision {data.get('event_id')!r} is not a number") from None
    autopilot.answer(s, task, approve=data.get("approve") == "1", actor=ACTOR, event_id=event_id)
    target = "/rollout?" + urlencode({"changed": task})
    return RedirectResponse(request.scope.get("root_path", "") + target, status_code=303)
