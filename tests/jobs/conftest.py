"""Jobs fixtures: a store holding one demo task's calls, its contract and a curated dataset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fledgling.contracts import infer_contract, save_contract
from fledgling.curate import curate
from fledgling.demo import generate_calls
from fledgling.store import CallFilter, Store

TASK = "support-agent"


def fill(store: Store, workdir: Path, n: int = 240) -> None:
    calls = [c for c in generate_calls(seed=0, n=n) if c.task == TASK]
    store.insert_calls(calls)
    save_contract(store, infer_contract(store.iter_calls(CallFilter(task=TASK)), TASK))
    curate(store, TASK, seed=0, out_dir=workdir / "datasets", workers=0)


@pytest.fixture
def filled(store_url: str, tmp_path: Path) -> Iterator[Store]:
    store = Store(store_url)
    fill(store, tmp_path)
    yield store
    store.close()


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama checkpoint (tests/models/tiny.py), seed 0."""
    from tests.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-base"), seed=0)
