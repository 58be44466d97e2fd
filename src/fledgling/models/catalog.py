"""The model catalog: base models and trained candidates, and which one each task uses.

Entries live in the store's `catalog_models` table (trained adapters add themselves with their
manifest); the bundled base models are always listed. `select_model` records a task's default
candidate in `model_selections`; evals and the gateway read it back with `selected_model`.
Every entry converts to the same `ModelSettings` a `[models.NAME]` block in fledgling.toml
gives, so anything that runs a configured model runs a catalog entry too. The CLI
(`fledgling models list|add|select`) and the dashboard call these functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from fledgling.config import ModelSettings
from fledgling.errors import InputError
from fledgling.store import Connection, Store

Origin = Literal["base", "adapter", "merged", "hosted", "external"]
BUILTIN_BASES = {"smollm2-135m-instruct": "SmolLM2-135M-Instruct, the bundled Q4_1 GGUF (dequantised)"}


@dataclass
class CatalogModel:
    name: str
    kind: str
    origin: str
    task: str | None = None
    base: str | None = None
    path: str | None = None
    adapter: str | None = None
    base_url: str | None = None
    model_id: str | None = None
    run_id: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    builtin: bool = False

    def settings(self) -> ModelSettings:
        """The entry as a `[models.NAME]` block: what evals and the gateway know how to run."""
        return ModelSettings.model_validate({"kind": self.kind, "base": self.base, "path": self.path,
                                             "adapter": self.adapter, "base_url": self.base_url,
                                             "model": self.model_id})


def list_models(store: Store, task: str | None = None) -> list[CatalogModel]:
    """Built-in bases, then stored entries (those of `task` and the task-less ones when given)."""
    out = [_builtin(name) for name in BUILTIN_BASES]
    out.extend(CatalogModel(**row) for row in store.catalog.find(task))
    return out


def get_model(store: Store, name: str) -> CatalogModel:
    if name in BUILTIN_BASES:
        return _builtin(name)
    row = store.catalog.get(name)
    if row is None:
        raise InputError(f"no model '{name}' in the catalog; see `fledgling models list`, or add it "
                         "with `fledgling models add`")
    return CatalogModel(**row)


def add_model(store: Store, name: str, *, kind: str, origin: Origin = "external", task: str | None = None,
              base: str | None = None, path: str | None = None, adapter: str | None = None,
              base_url: str | None = None, model_id: str | None = None, run_id: str | None = None,
              manifest: dict[str, Any] | None = None, conn: Connection | None = None) -> CatalogModel:
    """Add an entry; its settings are validated first, and a taken name is an error."""
    entry = CatalogModel(name=name, kind=kind, origin=origin, task=task, base=base, path=path,
                         adapter=adapter, base_url=base_url, model_id=model_id, run_id=run_id,
                         manifest=manifest or {}, created_at=datetime.now(UTC))
    if not name or name in BUILTIN_BASES:
        raise InputError(f"'{name}' cannot be used as a model name; pick another")
    try:
        entry.settings()
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise InputError(f"model '{name}': {msg}") from None
    row = {k: v for k, v in entry.__dict__.items() if k != "builtin"}
    if not store.catalog.add(row, conn=conn):
        raise InputError(f"a model named '{name}' is already in the catalog; choose another name")
    return entry


def select_model(store: Store, task: str, name: str) -> CatalogModel:
    """Make `name` the task's default candidate (replaces the previous choice)."""
    entry = get_model(store, name)
    if entry.task is not None and entry.task != task:
        raise InputError(f"model '{name}' was trained for task '{entry.task}', not '{task}'; "
                         f"select one of `fledgling models list --task {task}`")
    store.catalog.select(task, name)
    return entry


def selected_model(store: Store, task: str) -> CatalogModel | None:
    """The task's chosen candidate, or None when nothing was selected."""
    name = store.catalog.selected(task)
    return get_model(store, name) if name else None


def _builtin(name: str) -> CatalogModel:
    return CatalogModel(name=name, kind="gguf", origin="base", base=name,
                        manifest={"description": BUILTIN_BASES[name]}, builtin=True)
