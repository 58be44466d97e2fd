"""The `datasets` and `dataset_items` tables: curated dataset versions and which call is on
which line of which split."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, func, select

from fledgling.store.repository import Repository
from fledgling.store.schema import dataset_items as items_t
from fledgling.store.schema import datasets as datasets_t


class Datasets(Repository):
    def latest_version(self, task: str) -> int:
        """The highest version stored for `task`, 0 when there is none."""
        with self._read() as c:
            return c.execute(select(func.max(datasets_t.c.version))
                             .where(datasets_t.c.task == task)).scalar() or 0

    def save(self, *, task: str, version: int, contract_version: str | None, format: str, seed: int,
             params: dict[str, Any], report: dict[str, Any], path: str, counts: dict[str, int],
             items: Iterable[tuple[str, int, str]], conn: Connection | None = None,
             batch_size: int = 5000) -> None:
        """Insert a version and its (split, line, call_id) items."""
        with self._write(conn) as c:
            c.execute(datasets_t.insert().values(
                task=task, version=version, created_at=datetime.now(UTC),
                contract_version=contract_version, format=format, seed=seed, params=params,
                report=report, path=path, n_train=counts.get("train", 0),
                n_val=counts.get("val", 0), n_test=counts.get("test", 0)))
            it = iter(items)
            while batch := list(islice(it, batch_size)):
                c.execute(items_t.insert(), [
                    {"task": task, "version": version, "split": split, "line": line,
                     "call_id": call_id} for split, line, call_id in batch])

    def find(self, task: str | None = None) -> list[dict[str, Any]]:
        """Stored versions by task, newest first, without the report (which can be large)."""
        cols = [c for c in datasets_t.c if c.name != "report"]
        q = select(*cols).order_by(datasets_t.c.task, datasets_t.c.version.desc())
        if task is not None:
            q = q.where(datasets_t.c.task == task)
        with self._read() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def get(self, task: str, version: int | None = None) -> dict[str, Any] | None:
        """One version with its curation report; the newest when `version` is None."""
        q = select(datasets_t).where(datasets_t.c.task == task)
        if version is not None:
            q = q.where(datasets_t.c.version == version)
        with self._read() as c:
            row = c.execute(q.order_by(datasets_t.c.version.desc()).limit(1)).mappings().first()
        return dict(row) if row else None

    def call_ids(self, task: str, version: int, split: str) -> list[str]:
        """The call behind each line of one split file, in line order."""
        with self._read() as c:
            return list(c.execute(select(items_t.c.call_id).where(
                items_t.c.task == task, items_t.c.version == version, items_t.c.split == split)
                .order_by(items_t.c.line)).scalars())
