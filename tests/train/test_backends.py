"""dry-run, unsloth and accelerate plans, and the openai backend against a local HTTP server."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from fledgling.errors import InputError
from fledgling.models import catalog, manifest
from fledgling.store import Store
from fledgling.train import runs
from fledgling.train.backend import TrainingError, TrainSpec
from fledgling.train.dataset import load
from fledgling.train.orchestrator import train
from fledgling.train.worker import load_plan

from .examples import example, write_dataset
from .openai_server import FineTuningServer


@pytest.fixture
def store(tmp_path: Path):
    s = Store(f"sqlite:///{tmp_path}/fledgling.db")
    yield s
    s.close()


def test_dry_run_reports_tokens_savings_and_estimates(tiny_base: Path, store: Store, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    spec = TrainSpec(task="support-agent", base=str(tiny_base), backend="dry-run", epochs=2, max_length=64)
    out = train(spec, store, dataset_dir=data, out_dir=tmp_path / "run")
    report = out.result.metrics
    assert report["train"]["examples"] == 24 and report["val"]["examples"] == 6
    assert 0 < report["train"]["answer_tokens"] < report["train"]["tokens"] < report["train"]["full_prompt_tokens"]
    assert report["train"]["compact_saves"] > 0.3  # the specialist prompt drops the long system prompt and JSON tools
    assert (report["train"]["over_max_length"] > 0) == (report["train"]["max_tokens"] > 64)
    est = report["estimates"]
    assert est["lora"]["measured_tokens_per_s"] > 0 and est["lora"]["seconds"] > 0
    assert est["openai"]["billed_training_tokens"] == report["train"]["tokens"] * 2
    assert json.loads((tmp_path / "run" / "dry_run.json").read_text()) == report
    assert runs.get(store, out.run_id).state == "completed"


def test_bad_dataset_line_is_one_clear_error(store: Store, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    lines = (data / "train.jsonl").read_text().splitlines()
    bad = json.loads(lines[3])
    bad["messages"] = bad["messages"][:-1]
    lines[3] = json.dumps(bad)
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"train.jsonl: line 4: field 'messages\[1\].role': the last message"):
        load(data, task="support-agent")


def test_unsloth_dry_run_plan_without_cuda(store: Store, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    spec = TrainSpec(task="support-agent", backend="unsloth", rank=32, seed=7)
    out = train(spec, store, dataset_dir=data, out_dir=tmp_path / "run", dry_run=True)
    plan = out.plan
    settings = json.loads(plan.files["unsloth"].read_text())
    assert settings["from_pretrained"] == {"model_name": "HuggingFaceTB/SmolLM2-135M-Instruct",
                                           "max_seq_length": 512, "load_in_4bit": True, "dtype": None}
    assert settings["get_peft_model"]["r"] == 32 and settings["get_peft_model"]["lora_alpha"] == 64
    assert settings["get_peft_model"]["random_state"] == 7
    assert plan.details["environment"]["cuda"] is False
    assert plan.command[1:3] == ["-m", "fledgling.train.worker"]
    # the data the run would read: every train example, in the specialist chat format
    chats = [json.loads(line) for line in plan.files["train"].read_text().splitlines()]
    assert len(chats) == 24 and chats[0]["messages"][-1]["content"].startswith('{"name":"lookup_order"')
    assert runs.get(store, out.run_id).state == "planned"
    # and the worker reads back exactly this plan
    again = load_plan(plan.files["plan"])
    assert again.spec == spec and again.run_id == out.run_id and again.files["train"] == plan.files["train"].resolve()
    # running it here is refused with a clear reason, not faked
    with pytest.raises(TrainingError, match="needs a CUDA GPU"):
        train(spec, store, dataset_dir=data, out_dir=tmp_path / "run2")
    assert runs.list_runs(store)[0].state == "failed"


def test_accelerate_zero2_plan_and_command(store: Store, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    spec = TrainSpec(task="support-agent", backend="lora", launcher="accelerate", num_processes=4, grad_accum=2)
    out = train(spec, store, dataset_dir=data, out_dir=tmp_path / "run", dry_run=True)
    cfg = yaml.safe_load(out.plan.files["accelerate_config"].read_text())
    assert cfg["distributed_type"] == "DEEPSPEED" and cfg["num_processes"] == 4
    assert cfg["deepspeed_config"]["zero_stage"] == 2
    assert cfg["deepspeed_config"]["gradient_accumulation_steps"] == 2
    assert cfg["mixed_precision"] == "bf16"
    cmd = out.plan.command
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--config_file") + 1] == str(out.plan.files["accelerate_config"].resolve())
    assert cmd[cmd.index("--num_processes") + 1] == "4"
    assert cmd[-3:] == ["-m", "fledgling.train.worker", str(out.plan.files["plan"].resolve())]
    # accelerate itself accepts this command line and config (its own argument parser, no launch)
    from accelerate.commands.launch import launch_command_parser

    args = launch_command_parser().parse_args(cmd[3:])
    assert args.config_file.endswith("accelerate_config.yaml") and args.num_processes == 4
    assert args.module and args.training_script == "fledgling.train.worker"
    with pytest.raises(TrainingError, match="needs 4 CUDA GPUs; this machine has 0"):
        train(spec, store, dataset_dir=data, out_dir=tmp_path / "run2")
    assert shlex.join(cmd)  # printable as one shell line


def test_openai_backend_against_local_server(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_dataset(tmp_path / "data")
    spec = TrainSpec(task="support-agent", backend="openai", base="gpt-4o-mini-2024-07-18", epochs=2,
                     suffix="support", poll_s=0.01, seed=3)
    with FineTuningServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
        out = train(spec, store, dataset_dir=data, out_dir=tmp_path / "run")
        posted = [r for r in server.state.requests if r[0] == "POST"]
    assert [p[1] for p in posted] == ["/v1/files", "/v1/files", "/v1/fine_tuning/jobs"]
    assert posted[0][2].startswith("multipart/form-data")
    [job] = server.state.jobs.values()
    assert job["method"] == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
    assert job["seed"] == 3 and job["validation_file"] is not None
    assert [f["lines"] for f in server.state.files.values()] == [24, 6]
    model_id = f"ft:gpt-4o-mini-2024-07-18:org-local:support:{job['id']}"
    assert out.result.metrics["fine_tuned_model"] == model_id
    entry = catalog.get_model(store, out.run_id)
    assert entry.kind == "openai" and entry.model_id == model_id and entry.base_url == server.base_url
    assert entry.settings().model == model_id
    info = manifest.read(tmp_path / "run")
    assert info["metrics"]["job_id"] == job["id"] and info["dataset"]["counts"]["train"] == 24
    # the uploaded file is OpenAI's format: arguments as JSON strings, nothing but messages and tools
    line = json.loads((tmp_path / "run" / "openai" / "train.jsonl").read_text().splitlines()[0])
    assert set(line) == {"messages", "tools"}
    assert line["messages"][-1]["tool_calls"][0]["function"]["arguments"] == \
        example(0)["messages"][-1]["tool_calls"][0]["function"]["arguments"]


def test_openai_failed_job_and_missing_key(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_dataset(tmp_path / "data")
    spec = TrainSpec(task="support-agent", backend="openai", base="fail-model", poll_s=0.01)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(TrainingError, match="needs OPENAI_API_KEY"):
        train(spec, store, dataset_dir=data, out_dir=tmp_path / "a")
    with FineTuningServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
        with pytest.raises(TrainingError, match="failed: model not available for fine-tuning"):
            train(spec, store, dataset_dir=data, out_dir=tmp_path / "b")
    assert runs.list_runs(store)[0].state == "failed"
    assert [m.name for m in catalog.list_models(store) if not m.builtin] == []


def test_runs_started_within_one_second_get_distinct_ids(store: Store, tmp_path: Path) -> None:
    """Run ids are stamped to the second; a second run in that second (a sweep of quick dry runs)
    must not take the first one's id, in the store or on disk."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    taken = [f"t-lora-{(now + timedelta(seconds=d)).strftime('%Y%m%d-%H%M%S')}" for d in range(3)]
    for run_id in taken:
        runs.start(store, run_id=run_id, task="t", backend="lora", base="b", run_dir=tmp_path / run_id, spec={})
    second = runs.new_run_id(store, "t", "lora")
    assert second.endswith("-2") and second.removesuffix("-2") in taken
    (tmp_path / second).mkdir()
    third = runs.new_run_id(store, "t", "lora", tmp_path)
    # the same second as `second` (its "-2" is a directory now), or the clock moved on a second
    assert third == second.removesuffix("-2") + "-3" or (third != second and third.removesuffix("-2") in taken)
