"""What the dashboard's pages show, from `store.dashboard`'s read queries: per-task traffic,
pages of traces behind opaque cursors, filter values, fallback rates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from fledgling.store import CallFilter, Store

PAGE_SIZE = 50
COUNT_CAP = 10_000


@dataclass
class TaskTraffic:
    task: str
    calls: int
    errors: int
    cost_usd: float
    input_tokens: int
    output_tokens: int
    mean_latency_ms: float | None
    last_call: datetime | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


def task_traffic(store: Store) -> list[TaskTraffic]:
    """Per task: how many calls, errors, tokens, spend, mean latency, and the latest call."""
    return [TaskTraffic(task=r["task"], calls=r["calls"], errors=int(r["errors"] or 0),
                        cost_usd=float(r["cost_usd"]), input_tokens=int(r["input_tokens"]),
                        output_tokens=int(r["output_tokens"]),
                        mean_latency_ms=None if r["mean_latency_ms"] is None else float(r["mean_latency_ms"]),
                        last_call=_aware(r["last_call"])) for r in store.dashboard.task_traffic()]


@dataclass
class TraceRow:
    id: str
    created_at: datetime
    task: str
    model: str | None
    source: str
    status: str
    latency_ms: float | None
    cost_usd: float | None
    answer: str
    tools: list[str]


@dataclass
class TracePage:
    rows: list[TraceRow]
    total: int  # COUNT_CAP + 1 when capped: counting exactly would scan the table
    newer: str | None  # cursor for the page of newer calls, None on the newest page
    older: str | None  # cursor for the page of older calls, None on the oldest page
    total_capped: bool = False


def encode_cursor(created_at: datetime, call_id: str) -> str:
    return f"{_aware(created_at).isoformat()}|{call_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    at, sep, call_id = cursor.partition("|")
    if not sep or not call_id:
        return None
    try:
        return _aware(datetime.fromisoformat(at)), call_id
    except ValueError:
        return None


def trace_page(store: Store, flt: CallFilter, *, before: str | None = None, after: str | None = None,
               limit: int = PAGE_SIZE) -> TracePage:
    """One page of calls, newest first: the newest, those older than `before`, or those newer
    than `after` (a cursor from a previous page)."""
    key_before = decode_cursor(before) if before else None
    key_after = decode_cursor(after) if after and not key_before else None
    rows, total, capped = store.dashboard.trace_window(flt, before=key_before, after=key_after,
                                                       limit=limit, count_cap=COUNT_CAP)
    more = len(rows) > limit
    rows = rows[:limit]
    if key_after:
        rows.reverse()
    items = [_trace_row(r) for r in rows]
    if not items:
        return TracePage([], total, None, None, capped)
    first, last = items[0], items[-1]
    has_newer = more if key_after else key_before is not None
    has_older = True if key_after else more
    return TracePage(items, total,
                     encode_cursor(first.created_at, first.id) if has_newer else None,
                     encode_cursor(last.created_at, last.id) if has_older else None, capped)


def _trace_row(r: dict[str, Any]) -> TraceRow:
    resp = r["response"] or {}
    tools = [tc.get("name") or (tc.get("function") or {}).get("name", "")
             for tc in resp.get("tool_calls") or []]
    if r["status"] == "error":
        answer = r["error"] or "error"
    elif tools:
        answer = ", ".join(tools)
    else:
        answer = (resp.get("content") or "").replace("\n", " ")
    return TraceRow(id=r["id"], created_at=_aware(r["created_at"]), task=r["task"], model=r["model"],
                    source=r["source"], status=r["status"], latency_ms=r["latency_ms"],
                    cost_usd=r["cost_usd"], answer=answer[:120], tools=tools)


def distinct_values(store: Store, column: str) -> list[str]:
    """The values a traces filter can take (task, model, source), from the column's index."""
    return store.dashboard.distinct_values(column)


def dataset_report(store: Store, task: str, version: int) -> dict[str, Any] | None:
    """One dataset version with its curation report (`list_datasets` leaves the report out)."""
    return store.datasets.get(task, version)


@overload
def _aware(value: datetime) -> datetime: ...


@overload
def _aware(value: None) -> None: ...


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def fallback_rates(store: Store, *, hours: float = 24.0) -> dict[str, float]:
    """Per task, over the last `hours`: of the calls routed to the candidate (canary share or
    swapped), the share the LLM answered instead (`metadata.route.fallback` set by the gateway)."""
    since = datetime.now(UTC) - timedelta(hours=hours)
    return {task: n_fb / n for task, (n, n_fb) in store.dashboard.fallbacks(since).items() if n}
