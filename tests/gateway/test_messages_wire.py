"""The Anthropic Messages wire converters: requests read as the chat shape, answers rendered and
read back (JSON and the event stream), checked against the real `anthropic` SDK's types."""

from __future__ import annotations

import orjson
from anthropic.types import Message, RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from fledgling.calls import Request, ToolCall
from fledgling.capture.apis import anthropic as wire
from tests.gateway.test_responses_wire import SCHEMA, answers, json_values, usages


def test_a_two_step_tool_exchange_reads_as_chat_messages():
    body = {"model": "claude-x", "max_tokens": 256, "system": [{"type": "text", "text": "You are a weather agent."}],
            "messages": [
                {"role": "user", "content": "Weather in Oslo?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "...", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "4 C"}]},
                    {"type": "text", "text": "And tomorrow?"}]}],
            "tools": [{"name": "get_weather", "description": "now", "input_schema": SCHEMA, "strict": True},
                      {"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
            "stop_sequences": ["END"], "temperature": 0.2, "stream": True}
    notes: list[str] = []
    chat = wire.request_to_chat(body, notes)
    Request.model_validate(chat)
    assert chat["messages"] == [
        {"role": "system", "content": "You are a weather agent."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "4 C"},
        {"role": "user", "content": "And tomorrow?"}]
    assert chat["tools"] == [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA,
                                                               "description": "now", "strict": True}}]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA}}
    assert (chat["max_tokens"], chat["stop"], chat["stream"]) == (256, ["END"], True)
    assert any("'thinking'" in n for n in notes) and any("'web_search_20250305'" in n for n in notes)


def test_a_named_tool_choice_is_a_function_choice():
    assert wire.tool_choice_to_chat({"type": "tool", "name": "f"}) == {"type": "function", "function": {"name": "f"}}


def test_usage_counts_the_cache_tokens_and_keeps_them_apart():
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"a": 1}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 3000,
                      "output_tokens": 42}}
    response, usage, model, detail = wire.message_to_canonical(body)
    assert response.tool_calls == [ToolCall(id="toolu_9", name="f", arguments='{"a":1}')]
    assert response.finish_reason == "tool_calls" and model == "claude-x"
    assert (usage.input_tokens, usage.output_tokens) == (3210, 42)
    assert detail == {"uncached_input_tokens": 10, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 3000}


def test_a_wire_stream_with_ping_and_cumulative_usage():
    events = [
        {"type": "message_start", "message": {"id": "msg_s", "type": "message", "role": "assistant", "model": "c",
                                              "content": [], "stop_reason": None,
                                              "usage": {"input_tokens": 25, "cache_read_input_tokens": 5,
                                                        "output_tokens": 1}}},
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"ci'}},
        {"type": "content_block_delta", "index": 1,
         "delta": {"type": "input_json_delta", "partial_json": 'ty": "Oslo"}'}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"output_tokens": 17}},
        {"type": "message_stop"}]
    response, usage, _, detail = wire.events_to_canonical(events)
    assert response.content == "Let me check." and response.finish_reason == "tool_calls"
    assert [(t.id, t.name, orjson.loads(t.arguments)) for t in response.tool_calls] == [
        ("toolu_1", "get_weather", {"city": "Oslo"})]
    assert (usage.input_tokens, usage.output_tokens, detail["cache_read_input_tokens"]) == (30, 17, 5)


def test_an_error_event_is_an_error():
    start = {"type": "message_start", "message": {"id": "m", "type": "message", "content": [], "usage": {}}}
    try:
        wire.events_to_canonical([start, {"type": "error", "error": {"type": "overloaded_error",
                                                                      "message": "Overloaded"}}])
    except ValueError as exc:
        assert "Overloaded" in str(exc)
    else:
        raise AssertionError("an error stream read as an answer")


_EVENTS = TypeAdapter(RawMessageStreamEvent)


@settings(max_examples=60, deadline=None)
@given(answers, usages)
def test_render_then_read_round_trips_as_json_and_as_a_stream(answer, usage):
    body = wire.render_message(answer, message_id="msg_abc", model="cand", usage=usage)
    Message.model_validate(body)  # the real SDK's type accepts it
    events = wire.render_events(body)
    for ev in events:
        if ev["type"] != "ping":  # the SDK's stream skips pings before its event types
            _EVENTS.validate_python(ev)
    for response, got_usage, model, _ in (wire.message_to_canonical(orjson.loads(orjson.dumps(body))),
                                          wire.events_to_canonical(events)):
        assert response.content == answer.content
        assert [(t.id, t.name, orjson.loads(t.arguments)) for t in response.tool_calls] == [
            (t.id, t.name, orjson.loads(t.arguments)) for t in answer.tool_calls]
        assert response.finish_reason == ("tool_calls" if answer.tool_calls else "stop")
        assert model == "cand"
        if usage is not None:
            assert (got_usage.input_tokens, got_usage.output_tokens) == (usage.input_tokens, usage.output_tokens)
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"

blocks = st.dictionaries(st.sampled_from(["type", "text", "id", "name", "input", "tool_use_id", "content",
                                          "index", "delta", "message", "content_block", "role", "usage"]),
                         json_values | st.sampled_from(["text", "tool_use", "tool_result", "user", "assistant",
                                                        "message_start", "content_block_delta", "text_delta"]),
                         max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["system", "messages", "tools", "tool_choice", "output_config", "model"]),
                       json_values | st.lists(blocks, max_size=4) | blocks, max_size=6),
       st.lists(blocks, max_size=6))
def test_any_json_is_read_or_refused_with_a_value_error(body, events):
    for read in (lambda: Request.model_validate(wire.request_to_chat(body)),
                 lambda: wire.message_to_canonical({"type": "message", **body}),
                 lambda: wire.events_to_canonical(events)):
        try:
            read()
        except ValueError:
            pass
