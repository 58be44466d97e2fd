"""The `catalog_models` and `model_selections` tables: stored model entries, and which one
each task has selected as its candidate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from fledgling.store.repository import Repository
from fledgling.store.schema import catalog_models, model_selections


class Catalog(Repository):
    def find(self, task: str | None = None) -> list[dict[str, Any]]:
        """Entries, oldest first: all of them, or those of `task` and the task-less ones."""
        q = select(catalog_models).order_by(catalog_models.c.created_at)
        if task is not None:
            q = q.where((catalog_models.c.task == task) | catalog_models.c.task.is_(None))
        with self._read() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def get(self, name: str) -> dict[str, Any] | None:
        with self._read() as c:
            row = c.execute(select(catalog_models)
                            .where(catalog_models.c.name == name)).mappings().first()
        return dict(row) if row else None

    def add(self, row: dict[str, Any], *, conn: Connection | None = None) -> bool:
        """Insert an entry (a dict of the table's columns). False, and nothing written, when
        its name is taken."""
        with self._write(conn) as c:
            taken = c.execute(select(catalog_models.c.name)
                              .where(catalog_models.c.name == row["name"])).first()
            if taken:
                return False
            c.execute(catalog_models.insert().values(**row))
            return True

    def select(self, task: str, model: str) -> None:
        """Make `model` the task's candidate, replacing the previous choice."""
        with self._write(None) as c:
            c.execute(model_selections.delete().where(model_selections.c.task == task))
            c.execute(model_selections.insert().values(task=task, model=model,
                                                       selected_at=datetime.now(UTC)))

    def selected(self, task: str) -> str | None:
        """The name of the task's selected candidate, None when nothing was selected."""
        with self._read() as c:
            return c.execute(select(model_selections.c.model)
                             .where(model_selections.c.task == task)).scalar()
