"""The model catalog (selection persists), publishing refusals and staging, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fledgling.cli import app
from fledgling.errors import InputError
from fledgling.models import catalog, manifest
from fledgling.report.publish import PublishError, publish, stage
from fledgling.store import Store

from .examples import write_dataset


def test_select_persists_across_reopen(store_url: str) -> None:
    s = Store(store_url)
    assert catalog.selected_model(s, "support-agent") is None
    catalog.add_model(s, "vllm-slm", kind="openai", base_url="http://127.0.0.1:8000/v1", model_id="slm")
    catalog.add_model(s, "other", kind="hf", base="smollm2-135m-instruct", adapter="/x/adapter", task="triage")
    catalog.select_model(s, "support-agent", "vllm-slm")
    catalog.select_model(s, "support-agent", "smollm2-135m-instruct")
    s.close()
    again = Store(store_url)
    chosen = catalog.selected_model(again, "support-agent")
    assert chosen is not None and chosen.name == "smollm2-135m-instruct" and chosen.builtin
    assert chosen.settings().kind == "gguf"
    names = [m.name for m in catalog.list_models(again, "support-agent")]
    assert names == ["smollm2-135m-instruct", "vllm-slm"]  # the triage model is not this task's
    with pytest.raises(InputError, match="trained for task 'triage'"):
        catalog.select_model(again, "support-agent", "other")
    with pytest.raises(InputError, match="already in the catalog"):
        catalog.add_model(again, "vllm-slm", kind="openai", base_url="http://x/v1")
    with pytest.raises(InputError, match="needs base_url"):
        catalog.add_model(again, "broken", kind="openai")
    again.close()


def _adapter_entry(s: Store, root: Path) -> catalog.CatalogModel:
    run = root / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text('{"r": 8}')
    (run / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    info = manifest.build(task="support-agent", backend="lora",
                          base_model={"name": "smollm2-135m-instruct", "sha256": "ab12"},
                          dataset={"version": "v2", "sha256": "cd34", "counts": {"train": 10}},
                          hyperparameters={"rank": 8, "lr": 1e-3, "epochs": 2}, seed=5,
                          metrics={"best_eval_loss": 0.25}, prompt_format="fledgling-specialist-v1",
                          artifacts={"adapter": "adapter"})
    manifest.write(run, info)
    return catalog.add_model(s, "sa-lora-1", kind="hf", origin="adapter", task="support-agent",
                             base="smollm2-135m-instruct", adapter=str(run / "adapter"), manifest=info)


def test_publish_refuses_without_token_or_gates(sqlite_store: Store, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _adapter_entry(sqlite_store, tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty token file location
    with pytest.raises(PublishError, match="no Hugging Face token"):
        publish(sqlite_store, "sa-lora-1", "org/repo")
    monkeypatch.setenv("HF_TOKEN", "hf_local")
    with pytest.raises(PublishError, match="'sa-lora-1' has no eval run on its test split"):
        publish(sqlite_store, "sa-lora-1", "org/repo", auto=True)
    catalog.add_model(sqlite_store, "remote", kind="openai", base_url="http://x/v1", model_id="m")
    with pytest.raises(PublishError, match="only adapters"):
        publish(sqlite_store, "remote", "org/repo")


def test_stage_holds_adapter_manifest_and_card(sqlite_store: Store, tmp_path: Path) -> None:
    entry = _adapter_entry(sqlite_store, tmp_path)
    folder = stage(entry, tmp_path / "stage")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors", "manifest.json"]
    card = (folder / "README.md").read_text()
    assert "sha256 `ab12`" in card and "v2" in card and "seed 5" in card
    assert json.loads((folder / "manifest.json").read_text())["seed"] == 5


def test_cli_dry_run_models_and_status(tiny_base: Path, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    runner = CliRunner()
    env = {"FLEDGLING_DB_URL": f"sqlite:///{tmp_path}/cli.db", "COLUMNS": "200"}
    r = runner.invoke(app, ["train", "--task", "support-agent", "--base", str(tiny_base), "--backend",
                            "unsloth", "--dataset", str(data), "--dry-run"], env=env)
    assert r.exit_code == 0, r.output
    assert "fledgling.train.worker" in r.output and "unsloth.json" in r.output
    r = runner.invoke(app, ["train", "status"], env=env)
    assert r.exit_code == 0 and "planned" in r.output and "unsloth" in r.output
    r = runner.invoke(app, ["models", "add", "vllm", "--kind", "openai", "--base-url",
                            "http://127.0.0.1:9/v1", "--model-id", "slm", "--task", "support-agent"], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["models", "select", "vllm", "--task", "support-agent"], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["models", "list", "--task", "support-agent"], env=env)
    row = next(line for line in r.output.splitlines() if "vllm" in line)
    assert "*" in row and "openai" in row


def test_auto_publish_follows_the_gates_verdict(store: Store, tmp_path: Path) -> None:
    from fledgling.calls import Response, ToolCall
    from fledgling.config import parse_settings
    from fledgling.contracts import infer_contract, save_contract
    from fledgling.curate.pipeline import curate
    from fledgling.demo import generate_calls
    from fledgling.evals.runs import load_items, run_eval, task_contract
    from fledgling.models import resolve_model
    from fledgling.models.generation import Generation
    from fledgling.report.publish import require_gates_pass
    from fledgling.store import CallFilter
    from tests.models.scripted import Scripted

    store.insert_calls(generate_calls(seed=1, n=300))
    save_contract(store, infer_contract(store.iter_calls(CallFilter(task="support-agent")), "support-agent"))
    curate(store, "support-agent", out_dir=tmp_path / "datasets")
    version, cv, items = load_items(store, "support-agent", "test")
    contract = task_contract(store, "support-agent", cv, items)
    truth = {i.call.request.model_dump_json(): i.reference for i in items}

    def right(req):
        return Generation(truth[req.model_dump_json()], 50.0, 100, 10)

    def wrong(req):
        return Generation(Response(tool_calls=[ToolCall(name="nope", arguments="{}")]), 50.0, 100, 10)

    for name, answer in (("recorded", right), ("good-slm", right), ("bad-slm", wrong)):
        spec = resolve_model(name if name == "recorded" else f"openai:http://127.0.0.1:9/v1#{name}")
        spec = spec.__class__(name, spec.settings)
        run_eval(store, "support-agent", spec, Scripted(answer), items, contract, split="test",
                 dataset_version=version, constrained=False)
    settings = parse_settings({"tasks": {"support-agent": {"gates": {"tool_name_accuracy": {"non_inferior": 0.2}}}}})
    require_gates_pass(store, "support-agent", "good-slm", settings)  # SWAP: no objection
    with pytest.raises(PublishError, match="verdict for 'bad-slm' on task 'support-agent' is NO"):
        require_gates_pass(store, "support-agent", "bad-slm", settings)
