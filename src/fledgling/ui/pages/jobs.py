"""Jobs: start a step of the loop (curate, train, eval, report, calibrate, publish) in a worker
process, follow its progress and log live, cancel it."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from fledgling.config import Settings
from fledgling.errors import InputError
from fledgling.jobs import runner
from fledgling.jobs.kinds import KINDS
from fledgling.store import Store
from fledgling.ui.pages.deps import form, not_found, settings, store
from fledgling.ui.render import page

router = APIRouter()

STARTABLE = [k for k in KINDS if k != "autopilot"]  # the autopilot has its switch on the rollout page


@router.get("/jobs")
def jobs_page(request: Request, s: Store = Depends(store), cfg: Settings = Depends(settings),
              kind: str = "", task: str = "") -> Response:
    tasks = sorted({t for t, _ in s.tasks()} | set(cfg.tasks))
    listed = runner.list_jobs(s, limit=100)
    kinds = {name: {"help": KINDS[name].help, "fields": _fields(name)} for name in STARTABLE}
    return page(request, "jobs.html", title="Jobs", jobs=listed, kinds=kinds, tasks=tasks,
                chosen_kind=kind if kind in kinds else "train", chosen_task=task,
                any_active=any(j.active for j in listed))


@router.post("/jobs")
def start(request: Request, s: Store = Depends(store), cfg: Settings = Depends(settings)) -> Response:
    data = form(request)
    kind, task = data.get("kind", ""), data.get("task", "")
    if kind not in STARTABLE:
        raise InputError(f"unknown job kind '{kind}'; use one of {', '.join(STARTABLE)}")
    text = (data.get("arguments") or "").strip() or "{}"
    try:
        arguments = json.loads(text)
    except ValueError as exc:
        raise InputError(f"arguments: not JSON ({exc})") from None
    if not isinstance(arguments, dict):
        raise InputError('arguments: give a JSON object, e.g. {"epochs": 1}')
    job = runner.start(s, cfg, kind, task, arguments, jobs_dir=request.app.state.jobs_dir)
    return RedirectResponse(request.scope.get("root_path", "") + f"/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, s: Store = Depends(store)) -> Response:
    runner.reap(s)
    job = s.jobs.get(job_id)
    if job is None:
        raise not_found(f"no job '{job_id}'")
    log = runner.read_log(job_id, request.app.state.jobs_dir, 16_000) or job.log_tail
    return page(request, "job.html", title=f"Job {job.id}", job=job, log=log)


@router.post("/jobs/{job_id}/cancel")
def cancel(request: Request, job_id: str, s: Store = Depends(store)) -> Response:
    if s.jobs.get(job_id) is None:
        raise not_found(f"no job '{job_id}'")
    runner.cancel(s, job_id)
    return RedirectResponse(request.scope.get("root_path", "") + f"/jobs/{job_id}", status_code=303)


def _fields(kind: str) -> list[dict[str, Any]]:
    """The kind's arguments with their defaults, shown beside the form."""
    schema = KINDS[kind].args.model_json_schema()
    required = set(schema.get("required", []))
    return [{"name": name, "default": None if name in required else prop.get("default"),
             "required": name in required, "help": prop.get("description", "")}
            for name, prop in schema.get("properties", {}).items()]
