"""`fledgling autopilot` from the shell: a bounded run switches it on and records nothing without
new traffic; approve answers the pending promotion (and refuses in one line when there is none);
status shows the switch and decisions; off turns it off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fledgling.store import Store

from .conftest import TASK, fill

FLEDGLING = [sys.executable, "-m", "fledgling.cli"]


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEDGLING_DB_URL": url, "COLUMNS": "200"}
    return subprocess.run([*FLEDGLING, *args], capture_output=True, text=True, timeout=300, env=env)


def test_run_approve_status_off(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/f.db"
    with Store(url) as s:
        fill(s, tmp_path)  # fewer calls than the default min_new_calls (500): no retrain
    done = run(url, "autopilot", "--task", TASK, "--rounds", "2", "--interval", "0.05", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # no decision: nothing to act on
    status = json.loads(run(url, "autopilot", "status", "--task", TASK, "--json").stdout)
    assert status["switch"]["enabled"] is True and status["decisions"] == []

    refused = run(url, "autopilot", "approve", "--task", TASK)
    assert refused.returncode == 3
    assert refused.stderr.strip() == f"error: task '{TASK}' has no promotion waiting for approval"

    with Store(url) as s:
        pending = s.autopilots.add_event(TASK, decision="promote", status="pending", summary="promote x",
                                         evidence={"candidate": "x", "from": "shadow", "to": "canary 5%"})
    answered = json.loads(run(url, "autopilot", "approve", "--task", TASK, "--json").stdout)
    assert answered["id"] == pending and answered["status"] == "approved"
    assert answered["decided_by"].startswith("cli:")
    again = run(url, "autopilot", "approve", "--task", TASK, "--event", str(pending))
    assert again.returncode == 3 and "is not waiting for approval (it is approved)" in again.stderr

    off = json.loads(run(url, "autopilot", "off", "--task", TASK, "--json").stdout)
    assert off["enabled"] is False
    shown = run(url, "autopilot", "status", "--task", TASK)
    assert "autopilot for support-agent: off" in shown.stdout and "promote x" in shown.stdout
