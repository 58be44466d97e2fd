"""What the store can hold: the bytes fast path gives the same verdict as the full walk."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fledgling.payload import MAX_JSON_DEPTH, parsed_storable_problem, storable_problem


def nested(depth: int, leaf: object = "x") -> object:
    value = leaf
    for i in range(depth - 1):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize("value", [
    {"messages": [{"role": "user", "content": "hi"}]},
    {"content": "a\u0000b"},
    {"a\u0000": 1},
    nested(MAX_JSON_DEPTH), nested(MAX_JSON_DEPTH + 1), nested(300),
    {"text": "[[[[{{{{" * 40},  # brackets inside strings only: not deep
    {"text": "\\u0000 written out, not a NUL"},
])
def test_the_fast_path_agrees_with_the_walk(value: object) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode()  # orjson writes only 254 levels
    assert parsed_storable_problem(raw, orjson.loads(raw)) == storable_problem(value)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_the_fast_path_agrees_with_the_walk_on_any_json(value: object) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode()  # orjson writes only 254 levels
    assert parsed_storable_problem(raw, orjson.loads(raw)) == storable_problem(value)
