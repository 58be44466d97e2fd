"""Read queries the dashboard needs that the library does not offer (yet).

They select only the columns a page shows and page with keyset cursors over the store's
`(created_at, id)` order, so a page of the newest, a filtered or a very old window of 100,000
calls costs about the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal_column, or_, select

from fledgling.store import CallFilter, Store
from fledgling.store.schema import calls as calls_t
from fledgling.store.schema import datasets as datasets_t

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
    c = calls_t.c
    q = (select(c.task, func.count(), func.sum(func.cast(c.status == "error", c.input_tokens.type)),
                func.coalesce(func.sum(c.cost_usd), 0.0), func.coalesce(func.sum(c.input_tokens), 0),
                func.coalesce(func.sum(c.output_tokens), 0), func.avg(c.latency_ms),
                func.max(c.created_at))
         .group_by(c.task).order_by(func.count().desc(), c.task))
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    return [TaskTraffic(task=r[0], calls=r[1], errors=int(r[2] or 0), cost_usd=float(r[3]),
                        input_tokens=int(r[4]), output_tokens=int(r[5]),
                        mean_latency_ms=float(r[6]) if r[6] is not None else None,
                        last_call=_aware(r[7])) for r in rows]


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
    c = calls_t.c
    cols = (c.id, c.created_at, c.task, c.model, c.source, c.status, c.error, c.latency_ms,
            c.cost_usd, c.response)
    where = and_(True, *flt.clauses())
    walk = and_(True, *_walk_clauses(store, flt))
    key_before = decode_cursor(before) if before else None
    key_after = decode_cursor(after) if after and not key_before else None
    q = select(*cols).where(walk)
    if key_before:
        at, cid = key_before
        q = q.where(or_(c.created_at < at, and_(c.created_at == at, c.id < cid)))
    if key_after:
        at, cid = key_after
        q = q.where(or_(c.created_at > at, and_(c.created_at == at, c.id > cid)))
        q = q.order_by(c.created_at, c.id)
    else:
        q = q.order_by(c.created_at.desc(), c.id.desc())
    with store.engine.connect() as conn:
        rows = conn.execute(q.limit(limit + 1)).all()
        count, cappable = _count(flt, where)
        total = conn.execute(count).scalar_one()
    capped = cappable and total > COUNT_CAP
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


def _walk_clauses(store: Store, flt: CallFilter) -> list[Any]:
    """The filter for the page query. On SQLite, model/source/status are written `+calls.col`
    so the planner walks the (task,) created_at index in order and stops after one page,
    instead of collecting every row of a low-selectivity single-column index and sorting it."""
    if store.dialect != "sqlite":
        return flt.clauses()
    plain = CallFilter(task=flt.task, session_id=flt.session_id, trace_id=flt.trace_id,
                       since=flt.since, until=flt.until)
    out = plain.clauses()
    for name in ("model", "source", "status"):
        value = getattr(flt, name)
        if value is not None:
            out.append(literal_column(f"+calls.{name}") == value)
    return out


def _count(flt: CallFilter, where: Any) -> tuple[Any, bool]:
    """(the count query, whether it is capped): exact when an index answers it (no filter,
    task, time); else capped at COUNT_CAP + 1, which reads at most that many entries."""
    if flt.model is None and flt.source is None and flt.status is None:
        return select(func.count()).select_from(calls_t).where(where), False
    capped = select(calls_t.c.id).where(where).limit(COUNT_CAP + 1).subquery()
    return select(func.count()).select_from(capped), True


def _trace_row(r: Any) -> TraceRow:
    resp = r.response or {}
    tools = [tc.get("name") or (tc.get("function") or {}).get("name", "")
             for tc in resp.get("tool_calls") or []]
    if r.status == "error":
        answer = r.error or "error"
    elif tools:
        answer = ", ".join(tools)
    else:
        answer = (resp.get("content") or "").replace("\n", " ")
    return TraceRow(id=r.id, created_at=_aware(r.created_at), task=r.task, model=r.model,
                    source=r.source, status=r.status, latency_ms=r.latency_ms, cost_usd=r.cost_usd,
                    answer=answer[:120], tools=tools)


def distinct_values(store: Store, column: str) -> list[str]:
    """The values a traces filter can take (task, model, source), from the column's index."""
    col = getattr(calls_t.c, column)
    with store.engine.connect() as conn:
        return [v for v in conn.execute(select(col).where(col.is_not(None)).distinct()
                                        .order_by(col)).scalars()]


def dataset_report(store: Store, task: str, version: int) -> dict[str, Any] | None:
    """One dataset version with its curation report (`list_datasets` leaves the report out)."""
    with store.engine.connect() as conn:
        row = conn.execute(select(datasets_t).where(datasets_t.c.task == task,
                                                    datasets_t.c.version == version)).mappings().first()
    return dict(row) if row else None


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def fallback_rates(store: Store, *, hours: float = 24.0) -> dict[str, float]:
    """Per task, over the last `hours`: of the calls routed to the candidate (canary share or
    swapped), the share the LLM answered instead (`metadata.route.fallback` set by the gateway)."""
    c = calls_t.c
    mode = c.metadata["route"]["mode"].as_string()
    to_candidate = or_(mode == "swapped",
                       and_(mode == "canary", c.metadata["route"]["canary"].as_boolean().is_(True)))
    fell_back = c.metadata["route"]["fallback"].as_string().is_not(None)
    since = datetime.now(UTC) - timedelta(hours=hours)
    q = (select(c.task, func.count(), func.sum(func.cast(fell_back, c.input_tokens.type)))
         .where(c.created_at >= since, to_candidate).group_by(c.task))
    with store.engine.connect() as conn:
        return {task: int(n_fb or 0) / n for task, n, n_fb in conn.execute(q) if n}
