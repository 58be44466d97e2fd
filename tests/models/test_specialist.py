"""The specialist prompt: compact, lossless for what the model must answer, and parsed back."""

from __future__ import annotations

import json

from fledgling.calls import Request, Response, ToolCall
from fledgling.models.specialist import (
    compact_request,
    parse_completion,
    render_example,
    render_response,
    schema_shape,
)
from tests.train.examples import SYSTEM, TOOLS, example


def test_signatures_are_compact_and_keep_the_schema() -> None:
    req = compact_request(Request(messages=[{"role": "system", "content": SYSTEM},
                                            {"role": "user", "content": "hi"}], tools=TOOLS),
                          task="support-agent")
    system = req.messages[0]["content"]
    assert system.splitlines()[0] == "Task: support-agent."
    assert "lookup_order(order_id: str)" in system
    assert 'refund(order_id: str, reason: late|damaged)' in system
    assert SYSTEM not in system and "description" not in system
    assert req.tools == TOOLS  # kept for parsing and constrained decoding, not rendered again
    assert schema_shape({"type": "array", "items": {"type": "object", "properties": {
        "qty": {"type": "integer"}, "sku": {"type": "string"}}, "required": ["sku"]}}) == "[{qty?: int, sku: str}]"
    assert schema_shape({"type": ["string", "null"]}) == "str|null"
    assert schema_shape({"enum": ["a b", 1, None, "x_y"]}) == '"a b"|1|null|x_y'


def test_context_system_messages_and_history_are_kept() -> None:
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "system", "content": "Customer: Ana, USD."},
            {"role": "user", "content": "where is A1?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "lookup_order", "arguments": '{"order_id": "A1"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": '{"status": "late"}'},
            {"role": "user", "content": "refund it"}]
    out = compact_request(Request(messages=msgs, tools=TOOLS), task="t").messages
    assert [m["role"] for m in out] == ["system", "system", "user", "assistant", "tool", "user"]
    assert out[1]["content"] == "Customer: Ana, USD."
    assert out[3]["content"] == '{"name":"lookup_order","arguments":{"order_id":"A1"}}'
    assert all(isinstance(m["content"], str) for m in out)


def test_answers_round_trip_through_the_text_format() -> None:
    one = Response(tool_calls=[ToolCall(name="refund", arguments='{"order_id": "A1", "reason": "late"}')])
    two = Response(tool_calls=[ToolCall(name="lookup_order", arguments='{"order_id":"A1"}'),
                               ToolCall(name="lookup_order", arguments='{"order_id":"B2"}')])
    for resp in (one, two):
        back = parse_completion(render_response(resp))
        assert [(tc.name, json.loads(tc.arguments)) for tc in back.tool_calls] == \
               [(tc.name, json.loads(tc.arguments)) for tc in resp.tool_calls]
    assert parse_completion("Sure, which order?").content == "Sure, which order?"
    assert parse_completion('{"name":"x","arguments":{}}', structured=True).tool_calls == []
    assert parse_completion('{"name":"x"').content == '{"name":"x"'  # broken JSON stays text


def test_render_example_ends_with_the_answer() -> None:
    ex = example(3)
    chat = render_example(ex["messages"], ex["tools"], task="support-agent")
    assert chat[-1] == {"role": "assistant",
                        "content": '{"name":"refund","arguments":{"order_id":"A103","reason":"damaged"}}'}


def test_lean_prompt_names_the_task_only_and_manifests_name_their_format() -> None:
    from fledgling.models.specialist import FORMAT_IDS, format_of

    ex = example(3)
    lean = render_example(ex["messages"], ex["tools"], task="support-agent", signatures=False)
    full = render_example(ex["messages"], ex["tools"], task="support-agent")
    assert lean[0] == {"role": "system", "content": "Task: support-agent."}
    assert "lookup_order(" in full[0]["content"] and lean[1:] == full[1:]
    assert {format_of(v) for v in FORMAT_IDS.values()} == {"compact", "lean"}
    assert format_of("fledgling-specialist-v1") == "compact" and format_of("hf-chat") is None


def test_demo_summary_names_runs_briefly_and_gives_intervals() -> None:
    from fledgling.demo.train_stage import tool_call_summary

    row = {"n": 21, "tool_name_match": {"mean": 2 / 3, "low": 0.454, "high": 0.828},
           "args_exact_match": {"mean": 10 / 21, "low": 0.28, "high": 0.68}}
    base = {"n": 21, "tool_name_match": {"mean": 0.0, "low": 0.0, "high": 0.1546},
            "args_exact_match": {"mean": 0.0, "low": 0.0, "high": 0.1546}}
    report = {"tool_call_items": {"support-agent-lora-1 (lean prompt)": row, "gguf:smollm2 (compact prompt)": base}}
    text = tool_call_summary(report, {"support-agent-lora-1": "tuned", "gguf:smollm2": "base"})
    assert text == (" On the 21 items that need a tool call, right tool [95% CI] / exact arguments: "
                    "tuned (lean) 67% [45%, 83%] / 48%; base (compact) 0% [0%, 15%] / 0%.")
    assert tool_call_summary({}, {}) == ""
