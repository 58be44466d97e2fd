"""Honest latency: a batched eval's figures are each item's own time, batch-1 when measured so,
and every run says which; a real local model (the tiny random Llama) on curated demo data."""

from __future__ import annotations

import pytest

from fledgling.calls import Request
from fledgling.contracts import infer_contract, save_contract
from fledgling.curate.pipeline import curate
from fledgling.demo import generate_calls
from fledgling.evals.runs import describe_latency, evaluate_model, load_items
from fledgling.evals.stats import percentile
from fledgling.models import resolve_model
from fledgling.models.local import LocalBackend
from fledgling.report.tables import run_table
from fledgling.store import CallFilter


@pytest.fixture
def curated(sqlite_store, tmp_path):
    sqlite_store.insert_calls(generate_calls(seed=3, n=240))
    save_contract(sqlite_store, infer_contract(sqlite_store.iter_calls(CallFilter(task="support-agent")),
                                               "support-agent"))
    curate(sqlite_store, "support-agent", out_dir=tmp_path / "datasets")
    return sqlite_store


def test_a_batched_local_run_takes_its_figures_from_a_batch1_pass(curated, tiny_model_dir):
    spec = resolve_model(f"hf:{tiny_model_dir}")
    run = evaluate_model(curated, "support-agent", spec, limit=6, batch_size=3, max_new_tokens=12,
                         latency_items=3)
    s = run.summary
    assert s["latency_basis"] == {"kind": "batch-1", "n": 3, "batch_size": 1}
    assert len(s["latency_samples_ms"]) == 3 and all(v > 0 for v in s["latency_samples_ms"])
    assert s["latency_ms"]["p50"] == percentile(s["latency_samples_ms"], 50)
    in_batch = [i.latency_ms for i in run.items]
    assert s["latency_in_batch_ms"]["p95"] == percentile(in_batch, 95)
    assert "batch 1" in describe_latency(s["latency_basis"])


def test_without_a_batch1_pass_the_run_says_its_times_are_in_batch(curated, tiny_model_dir):
    spec = resolve_model(f"hf:{tiny_model_dir}")
    run = evaluate_model(curated, "support-agent", spec, limit=4, batch_size=4, max_new_tokens=8,
                         latency_items=0)
    assert run.summary["latency_basis"] == {"kind": "in-batch", "batch_size": 4}
    assert "latency_samples_ms" not in run.summary
    line = describe_latency(run.summary["latency_basis"])
    assert "inside a batch of 4" in line and "not batch 1" in line
    rendered = str(run_table(run).columns[2]._cells)
    assert "inside a batch of 4" in rendered


def test_a_batch_of_one_needs_no_second_pass(curated, tiny_model_dir):
    spec = resolve_model(f"hf:{tiny_model_dir}")
    run = evaluate_model(curated, "support-agent", spec, limit=2, batch_size=1, max_new_tokens=6)
    assert run.summary["latency_basis"] == {"kind": "batch-1", "batch_size": 1}


def test_the_recorded_reference_reports_the_latency_its_calls_recorded(curated):
    _, _, items = load_items(curated, "support-agent", "test", limit=10)
    run = evaluate_model(curated, "support-agent", resolve_model("recorded"), limit=10)
    assert run.summary["latency_basis"] == {"kind": "recorded"}
    recorded = [i.call.latency_ms for i in items]
    assert run.summary["latency_ms"]["p50"] == percentile(recorded, 50)


def test_an_item_in_a_batch_is_timed_to_its_own_answer_not_the_batch_end(tiny_model_dir):
    """Two requests in one batch: a boolean is answered long before a string of 50 characters."""
    backend = LocalBackend("tiny", tiny_model_dir, batch_size=2, max_new_tokens=200, constrained=True,
                           dtype="float32")

    def asking(schema):
        return Request(messages=[{"role": "user", "content": "same prompt"}],
                       response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})

    gens = backend.generate_sync([asking({"type": "boolean"}), asking({"type": "string", "minLength": 50})])
    assert gens[0].output_tokens <= 6 and gens[1].output_tokens > 50
    assert gens[0].latency_ms < gens[1].latency_ms / 3
