"""`fledgling curate` as a user runs it: a real process, a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fledgling.store import Store
from tests.curate.conftest import contact_call, make_call


def fledgling(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLEDGLING_DB_URL": f"sqlite:///{cwd}/f.db", "COLUMNS": "120"}
    return subprocess.run([str(Path(sys.executable).parent / "fledgling"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_curate_writes_a_version_and_prints_the_report(tmp_path) -> None:
    Store(f"sqlite:///{tmp_path}/f.db").insert_calls(
        [make_call(i, session=f"s{i // 2}") for i in range(40)] + [contact_call(100 + i) for i in range(5)]
        + [make_call(200, status="error")])
    run = fledgling("curate", "--task", "support-agent", "--seed", "3", "--out", "out", "--workers", "2",
                    cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "dropped: error" in run.stdout and "update_contact" in run.stdout
    assert "dataset support-agent v1" in run.stdout
    assert sorted(p.name for p in (tmp_path / "out" / "support-agent" / "v1").iterdir()) == [
        "manifest.json", "report.json", "test.jsonl", "train.jsonl", "val.jsonl"]


def test_bad_input_is_one_line_and_non_zero(tmp_path) -> None:
    Store(f"sqlite:///{tmp_path}/f.db").insert_calls([make_call(1)])
    run = fledgling("curate", "--task", "support-agent", "--val", "0.7", "--test", "0.3", cwd=tmp_path)
    assert run.returncode == 3
    assert run.stderr.strip().count("\n") == 0 and "val + test < 1" in run.stderr
    run = fledgling("curate", "--task", "support-agent", "--workers", "-2", cwd=tmp_path)
    assert run.returncode == 3 and run.stderr.strip().count("\n") == 0 and "--workers -2" in run.stderr
    run = fledgling("curate", "--task", "missing", cwd=tmp_path)
    assert run.returncode == 3 and "has no calls" in run.stderr
    assert not (tmp_path / ".fledgling" / "datasets" / "missing").exists() or \
        not any((tmp_path / ".fledgling" / "datasets" / "missing").iterdir())


def test_curate_refuses_an_unknown_label_check_in_one_line(tmp_path) -> None:
    Store(f"sqlite:///{tmp_path}/f.db").insert_calls([make_call(i) for i in range(5)])
    run = fledgling("curate", "--task", "support-agent", "--label-checks", "grounding,vibes", cwd=tmp_path)
    assert run.returncode != 0
    assert "label check 'vibes' is not known" in run.stderr + run.stdout
    assert not (tmp_path / ".fledgling" / "datasets" / "support-agent").exists() or not any(
        (tmp_path / ".fledgling" / "datasets" / "support-agent").glob("v*"))
