"""`fledgling demo` end to end, `fledgling demo generate`, and the JSONL files it writes."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from fledgling.capture.openai_jsonl import read_calls
from fledgling.cli import app
from fledgling.contracts import load_contract
from fledgling.demo import TASKS, generate_calls
from fledgling.demo.export import write_traffic
from fledgling.demo.pipeline import STAGES, DemoContext, run_demo
from fledgling.store import CallFilter, Store

# The model stages (evaluation, training, rollout) are tested on their own, with tiny models.
DATA_STAGES = [s for s in STAGES if not s.uses_models]


def test_written_jsonl_reads_back_as_the_same_calls(tmp_path: Path) -> None:
    files = write_traffic(tmp_path, seed=3, n=300)
    assert [f.task for f in files] == list(TASKS)
    assert sum(f.calls for f in files) == 300
    read = [c for f in files for c in read_calls(f.path)]
    assert sorted(read, key=lambda c: c.id) == sorted(generate_calls(3, 300), key=lambda c: c.id)
    assert not list(tmp_path.glob(".*.tmp"))


def test_pipeline_runs_on_both_stores_and_is_idempotent(store: Store, tmp_path: Path) -> None:
    out = io.StringIO()
    ctx = DemoContext(store=store, console=Console(file=out, width=160), seed=4, calls=150,
                      out_dir=tmp_path / "demo")
    outcomes = run_demo(ctx, DATA_STAGES)
    assert [o.name for o in outcomes] == [s.name for s in DATA_STAGES]
    assert store.count_calls() == 150
    versions = {t: load_contract(store, t).version for t in TASKS}
    assert load_contract(store, "support-agent").kind == "toolcall"
    assert load_contract(store, "ticket-triage").kind == "structured"
    text = out.getvalue()
    assert "150 calls captured live through the gateway" in text and "captured calls" in text
    assert "0 new calls imported (150 already stored)" in text
    assert store.count_calls(CallFilter(source="gateway")) == 150

    again = DemoContext(store=store, console=Console(file=io.StringIO(), width=160), seed=4, calls=150,
                        out_dir=tmp_path / "demo")
    outcomes = run_demo(again, DATA_STAGES)
    assert store.count_calls() == 150
    assert {t: load_contract(store, t).version for t in TASKS} == versions
    assert all(len(store.contracts(t)) == 1 for t in TASKS)
    assert "0 new calls imported (150 already stored)" in outcomes[2].summary


def test_demo_command_prints_every_stage_a_summary_and_next_steps(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["demo", "--calls", "120", "--seed", "2", "--skip-models"])
    assert res.exit_code == 0, res.output
    for stage in STAGES:
        assert (f"({stage.name})" in res.output) is not stage.uses_models
    assert "Summary" in res.output and "Next steps" in res.output
    with Store(f"sqlite:///{tmp_path}/.fledgling/fledgling.db") as s:
        assert s.count_calls() == 120
        assert s.count_calls(CallFilter(source="gateway")) == 120
    assert (tmp_path / ".fledgling/demo/support-agent.jsonl").is_file()


def test_demo_generate_writes_files_only(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["demo", "generate", "--calls", "90", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    lines = sum(len((tmp_path / "out" / f"{t}.jsonl").read_bytes().splitlines()) for t in TASKS)
    assert lines == 90
    assert "fledgling import openai-jsonl" in res.output
    assert not (tmp_path / ".fledgling/fledgling.db").exists()


def test_demo_through_the_installed_command(tmp_path: Path) -> None:
    fledgling = str(Path(sys.executable).parent / "fledgling")
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "120", "HOME": str(tmp_path)}
    for _ in range(2):
        res = subprocess.run([fledgling, "demo", "--calls", "60", "--skip-models"], capture_output=True, text=True,
                             cwd=tmp_path, env=env, timeout=120)
        assert res.returncode == 0, res.stderr
    assert "0 new calls imported (60 already stored)" in res.stdout
    with Store(f"sqlite:///{tmp_path}/.fledgling/fledgling.db") as s:
        assert s.count_calls() == 60


def test_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    first = write_traffic(tmp_path / "a", seed=9, n=200)
    second = write_traffic(tmp_path / "b", seed=9, n=200)
    assert [f.path.read_bytes() for f in first] == [f.path.read_bytes() for f in second]
    other = write_traffic(tmp_path / "c", seed=10, n=200)
    assert [f.path.read_bytes() for f in other] != [f.path.read_bytes() for f in first]


def test_live_capture_records_exactly_what_the_llm_answered(store: Store, tmp_path: Path) -> None:
    """Planted errors (truncated outputs, invalid JSON, failures) survive the trip through the gateway."""
    ctx = DemoContext(store=store, console=Console(file=io.StringIO(), width=160), seed=5, calls=400,
                      out_dir=tmp_path / "demo")
    run_demo(ctx, [s for s in DATA_STAGES if s.name in ("generate", "capture")])
    generated = list(generate_calls(5, 400))
    assert any(c.response and c.response.finish_reason == "length" for c in generated)
    # identical requests with different recorded outcomes: each must get its own answer back,
    # whatever order the concurrent requests reach the stand-in in
    outcomes: dict[str, set[str]] = {}
    for c in generated:
        outcomes.setdefault(c.request.model_dump_json(), set()).add(c.status)
    assert any(len(statuses) > 1 for statuses in outcomes.values())
    for call in generated:
        got = store.get_call(call.id)
        assert got is not None and got.source == "gateway"
        assert got.status == call.status
        assert got.response == call.response, call.metadata.get("llm_error")
        if call.status == "ok":  # priced as the hosted model it stands in for
            assert got.cost_usd == pytest.approx(call.cost_usd)
