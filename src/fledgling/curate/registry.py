"""Dataset versions in the trace store: what was curated, from which calls, with which settings.

`datasets` has one row per version (task, version, seed, params, report, path, split sizes);
`dataset_items` has one row per line of each split file with the call id it came from, so
`sqlite3 .fledgling/fledgling.db "select * from dataset_items where call_id = '...'"` answers
"which dataset is this call in, and on which line".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from fledgling.store import Store
from fledgling.store.schema import dataset_items as items_t
from fledgling.store.schema import datasets as datasets_t


@dataclass(frozen=True)
class Dataset:
    """One curated dataset version: where its files are and what the curation found."""

    task: str
    version: int
    path: Path
    format: str
    seed: int
    contract_version: str | None
    counts: dict[str, int]
    report: dict[str, Any]
    new: bool = True


def latest_version(store: Store, task: str) -> int:
    """The highest version stored for `task`, 0 when there is none."""
    with store.engine.connect() as c:
        return c.execute(select(func.max(datasets_t.c.version))
                         .where(datasets_t.c.task == task)).scalar() or 0


def record(conn: Connection, dataset: Dataset, params: dict[str, Any],
           items: Iterable[tuple[str, int, str]], batch_size: int = 5000) -> None:
    """Insert a version and its (split, line, call_id) items inside the caller's transaction."""
    conn.execute(datasets_t.insert().values(
        task=dataset.task, version=dataset.version, created_at=datetime.now(UTC),
        contract_version=dataset.contract_version, format=dataset.format, seed=dataset.seed,
        params=params, report=dataset.report, path=str(dataset.path),
        n_train=dataset.counts.get("train", 0), n_val=dataset.counts.get("val", 0),
        n_test=dataset.counts.get("test", 0)))
    it = iter(items)
    while batch := list(islice(it, batch_size)):
        conn.execute(items_t.insert(), [
            {"task": dataset.task, "version": dataset.version, "split": split, "line": line,
             "call_id": call_id} for split, line, call_id in batch])


def list_datasets(store: Store, task: str | None = None) -> list[dict[str, Any]]:
    """Stored versions, newest first (without the report, which can be large)."""
    cols = [c for c in datasets_t.c if c.name != "report"]
    q = select(*cols).order_by(datasets_t.c.task, datasets_t.c.version.desc())
    if task is not None:
        q = q.where(datasets_t.c.task == task)
    with store.engine.connect() as c:
        return [dict(r) for r in c.execute(q).mappings()]


def call_ids(store: Store, task: str, version: int, split: str) -> list[str]:
    """The call behind each line of one split file, in line order."""
    with store.engine.connect() as c:
        return list(c.execute(select(items_t.c.call_id).where(
            items_t.c.task == task, items_t.c.version == version, items_t.c.split == split)
            .order_by(items_t.c.line)).scalars())
