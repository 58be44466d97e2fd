"""`evaluate_model` and the demo's eval stage functions with a real local model (the tiny random
Llama) on curated demo data, on SQLite and PostgreSQL: runs stored with their prompt format,
kept apart in the report, reports written."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rich.console import Console

from fledgling.config import Settings
from fledgling.contracts import infer_contract, save_contract
from fledgling.curate.pipeline import curate
from fledgling.demo import eval_stage as demo_stage
from fledgling.demo import generate_calls
from fledgling.evals.runs import evaluate_model, list_runs, load_run_items
from fledgling.models import open_backend, resolve_model
from fledgling.report import build_report
from fledgling.store import CallFilter


@pytest.fixture
def curated(store, tmp_path):
    store.insert_calls(generate_calls(seed=3, n=240))
    save_contract(store, infer_contract(store.iter_calls(CallFilter(task="support-agent")), "support-agent"))
    curate(store, "support-agent", out_dir=tmp_path / "datasets")
    return store


def test_local_runs_record_their_prompt_format_and_stay_apart_in_the_report(curated, tiny_model_dir):
    spec = resolve_model(f"hf:{tiny_model_dir}")
    seen, total = [], []
    compact = evaluate_model(curated, "support-agent", spec, limit=4, constrained=True, prompt="compact",
                             max_new_tokens=48, batch_size=2, on_items=total.append, progress=seen.append)
    chat = evaluate_model(curated, "support-agent", spec, limit=4, max_new_tokens=8)
    ref = evaluate_model(curated, "support-agent", resolve_model("recorded"), limit=4)
    assert total == [4] and seen == [2, 2]
    assert (compact.prompt, compact.constrained, compact.label) == \
        ("compact", True, f"{spec.name} (compact prompt, constrained)")
    assert (chat.prompt, chat.constrained, chat.label) == ("chat", False, spec.name)
    assert ref.prompt is None and ref.label == "recorded"
    assert compact.summary["input_tokens"] < chat.summary["input_tokens"]  # the compact prompt is shorter
    stored = {r.id: r for r in list_runs(curated, "support-agent", "test")}
    assert stored[compact.id].prompt == "compact" and stored[chat.id].prompt == "chat"
    assert [i.call_id for i in load_run_items(curated, stored[compact.id]).items] == \
        [i.call_id for i in compact.items]
    report = build_report(curated, Settings(), "support-agent")
    labels = {c["label"]: c for c in report["candidates"]}
    assert set(labels) == {compact.label, chat.label}
    assert labels[compact.label]["prompt"] == "compact" and report["reference"]["label"] == "recorded"


def test_demo_stage_evaluates_a_given_backend_and_writes_the_reports(curated, tiny_model_dir, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setattr(demo_stage, "ITEMS", {"support-agent": 3})
    monkeypatch.setattr(demo_stage, "MAX_NEW_TOKENS", 16)
    console = Console(record=True, width=120)
    ctx = SimpleNamespace(store=curated, console=console, out_dir=tmp_path / "demo", results={},
                          settings=Settings())
    spec = resolve_model(f"hf:{tiny_model_dir}")
    loaded = open_backend(spec, prompt="compact", max_new_tokens=16, batch_size=3)
    ref = demo_stage.evaluate_on_demo(ctx, "support-agent", resolve_model("recorded"))
    cand = demo_stage.evaluate_on_demo(ctx, "support-agent", spec, constrained=True,
                                       backend=loaded.variant(constrained=True, task="support-agent"))
    assert ref.n_items == cand.n_items == 3 and cand.constrained and cand.prompt == "compact"
    assert ctx.results["eval_runs"]["support-agent"] == [ref, cand]
    verdicts = demo_stage.write_reports(ctx, ["support-agent"])
    html = tmp_path / "reports" / "support-agent" / "report.html"
    assert html.is_file() and (html.parent / "report.json").is_file()
    assert str(html) in verdicts[0] and verdicts[0].split()[1] in ("SWAP", "NOT", "NO")
    assert ctx.results["reports"]["support-agent"] == html
    assert "(compact prompt, constrained)" in console.export_text()


def test_demo_eval_stage_runs_every_model_on_both_tasks(sqlite_store, tiny_model_dir, tmp_path, monkeypatch):
    """The whole stage, with the tiny model standing in for SmolLM2 (which test_local.py runs)."""
    from fledgling.demo.traffic import TASKS

    store = sqlite_store
    store.insert_calls(generate_calls(seed=5, n=300))
    contracts = {}
    for task in TASKS:
        contracts[task] = infer_contract(store.iter_calls(CallFilter(task=task)), task)
        save_contract(store, contracts[task])
        curate(store, task, out_dir=tmp_path / "datasets")
    monkeypatch.setattr(demo_stage, "BASE_SLM", f"hf:{tiny_model_dir}")
    monkeypatch.setattr(demo_stage, "ITEMS", {"support-agent": 2, "ticket-triage": 2})
    monkeypatch.setattr(demo_stage, "MAX_NEW_TOKENS", 12)
    ctx = SimpleNamespace(store=store, console=Console(record=True, width=160), out_dir=tmp_path / "demo",
                          settings=Settings(),
                          results={"contracts": contracts})
    summary = demo_stage.evaluate_baselines(ctx)
    for task in TASKS:
        runs = ctx.results["eval_runs"][task]
        assert [(r.model_kind, r.prompt, r.constrained) for r in runs] == \
            [("recorded", None, False), ("hf", "compact", False), ("hf", "compact", True)]
        assert all(r.n_items == 2 for r in runs)
        assert (tmp_path / "reports" / task / "report.html").is_file()
        assert f"{task} success on 2: LLM" in summary
    assert "Reports: support-agent" in summary
