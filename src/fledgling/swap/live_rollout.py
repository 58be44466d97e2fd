"""The rollout state as the gateway sees it: each task's mode, canary share and candidate, read
from the store (`fledgling.swap.rollout`) and kept for a short time.

The request path never waits on the database: it reads the cached state, and a stale cache is
refreshed in the background (one query for every task). A change through the admin API, or a
rollback by the live gate, refreshes at once; one made elsewhere (`fledgling rollout set`, the
dashboard, another gateway process) is seen within `ttl_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from fledgling.config import Settings
from fledgling.store import Store
from fledgling.swap import rollout

log = logging.getLogger("fledgling.gateway")
TTL_S = 1.0


@dataclass(frozen=True)
class TaskRollout:
    task: str
    mode: str
    canary_percent: float
    candidate: str | None
    changed_at: float | None  # the stored change's timestamp: a new value restarts the live gate
    min_confidence: float | None = None  # a selective rollout's threshold (`swap/selective.py`)
    confidence_score: str | None = None
    audit_percent: float | None = None


class LiveRollout:
    def __init__(self, store: Store, settings: Settings, *, ttl_s: float = TTL_S):
        self.store = store
        self.settings = settings
        self.ttl_s = ttl_s
        self._states: dict[str, TaskRollout] = {}
        self._loaded_at = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        self.on_change: list[Callable[[list[TaskRollout]], None]] = []

    def get(self, task: str) -> TaskRollout | None:
        """The task's rollout (None: record). Schedules a background refresh when stale."""
        if time.monotonic() - self._loaded_at > self.ttl_s and self._refreshing is None:
            self._refreshing = asyncio.get_running_loop().create_task(self.refresh())
        return self._states.get(task)

    def tasks(self) -> list[TaskRollout]:
        return list(self._states.values())

    async def refresh(self) -> None:
        """Read every task's state (off the event loop); on a store error keep the last one."""
        try:
            states = await asyncio.to_thread(self._read)
            changed = [t for t in states.values() if self._states.get(t.task) != t]
            self._states = states
            self._loaded_at = time.monotonic()
            for hook in self.on_change:
                hook(changed)
        except Exception as exc:  # a store outage must not stop serving: the last state stands
            log.warning("rollout state not refreshed (%s); keeping the last one", str(exc).splitlines()[0])
            self._loaded_at = time.monotonic()
        finally:
            self._refreshing = None

    def _read(self) -> dict[str, TaskRollout]:
        out = {}
        for task, state in rollout.all_current(self.store, self.settings).items():
            candidate = (rollout.candidate_of(self.store, self.settings, task)
                         if state.mode != "record" else None)
            changed = state.updated_at.timestamp() if state.updated_at else None
            out[task] = TaskRollout(task, state.mode, state.canary_percent, candidate, changed,
                                    state.min_confidence, state.confidence_score, state.audit_percent)
        return out
