"""Reading tool calls out of model text: every shape small models produce, and failures counted."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from fledgling.models.tool_text import parse_json_content, parse_tool_calls


def names_args(parsed):
    return [(tc.name, json.loads(tc.arguments)) for tc in parsed.response.tool_calls]


def test_smollm2_list_in_tags():
    p = parse_tool_calls('<tool_call>[{"name": "refund", "arguments": {"order_id": "A1", "amount": 5}}]</tool_call>')
    assert not p.failed and names_args(p) == [("refund", {"order_id": "A1", "amount": 5})]
    assert p.response.finish_reason == "tool_calls" and p.response.content is None


def test_hermes_one_object_per_tag_and_parallel_tags():
    text = ('<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n'
            '<tool_call>{"name": "b", "arguments": {"x": 1}}</tool_call>')
    p = parse_tool_calls(text)
    assert names_args(p) == [("a", {}), ("b", {"x": 1})]
    assert [tc.id for tc in p.response.tool_calls] == ["call_0", "call_1"]


def test_bare_json_fenced_parameters_and_string_arguments():
    assert names_args(parse_tool_calls('```json\n{"name": "a", "parameters": {"q": "x"}}\n```')) == [("a", {"q": "x"})]
    assert names_args(parse_tool_calls('{"name": "a", "arguments": "{\\"q\\": 2}"}')) == [("a", {"q": 2})]
    assert names_args(parse_tool_calls('[{"function": {"name": "a", "arguments": {}}}]')) == [("a", {})]


def test_unclosed_tag_at_the_token_limit_still_reads_when_json_is_complete():
    p = parse_tool_calls('<tool_call>[{"name": "a", "arguments": {"k": true}}]', "length")
    assert names_args(p) == [("a", {"k": True})]


def test_broken_tool_call_is_text_and_counted():
    p = parse_tool_calls('<tool_call>[{"name": "a", "arguments": {"k": </tool_call>')
    assert p.failed and p.response.tool_calls == [] and "tool_call" in p.response.content
    q = parse_tool_calls('{"name": "a", "arguments": {')
    assert q.failed


def test_plain_text_is_an_answer_not_a_failure():
    p = parse_tool_calls("Sure, your order ships tomorrow.")
    assert not p.failed and p.response.content == "Sure, your order ships tomorrow."


def test_json_content_is_extracted_from_prose_and_fences():
    p = parse_json_content('Here you go:\n```json\n{"team": "billing"}\n```')
    assert not p.failed and json.loads(p.response.content) == {"team": "billing"}
    assert parse_json_content("billing, urgent").failed


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80))
def test_never_raises_on_any_text(text):
    for t in (text, "<tool_call>" + text, "{" + text):
        parse_tool_calls(t)
        parse_json_content(t)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
                          st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True),
                                          st.one_of(st.integers(), st.text(max_size=5), st.booleans()),
                                          max_size=3)), min_size=1, max_size=3))
def test_round_trip_of_the_prompted_format(calls):
    text = "<tool_call>" + json.dumps([{"name": n, "arguments": a} for n, a in calls]) + "</tool_call>"
    assert names_args(parse_tool_calls(text)) == [(n, a) for n, a in calls]
