"""The `eval_runs` and `eval_items` tables: one model on one split, and every item's
prediction and scores. Rows go in and come out as plain dicts of those columns."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from fledgling.store.repository import Repository
from fledgling.store.schema import eval_items as items_t
from fledgling.store.schema import eval_runs as runs_t


class EvalRuns(Repository):
    def save(self, run: dict[str, Any], items: list[dict[str, Any]], *,
             conn: Connection | None = None) -> None:
        """A run's row and its items (`position` is set from their order), all or nothing."""
        with self._write(conn) as c:
            c.execute(runs_t.insert().values(**run, n_items=len(items)))
            if items:
                c.execute(items_t.insert(), [{"run_id": run["id"], "position": i, **item}
                                             for i, item in enumerate(items)])

    def find(self, task: str, split: str | None = None) -> list[dict[str, Any]]:
        """Runs of a task, newest first, without their items."""
        q = select(runs_t).where(runs_t.c.task == task).order_by(runs_t.c.created_at.desc())
        if split:
            q = q.where(runs_t.c.split == split)
        with self._read() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def items(self, run_id: str) -> list[dict[str, Any]]:
        """A run's items in the order they were evaluated."""
        with self._read() as c:
            return [dict(r) for r in c.execute(select(items_t).where(items_t.c.run_id == run_id)
                                               .order_by(items_t.c.position)).mappings()]
