"""The `fledgling` command as a user meets it: one-line errors, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

FLEDGLING = [sys.executable, "-m", "fledgling.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLEDGLING, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [("traces", "list", "--limit", "abc"), ("curate",), ("nosuch",)])
def test_usage_errors_are_short_and_non_zero(args: tuple[str, ...]) -> None:
    r = run(*args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "Error:" in r.stderr


def test_bad_config_is_one_line_naming_the_key(tmp_path) -> None:
    cfg = tmp_path / "fledgling.toml"
    cfg.write_text('[tasks.support-agent]\nmdoe = "canary"\n')
    r = run("--config", str(cfg), "traces", "stats")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "tasks.support-agent.mdoe" in r.stderr and "did you mean 'mode'" in r.stderr


def test_missing_call_is_a_clear_error(tmp_path) -> None:
    r = run("traces", "show", "no-such-call")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "no call with id no-such-call" in r.stderr
