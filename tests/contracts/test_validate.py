"""Validation: every violation code, with the exact path of the offending field."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fledgling.calls import Response
from fledgling.contracts import Contract, ToolSpec, Violation, check_calls, infer_contract, validate, validate_call
from fledgling.errors import ContractError
from tests.contracts.builders import TOOLS, TRIAGE_SCHEMA, call, json_format, tool, tool_answer

TOOLCALL = infer_contract([call(0, tools=TOOLS)], "shop")
STRUCTURED = infer_contract([call(0, response_format=json_format(TRIAGE_SCHEMA))], "triage")
TEXT = infer_contract([call(0)], "chat")


def pairs(violations: list[Violation]) -> list[tuple[str, str]]:
    return [(v.code, v.path) for v in violations]


def test_valid_tool_calls_have_no_violations() -> None:
    resp = tool_answer(("cancel_order", {"order_id": "A", "reason": "other", "notify": False}),
                       ("issue_refund", {"order_id": "A", "amount": 2.5, "items": [{"sku": "S", "qty": 2}]}))
    assert validate(resp, TOOLCALL) == []
    assert validate(Response(content="Hello! How can I help?"), TOOLCALL) == []


def test_unknown_tool() -> None:
    v = validate(tool_answer(("cancel_order", {"order_id": "A"}), ("delete_everything", {})), TOOLCALL)
    assert pairs(v) == [("unknown_tool", "tool_calls[1].name")]
    assert "cancel_order, issue_refund" in v[0].message


def test_invalid_json_arguments() -> None:
    v = validate(tool_answer(("cancel_order", {"order_id": "A"}), ("issue_refund", "{'order_id': 'A'}")), TOOLCALL)
    assert pairs(v) == [("invalid_json", "tool_calls[1].arguments")]


def test_missing_required_points_at_the_missing_field_even_nested() -> None:
    resp = tool_answer(("cancel_order", {"order_id": "A"}),
                       ("issue_refund", {"amount": 1, "items": [{"sku": "S", "qty": 1}, {"sku": "T"}]}))
    assert pairs(validate(resp, TOOLCALL)) == [("missing_required", "tool_calls[1].arguments.order_id"),
                                                ("missing_required", "tool_calls[1].arguments.items[1].qty")]


def test_schema_violations_name_the_exact_field() -> None:
    resp = tool_answer(("issue_refund", {"order_id": "A", "amount": "12", "items": [{"sku": "S", "qty": 1.5}]}),
                       ("cancel_order", {"order_id": "A", "reason": "bored", "extra": 1}))
    assert pairs(validate(resp, TOOLCALL)) == [
        ("schema", "tool_calls[0].arguments.amount"),
        ("schema", "tool_calls[0].arguments.items[0].qty"),
        ("schema", "tool_calls[1].arguments.extra"),
        ("schema", "tool_calls[1].arguments.reason"),
    ]


def test_all_violations_are_returned_together() -> None:
    resp = tool_answer(("nope", {}), ("cancel_order", "{"), ("issue_refund", {"order_id": 1}))
    codes = [v.code for v in validate(resp, TOOLCALL)]
    assert codes == ["unknown_tool", "invalid_json", "missing_required", "schema"]


def test_odd_field_names_get_quoted_in_paths() -> None:
    contract = infer_contract([call(0, tools=[tool("f", {"type": "object", "properties": {
        "a b": {"type": "object", "properties": {"c.d": {"type": "integer"}}}}})])], "t")
    assert pairs(validate(tool_answer(("f", {"a b": {"c.d": "x"}})), contract)) == [
        ("schema", 'tool_calls[0].arguments["a b"]["c.d"]')]


def test_arguments_that_are_not_an_object() -> None:
    assert pairs(validate(tool_answer(("cancel_order", "[1, 2]")), TOOLCALL)) == [("schema", "tool_calls[0].arguments")]


def test_structured_output_valid_and_invalid() -> None:
    good = Response(content='{"priority": "low", "customer": {"tier": "gold"}, "tags": ["a"]}')
    assert validate(good, STRUCTURED) == []
    bad = Response(content='{"priority": "medium", "customer": {}, "tags": [1]}')
    assert pairs(validate(bad, STRUCTURED)) == [("missing_required", "content.customer.tier"),
                                                ("schema", "content.priority"), ("schema", "content.tags[0]")]


@pytest.mark.parametrize("content", ["Here you go: {\"priority\": \"low\"}", "", None, "```json\n{}\n```"])
def test_structured_output_that_is_not_json(content: str | None) -> None:
    assert pairs(validate(Response(content=content), STRUCTURED)) == [("not_json", "content")]


def test_tool_calls_where_the_contract_has_no_tools() -> None:
    resp = tool_answer(("cancel_order", {"order_id": "A"}))
    assert pairs(validate(resp, STRUCTURED)) == [("unexpected_tool_call", "tool_calls[0]")]
    assert pairs(validate(resp, TEXT)) == [("unexpected_tool_call", "tool_calls[0]")]
    assert validate(Response(content="anything at all"), TEXT) == []


def test_truncated_output_is_reported_with_what_it_broke() -> None:
    resp = tool_answer(("cancel_order", '{"order_id": "A'), finish_reason="length")
    assert pairs(validate(resp, TOOLCALL)) == [("truncated", "finish_reason"),
                                               ("invalid_json", "tool_calls[0].arguments")]


def test_tool_choice_rules() -> None:
    text = Response(content="hi")
    one = tool_answer(("cancel_order", {"order_id": "A"}))
    two = tool_answer(("cancel_order", {"order_id": "A"}), ("issue_refund", {"order_id": "A", "amount": 1}))
    forced = {"type": "function", "function": {"name": "issue_refund"}}
    assert pairs(validate(text, TOOLCALL, tool_choice="required")) == [("no_tool_call", "tool_calls")]
    assert pairs(validate(text, TOOLCALL, tool_choice=forced)) == [("no_tool_call", "tool_calls")]
    assert pairs(validate(one, TOOLCALL, tool_choice="none")) == [("unexpected_tool_call", "tool_calls[0]")]
    assert pairs(validate(one, TOOLCALL, tool_choice=forced)) == [("unexpected_tool_call", "tool_calls[0].name")]
    assert pairs(validate(two, TOOLCALL, parallel_tool_calls=False)) == [("unexpected_tool_call", "tool_calls[1]")]
    assert validate(two, TOOLCALL, tool_choice="auto", parallel_tool_calls=True) == []
    assert validate(one, TOOLCALL, tool_choice="required") == []


def test_validate_call_reads_tool_choice_from_the_request() -> None:
    c = call(1, tools=TOOLS, response=Response(content="no"), tool_choice="required")
    assert pairs(validate_call(c, TOOLCALL)) == [("no_tool_call", "tool_calls")]
    two = tool_answer(("cancel_order", {"order_id": "A"}), ("cancel_order", {"order_id": "B"}))
    assert pairs(validate_call(call(2, tools=TOOLS, response=two, parallel_tool_calls=False), TOOLCALL)) == [
        ("unexpected_tool_call", "tool_calls[1]")]
    assert validate_call(call(3, tools=TOOLS, status="error"), TOOLCALL) == []


def test_invalid_schema_in_a_contract_raises_contract_error() -> None:
    bad = Contract(task="t", version="x", kind="toolcall", stats={},
                   tools=[ToolSpec(name="f", parameters={"type": "object", "required": "order_id"})])
    with pytest.raises(ContractError, match="tool 'f' parameters is not a valid JSON Schema 2020-12 at required"):
        validate(Response(content="x"), bad)
    bad_out = Contract(task="t", version="x", kind="structured", tools=[], stats={},
                       output_schema={"type": "objekt"})
    with pytest.raises(ContractError, match="response_format schema"):
        validate(Response(content="{}"), bad_out)


def test_check_calls_counts_calls_per_code() -> None:
    calls = [call(0, tools=TOOLS, response=tool_answer(("cancel_order", {"order_id": "A"}))),
             call(1, tools=TOOLS, response=tool_answer(("cancel_order", "{"), ("zap", {}))),
             call(2, tools=TOOLS, response=tool_answer(("cancel_order", "{"))),
             call(3, tools=TOOLS, status="error")]
    result = check_calls(calls, TOOLCALL)
    assert (result.checked, result.valid, result.invalid, result.no_answer) == (3, 1, 2, 1)
    assert result.by_code == {"invalid_json": 2, "unknown_tool": 1}
    assert [cid for cid, _ in result.examples] == ["call-1", "call-2"]


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: (st.lists(inner, max_size=3)
                                          | st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.none() | st.text(max_size=40) | json_values.map(lambda v: json.dumps(v)),
       calls=st.lists(st.tuples(st.sampled_from(["cancel_order", "issue_refund", "x", ""]),
                                st.text(max_size=30) | json_values.map(lambda v: json.dumps(v))),
                      max_size=3),
       finish=st.sampled_from([None, "stop", "length", "tool_calls"]),
       choice=st.sampled_from([None, "auto", "none", "required", {"type": "function", "function": {"name": "x"}}]))
def test_validate_never_crashes_and_returns_known_codes(content, calls, finish, choice) -> None:
    resp = Response(content=content, tool_calls=[{"id": "c", "type": "function",
                                                  "function": {"name": n, "arguments": a}} for n, a in calls],
                    finish_reason=finish)
    for contract in (TOOLCALL, STRUCTURED, TEXT):
        for v in validate(resp, contract, tool_choice=choice):
            assert v.code in {"invalid_json", "not_json", "unknown_tool", "missing_required", "schema",
                              "no_tool_call", "unexpected_tool_call", "truncated"}
            assert v.path and v.message
