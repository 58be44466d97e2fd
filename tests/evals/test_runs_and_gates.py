"""Eval runs end to end on the store (SQLite and PostgreSQL): demo calls -> curated split -> runs -> gates."""

from __future__ import annotations

import pytest

from fledgling.calls import Response, ToolCall
from fledgling.config import Gate
from fledgling.curate.pipeline import curate
from fledgling.demo import generate_calls
from fledgling.evals.gates import evaluate_gates
from fledgling.evals.runs import (
    list_runs,
    load_items,
    load_run_items,
    reference_of,
    run_eval,
    task_contract,
)
from fledgling.models import resolve_model
from fledgling.models.generation import Generation
from tests.models.scripted import Scripted


@pytest.fixture
def curated(store, tmp_path):
    store.insert_calls(generate_calls(seed=1, n=300))
    curate(store, "support-agent", out_dir=tmp_path / "datasets")
    return store


def test_reference_label_preference():
    call = next(generate_calls(seed=0, n=5))
    assert reference_of(call)[1] == "ground_truth"
    plain = call.model_copy(update={"metadata": {}})
    assert reference_of(plain) == (call.response, "recorded")


def test_recorded_run_scores_the_llm_against_ground_truth_and_is_stored(curated):
    version, contract_version, items = load_items(curated, "support-agent", "test")
    assert items and all(i.label_source == "ground_truth" for i in items)
    contract = task_contract(curated, "support-agent", contract_version, items)
    from fledgling.models import open_backend

    spec = resolve_model("recorded")
    seen = []
    run = run_eval(curated, "support-agent", spec, open_backend(spec, recorded_calls=[i.call for i in items]),
                   items, contract, split="test", dataset_version=version, constrained=False,
                   progress=seen.append)
    assert sum(seen) == len(items)
    expected = sum(1 for i in items if i.call.response.tool_calls == i.reference.tool_calls
                   or _same_calls(i.call.response, i.reference)) / len(items)
    assert run.summary["metrics"]["args_exact_match"]["mean"] == pytest.approx(expected)
    stored = list_runs(curated, "support-agent", "test")[0]
    assert stored.id == run.id and stored.summary == run.summary
    load_run_items(curated, stored)
    assert [i.call_id for i in stored.items] == [i.call.id for i in items]
    assert stored.items[0].scores == run.items[0].scores


def _same_calls(a: Response, b: Response) -> bool:
    from fledgling.evals.scoring import compare_tool_calls

    return compare_tool_calls(a.tool_calls, b.tool_calls).args_exact_match == 1.0


def test_gates_verdicts_from_paired_runs(curated):
    version, cv, items = load_items(curated, "support-agent", "test")
    contract = task_contract(curated, "support-agent", cv, items)
    truth = {i.call.request.model_dump_json(): i.reference for i in items}

    def perfect(req):
        return Generation(truth[req.model_dump_json()], 50.0, 100, 10)

    def never(req):
        return Generation(Response(tool_calls=[ToolCall(name="nope", arguments="{}")]), 900.0, 100, 10)

    ref = run_eval(curated, "support-agent", resolve_model("recorded"), Scripted(perfect), items, contract,
                   split="test", dataset_version=version, constrained=False)
    good = run_eval(curated, "support-agent", resolve_model("openai:http://x/v1#good"), Scripted(perfect),
                    items, contract, split="test", dataset_version=version, constrained=False)
    bad = run_eval(curated, "support-agent", resolve_model("openai:http://x/v1#bad"), Scripted(never),
                   items, contract, split="test", dataset_version=version, constrained=False)
    gates = {"tool_name_accuracy": Gate(non_inferior=0.2), "latency_p95_ms": Gate(max=100)}
    ok = evaluate_gates(good, ref, gates, "toolcall")
    assert ok.verdict == "SWAP", [g.reason for g in ok.gates]
    no = evaluate_gates(bad, ref, gates, "toolcall")
    assert no.verdict == "NO" and {g.outcome for g in no.gates} == {"fail"}
    assert "900" in no.gates[1].reason
    tight = evaluate_gates(good, ref, {"tool_name_accuracy": Gate(non_inferior=0.001)}, "toolcall")
    assert tight.verdict in ("SWAP", "NOT YET")
    missing = evaluate_gates(good, None, gates, "toolcall")
    assert missing.verdict == "NOT YET" and "reference" in missing.gates[0].reason
    defaults = evaluate_gates(good, ref, {}, "toolcall")
    assert defaults.default_gates and {g.metric for g in defaults.gates} == {"args_exact_match", "schema_valid"}


def test_not_yet_names_how_many_more_items(curated):
    version, cv, items = load_items(curated, "support-agent", "test", limit=6)
    contract = task_contract(curated, "support-agent", cv, items)
    truth = {i.call.request.model_dump_json(): i.reference for i in items}
    flip = {items[0].call.request.model_dump_json()}

    def mostly(req):
        key = req.model_dump_json()
        resp = Response(tool_calls=[ToolCall(name="nope")]) if key in flip else truth[key]
        return Generation(resp, 10.0)

    ref = run_eval(curated, "support-agent", resolve_model("recorded"),
                   Scripted(lambda r: Generation(truth[r.model_dump_json()], 10.0)), items,
                   contract, split="test", dataset_version=version, constrained=False)
    cand = run_eval(curated, "support-agent", resolve_model("openai:http://x/v1#c"), Scripted(mostly), items,
                    contract, split="test", dataset_version=version, constrained=False)
    d = evaluate_gates(cand, ref, {"tool_name_accuracy": Gate(non_inferior=0.05)}, "toolcall")
    assert d.verdict == "NOT YET" and "more paired items" in d.gates[0].reason


def test_missing_dataset_is_a_clear_error(store):
    from fledgling.errors import InputError

    with pytest.raises(InputError, match="fledgling curate"):
        load_items(store, "nothing-here")
