"""The `train_runs` table: one row per training run, updated live while it trains.

States: `planned` (a dry run), `loading`, `training`, `saving`, `completed`, `failed`,
`interrupted`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from fledgling.store.repository import Repository
from fledgling.store.schema import train_runs

FINAL_STATES = ("completed", "failed", "interrupted", "planned")


@dataclass
class TrainRun:
    id: str
    task: str
    backend: str
    base: str
    state: str
    created_at: datetime
    updated_at: datetime
    step: int
    total_steps: int | None
    epoch: float | None
    loss: float | None
    eta_s: float | None
    metrics: dict[str, Any]
    message: str | None
    error: str | None
    run_dir: str
    spec: dict[str, Any]
    model: str | None

    @property
    def active(self) -> bool:
        return self.state not in FINAL_STATES


class TrainRuns(Repository):
    def start(self, run_id: str, *, task: str, backend: str, base: str, run_dir: Path,
              spec: dict[str, Any], state: str = "loading") -> None:
        """Create the run's row, or reset it (keeping `created_at`) when the id exists."""
        now = datetime.now(UTC)
        row: dict[str, Any] = {
            "task": task, "backend": backend, "base": base, "state": state, "created_at": now,
            "updated_at": now, "step": 0, "total_steps": None, "epoch": None, "loss": None,
            "eta_s": None, "metrics": {}, "message": None, "error": None, "run_dir": str(run_dir),
            "spec": spec, "model": None}
        with self._write(None) as c:
            exists = c.execute(select(train_runs.c.id).where(train_runs.c.id == run_id)).first()
            if exists:
                row.pop("created_at")
                c.execute(train_runs.update().where(train_runs.c.id == run_id).values(**row))
            else:
                c.execute(train_runs.insert().values(id=run_id, **row))

    def update(self, run_id: str, *, conn: Connection | None = None, **values: Any) -> None:
        """Set some columns of the run's row; `updated_at` becomes now."""
        values["updated_at"] = datetime.now(UTC)
        with self._write(conn) as c:
            c.execute(train_runs.update().where(train_runs.c.id == run_id).values(**values))

    def get(self, run_id: str) -> TrainRun | None:
        with self._read() as c:
            row = c.execute(select(train_runs).where(train_runs.c.id == run_id)).mappings().first()
        return TrainRun(**row) if row else None

    def find(self, task: str | None = None, limit: int = 20) -> list[TrainRun]:
        """The newest runs first."""
        q = select(train_runs)
        if task is not None:
            q = q.where(train_runs.c.task == task)
        with self._read() as c:
            rows = c.execute(q.order_by(train_runs.c.created_at.desc()).limit(limit)).mappings().all()
        return [TrainRun(**r) for r in rows]
