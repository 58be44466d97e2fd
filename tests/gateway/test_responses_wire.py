"""The Responses-API wire converters: requests read as the chat shape, answers rendered and read
back (JSON and the event stream), checked against the real `openai` SDK's types."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import Response as SdkResponse
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from fledgling.calls import Request, Response, ToolCall, Usage
from fledgling.capture.apis import responses as wire

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}


def test_a_two_step_tool_exchange_reads_as_chat_messages():
    body = {"model": "gpt-x", "instructions": "You are a weather agent.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "Weather in Oslo?"}]},
                      {"type": "reasoning", "id": "rs_1", "summary": []},
                      {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                       "arguments": '{"city":"Oslo"}', "id": "fc_1"},
                      {"type": "function_call", "call_id": "call_2", "name": "get_weather",
                       "arguments": '{"city":"Bergen"}'},
                      {"type": "function_call_output", "call_id": "call_1", "output": "4 C"},
                      {"type": "function_call_output", "call_id": "call_2",
                       "output": [{"type": "input_text", "text": "7 C"}]}],
            "tools": [{"type": "function", "name": "get_weather", "description": "now",
                       "parameters": SCHEMA, "strict": True}, {"type": "web_search"}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "text": {"format": {"type": "json_schema", "name": "answer", "schema": SCHEMA, "strict": True}},
            "max_output_tokens": 99, "temperature": 0.5, "stream": True, "store": False}
    notes: list[str] = []
    chat = wire.request_to_chat(body, notes)
    Request.model_validate(chat)
    assert chat["messages"] == [
        {"role": "system", "content": "You are a weather agent."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Bergen"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "4 C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "7 C"}]
    assert chat["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "now",
                                                               "parameters": SCHEMA, "strict": True}}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA,
                                                                              "strict": True}}
    assert (chat["max_tokens"], chat["temperature"], chat["stream"]) == (99, 0.5, True)
    assert "store" not in chat
    assert any("'reasoning'" in n for n in notes) and any("'web_search'" in n for n in notes)


def test_a_string_input_is_one_user_message():
    assert wire.request_to_chat({"input": "hi"})["messages"] == [{"role": "user", "content": "hi"}]


def test_an_assistant_text_then_its_call_is_one_message():
    msgs = wire.input_items([{"type": "message", "role": "assistant",
                              "content": [{"type": "output_text", "text": "Let me look."}]},
                             {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}])
    assert msgs == [{"role": "assistant", "content": "Let me look.",
                     "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]


def test_a_completed_response_from_the_wire_reads_with_usage_detail():
    body = {"id": "resp_1", "object": "response", "status": "completed", "model": "gpt-x-2025",
            "output": [{"type": "reasoning", "id": "rs", "summary": []},
                       {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "get_weather",
                        "arguments": '{"city":"Oslo"}', "status": "completed"}],
            "usage": {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 100},
                      "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 12}, "total_tokens": 150}}
    response, usage, model, detail = wire.response_to_canonical(body)
    assert response.tool_calls == [ToolCall(id="call_9", name="get_weather", arguments='{"city":"Oslo"}')]
    assert response.finish_reason == "tool_calls" and response.content is None
    assert (usage.input_tokens, usage.output_tokens, usage.missing) == (120, 30, False)
    assert detail == {"cached_tokens": 100, "reasoning_tokens": 12} and model == "gpt-x-2025"


def test_no_usage_is_missing_not_zero():
    _, usage, _, _ = wire.response_to_canonical({"object": "response", "status": "completed", "output": []})
    assert usage.missing


def test_a_failed_response_and_an_error_event_are_errors():
    for bad in ([{"type": "response.failed", "response": {"object": "response", "status": "failed",
                                                           "error": {"message": "overloaded"}, "output": []}}],
                [{"type": "error", "message": "boom", "code": "server_error"}]):
        try:
            wire.events_to_canonical(bad)
        except ValueError as exc:
            assert "overloaded" in str(exc) or "boom" in str(exc)
        else:
            raise AssertionError("an error stream read as an answer")


def test_a_cut_stream_is_rebuilt_from_its_deltas_and_says_so():
    events = wire.render_events(wire.render_response(Response(content="Hello there, friend"),
                                                     response_id="resp_c", model="m", usage=None))
    cut = [e for e in events if e["type"] not in ("response.completed", "response.output_item.done",
                                                  "response.content_part.done")]
    notes: list[str] = []
    response, usage, _, _ = wire.events_to_canonical(cut, notes)
    assert response.content == "Hello there, friend" and usage.missing
    assert any("before response.completed" in n for n in notes)


texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | texts,
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3), max_leaves=8)
tool_calls = st.lists(st.builds(lambda i, n, a: ToolCall(id=f"call_{i}", name=n, arguments=orjson.dumps(a).decode()),
                                st.integers(0, 10**6), st.from_regex(r"[a-z_]{1,20}", fullmatch=True),
                                st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), json_values, max_size=4)),
                      max_size=3, unique_by=lambda t: t.id)
answers = st.builds(lambda c, t: Response(content=c or None, tool_calls=t), texts, tool_calls)
usages = st.one_of(st.none(), st.builds(Usage, input_tokens=st.integers(0, 10**6), output_tokens=st.integers(0, 10**5)))
_EVENTS = TypeAdapter(ResponseStreamEvent)


@settings(max_examples=60, deadline=None)
@given(answers, usages)
def test_render_then_read_round_trips_as_json_and_as_a_stream(answer, usage):
    body = wire.render_response(answer, response_id="resp_abc", model="cand", usage=usage)
    SdkResponse.model_validate(body)  # the real SDK's type accepts it
    for response, got_usage, model, _ in (wire.response_to_canonical(orjson.loads(orjson.dumps(body))),
                                          wire.events_to_canonical(wire.render_events(body))):
        assert (response.content, response.tool_calls) == (answer.content, answer.tool_calls)
        assert response.finish_reason == ("tool_calls" if answer.tool_calls else "stop")
        assert model == "cand"
        if usage is None:
            assert got_usage.missing
        else:
            assert (got_usage.input_tokens, got_usage.output_tokens) == (usage.input_tokens, usage.output_tokens)
    events = wire.render_events(body)
    for ev in events:
        _EVENTS.validate_python(ev)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    sse = b"".join(wire.encode_events(events))
    assert sse.count(b"\n\n") == len(events) and sse.startswith(b"event: response.created\ndata: {")


items = st.dictionaries(st.sampled_from(["type", "role", "content", "call_id", "name", "arguments", "output",
                                         "id", "text", "delta", "output_index", "item", "response"]),
                        json_values | st.sampled_from(["message", "function_call", "function_call_output",
                                                       "user", "assistant", "output_text", "input_text",
                                                       "response.completed", "response.output_text.delta"]),
                        max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["instructions", "input", "tools", "tool_choice", "text", "model"]),
                       json_values | st.lists(items, max_size=4) | items, max_size=6),
       st.lists(items, max_size=6))
def test_any_json_is_read_or_refused_with_a_value_error(body, events):
    for read in (lambda: Request.model_validate(wire.request_to_chat(body)),
                 lambda: wire.response_to_canonical({"object": "response", **body}),
                 lambda: wire.events_to_canonical(events)):
        try:
            read()
        except ValueError:
            pass
