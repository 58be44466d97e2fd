"""The `jobs` table: one row per background job (curate, train, eval, report, calibrate,
publish), written by the worker process that runs it and read by the dashboard.

States: `queued` (row written, worker starting), `running`, then one of `succeeded`, `failed`,
`cancelled`. While a job is queued or running its `running_key` is "task|kind"; a unique index
on it makes a second start of the same task and kind fail in the database itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from fledgling.store.repository import Repository
from fledgling.store.schema import jobs

ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("succeeded", "failed", "cancelled")
LOG_TAIL_CHARS = 8000


@dataclass
class Job:
    id: str
    kind: str
    task: str
    arguments: dict[str, Any]
    state: str
    progress: float | None
    message: str | None
    log_tail: str
    result: dict[str, Any] | None
    error: str | None
    worker_pid: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    running_key: str | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


class Jobs(Repository):
    def create(self, job_id: str, *, kind: str, task: str, arguments: dict[str, Any]) -> Job | None:
        """Insert a queued job; None, and nothing written, when this task and kind has one
        queued or running already."""
        now = datetime.now(UTC)
        row: dict[str, Any] = {
            "id": job_id, "kind": kind, "task": task, "arguments": arguments, "state": "queued",
            "progress": None, "message": None, "log_tail": "", "result": None, "error": None,
            "worker_pid": None, "created_at": now, "started_at": None, "finished_at": None,
            "updated_at": now, "running_key": f"{task}|{kind}"}
        try:
            with self._write(None) as c:
                c.execute(jobs.insert().values(**row))
        except IntegrityError:
            return None
        return Job(**row)

    def update(self, job_id: str, *, conn: Connection | None = None, **values: Any) -> None:
        """Set some columns; `updated_at` becomes now; a final state frees the task and kind."""
        now = datetime.now(UTC)
        values["updated_at"] = now
        if values.get("state") in FINAL_STATES:
            values["running_key"] = None
            values.setdefault("finished_at", now)
        if "log_tail" in values and values["log_tail"] is not None:
            values["log_tail"] = values["log_tail"][-LOG_TAIL_CHARS:]
        with self._write(conn) as c:
            c.execute(jobs.update().where(jobs.c.id == job_id).values(**values))

    def mark_running(self, job_id: str, pid: int) -> bool:
        """The worker took the job; False when it is no longer queued (cancelled meanwhile)."""
        now = datetime.now(UTC)
        with self._write(None) as c:
            done = c.execute(jobs.update().where(jobs.c.id == job_id).where(jobs.c.state == "queued")
                             .values(state="running", started_at=now, updated_at=now, worker_pid=pid,
                                     progress=0.0))
        return bool(done.rowcount)

    def finish(self, job_id: str, state: str, **values: Any) -> bool:
        """Move an active job to a final state; False when it had already ended (the first
        ending wins: a cancel and a crash do not overwrite each other)."""
        if state not in FINAL_STATES:
            raise ValueError(f"{state} is not a final state")
        now = datetime.now(UTC)
        values.update(state=state, running_key=None, finished_at=now, updated_at=now)
        if values.get("log_tail") is not None:
            values["log_tail"] = values["log_tail"][-LOG_TAIL_CHARS:]
        with self._write(None) as c:
            done = c.execute(jobs.update().where(jobs.c.id == job_id)
                             .where(jobs.c.state.in_(ACTIVE_STATES)).values(**values))
        return bool(done.rowcount)

    def get(self, job_id: str) -> Job | None:
        with self._read() as c:
            row = c.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return Job(**row) if row else None

    def find(self, *, task: str | None = None, kind: str | None = None, active: bool | None = None,
             limit: int = 50, offset: int = 0) -> list[Job]:
        """The newest jobs first."""
        q = select(jobs)
        if task is not None:
            q = q.where(jobs.c.task == task)
        if kind is not None:
            q = q.where(jobs.c.kind == kind)
        if active is True:
            q = q.where(jobs.c.state.in_(ACTIVE_STATES))
        elif active is False:
            q = q.where(jobs.c.state.in_(FINAL_STATES))
        q = q.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit).offset(offset)
        with self._read() as c:
            return [Job(**r) for r in c.execute(q).mappings()]
