"""Training runs in the store: one `train_runs` row per run, updated live while it trains.

The row is what `fledgling train status` and the dashboard read: state, step of total, epoch,
last loss, val metrics, ETA, and where the run's files are. States:
`planned` (a --dry-run), `loading`, `training`, `saving`, `completed`, `failed`, `interrupted`.
Its queries and the `TrainRun` record are in `fledgling.store.train_runs`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fledgling.errors import InputError
from fledgling.store import Store
from fledgling.store.train_runs import TrainRun


def new_run_id(store: Store, task: str, backend: str, runs_dir: Path | None = None) -> str:
    """`task-backend-YYYYmmdd-HHMMSS`, with `-2`, `-3`... when a run of that second exists already
    (in the store or as a directory under `runs_dir`): two runs started within one second differ."""
    base = f"{task}-{backend}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    run_id, n = base, 1
    while store.train_runs.get(run_id) is not None or (runs_dir is not None and (runs_dir / run_id).exists()):
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def start(store: Store, *, run_id: str, task: str, backend: str, base: str, run_dir: Path,
          spec: dict[str, Any], state: str = "loading") -> None:
    """Create the run's row (or reset it when a run is resumed under the same id)."""
    store.train_runs.start(run_id, task=task, backend=backend, base=base, run_dir=run_dir, spec=spec,
                           state=state)


def update(store: Store, run_id: str, **values: Any) -> None:
    store.train_runs.update(run_id, **values)


def get(store: Store, run_id: str) -> TrainRun:
    run = store.train_runs.get(run_id)
    if run is None:
        raise InputError(f"no training run '{run_id}'; list runs with `fledgling train status`")
    return run


def list_runs(store: Store, task: str | None = None, limit: int = 20) -> list[TrainRun]:
    """The newest runs first."""
    return store.train_runs.find(task, limit)


def resumable(store: Store, task: str, backend: str) -> TrainRun | None:
    """The newest run of this task and backend that did not complete (the one --resume continues)."""
    for run in list_runs(store, task, limit=50):
        if run.backend == backend and run.state not in ("completed", "planned"):
            return run
    return None


class StoreReporter:
    """A `Reporter` that keeps the run's row current (at most every `interval_s`) and
    forwards each update to an optional terminal view (`fledgling.train.progress`)."""

    def __init__(self, store: Store, run_id: str, *, view: Any = None, interval_s: float = 1.0):
        self.store = store
        self.run_id = run_id
        self.view = view
        self.interval_s = interval_s
        self._pending: dict[str, Any] = {}
        self._metrics: dict[str, Any] = {}
        self._last_flush = 0.0
        self._clock_start: float | None = None
        self._step_start = 0
        self._step = 0
        self._total: int | None = None

    def update(self, *, step: int | None = None, total_steps: int | None = None,
               epoch: float | None = None, loss: float | None = None,
               metrics: dict[str, Any] | None = None, state: str | None = None,
               message: str | None = None) -> None:
        now = time.monotonic()
        if step is not None:
            if self._clock_start is None:
                self._clock_start, self._step_start = now, step
            self._step = self._pending["step"] = step
        if total_steps is not None:
            self._total = self._pending["total_steps"] = total_steps
        if epoch is not None:
            self._pending["epoch"] = float(epoch)
        if loss is not None:
            self._pending["loss"] = float(loss)
        if metrics:
            self._metrics.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
            self._pending["metrics"] = dict(self._metrics)
        if message is not None:
            self._pending["message"] = message
        eta = self._eta(now)
        if eta is not None:
            self._pending["eta_s"] = eta
        if self.view is not None:
            self.view.update(step=step, total_steps=total_steps, epoch=epoch, loss=loss,
                             metrics=metrics, state=state, message=message)
        if state is not None:
            self._pending["state"] = state
        if state is not None or metrics or now - self._last_flush >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            update(self.store, self.run_id, **self._pending)
            self._pending = {}
        self._last_flush = time.monotonic()

    def _eta(self, now: float) -> float | None:
        step, total = self._step, self._total
        if not total or self._clock_start is None or step <= self._step_start:
            return None
        per_step = (now - self._clock_start) / (step - self._step_start)
        return max(0.0, per_step * (total - step))
