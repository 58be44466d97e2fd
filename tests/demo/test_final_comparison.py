"""The train stage's final comparison: which test items it scores, and the figures it leaves."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from fledgling.contracts import infer_and_save
from fledgling.curate import curate, registry
from fledgling.demo import TASKS, generate_calls
from fledgling.demo.pipeline import DemoContext
from fledgling.demo.train_stage import FINAL_ITEMS, final_comparison
from fledgling.models.spec import open_backend, resolve_model
from fledgling.store import Store


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> DemoContext:
    root = tmp_path_factory.mktemp("final")
    store = Store(f"sqlite:///{root}/demo.db")
    store.insert_calls(generate_calls(seed=5, n=900))
    for task in TASKS:
        infer_and_save(store, task)
        curate(store, task, seed=5, out_dir=root / "datasets", label_checks=("grounding",))
    return DemoContext(store=store, console=Console(file=io.StringIO()), out_dir=Path(root / "demo"))


@pytest.mark.parametrize("task", TASKS)
def test_scores_the_test_items_that_are_calls_for_both_models(ctx: DemoContext, task: str) -> None:
    test_ids = registry.call_ids(ctx.store, task, registry.latest_version(ctx.store, task), "test")
    calls = [ctx.store.get_call(i) for i in test_ids]
    if task == "support-agent":   # items whose right answer calls a tool, read from the generator's truth
        expected = [c.id for c in calls if c.metadata["ground_truth"].get("tool_calls")]
    else:
        expected = [c.id for c in calls]
    recorded = open_backend(resolve_model("recorded"), recorded_calls=calls)
    summary = final_comparison(ctx, task, recorded)
    figures = ctx.results["final_comparison"][task]
    assert figures["n"] == min(len(expected), FINAL_ITEMS) > 0
    assert f"on {figures['n']} test call items" in summary
    # the same answers scored twice give the same figure; the demo LLM is right on most items
    assert figures["tuned"] == figures["recorded LLM"]
    assert 0.85 <= figures["recorded LLM"]["mean"] <= 1.0
    assert figures["recorded LLM"]["low"] <= figures["recorded LLM"]["mean"] <= figures["recorded LLM"]["high"]
