"""Read queries for the dashboard's pages, over the `calls` table.

They select only the columns a page shows and page with keyset cursors over the store's
`(created_at, id)` order, so a page of the newest, a filtered or a very old window of 100,000
calls costs about the same.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, literal_column, or_, select

from fledgling.store.repository import Repository
from fledgling.store.schema import calls as calls_t

if TYPE_CHECKING:
    from fledgling.store.filters import CallFilter

Key = tuple[datetime, str]  # (created_at, id): a position in the store's order of calls


class Dashboard(Repository):
    def task_traffic(self) -> list[dict[str, Any]]:
        """Per task, busiest first: calls, errors, cost_usd, input_tokens, output_tokens,
        mean_latency_ms and last_call (the newest created_at), as the database sums them."""
        c = calls_t.c
        q = (select(c.task, func.count().label("calls"),
                    func.sum(func.cast(c.status == "error", c.input_tokens.type)).label("errors"),
                    func.coalesce(func.sum(c.cost_usd), 0.0).label("cost_usd"),
                    func.coalesce(func.sum(c.input_tokens), 0).label("input_tokens"),
                    func.coalesce(func.sum(c.output_tokens), 0).label("output_tokens"),
                    func.avg(c.latency_ms).label("mean_latency_ms"),
                    func.max(c.created_at).label("last_call"))
             .group_by(c.task).order_by(func.count().desc(), c.task))
        with self._read() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def trace_window(self, flt: CallFilter, *, before: Key | None = None, after: Key | None = None,
                     limit: int, count_cap: int) -> tuple[list[dict[str, Any]], int, bool]:
        """(up to `limit + 1` calls, the number matching `flt`, whether that number was capped).

        The calls are newest first: the newest, those older than `before`, or, in oldest-first
        order, those newer than `after`; the extra one tells the caller there are more. The
        count is exact when an index answers it (no filter, task, time), else it stops at
        `count_cap + 1`, which reads at most that many entries."""
        c = calls_t.c
        cols = (c.id, c.created_at, c.task, c.model, c.source, c.status, c.error, c.latency_ms,
                c.cost_usd, c.response)
        q = select(*cols).where(and_(True, *self._walk_clauses(flt)))
        if before:
            at, cid = before
            q = q.where(or_(c.created_at < at, and_(c.created_at == at, c.id < cid)))
        if after:
            at, cid = after
            q = q.where(or_(c.created_at > at, and_(c.created_at == at, c.id > cid)))
            q = q.order_by(c.created_at, c.id)
        else:
            q = q.order_by(c.created_at.desc(), c.id.desc())
        where = and_(True, *flt.clauses())
        cappable = flt.model is not None or flt.source is not None or flt.status is not None
        if cappable:
            count = select(func.count()).select_from(
                select(calls_t.c.id).where(where).limit(count_cap + 1).subquery())
        else:
            count = select(func.count()).select_from(calls_t).where(where)
        with self._read() as conn:
            rows = [dict(r) for r in conn.execute(q.limit(limit + 1)).mappings()]
            total = conn.execute(count).scalar_one()
        return rows, total, cappable and total > count_cap

    def _walk_clauses(self, flt: CallFilter) -> list[Any]:
        """The filter for the page query. On SQLite, model/source/status are written
        `+calls.col` so the planner walks the (task,) created_at index in order and stops after
        one page, instead of collecting every row of a low-selectivity single-column index and
        sorting it."""
        if self.dialect != "sqlite":
            return flt.clauses()
        out = replace(flt, model=None, source=None, status=None).clauses()
        for name in ("model", "source", "status"):
            value = getattr(flt, name)
            if value is not None:
                out.append(literal_column(f"+calls.{name}") == value)
        return out

    def distinct_values(self, column: str) -> list[str]:
        """The values a traces filter can take (task, model, source), from the column's index."""
        col = getattr(calls_t.c, column)
        with self._read() as conn:
            return [v for v in conn.execute(select(col).where(col.is_not(None)).distinct()
                                            .order_by(col)).scalars()]

    def fallbacks(self, since: datetime) -> dict[str, tuple[int, int]]:
        """Per task, since `since`: (calls routed to the candidate, by canary share or swapped;
        of those, how many the LLM answered instead: `metadata.route.fallback` is set)."""
        c = calls_t.c
        mode = c.metadata["route"]["mode"].as_string()
        to_candidate = or_(mode == "swapped",
                           and_(mode == "canary", c.metadata["route"]["canary"].as_boolean().is_(True)))
        fell_back = c.metadata["route"]["fallback"].as_string().is_not(None)
        q = (select(c.task, func.count(), func.sum(func.cast(fell_back, c.input_tokens.type)))
             .where(c.created_at >= since, to_candidate).group_by(c.task))
        with self._read() as conn:
            return {task: (n, int(n_fb or 0)) for task, n, n_fb in conn.execute(q)}
