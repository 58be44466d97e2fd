"""`strict` on tools and on json_schema response formats: kept by inference and storage, shown by
`fledgling contracts show`, and honoured by validation and the swap enforcer (OpenAI's strict
mode: no property beyond the declared ones, every declared property present)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fledgling.calls import Request, Response
from fledgling.cli import app
from fledgling.contracts import (
    contract_version,
    infer_contract,
    load_contract,
    save_contract,
    strict_schema,
    validate,
)
from fledgling.store import Store
from fledgling.swap.enforcer import Enforcer, request_contract
from tests.contracts.builders import call, tool_answer

# Optional `note`, open to extra fields: lenient reading accepts {"order_id": "A1"}.
OPEN = {"type": "object", "properties": {"order_id": {"type": "string"}, "note": {"type": "string"}},
        "required": ["order_id"]}


def strict_tool(strict: bool | None, name: str = "cancel_order") -> dict:
    fn: dict = {"name": name, "parameters": OPEN}
    if strict is not None:
        fn["strict"] = strict
    return {"type": "function", "function": fn}


def fmt(strict: bool | None) -> dict:
    inner: dict = {"name": "out", "schema": OPEN}
    if strict is not None:
        inner["strict"] = strict
    return {"type": "json_schema", "json_schema": inner}


def test_strict_schema_closes_every_object_and_requires_every_property() -> None:
    nested = {"type": "object", "properties": {
        "a": {"type": "object", "properties": {"x": {"type": "integer"}}},
        "b": {"type": "array", "items": {"$ref": "#/$defs/B"}}},
        "$defs": {"B": {"type": "object", "properties": {"y": {"type": ["string", "null"]}},
                        "additionalProperties": True}}}
    got = strict_schema(nested)
    assert got["additionalProperties"] is False and got["required"] == ["a", "b"]
    assert got["properties"]["a"] == {"type": "object", "properties": {"x": {"type": "integer"}},
                                      "additionalProperties": False, "required": ["x"]}
    assert got["$defs"]["B"]["required"] == ["y"]
    assert got["$defs"]["B"]["additionalProperties"] is True  # said otherwise: kept
    assert nested["properties"]["a"] == {"type": "object", "properties": {"x": {"type": "integer"}}}


def test_infer_keeps_strict_of_tools_and_response_format() -> None:
    calls = [call(0, tools=[strict_tool(True), strict_tool(False, "refund"), strict_tool(None, "ping")]),
             call(1, response_format=fmt(True), response=Response(content='{"order_id": "A1", "note": ""}'))]
    contract = infer_contract(calls, "t")
    assert {t.name: t.strict for t in contract.tools} == {"cancel_order": True, "refund": False, "ping": None}
    assert contract.output_strict is True


def test_responses_style_flat_tools_keep_strict_too() -> None:
    flat = {"type": "function", "name": "cancel_order", "parameters": OPEN, "strict": True}
    assert infer_contract([call(0, tools=[flat])], "t").tools[0].strict is True


def test_strict_changes_the_version_and_silence_keeps_the_old_one() -> None:
    silent = infer_contract([call(0, tools=[strict_tool(None)])], "t")
    strict = infer_contract([call(0, tools=[strict_tool(True)])], "t")
    lax = infer_contract([call(0, tools=[strict_tool(False)])], "t")
    assert len({silent.version, strict.version, lax.version}) == 3
    # a contract stored before `strict` existed hashes as it did: the field is left out when unset
    before = {"kind": "toolcall", "output_schema": None,
              "tools": [{"name": "cancel_order", "description": None, "parameters": OPEN}]}
    expected = hashlib.sha256(json.dumps(before, sort_keys=True, separators=(",", ":"))
                              .encode()).hexdigest()[:16]
    assert silent.version == expected == contract_version("toolcall", silent.tools, None)
    assert infer_contract([call(0, response_format=fmt(True))], "t").version != \
        infer_contract([call(0, response_format=fmt(None))], "t").version


def test_storage_round_trips_strict(store: Store) -> None:
    contract = infer_contract([call(0, tools=[strict_tool(True), strict_tool(None, "ping")],
                                    response_format=fmt(False))], "t")
    assert save_contract(store, contract)
    loaded = load_contract(store, "t")
    assert loaded == contract
    assert loaded is not None and [t.strict for t in loaded.tools] == [True, None]
    assert loaded.output_strict is False and "output_strict" not in loaded.stats


@pytest.mark.parametrize("strict", [True, False, None])
def test_validation_honours_strict(strict: bool | None) -> None:
    contract = infer_contract([call(0, tools=[strict_tool(strict)])], "t")
    missing = validate(tool_answer(("cancel_order", {"order_id": "A1"})), contract)
    extra = validate(tool_answer(("cancel_order", {"order_id": "A1", "note": "", "why": "x"})), contract)
    complete = validate(tool_answer(("cancel_order", {"order_id": "A1", "note": ""})), contract)
    assert complete == []
    if strict:
        assert [(v.code, v.path) for v in missing] == [("missing_required", "tool_calls[0].arguments.note")]
        assert [(v.code, v.path) for v in extra] == [("schema", "tool_calls[0].arguments.why")]
    else:
        assert missing == [] and extra == []


def test_structured_output_strict_is_honoured() -> None:
    strict = infer_contract([call(0, response_format=fmt(True))], "t")
    lax = infer_contract([call(0, response_format=fmt(None))], "t")
    answer = Response(content='{"order_id": "A1"}')
    assert [v.code for v in validate(answer, strict)] == ["missing_required"]
    assert validate(answer, lax) == []


def test_enforcer_holds_a_declared_strict_request_to_strict_mode(sqlite_store: Store) -> None:
    enforcer = Enforcer(sqlite_store)
    answer = tool_answer(("cancel_order", {"order_id": "A1", "extra": 1}))
    for strict, expected in ((True, ["schema", "missing_required"]), (None, [])):
        body = {"messages": [], "tools": [strict_tool(strict)]}
        contract = asyncio.run(enforcer.contract("fresh-task", body))
        assert sorted(v.code for v in enforcer.check(answer, contract, body)) == sorted(expected)
    flat = request_contract("t", Request.model_validate(
        {"messages": [], "tools": [{"type": "function", "name": "cancel_order", "parameters": OPEN,
                                    "strict": True}], "response_format": fmt(True)}))
    assert flat.tools[0].strict is True and flat.output_strict is True


def test_enforcer_uses_the_stored_contracts_strict(sqlite_store: Store) -> None:
    save_contract(sqlite_store, infer_contract([call(0, task="shop", tools=[strict_tool(True)])], "shop"))
    enforcer = Enforcer(sqlite_store)
    body = {"messages": [], "tools": [strict_tool(None)]}  # the request says nothing; the contract does
    contract = asyncio.run(enforcer.contract("shop", body))
    violations = enforcer.check(tool_answer(("cancel_order", {"order_id": "A1"})), contract, body)
    assert [v.path for v in violations] == ["tool_calls[0].arguments.note"]


def test_cli_show_says_strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    with Store(url) as s:
        s.insert_calls([call(0, task="shop", tools=[strict_tool(True), strict_tool(None, "ping")],
                             response_format=fmt(False))])
    monkeypatch.setenv("FLEDGLING_DB_URL", url)
    runner = CliRunner()
    assert runner.invoke(app, ["contracts", "infer", "--task", "shop"]).exit_code == 0
    shown = runner.invoke(app, ["contracts", "show", "--task", "shop"])
    assert shown.exit_code == 0, shown.output
    assert "cancel_order (strict)" in shown.output and "ping (strict" not in shown.output
    assert "output schema (strict: false)" in shown.output
    as_json = json.loads(runner.invoke(app, ["contracts", "show", "--task", "shop", "--json"]).output)
    assert [t.get("strict") for t in as_json["tools"]] == [True, None]
    assert as_json["output_strict"] is False
