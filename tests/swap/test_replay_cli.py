"""Replay reproduces recorded answers (and says so when they differ); the rollout and replay
commands drive the same functions from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fledgling.cli import app
from fledgling.swap import rollout
from fledgling.swap.replay import rerun_call
from tests.swap.conftest import TASK, Programmable, wait_for


def _config(sw, path: Path) -> Path:
    models = sw.settings.models
    url = sw.store.engine.url.render_as_string(hide_password=False)
    path.write_text(
        f'[store]\nurl = "{url}"\n\n'
        f'[models.llm]\nkind = "openai"\nbase_url = "{models["llm"].base_url}"\n\n'
        f'[models.cand]\nkind = "openai"\nbase_url = "{models["cand"].base_url}"\nmodel = "slm"\n\n'
        f'[tasks.{TASK}]\nupstream = "llm"\ncandidate = "cand"\n')
    return path


def test_replay_reproduces_recorded_answers_and_catches_a_changed_model(make_swap, tmp_path):
    behaviour = {"now": "good"}
    sw = make_swap(candidate=Programmable("slm", lambda r: behaviour["now"]))
    ids = {}
    _, h = sw.ask(1)
    ids["llm"] = h["x-fledgling-call-id"]
    sw.set_mode("shadow")
    _, h = sw.ask(2)
    ids["shadow"] = h["x-fledgling-call-id"]
    sw.set_mode("swapped")
    _, h = sw.ask(3)
    ids["candidate"] = h["x-fledgling-call-id"]
    wait_for(lambda: len(sw.calls()) == 3)
    for target, call_id in ids.items():
        r = rerun_call(sw.store, sw.settings, call_id)
        assert (r.target, r.identical, r.seed if target != "llm" else 0) == (target, True, 0), r
    config = _config(sw, tmp_path / "fledgling.toml")
    runner = CliRunner()
    ok = runner.invoke(app, ["--config", str(config), "replay", ids["candidate"]])
    assert ok.exit_code == 0 and "identical" in ok.output, ok.output
    behaviour["now"] = "wrong"  # the served model changed under the same name
    r = rerun_call(sw.store, sw.settings, ids["candidate"])
    assert not r.identical and r.now.tool_calls[0].arguments == '{"order_id":"A0000"}'
    bad = runner.invoke(app, ["--config", str(config), "replay", ids["candidate"]])
    assert bad.exit_code == 1 and "different" in bad.output


def test_rollout_commands_change_and_show_state(make_swap, tmp_path, monkeypatch):
    sw = make_swap()
    config = _config(sw, tmp_path / "fledgling.toml")
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, ["--config", str(config), "rollout", *args], env={"COLUMNS": "300"})

    r = run("set", TASK, "--mode", "canary", "--percent", "20", "--reason", "first look")
    assert r.exit_code == 0, r.output
    assert rollout.current(sw.store, sw.settings, TASK).canary_percent == 20
    # a running gateway sees it within its refresh interval (traffic triggers the refresh)
    wait_for(lambda: sw.ask(9)[0] is not None
             and {t.task: t.mode for t in sw.app.live.tasks()}.get(TASK) == "canary")
    r = run("set", TASK, "--mode", "swapped", "--gateway", sw.url)  # through the admin API
    assert r.exit_code == 0 and "swapped" in r.output, r.output
    assert sw.ask(10)[1]["x-fledgling-served-by"] == "candidate"
    shown = run("show", "--gateway", sw.url)
    assert shown.exit_code == 0 and "swapped" in shown.output and "first look" in shown.output
    assert "live figures" in shown.output
    r = run("rollback", TASK, "--reason", "enough")
    assert r.exit_code == 0 and rollout.current(sw.store, sw.settings, TASK).mode == "shadow"
    monkeypatch.setenv("FLEDGLING_ADMIN_KEY", "not-the-key")
    refused = run("set", TASK, "--mode", "swapped", "--gateway", sw.url)
    assert refused.exit_code != 0 and "401" in str(refused.exception or refused.output)


@pytest.mark.parametrize("args", [["set", TASK, "--mode", "sideways"], ["set", TASK, "--mode", "canary"]])
def test_rollout_set_refuses_bad_input_in_one_line(make_swap, tmp_path, args):
    sw = make_swap()
    config = _config(sw, tmp_path / "fledgling.toml")
    r = CliRunner().invoke(app, ["--config", str(config), "rollout", *args])
    assert r.exit_code != 0
    assert rollout.events(sw.store, TASK) == []
