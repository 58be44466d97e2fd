"""The `autopilots` and `autopilot_events` tables: whether the autopilot drives a task (and
whether it waits for approvals), what it remembers between rounds, and every decision it took
with the evidence behind it.

An event's `status` is `done` (acted on), `pending` (a promotion waiting for an approval),
`approved` / `rejected` (a person answered; an approved promotion is then carried out), or
`stale` (superseded before anyone answered).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from fledgling.store.repository import Repository
from fledgling.store.schema import autopilot_events, autopilots


class Autopilots(Repository):
    def get(self, task: str) -> dict[str, Any] | None:
        with self._read() as c:
            row = c.execute(select(autopilots).where(autopilots.c.task == task)).mappings().first()
        return dict(row) if row else None

    def find(self) -> list[dict[str, Any]]:
        with self._read() as c:
            return [dict(r) for r in c.execute(select(autopilots).order_by(autopilots.c.task)).mappings()]

    def save(self, task: str, *, enabled: bool, require_approval: bool, actor: str,
             state: dict[str, Any]) -> None:
        with self._write(None) as c:
            c.execute(autopilots.delete().where(autopilots.c.task == task))
            c.execute(autopilots.insert().values(task=task, enabled=enabled,
                                                 require_approval=require_approval,
                                                 updated_at=datetime.now(UTC), updated_by=actor,
                                                 state=state))

    def remember(self, task: str, state: dict[str, Any], *, enabled: bool, require_approval: bool,
                 actor: str) -> None:
        """Keep the autopilot's memory; the switch (and who set it) stays, or is made if none."""
        with self._write(None) as c:
            done = c.execute(autopilots.update().where(autopilots.c.task == task).values(state=state))
            if not done.rowcount:
                c.execute(autopilots.insert().values(task=task, enabled=enabled, require_approval=require_approval,
                                                     updated_at=datetime.now(UTC), updated_by=actor, state=state))

    def add_event(self, task: str, *, decision: str, status: str, summary: str,
                  evidence: dict[str, Any]) -> int:
        with self._write(None) as c:
            result = c.execute(autopilot_events.insert().values(
                task=task, at=datetime.now(UTC), decision=decision, status=status, summary=summary,
                evidence=evidence))
            key = result.inserted_primary_key
            return int(key[0]) if key else 0

    def answer(self, event_id: int, *, status: str, actor: str) -> bool:
        """Answer a pending event; False when it was not pending (answered or superseded)."""
        with self._write(None) as c:
            done = c.execute(autopilot_events.update()
                             .where(autopilot_events.c.id == event_id)
                             .where(autopilot_events.c.status == "pending")
                             .values(status=status, decided_by=actor, decided_at=datetime.now(UTC)))
        return bool(done.rowcount)

    def set_status(self, event_id: int, status: str) -> None:
        with self._write(None) as c:
            c.execute(autopilot_events.update().where(autopilot_events.c.id == event_id)
                      .values(status=status))

    def event(self, event_id: int) -> dict[str, Any] | None:
        with self._read() as c:
            row = c.execute(select(autopilot_events)
                            .where(autopilot_events.c.id == event_id)).mappings().first()
        return dict(row) if row else None

    def events(self, task: str | None = None, *, status: str | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
        """The newest decisions first."""
        q = select(autopilot_events).order_by(autopilot_events.c.at.desc(), autopilot_events.c.id.desc())
        if task is not None:
            q = q.where(autopilot_events.c.task == task)
        if status is not None:
            q = q.where(autopilot_events.c.status == status)
        with self._read() as c:
            return [dict(r) for r in c.execute(q.limit(limit)).mappings()]
