"""The dashboard's JSON API under `/api/`: what the pages show and do, for scripts and tools.

The same guard as the pages protects it (`security.Guard`): with a login token, a request needs
`Authorization: Bearer <token>` or a logged-in session; an anonymous one gets 401. A request
that changes something with a session cookie must send the session's CSRF token in the
`X-CSRF-Token` header (`GET /api/session` tells it), so a page of another site cannot use a
visitor's session. Errors are JSON: `{"error": reason}`. The schema is at `/api/openapi.json`.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from fledgling.config import Settings
from fledgling.errors import FledglingError, InputError
from fledgling.evals import runs as eval_runs
from fledgling.jobs import autopilot, runner
from fledgling.jobs.kinds import KINDS
from fledgling.models import catalog
from fledgling.report import build_report
from fledgling.store import CallFilter, Store
from fledgling.swap import rollout
from fledgling.train import runs as train_runs
from fledgling.ui import queries

ACTOR = "api"
MAX_LIMIT = 200
MAX_INT = 2**31 - 1  # what every database's INTEGER holds


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


class ApiJSON(JSONResponse):
    """JSON that never fails on what the store holds: datetimes, dataclasses, NaN (as null)."""

    def render(self, content: Any) -> bytes:
        plain = orjson.loads(orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS))
        return orjson.dumps(_finite(plain))


def error(status: int, reason: str, headers: dict[str, str] | None = None) -> ApiJSON:
    return ApiJSON({"error": reason}, status_code=status, headers=headers)


def _store(request: Request) -> Store:
    return request.app.state.store


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _no_nul(request: Request) -> None:
    """A NUL character in a query or path: refused here (PostgreSQL text cannot hold one)."""
    for name, value in [*request.query_params.multi_items(), *request.path_params.items()]:
        if _has_nul(value):
            raise InputError(f"{name}: contains a NUL character")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if _has_nul(data):
            raise ValueError("contains a NUL character")
        return data


class SelectModel(_Body):
    task: str = Field(min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=200)


class RolloutChange(_Body):
    mode: Literal["record", "shadow", "canary", "swapped"]
    canary_percent: float = Field(default=0.0, ge=0, le=100)
    reason: str | None = Field(default=None, max_length=500)


class Rollback(_Body):
    to: Literal["shadow", "record"] = "shadow"
    reason: str = Field(default="rolled back through the API", max_length=500)


class JobStart(_Body):
    kind: str = Field(min_length=1, max_length=20, description=", ".join(KINDS))
    task: str = Field(min_length=1, max_length=200)
    arguments: dict[str, Any] = Field(default_factory=dict, description="the kind's arguments; see each kind's help")


class AutopilotSwitch(_Body):
    enabled: bool
    require_approval: bool | None = None
    interval_s: float = Field(default=5.0, ge=0.05, le=3600)


class Approval(_Body):
    approve: bool = True
    event_id: int | None = Field(default=None, ge=1, le=MAX_INT)


router = APIRouter(dependencies=[Depends(_no_nul)])


@router.get("/session")
def session(request: Request) -> dict[str, Any]:
    """The CSRF token a cookie session sends in `X-CSRF-Token` with every change."""
    state = request.scope.get("state", {})
    sess = state.get("session")
    return {"csrf_token": sess.csrf if sess else None, "via": state.get("auth_via", "session")}


@router.get("/tasks")
def tasks(s: Store = Depends(_store), cfg: Settings = Depends(_settings)) -> list[dict[str, Any]]:
    out = []
    for t in queries.task_traffic(s):
        state = rollout.current(s, cfg, t.task)
        out.append({**dataclasses.asdict(t), "error_rate": t.error_rate, "mode": state.mode,
                    "canary_percent": state.canary_percent, "candidate": rollout.candidate_of(s, cfg, t.task)})
    return out


@router.get("/calls")
def calls(s: Store = Depends(_store), task: str | None = None, model: str | None = None,
          source: str | None = None, status: Literal["ok", "error"] | None = None,
          session_id: str | None = None, since: datetime | None = None, until: datetime | None = None,
          before: str | None = Query(None, description="cursor: the page of calls older than this"),
          after: str | None = Query(None, description="cursor: the page of calls newer than this"),
          limit: int = Query(queries.PAGE_SIZE, ge=1, le=MAX_LIMIT)) -> dict[str, Any]:
    """Calls newest first, a page at a time; follow `older` / `newer` as `before` / `after`."""
    flt = CallFilter(task=task, model=model, source=source, status=status, session_id=session_id,
                     since=since, until=until)
    for name, cursor in (("before", before), ("after", after)):
        if cursor and queries.decode_cursor(cursor) is None:
            raise InputError(f"{name}: {cursor!r} is not a cursor from a previous page")
    result = queries.trace_page(s, flt, before=before, after=after, limit=limit)
    return {"items": result.rows, "total": result.total, "total_capped": result.total_capped,
            "newer": result.newer, "older": result.older}


@router.get("/calls/{call_id}")
def call(call_id: str, s: Store = Depends(_store)) -> Any:
    found = s.get_call(call_id)
    if found is None:
        raise StarletteHTTPException(404, f"no call with id {call_id}")
    return found.model_dump(mode="json")


@router.get("/contracts")
def contracts(task: str, s: Store = Depends(_store)) -> list[dict[str, Any]]:
    return s.contracts(task)


@router.get("/datasets")
def datasets(task: str | None = None, s: Store = Depends(_store)) -> list[dict[str, Any]]:
    return s.datasets.find(task)


@router.get("/datasets/{task}/{version}")
def dataset(task: str, version: int = Path(ge=1, le=MAX_INT), s: Store = Depends(_store)) -> dict[str, Any]:
    found = queries.dataset_report(s, task, version)
    if found is None:
        raise StarletteHTTPException(404, f"no dataset {task} v{version}")
    return found


@router.get("/eval-runs")
def eval_run_list(task: str, split: str | None = None, s: Store = Depends(_store)) -> list[Any]:
    return eval_runs.list_runs(s, task, split)


@router.get("/reports/{task}")
def report(task: str, split: Literal["train", "val", "test"] = "test", s: Store = Depends(_store),
           cfg: Settings = Depends(_settings)) -> dict[str, Any]:
    """The swap-readiness report as `fledgling report --json` prints it."""
    return build_report(s, cfg, task, split)


@router.get("/models")
def models(task: str | None = None, s: Store = Depends(_store)) -> dict[str, Any]:
    selected = catalog.selected_model(s, task) if task else None
    return {"models": catalog.list_models(s, task), "selected": selected.name if selected else None}


@router.post("/models/select")
def select_model(body: SelectModel, s: Store = Depends(_store)) -> dict[str, Any]:
    entry = catalog.select_model(s, body.task, body.model)
    return {"task": body.task, "selected": entry.name}


@router.get("/training")
def training(task: str | None = None, limit: int = Query(20, ge=1, le=MAX_LIMIT),
             s: Store = Depends(_store)) -> list[dict[str, Any]]:
    return [{**dataclasses.asdict(r), "active": r.active} for r in train_runs.list_runs(s, task, limit)]


@router.get("/training/{run_id}")
def training_run(run_id: str, s: Store = Depends(_store)) -> dict[str, Any]:
    run = train_runs.get(s, run_id)
    return {**dataclasses.asdict(run), "active": run.active}


@router.get("/rollout")
def rollout_list(s: Store = Depends(_store), cfg: Settings = Depends(_settings)) -> dict[str, Any]:
    names = sorted({t for t, _ in s.tasks()} | set(cfg.tasks))
    return {"tasks": [rollout.current(s, cfg, t) for t in names], "events": rollout.events(s, limit=50)}


@router.get("/rollout/{task}")
def rollout_show(task: str, s: Store = Depends(_store), cfg: Settings = Depends(_settings)) -> dict[str, Any]:
    return {"state": rollout.current(s, cfg, task), "candidate": rollout.candidate_of(s, cfg, task),
            "events": rollout.events(s, task, limit=50), "autopilot": autopilot.decisions(s, task, limit=50)}


@router.post("/rollout/{task}")
def rollout_set(task: str, body: RolloutChange, s: Store = Depends(_store),
                cfg: Settings = Depends(_settings)) -> Any:
    return rollout.set_mode(s, cfg, task, body.mode, body.canary_percent, actor=ACTOR, reason=body.reason)


@router.post("/rollout/{task}/rollback")
def rollout_rollback(task: str, body: Rollback, s: Store = Depends(_store),
                     cfg: Settings = Depends(_settings)) -> Any:
    return rollout.rollback(s, cfg, task, actor=ACTOR, reason=body.reason, to_mode=body.to)


@router.get("/jobs")
def jobs(task: str | None = None, kind: str | None = None, active: bool | None = None,
         limit: int = Query(50, ge=1, le=MAX_LIMIT), offset: int = Query(0, ge=0, le=MAX_INT),
         s: Store = Depends(_store)) -> list[Any]:
    return runner.list_jobs(s, task=task, kind=kind, active=active, limit=limit, offset=offset)


@router.get("/jobs/kinds")
def job_kinds() -> dict[str, Any]:
    """Each kind's help and the JSON Schema of its arguments."""
    return {name: {"help": k.help, "arguments": k.args.model_json_schema()} for name, k in KINDS.items()}


@router.post("/jobs", status_code=202)
def job_start(body: JobStart, request: Request, s: Store = Depends(_store),
              cfg: Settings = Depends(_settings)) -> Any:
    """Start a job in a worker process; 409 while the task has one of this kind running."""
    return runner.start(s, cfg, body.kind, body.task, body.arguments, jobs_dir=request.app.state.jobs_dir)


@router.get("/jobs/{job_id}")
def job(job_id: str, s: Store = Depends(_store)) -> Any:
    return _job(s, job_id)


@router.post("/jobs/{job_id}/cancel")
def job_cancel(job_id: str, s: Store = Depends(_store)) -> Any:
    _job(s, job_id)
    return runner.cancel(s, job_id)


@router.get("/jobs/{job_id}/log")
def job_log(job_id: str, request: Request, s: Store = Depends(_store)) -> dict[str, Any]:
    found = _job(s, job_id)
    text = runner.read_log(job_id, request.app.state.jobs_dir) or found.log_tail
    return {"id": job_id, "state": found.state, "log": text}


@router.get("/autopilot/{task}")
def autopilot_show(task: str, s: Store = Depends(_store)) -> dict[str, Any]:
    return {"switch": s.autopilots.get(task), "decisions": autopilot.decisions(s, task, limit=100)}


@router.post("/autopilot/{task}")
def autopilot_switch(task: str, body: AutopilotSwitch, request: Request, s: Store = Depends(_store),
                     cfg: Settings = Depends(_settings)) -> dict[str, Any]:
    """Turn the task's autopilot on (it runs as an `autopilot` job) or off."""
    switched = autopilot.switch(s, task, enabled=body.enabled, require_approval=body.require_approval,
                                actor=ACTOR)
    active = runner.list_jobs(s, task=task, kind="autopilot", active=True, limit=1)
    job_id = active[0].id if active else None
    if body.enabled and not active:
        job_id = runner.start(s, cfg, "autopilot", task,
                              {"require_approval": switched["require_approval"], "interval_s": body.interval_s},
                              jobs_dir=request.app.state.jobs_dir).id
    elif not body.enabled and active:
        runner.cancel(s, active[0].id)
    return {"switch": switched, "job": job_id}


@router.post("/autopilot/{task}/approve")
def autopilot_approve(task: str, body: Approval, s: Store = Depends(_store)) -> dict[str, Any]:
    return autopilot.answer(s, task, approve=body.approve, actor=ACTOR, event_id=body.event_id)


def _job(s: Store, job_id: str) -> Any:
    found = s.jobs.get(job_id)
    if found is None:
        raise StarletteHTTPException(404, f"no job '{job_id}'")
    return found


def create_api(settings: Settings, store: Store, *, jobs_dir: Any) -> FastAPI:
    """The API app, mounted at `/api` by `create_app` (inside its guard)."""
    api = FastAPI(title="Fledgling dashboard API", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json", default_response_class=ApiJSON)
    api.state.settings, api.state.store, api.state.jobs_dir = settings, store, jobs_dir
    api.include_router(router)

    @api.exception_handler(runner.JobRefused)
    async def _refused(request: Request, exc: runner.JobRefused) -> ApiJSON:
        return error(409, str(exc))

    @api.exception_handler(FledglingError)
    async def _fledgling(request: Request, exc: FledglingError) -> ApiJSON:
        return error(400, str(exc))

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> ApiJSON:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return ApiJSON({"error": f"{where}: {first.get('msg', 'invalid request')}",
                        "detail": jsonable(exc.errors())}, status_code=422)

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> ApiJSON:
        return error(exc.status_code, str(exc.detail))

    return api


def jsonable(errors: Any) -> Any:
    """Validation errors without the exception objects pydantic puts in their context."""
    return [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
