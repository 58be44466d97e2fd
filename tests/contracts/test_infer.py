"""Contract inference: kind, tool union, newest declaration, stats, content-hash versions."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from fledgling.calls import Response
from fledgling.contracts import contract_version, infer_contract
from fledgling.errors import ContractError
from tests.contracts.builders import (
    ORDER_SCHEMA,
    REFUND_SCHEMA,
    T0,
    TOOLS,
    TRIAGE_SCHEMA,
    call,
    json_format,
    tool,
    tool_answer,
)


def test_kind_toolcall_when_any_request_has_tools() -> None:
    calls = [call(0), call(1, tools=TOOLS, response=tool_answer(("cancel_order", {"order_id": "A"})))]
    c = infer_contract(calls, "t")
    assert c.kind == "toolcall"
    assert [t.name for t in c.tools] == ["cancel_order", "issue_refund"]
    assert c.tool("cancel_order").description == "Cancel an order."
    assert c.tool("cancel_order").parameters == ORDER_SCHEMA
    assert c.output_schema is None


def test_kind_structured_takes_the_response_format_schema() -> None:
    c = infer_contract([call(0, response_format=json_format(TRIAGE_SCHEMA),
                             response=Response(content='{"priority": "low", "customer": {"tier": "x"}}'))], "t")
    assert c.kind == "structured"
    assert c.output_schema == TRIAGE_SCHEMA
    assert c.tools == []


def test_json_object_format_means_any_object() -> None:
    c = infer_contract([call(0, response_format={"type": "json_object"})], "t")
    assert (c.kind, c.output_schema) == ("structured", {"type": "object"})


def test_kind_text_without_tools_or_schema() -> None:
    c = infer_contract([call(0), call(1, response_format={"type": "text"})], "t")
    assert (c.kind, c.tools, c.output_schema) == ("text", [], None)


def test_tools_are_the_union_across_calls() -> None:
    a = call(0, tools=[TOOLS[0]])
    b = call(1, tools=[TOOLS[1], tool("ping", {"type": "object"})])
    assert [t.name for t in infer_contract([a, b], "t").tools] == ["cancel_order", "issue_refund", "ping"]


def test_missing_parameters_default_to_an_empty_object_schema() -> None:
    c = infer_contract([call(0, tools=[{"type": "function", "function": {"name": "now"}}])], "t")
    assert c.tool("now").parameters == {"type": "object", "properties": {}}


def test_newest_declaration_wins_whatever_the_order_and_is_noted() -> None:
    newer = copy.deepcopy(ORDER_SCHEMA)
    newer["properties"]["order_id"]["pattern"] = "^ORD-"
    old = call(0, tools=[tool("cancel_order", ORDER_SCHEMA)], at=T0)
    new = call(1, tools=[tool("cancel_order", newer)], at=T0 + timedelta(days=1))
    for order in ([old, new], [new, old]):
        c = infer_contract(order, "t")
        assert c.tool("cancel_order").parameters == newer
        assert c.stats["tool_schema_changes"] == {"cancel_order": 2}


def test_stats_count_calls_tools_arguments_and_shares() -> None:
    calls = [
        call(0, tools=TOOLS, response=tool_answer(("cancel_order", {"order_id": "A", "notify": True}))),
        call(1, tools=TOOLS, response=tool_answer(("cancel_order", {"order_id": "B"}),
                                                 ("issue_refund", {"order_id": "B", "amount": 3,
                                                                   "items": [{"sku": "S", "qty": 1}]}))),
        call(2, tools=TOOLS, response=Response(content="hello")),
        call(3, tools=TOOLS, response=tool_answer(("cancel_order", "{broken"))),
        call(4, tools=TOOLS, status="error"),
        call(5, tools=TOOLS, response=tool_answer(("mystery", {}))),
    ]
    st = infer_contract(calls, "t").stats
    assert (st["n"], st["answered"], st["errors"]) == (6, 5, 1)
    assert st["no_tool_call_share"] == pytest.approx(1 / 5, abs=1e-4)
    assert st["parallel_share"] == pytest.approx(1 / 5, abs=1e-4)
    cancel = st["tools"]["cancel_order"]
    assert cancel["calls"] == 3 and cancel["invalid_json_arguments"] == 1
    assert cancel["arguments"] == {"order_id": 1.0, "notify": 0.5}  # of the 2 calls with parseable arguments
    assert st["tools"]["issue_refund"]["arguments"] == {"order_id": 1.0, "amount": 1.0, "items": 1.0,
                                                        "items[].sku": 1.0, "items[].qty": 1.0}
    assert st["tools"]["mystery"] == {"calls": 1, "declared": False, "invalid_json_arguments": 0, "arguments": {}}
    assert st["models"] == {"gpt-4o": 6}


def test_structured_stats_count_field_presence_and_unparseable_outputs() -> None:
    fmt = json_format(TRIAGE_SCHEMA)
    calls = [call(0, response_format=fmt,
                  response=Response(content='{"priority":"low","customer":{"tier":"a"},"tags":[]}')),
             call(1, response_format=fmt, response=Response(content='{"priority":"high","customer":{}}')),
             call(2, response_format=fmt, response=Response(content="Sure! here it is"))]
    st = infer_contract(calls, "t").stats
    assert (st["structured_outputs"], st["unparseable_outputs"]) == (3, 1)
    assert st["fields"] == {"customer": 1.0, "customer.tier": 0.5, "priority": 1.0, "tags": 0.5}


def test_version_is_stable_across_call_and_tool_order() -> None:
    a = call(0, tools=TOOLS)
    b = call(1, tools=list(reversed(TOOLS)))
    v1 = infer_contract([a, b], "t").version
    assert infer_contract([b, a], "t").version == v1
    assert infer_contract([b], "other-task-name").version == v1
    assert len(v1) == 16 and int(v1, 16) >= 0


def test_version_changes_when_a_schema_or_the_kind_changes() -> None:
    base = infer_contract([call(0, tools=TOOLS)], "t").version
    changed = copy.deepcopy(REFUND_SCHEMA)
    changed["properties"]["amount"]["minimum"] = 0
    assert infer_contract([call(0, tools=[TOOLS[0], tool("issue_refund", changed)])], "t").version != base
    assert infer_contract([call(0, tools=[TOOLS[0]])], "t").version != base
    structured = infer_contract([call(0, response_format=json_format(ORDER_SCHEMA))], "t")
    assert structured.version != contract_version("text", [], ORDER_SCHEMA)


def test_no_calls_is_a_clear_error() -> None:
    with pytest.raises(ContractError, match="no calls"):
        infer_contract([], "empty")


def test_invalid_declared_schema_is_a_contract_error_naming_the_tool() -> None:
    bad = tool("weird", {"type": "object", "properties": {"a": {"type": "strin"}}})
    with pytest.raises(ContractError, match="tool 'weird'.*properties.a.type"):
        infer_contract([call(0, tools=[bad])], "t")
