"""Which calls a query is about: the filter every call query (store and dashboard) takes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fledgling.store.schema import calls as calls_t


def utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@dataclass(frozen=True)
class CallFilter:
    """Which calls a query is about. Unset fields do not filter."""

    task: str | None = None
    model: str | None = None
    source: str | None = None
    status: str | None = None
    session_id: str | None = None
    trace_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def clauses(self) -> list[Any]:
        c = calls_t.c
        out = [getattr(c, name) == value for name, value in
               (("task", self.task), ("model", self.model), ("source", self.source),
                ("status", self.status), ("session_id", self.session_id),
                ("trace_id", self.trace_id)) if value is not None]
        if self.since is not None:
            out.append(c.created_at >= utc(self.since))
        if self.until is not None:
            out.append(c.created_at < utc(self.until))
        return out
