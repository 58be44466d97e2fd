"""Dataset versions in the trace store: what was curated, from which calls, with which settings.

`datasets` has one row per version (task, version, seed, params, report, path, split sizes);
`dataset_items` has one row per line of each split file with the call id it came from, so
`sqlite3 .fledgling/fledgling.db "select * from dataset_items where call_id = '...'"` answers
"which dataset is this call in, and on which line".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fledgling.store import Connection, Store


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
    return store.datasets.latest_version(task)


def record(store: Store, dataset: Dataset, params: dict[str, Any],
           items: Iterable[tuple[str, int, str]], *, conn: Connection | None = None) -> None:
    """Insert a version and its (split, line, call_id) items (inside `conn`'s transaction when given)."""
    store.datasets.save(task=dataset.task, version=dataset.version,
                        contract_version=dataset.contract_version, format=dataset.format,
                        seed=dataset.seed, params=params, report=dataset.report,
                        path=str(dataset.path), counts=dataset.counts, items=items, conn=conn)


def list_datasets(store: Store, task: str | None = None) -> list[dict[str, Any]]:
    """Stored versions, newest first (without the report, which can be large)."""
    return store.datasets.find(task)


def call_ids(store: Store, task: str, version: int, split: str) -> list[str]:
    """The call behind each line of one split file, in line order."""
    return store.datasets.call_ids(task, version, split)
