"""The scoring rules of docs/paritybench.md, one by one, plus properties that must hold for any input."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from fledgling.calls import Response, ToolCall
from fledgling.contracts import Contract, ToolSpec
from fledgling.evals.scoring import (
    compare_structured,
    compare_tool_calls,
    leaf_fields,
    normalise_text,
    score_item,
    values_equal,
)

ORDER = {"type": "object",
         "properties": {"order_id": {"type": "string"}, "qty": {"type": "integer"},
                        "price": {"type": "number"}, "gift": {"type": "boolean"},
                        "note": {"type": "string"}},
         "required": ["order_id"]}
SCHEMAS = {"refund": ORDER, "lookup": {"type": "object", "properties": {"q": {"type": "string"}}}}


def tc(name: str, **args) -> ToolCall:
    return ToolCall(name=name, arguments=json.dumps(args))


def contract(kind="toolcall", output_schema=None) -> Contract:
    tools = [ToolSpec(name=n, parameters=s) for n, s in SCHEMAS.items()] if kind == "toolcall" else []
    return Contract(task="t", version="v", kind=kind, tools=tools, output_schema=output_schema, stats={})


# -- type rules -------------------------------------------------------------------------------------

def test_string_for_integer_is_a_mismatch():
    assert not values_equal("5", 5, {"type": "integer"})
    assert values_equal(5, 5, {"type": "integer"})


def test_int_and_float_equal_for_a_number():
    assert values_equal(1, 1.0, {"type": "number"})
    assert values_equal(1.0, 1, {"type": "number"})


def test_float_where_integer_expected_is_rejected():
    assert not values_equal(5.0, 5, {"type": "integer"})


def test_bool_is_never_a_number():
    assert not values_equal(True, 1, {"type": "integer"})
    assert not values_equal(1, True, {"type": "number"})
    assert not values_equal(True, 1)
    assert not values_equal(0, False)


def test_strings_are_strict_unless_lenient():
    assert not values_equal("Order 12", "order-12", {"type": "string"})
    assert values_equal("Order 12!", "order  12", {"type": "string"}, lenient=True)
    assert normalise_text("  Hello,   World ") == "hello world"


def test_nested_objects_and_arrays_follow_the_schema():
    schema = {"type": "object", "properties": {
        "items": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer"}}}}}}
    assert values_equal({"items": [{"qty": 2}]}, {"items": [{"qty": 2}]}, schema)
    assert not values_equal({"items": [{"qty": "2"}]}, {"items": [{"qty": 2}]}, schema)
    assert not values_equal({"items": [{"qty": 2}, {"qty": 3}]}, {"items": [{"qty": 2}]}, schema)


def test_union_types_accept_either_branch():
    assert values_equal(None, None, {"type": ["string", "null"]})
    assert values_equal(3, 3.0, {"anyOf": [{"type": "string"}, {"type": "number"}]})
    assert not values_equal("3", 3, {"anyOf": [{"type": "integer"}, {"type": "null"}]})


# -- tool calls -------------------------------------------------------------------------------------

def test_identical_calls_score_one():
    c = compare_tool_calls([tc("refund", order_id="A1", qty=2)], [tc("refund", order_id="A1", qty=2)], SCHEMAS)
    assert (c.tool_name_match, c.args_exact_match, c.arg_precision, c.arg_recall) == (1, 1, 1, 1)


def test_argument_order_and_whitespace_in_json_text_do_not_matter():
    pred = ToolCall(name="refund", arguments='{ "qty": 2,\n "order_id": "A1" }')
    c = compare_tool_calls([pred], [tc("refund", order_id="A1", qty=2)], SCHEMAS)
    assert c.args_exact_match == 1.0


def test_type_mismatch_in_an_argument_breaks_exact_match_and_precision():
    c = compare_tool_calls([tc("refund", order_id="A1", qty="2")], [tc("refund", order_id="A1", qty=2)], SCHEMAS)
    assert c.tool_name_match == 1.0
    assert c.args_exact_match == 0.0
    assert c.arg_precision == 0.5 and c.arg_recall == 0.5


def test_int_for_a_number_argument_matches():
    c = compare_tool_calls([tc("refund", order_id="A1", price=10)], [tc("refund", order_id="A1", price=10.0)], SCHEMAS)
    assert c.args_exact_match == 1.0


def test_optional_argument_absent_on_both_sides_matches_but_not_on_one():
    both = compare_tool_calls([tc("refund", order_id="A1")], [tc("refund", order_id="A1")], SCHEMAS)
    assert both.args_exact_match == 1.0
    extra = compare_tool_calls([tc("refund", order_id="A1", note="x")], [tc("refund", order_id="A1")], SCHEMAS)
    assert extra.args_exact_match == 0.0
    assert extra.arg_precision == 0.5 and extra.arg_recall == 1.0
    missing = compare_tool_calls([tc("refund", order_id="A1")], [tc("refund", order_id="A1", note="x")], SCHEMAS)
    assert missing.arg_precision == 1.0 and missing.arg_recall == 0.5


def test_parallel_calls_are_order_free():
    ref = [tc("lookup", q="a"), tc("refund", order_id="A1"), tc("lookup", q="b")]
    pred = [tc("lookup", q="b"), tc("lookup", q="a"), tc("refund", order_id="A1")]
    c = compare_tool_calls(pred, ref, SCHEMAS)
    assert c.args_exact_match == 1.0 and c.arg_precision == 1.0


def test_parallel_calls_are_a_multiset_not_a_set():
    ref = [tc("lookup", q="a"), tc("lookup", q="a")]
    c = compare_tool_calls([tc("lookup", q="a")], ref, SCHEMAS)
    assert c.tool_name_match == 0.0 and c.args_exact_match == 0.0
    assert c.arg_precision == 1.0 and c.arg_recall == 0.5


def test_no_tool_call_is_a_prediction():
    assert compare_tool_calls([], [], SCHEMAS).args_exact_match == 1.0
    missed = compare_tool_calls([], [tc("refund", order_id="A1")], SCHEMAS)
    assert (missed.tool_name_match, missed.args_exact_match, missed.arg_recall) == (0, 0, 0)
    spurious = compare_tool_calls([tc("refund", order_id="A1")], [], SCHEMAS)
    assert (spurious.tool_name_match, spurious.arg_precision) == (0, 0)


def test_wrong_tool_name_matches_no_arguments():
    c = compare_tool_calls([tc("lookup", q="A1")], [tc("refund", order_id="A1")], SCHEMAS)
    assert (c.tool_name_match, c.args_exact_match, c.arg_precision, c.arg_recall) == (0, 0, 0, 0)


def test_invalid_json_arguments_never_match():
    bad = ToolCall(name="refund", arguments='{"order_id": "A1"')
    c = compare_tool_calls([bad], [tc("refund", order_id="A1")], SCHEMAS)
    assert c.tool_name_match == 1.0 and c.args_exact_match == 0.0 and c.arg_precision == 0.0


# -- structured -------------------------------------------------------------------------------------

TRIAGE = {"type": "object", "properties": {
    "priority": {"type": "integer"}, "team": {"type": "string"},
    "tags": {"type": "array", "items": {"type": "string"}}}}


def test_leaf_fields_by_json_path():
    assert leaf_fields({"a": {"b": [1, {"c": 2}]}, "d": {}}) == {"$.a.b[0]": 1, "$.a.b[1].c": 2, "$.d": {}}


def test_structured_exact_and_field_accuracy():
    ref = {"priority": 2, "team": "billing", "tags": ["refund", "urgent"]}
    assert compare_structured(ref, ref, TRIAGE) == (1.0, 1.0)
    pred = {"priority": "2", "team": "billing", "tags": ["refund", "urgent"], "extra": 1}
    exact, acc = compare_structured(pred, ref, TRIAGE)
    assert exact == 0.0 and acc == 3 / 5


def test_score_item_for_a_structured_contract():
    c = contract("structured", TRIAGE)
    ref = Response(content='{"priority": 1, "team": "billing", "tags": []}')
    good = score_item(Response(content='{"team": "billing", "priority": 1, "tags": []}'), ref, c)
    assert (good.exact_match, good.field_accuracy, good.schema_valid) == (1, 1, 1)
    not_json = score_item(Response(content="billing, p1"), ref, c)
    assert (not_json.exact_match, not_json.field_accuracy, not_json.schema_valid) == (0, 0, 0)
    assert good.tool_name_match is None


def test_score_item_for_a_toolcall_contract_checks_schema_validity():
    c = contract()
    ref = Response(tool_calls=[tc("refund", order_id="A1", qty=1)])
    wrong_type = score_item(Response(tool_calls=[tc("refund", order_id="A1", qty="1")]), ref, c)
    assert wrong_type.schema_valid == 0.0 and wrong_type.args_exact_match == 0.0 and wrong_type.success == 0.0
    right = score_item(Response(tool_calls=[tc("refund", qty=1, order_id="A1")]), ref, c)
    assert right.schema_valid == 1.0 and right.success == 1.0
    failed = score_item(None, ref, c)
    assert failed.schema_valid == 0.0 and failed.tool_name_match == 0.0


# -- properties -------------------------------------------------------------------------------------

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-5, 5, allow_nan=False),
                      st.text(max_size=4))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)), max_leaves=8)
args = st.dictionaries(st.sampled_from(["order_id", "qty", "price", "gift", "note"]), json_value, max_size=4)
calls = st.lists(st.tuples(st.sampled_from(["refund", "lookup"]), args), max_size=4)


def _to_calls(raw) -> list[ToolCall]:
    return [ToolCall(name=n, arguments=json.dumps(a)) for n, a in raw]


@settings(max_examples=150, deadline=None)
@given(json_value)
def test_every_value_equals_itself(v):
    assert values_equal(v, v)
    assert values_equal(v, v, lenient=True)


@settings(max_examples=150, deadline=None)
@given(json_value, json_value)
def test_equality_without_schema_is_symmetric(a, b):
    assert values_equal(a, b) == values_equal(b, a)


@settings(max_examples=100, deadline=None)
@given(calls)
def test_identical_predictions_score_one_everywhere(raw):
    c = compare_tool_calls(_to_calls(raw), _to_calls(raw), SCHEMAS)
    assert (c.tool_name_match, c.args_exact_match, c.arg_precision, c.arg_recall) == (1, 1, 1, 1)


@settings(max_examples=100, deadline=None)
@given(calls, calls, st.randoms(use_true_random=False))
def test_parallel_call_order_never_changes_a_score(pred, ref, rnd):
    base = compare_tool_calls(_to_calls(pred), _to_calls(ref), SCHEMAS)
    shuffled_p, shuffled_r = pred[:], ref[:]
    rnd.shuffle(shuffled_p)
    rnd.shuffle(shuffled_r)
    again = compare_tool_calls(_to_calls(shuffled_p), _to_calls(shuffled_r), SCHEMAS)
    assert (base.tool_name_match, base.args_exact_match, base.arg_precision, base.arg_recall) == \
           (again.tool_name_match, again.args_exact_match, again.arg_precision, again.arg_recall)


@settings(max_examples=100, deadline=None)
@given(calls, calls)
def test_swapping_sides_swaps_precision_and_recall(pred, ref):
    ab = compare_tool_calls(_to_calls(pred), _to_calls(ref))
    ba = compare_tool_calls(_to_calls(ref), _to_calls(pred))
    assert ab.tool_name_match == ba.tool_name_match and ab.args_exact_match == ba.args_exact_match
    assert ab.arg_precision == ba.arg_recall and ab.arg_recall == ba.arg_precision


@settings(max_examples=100, deadline=None)
@given(calls, calls)
def test_scores_are_bounded_and_exact_implies_names(pred, ref):
    c = compare_tool_calls(_to_calls(pred), _to_calls(ref), SCHEMAS)
    assert all(0.0 <= x <= 1.0 for x in (c.arg_precision, c.arg_recall))
    if c.args_exact_match:
        assert c.tool_name_match == 1.0 and c.arg_precision == 1.0 and c.arg_recall == 1.0


@settings(max_examples=100, deadline=None)
@given(json_value, json_value)
def test_field_accuracy_bounded_and_one_iff_exact_without_schema(a, b):
    exact, acc = compare_structured(a, b)
    assert 0.0 <= acc <= 1.0
    if exact:
        assert acc == 1.0
