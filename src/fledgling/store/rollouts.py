"""The `rollouts` and `rollout_events` tables: each task's run-time routing mode and share,
and every change to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from fledgling.store.repository import Repository
from fledgling.store.schema import rollout_events, rollouts


class Rollouts(Repository):
    def get(self, task: str) -> dict[str, Any] | None:
        """The task's stored mode, None when it was never changed at run time."""
        with self._read() as c:
            row = c.execute(select(rollouts).where(rollouts.c.task == task)).mappings().first()
        return dict(row) if row else None

    def find(self) -> list[dict[str, Any]]:
        """Every task's stored mode, in one query."""
        with self._read() as c:
            return [dict(r) for r in c.execute(select(rollouts)).mappings()]

    def save(self, task: str, *, mode: str, canary_percent: float, at: datetime, actor: str,
             kind: str, from_mode: str | None, from_percent: float | None,
             reason: str | None, min_confidence: float | None = None, confidence_score: str | None = None,
             audit_percent: float | None = None) -> None:
        """Replace the task's mode (and its selective threshold, if any) and append the event
        that says so, in one transaction."""
        with self._write(None) as c:
            c.execute(rollouts.delete().where(rollouts.c.task == task))
            c.execute(rollouts.insert().values(task=task, mode=mode, canary_percent=canary_percent,
                                               updated_at=at, updated_by=actor, min_confidence=min_confidence,
                                               confidence_score=confidence_score, audit_percent=audit_percent))
            c.execute(rollout_events.insert().values(
                task=task, at=at, kind=kind, from_mode=from_mode, to_mode=mode,
                from_percent=from_percent, to_percent=canary_percent, actor=actor, reason=reason))

    def events(self, task: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest changes and rollbacks first."""
        q = select(rollout_events).order_by(rollout_events.c.at.desc(), rollout_events.c.id.desc())
        if task is not None:
            q = q.where(rollout_events.c.task == task)
        with self._read() as c:
            return [dict(r) for r in c.execute(q.limit(limit)).mappings()]
