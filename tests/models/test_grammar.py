"""Bounded schemas: a constrained answer ends before the token cap, for any cap above the schema's
shortest answer, and still validates against the schema the contract declared.

The decoding tests use the tiny random model (tests/models/tiny.py): its character vocabulary
spells every answer one character per token, the worst case the bounds are counted for, and
its random weights take whatever branch, length and character the grammar leaves open.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from fledgling.calls import Request
from fledgling.models.constrained import request_grammar
from fledgling.models.grammar import GrammarBoundError, bound_schema, floor_tokens, longest_bytes
from fledgling.models.local import LocalBackend

CHAT = (", ", ": ")
COMPACT = (",", ":")
NAMES = st.from_regex(r"[a-z]{1,5}", fullmatch=True)


@pytest.fixture(scope="module")
def tiny_constrained(tiny_model_dir) -> LocalBackend:
    return LocalBackend("tiny", tiny_model_dir, batch_size=4, max_new_tokens=1024, constrained=True,
                        dtype="float32")


def _validate(schema, value):
    Draft202012Validator(schema, format_checker=FormatChecker()).validate(value)


# -- a family of schemas with everything that grows: free strings, open arrays, open numbers ------------

leaf = st.one_of(
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.just({"type": "integer"}),
    st.just({"type": "number"}),
    st.builds(lambda lo: {"type": "integer", "minimum": lo}, st.integers(-1000, 1000)),
    st.builds(lambda lo, span: {"type": "number", "minimum": lo, "maximum": lo + span},
              st.integers(-100, 100), st.integers(0, 10_000)),
    st.just({"type": "number", "exclusiveMinimum": 0}),
    st.just({"type": "string"}),
    st.builds(lambda n: {"type": "string", "minLength": n}, st.integers(0, 5)),
    st.builds(lambda n: {"type": "string", "maxLength": n}, st.integers(0, 300)),
    st.just({"type": "string", "pattern": "^ORD-[0-9]{6}$"}),
    st.just({"type": "string", "format": "email"}),
    st.just({"type": "string", "format": "date"}),
    st.lists(NAMES, min_size=1, max_size=4, unique=True).map(lambda vs: {"type": "string", "enum": vs}),
    st.just({"type": ["string", "null"]}),
)


def _object(props, required_mask):
    required = [k for k, keep in zip(sorted(props), required_mask, strict=False) if keep]
    return {"type": "object", "properties": props, "required": required}


schemas = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda item, n: {"type": "array", "items": item, "minItems": n}, inner, st.integers(0, 2)),
        st.builds(_object, st.dictionaries(NAMES, inner, min_size=1, max_size=3),
                  st.lists(st.booleans(), min_size=3, max_size=3)),
        st.lists(inner, min_size=2, max_size=3).map(lambda vs: {"anyOf": vs})),
    max_leaves=6)
object_schemas = st.builds(_object, st.dictionaries(NAMES, schemas, min_size=1, max_size=4),
                           st.lists(st.booleans(), min_size=4, max_size=4))

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SETTINGS
@given(object_schemas, st.integers(0, 80), st.text("abcdefghij ?!0123", min_size=1, max_size=12))
def test_structured_answers_are_valid_for_any_cap_above_the_floor(tiny_constrained, schema, extra, prompt):
    cap = floor_tokens(schema, separators=CHAT) + extra
    req = Request(messages=[{"role": "user", "content": prompt}], max_tokens=cap,
                  response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    gen = tiny_constrained.generate_sync([req])[0]
    assert gen.output_tokens <= cap
    assert gen.response.finish_reason == "stop", (cap, gen.text)
    assert not gen.parse_failed, gen.text
    _validate(schema, json.loads(gen.response.content))


@SETTINGS
@given(st.lists(object_schemas, min_size=1, max_size=3), st.sampled_from(["chat", "compact"]),
       st.booleans(), st.integers(0, 80))
def test_tool_calls_are_valid_for_any_cap_above_the_floor(tiny_constrained, param_schemas, prompt, parallel,
                                                          extra):
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "parameters": s}}
             for i, s in enumerate(param_schemas)]
    probe = Request(messages=[{"role": "user", "content": "do it"}], tools=tools, parallel_tool_calls=parallel)
    grammar = request_grammar(probe, prompt=prompt)
    assert grammar is not None
    reserved = len("<tool_call></tool_call>") if prompt == "chat" else 0
    cap = floor_tokens(grammar.schema, separators=grammar.separators, reserved=reserved) + extra
    backend = tiny_constrained.variant(prompt=prompt, task="t")
    req = probe.model_copy(update={"max_tokens": cap})
    gen = backend.generate_sync([req])[0]
    assert gen.output_tokens <= cap
    assert gen.response.finish_reason == "tool_calls", (cap, gen.text)
    assert not gen.parse_failed and gen.response.tool_calls, gen.text
    assert parallel or len(gen.response.tool_calls) == 1
    for tc in gen.response.tool_calls:
        _validate(param_schemas[int(tc.name.removeprefix("tool_"))], json.loads(tc.arguments))


def test_the_backend_cap_bounds_the_grammar_when_the_request_sets_none(tiny_model_dir):
    backend = LocalBackend("tiny", tiny_model_dir, max_new_tokens=24, constrained=True, dtype="float32")
    schema = {"type": "object", "required": ["s"], "properties": {
        "s": {"type": "string"}, "n": {"type": "array", "items": {"type": "integer"}}}}
    for prompt in ("a", "b", "c", "d"):
        req = Request(messages=[{"role": "user", "content": prompt}],
                      response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
        gen = backend.generate_sync([req])[0]
        assert gen.response.finish_reason == "stop", gen.text
        _validate(schema, json.loads(gen.response.content))


def test_a_text_answer_that_reaches_the_cap_is_kept_as_text(tiny_constrained):
    """A call always ends before the cap; a text answer may reach it, and is then kept as the text
    it is (finish_reason length, as a hosted model's), not decoded again into a shorter one."""
    tools = [{"type": "function", "function": {"name": "t", "parameters": {"type": "object", "properties": {}}}}]
    backend = tiny_constrained.variant(allow_text=True)
    book = backend._grammars
    for cap in (12, 30, 64):
        for prompt in ("hello", "what now", "x"):
            retries = book.retries
            gen = backend.generate_sync([Request(messages=[{"role": "user", "content": prompt}], tools=tools,
                                                 max_tokens=cap)])[0]
            assert gen.output_tokens <= cap and not gen.parse_failed, gen.text
            if gen.response.tool_calls:
                assert gen.response.finish_reason == "tool_calls", gen.text
            else:
                assert gen.response.content == gen.text and gen.text[:1] not in "{[<", gen.text
                assert book.retries == retries


# -- the floor and the bounds, checked against answers written by hand --------------------------------

@pytest.mark.parametrize(("schema", "shortest"), [
    ({"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"]}, '{"a": false}'),
    ({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a"]},
     '{"a": ""}'),
    ({"type": "array", "items": {"type": "null"}, "minItems": 2}, "[null, null]"),
    ({"anyOf": [{"type": "array", "items": {"type": "integer"}, "minItems": 1}, {"type": "null"}]}, "null"),
    ({"type": "string", "enum": ["medium", "low", "high"]}, '"low"'),
    ({"type": "string", "pattern": "^ORD-[0-9]{6}$"}, '"ORD-123456"'),
])
def test_floor_is_the_shortest_answer_plus_the_stop_token(schema, shortest):
    """The shortest form the bounds can narrow the schema to, at its longest (a boolean may be false)."""
    _validate(schema, json.loads(shortest))
    assert floor_tokens(schema, separators=CHAT) == len(shortest.encode()) + 1


def test_below_the_floor_says_by_how_much():
    schema = {"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^ORD-[0-9]{6}$"}},
              "required": ["order_id"]}
    with pytest.raises(GrammarBoundError, match="below the schema's shortest answer"):
        bound_schema(schema, 10, separators=COMPACT)


@pytest.mark.parametrize(("schema", "named"), [
    ({"type": "object", "properties": {"x": {}}}, "any type"),
    ({"type": "string", "pattern": "^a+$"}, "no longest match"),
    ({"type": "string", "format": "uri"}, "format 'uri'"),
    ({"$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"},
     "recursive"),
    ({"allOf": [{"type": "string"}]}, "allOf"),
])
def test_what_cannot_be_bounded_is_named(schema, named):
    with pytest.raises(GrammarBoundError, match=named):
        bound_schema(schema, 500)


def test_a_schema_that_fits_keeps_its_observed_shape():
    """A roomy cap changes nothing a real answer needs: every property, every enum value."""
    schema = {"type": "object", "properties": {
        "reason": {"type": "string", "enum": ["changed_mind", "found_cheaper", "other"]},
        "note": {"type": "string", "maxLength": 40},
        "qty": {"type": "integer", "minimum": 1, "maximum": 20},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3}},
        "required": ["reason"]}
    bounded = bound_schema(schema, 1000, separators=COMPACT)
    props = bounded["properties"]
    assert list(props) == list(schema["properties"])
    assert props["reason"]["enum"] == schema["properties"]["reason"]["enum"]
    assert props["qty"]["minimum"] == 1 and props["qty"]["maximum"] == 20
    assert props["tags"]["maxItems"] == 3


def test_a_tight_cap_keeps_every_enum_value_before_free_text():
    schema = {"type": "object", "properties": {
        "priority": {"type": "string", "enum": ["low", "normal", "urgent"]},
        "summary": {"type": "string"}}, "required": ["priority", "summary"]}
    bounded = bound_schema(schema, 80, separators=COMPACT)
    assert bounded["properties"]["priority"]["enum"] == ["low", "normal", "urgent"]
    assert longest_bytes(bounded, separators=COMPACT) <= 79


def test_what_a_tight_cap_leaves_out_is_named():
    from fledgling.models.constrained import compact_calls_schema
    from fledgling.models.grammar import bound_schema_and_losses

    short = {"name": "ping", "parameters": {"type": "object", "properties": {}}}
    long = {"name": "note", "parameters": {"type": "object", "required": ["text"],
                                            "properties": {"text": {"type": "string", "minLength": 30}}}}
    schema = compact_calls_schema([short, long], parallel=False)
    shortest_long = len('{"name":"note","arguments":{"text":""}}') + 30 * 4  # 30 characters of 4 bytes at worst
    bounded, left_out = bound_schema_and_losses(schema, shortest_long, separators=COMPACT)
    assert left_out == ["tool 'note'"] and len(bounded["anyOf"]) == 1
    _, left_out = bound_schema_and_losses(schema, shortest_long + 1, separators=COMPACT)
    assert left_out == []
