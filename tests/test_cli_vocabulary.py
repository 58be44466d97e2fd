"""One CLI vocabulary: a flag means one thing in every command, the task is always `--task/-t`,
every read command speaks `--json`, and the old spellings still work for one release."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from fledgling.cli import app
from fledgling.cli.options import VOCABULARY, Renamed, rename
from fledgling.store import Store
from tests.curate.conftest import make_call

# Commands that change something or serve; every other command reads, and prints JSON on --json.
ACTIONS = {"demo", "demo generate", "ui", "gateway", "import openai-jsonl", "import otel", "import langfuse",
           "contracts infer", "curate", "train", "eval", "models add", "models select", "publish",
           "rollout set", "rollout rollback", "rollout calibrate", "export otel",
           "export langfuse-scores"}


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Every command that runs something (a group with its own callback counts), by its path."""
    if not path or not getattr(group, "commands", None) or getattr(group, "invoke_without_command", False):
        yield " ".join(path) or "fledgling", group
    for name, sub in sorted(getattr(group, "commands", {}).items()):
        yield from commands(sub, (*path, name))


def _meaning(param: Any) -> tuple[Any, ...]:
    """What a flag stands for: the value it sets, its spellings, and the kind of value."""
    kind = getattr(getattr(param, "type", None), "name", None) or getattr(  # click, or typer >= 0.24
        getattr(param, "type_descriptor", None), "annotation", None)
    return (param.name, tuple(sorted(param.opts + param.secondary_opts)), param.is_flag, str(kind),
            param.multiple)


def vocabulary_problems(root: Any, actions: set[str]) -> list[str]:
    """What breaks the vocabulary in a click command tree; empty when it holds."""
    problems: list[str] = []
    meanings: dict[str, dict[tuple[Any, ...], list[str]]] = defaultdict(lambda: defaultdict(list))
    spelled = {flag: set(key.split("/")) for key in VOCABULARY for flag in key.split("/")}
    found = dict(commands(root))
    for path, cmd in found.items():
        options = [p for p in cmd.params if p.param_type_name == "option" and not p.hidden]
        for p in cmd.params:
            if p.param_type_name == "argument" and "task" in (p.name or ""):
                problems.append(f"{path}: the task is an argument ({p.name}); use --task/-t")
        for p in options:
            for flag in (*p.opts, *p.secondary_opts):
                meanings[flag][_meaning(p)].append(path)
                if flag in spelled and set(p.opts + p.secondary_opts) != spelled[flag]:
                    problems.append(f"{path}: {'/'.join(p.opts + p.secondary_opts)} is spelled "
                                    f"{'/'.join(sorted(spelled[flag]))} everywhere")
        if path != "fledgling" and path not in actions and not any("--json" in p.opts for p in options):
            problems.append(f"{path}: a read command without --json")
    for flag, uses in sorted(meanings.items()):
        if len(uses) > 1:
            problems.append(f"{flag} means {len(uses)} things: "
                            + "; ".join(f"{m[0]} in {', '.join(paths)}" for m, paths in uses.items()))
        shared = {path for paths in uses.values() for path in paths}
        if len(shared) > 1 and flag != "--help" and flag not in spelled:
            problems.append(f"{flag} is shared by {', '.join(sorted(shared))} but not declared in cli/options.py")
    problems.extend(f"{a}: listed as an action but no such command" for a in sorted(actions - found.keys()))
    return problems


def test_the_real_cli_has_one_vocabulary() -> None:
    assert vocabulary_problems(get_command(app), ACTIONS) == []


def test_the_check_finds_a_planted_clash() -> None:
    bad = typer.Typer()

    @bad.command("set")
    def set_mode(task: str = typer.Argument(...), mode: str = typer.Option("x", "--mode", "-m")) -> None:
        """A write command: --mode is its own."""

    @bad.command("show")
    def show(model: str = typer.Option("y", "--model", "-m"),
             task: str = typer.Option("t", "--task", help="no -t")) -> None:
        """A read command without --json."""

    problems = vocabulary_problems(get_command(bad), {"set"})
    assert any(p.startswith("-m means 2 things") for p in problems), problems
    assert "set: the task is an argument (task); use --task/-t" in problems
    assert "show: a read command without --json" in problems
    assert any(p.startswith("show: --task is spelled --task/-t") for p in problems), problems


# -- the old spellings ------------------------------------------------------------------------

def test_rename_rewrites_only_the_old_spellings() -> None:
    renamed = (Renamed("--gateway", "--gateway-url"), Renamed("-m", "--mode"))
    assert rename(["--gateway=http://x", "-mcanary", "--gateway-url", "u", "--", "-m"], renamed) == [
        "--gateway-url=http://x", "--mode", "canary", "--gateway-url", "u", "--", "-m"]
    assert rename(["-m", "x", "sub", "-m"], renamed, stop={"sub": None}) == ["--mode", "x", "sub", "-m"]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`fledgling ARGS` in-process over a real SQLite file holding 12 support-agent calls."""
    url = f"sqlite:///{tmp_path}/f.db"
    with Store(url) as s:
        s.insert_calls([make_call(i, session=f"s{i // 2}") for i in range(12)])
    monkeypatch.setenv("FLEDGLING_DB_URL", url)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), env={"COLUMNS": "200"})


def _warned(result: Any, old: str, new: str) -> bool:
    return f"warning: {old} is deprecated and goes in the next release; use {new}" in result.stderr


def test_the_task_as_an_argument_still_works_and_warns(cli: Any) -> None:
    assert cli("contracts", "infer", "--task", "support-agent").exit_code == 0
    old = cli("contracts", "show", "support-agent", "--json")
    assert old.exit_code == 0, old.output
    assert json.loads(old.stdout)["task"] == "support-agent"
    assert _warned(old, "the task as an argument (support-agent)", "--task support-agent")
    new = cli("contracts", "show", "--json", "-t", "support-agent")
    assert new.exit_code == 0 and new.stderr == "" and json.loads(new.stdout) == json.loads(old.stdout)
    both = cli("contracts", "show", "support-agent", "--task", "support-agent")
    assert both.exit_code == 2 and "give the task once" in both.stderr

    moved = cli("rollout", "set", "support-agent", "-m", "record", "--reason", "old script")
    assert moved.exit_code == 0, moved.output
    assert _warned(moved, "-m", "--mode") and "the task as an argument" in moved.stderr
    back = cli("rollout", "rollback", "support-agent", "--to", "record")
    assert back.exit_code == 0 and "rolled back to record" in back.stdout
    shown = json.loads(cli("rollout", "show", "--json", "--task", "support-agent").stdout)
    assert [e["kind"] for e in shown["events"]] == ["rollback", "change"]
    assert shown["events"][1]["reason"] == "old script"
    missing = cli("rollout", "set", "--mode", "record")
    assert missing.exit_code == 2 and "Missing option '--task' / '-t'" in missing.stderr


def test_renamed_options_still_work_and_warn(cli: Any, tmp_path: Path) -> None:
    version = cli("contracts", "show", "--task", "support-agent", "--version", "abc")
    assert _warned(version, "--version", "--contract-version")
    assert "no stored contract for version abc of task 'support-agent'" in str(version.exception)

    demo = cli("demo", "generate", "-n", "7", "--out", str(tmp_path / "out"))
    assert demo.exit_code == 0, demo.output
    assert _warned(demo, "-n", "--calls") and "7 calls in" in demo.stdout

    examples = cli("train", "--task", "support-agent", "--max-examples", "0")
    assert examples.exit_code == 2 and _warned(examples, "--max-examples", "--limit")
    assert "'--limit' / '-n'" in examples.stderr  # the value reached the new option

    watch = cli("train", "status", "-w")
    assert watch.exit_code == 0 and _warned(watch, "-w", "--watch") and "training runs" in watch.stdout

    pull = cli("import", "langfuse", "--host", "http://127.0.0.1:9")
    assert _warned(pull, "--host", "--langfuse-url")
    assert "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY not set" in str(pull.exception)


# -- --json on read commands ------------------------------------------------------------------

def test_read_commands_print_json(cli: Any) -> None:
    listed = json.loads(cli("traces", "list", "--json", "-n", "5").stdout)
    assert listed["total"] == 12 and listed["has_more"] and len(listed["calls"]) == 5
    assert listed["calls"][0]["id"] == "call-000011"  # newest first
    one = json.loads(cli("traces", "show", "call-000003", "--json").stdout)
    assert one["id"] == "call-000003" and one["response"]["tool_calls"][0]["name"] == "lookup_order"
    stats = json.loads(cli("traces", "stats", "--json", "--task", "support-agent").stdout)
    assert [(g["task"], g["model"], g["source"], g["calls"], g["errors"]) for g in stats] == [
        ("support-agent", "gpt-4o", "test", 12, 0)]
    assert set(stats[0]["latency_ms"]) == {"p50", "p95", "p99"}

    assert cli("contracts", "infer", "-t", "support-agent").exit_code == 0
    checked = json.loads(cli("contracts", "check", "-t", "support-agent", "--json").stdout)
    assert (checked["checked"], checked["valid"], checked["invalid"]) == (12, 12, 0)

    models = json.loads(cli("models", "list", "--json").stdout)
    assert any(m["builtin"] and m["name"] == "smollm2-135m-instruct" for m in models)
    assert json.loads(cli("train", "status", "--json").stdout) == []
    rollout = json.loads(cli("rollout", "show", "--json").stdout)
    assert rollout["events"] == [] and rollout["live"] is None
    quarantined = json.loads(cli("traces", "quarantine", "--json").stdout)
    assert quarantined["count"] == 0
