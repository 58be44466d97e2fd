"""Contracts in the store (SQLite and PostgreSQL) and the `fledgling contracts` commands."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from fledgling.cli import app
from fledgling.contracts import infer_contract, load_contract, save_contract
from fledgling.store import Store
from tests.contracts.builders import ORDER_SCHEMA, TOOLS, call, tool, tool_answer


def shop_calls(n: int = 6, tools=TOOLS, start: int = 0):
    return [call(start + i, task="shop", tools=tools,
                 response=tool_answer(("cancel_order", {"order_id": f"A{i}"}))
                 if i % 3 else tool_answer(("cancel_order", "{bad"))) for i in range(n)]


def test_save_is_idempotent_and_load_round_trips(store: Store) -> None:
    contract = infer_contract(shop_calls(), "shop")
    assert save_contract(store, contract) is True
    assert save_contract(store, contract) is False
    loaded = load_contract(store, "shop")
    assert loaded == contract
    assert load_contract(store, "shop", contract.version[:6]) == contract
    assert load_contract(store, "shop", "ffff") is None
    assert load_contract(store, "nobody") is None


def test_newest_version_is_loaded_by_default(store: Store) -> None:
    first = infer_contract(shop_calls(), "shop")
    changed = copy.deepcopy(ORDER_SCHEMA)
    changed["properties"]["order_id"]["minLength"] = 2
    second = infer_contract(shop_calls(tools=[tool("cancel_order", changed)]), "shop")
    assert first.version != second.version
    save_contract(store, first)
    save_contract(store, second)
    assert load_contract(store, "shop").version == second.version
    assert load_contract(store, "shop", first.version).version == first.version


def _with_calls(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    with Store(url) as s:
        s.insert_calls(shop_calls(9))
    return url


def test_cli_infer_show_check(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLEDGLING_DB_URL", _with_calls(tmp_path))
    runner = CliRunner()
    res = runner.invoke(app, ["contracts", "infer", "--task", "shop"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    version = infer_contract(shop_calls(9), "shop").version
    assert version in res.output and "new version stored" in res.output
    assert "cancel_order" in res.output and "order_id 100%" in res.output
    again = runner.invoke(app, ["contracts", "infer", "--task", "shop"], env={"COLUMNS": "200"})
    assert "already stored" in again.output

    shown = runner.invoke(app, ["contracts", "show", "--task", "shop", "--json"])
    assert shown.exit_code == 0
    body = json.loads(shown.output)
    assert body["version"] == version and body["kind"] == "toolcall"
    assert [t["name"] for t in body["tools"]] == ["cancel_order", "issue_refund"]
    pretty = runner.invoke(app, ["contracts", "show", "--task", "shop"], env={"COLUMNS": "200"})
    assert "Cancel an order." in pretty.output and '"order_id"' in pretty.output

    checked = runner.invoke(app, ["contracts", "check", "--task", "shop"], env={"COLUMNS": "200"})
    assert checked.exit_code == 0, checked.output
    lines = {line.split("│")[1].strip(): line for line in checked.output.splitlines() if line.count("│") >= 3}
    assert "3" in lines["invalid_json"].split("│")[2]
    assert "6" in lines["valid"].split("│")[2]


def test_cli_missing_contract_is_one_clear_line(tmp_path: Path) -> None:
    env = {"FLEDGLING_DB_URL": f"sqlite:///{tmp_path}/empty.db", "PATH": "/usr/bin:/bin"}
    fledgling = str(Path(sys.executable).parent / "fledgling")
    res = subprocess.run([fledgling, "contracts", "show", "--task", "ghost"], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert res.returncode == 5
    assert res.stderr.strip().count("\n") == 0
    assert "no stored contract for task 'ghost'" in res.stderr
    assert "fledgling contracts infer --task ghost" in res.stderr
