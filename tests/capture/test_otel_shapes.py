"""Span shapes of emitters the real traces do not cover fully, written as those emitters write them:
the AI SDK's `ai.*` attributes, pydantic-ai 0.x's `events` attribute, langsmith's whole-document
`gen_ai.prompt` / `gen_ai.completion`, and parts-based messages with only tool results."""

from __future__ import annotations

import json
from typing import Any

from fledgling.capture.otel import calls_from_otlp_json
from tests.capture.otlp_rebuild import key_values

T0 = 1_767_000_000_000_000_000


def _one(attrs: dict[str, Any], name: str = "span") -> Any:
    span = {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7", "name": name,
            "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 10**8), "attributes": key_values(attrs)}
    calls = calls_from_otlp_json({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}]})
    assert len(calls) == 1
    return calls[0]


def test_ai_sdk_do_generate_span() -> None:
    prompt = [
        {"role": "system", "content": "You answer about weather."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [{"type": "tool-call", "toolCallId": "c1", "toolName": "getWeather",
                                           "input": {"city": "Paris"}}]},
        {"role": "tool", "content": [{"type": "tool-result", "toolCallId": "c1", "toolName": "getWeather",
                                      "output": {"type": "json", "value": {"sky": "rain"}}}]},
    ]
    tool = {"type": "function", "name": "getWeather", "description": "Weather by city",
            "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    call = _one({"ai.operationId": "ai.generateText.doGenerate", "ai.model.id": "gpt-5",
                 "ai.model.provider": "openai.responses", "ai.prompt.messages": json.dumps(prompt),
                 "ai.prompt.tools": [json.dumps(tool)], "ai.response.finishReason": "tool-calls",
                 "ai.response.toolCalls": json.dumps([{"toolCallId": "c2", "toolName": "getWeather",
                                                       "input": '{"city":"Lyon"}'}]),
                 "ai.usage.inputTokens": 40, "ai.usage.outputTokens": 12}, "ai.generateText.doGenerate")
    assert [m["role"] for m in call.request.messages] == ["system", "user", "assistant", "tool"]
    assert call.request.messages[2]["tool_calls"][0]["function"] == {"name": "getWeather",
                                                                     "arguments": '{"city":"Paris"}'}
    assert call.request.messages[3] == {"role": "tool", "tool_call_id": "c1", "name": "getWeather",
                                        "content": '{"sky":"rain"}'}
    assert call.request.tools[0]["function"]["parameters"] == tool["inputSchema"]
    assert [(tc.id, tc.name, tc.parsed_arguments()) for tc in call.response.tool_calls] == \
        [("c2", "getWeather", {"city": "Lyon"})]
    assert call.response.finish_reason == "tool_calls"
    assert (call.usage.input_tokens, call.usage.output_tokens) == (40, 12)
    assert (call.model, call.provider) == ("gpt-5", "openai.responses")


def test_ai_sdk_wrapper_span_is_not_a_second_call() -> None:
    span = {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b8", "name": "ai.generateText",
            "startTimeUnixNano": str(T0), "attributes": key_values({"ai.operationId": "ai.generateText",
                                                                   "ai.prompt": '{"prompt": "hi"}'})}
    assert calls_from_otlp_json({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) == []


def test_pydantic_ai_0x_events_attribute() -> None:
    events = [
        {"event.name": "gen_ai.system.message", "role": "system", "content": "Be brief."},
        {"event.name": "gen_ai.user.message", "role": "user", "content": "Roll a die"},
        {"event.name": "gen_ai.assistant.message", "role": "assistant",
         "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "roll", "arguments": "{}"}}]},
        {"event.name": "gen_ai.tool.message", "role": "tool", "id": "t1", "name": "roll", "content": "4"},
        {"event.name": "gen_ai.choice", "index": 0, "message": {"role": "assistant", "content": "You rolled 4."}},
    ]
    call = _one({"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                 "events": json.dumps(events), "gen_ai.usage.input_tokens": 30, "gen_ai.usage.output_tokens": 6,
                 "gen_ai.response.finish_reasons": ["stop"]}, "chat gpt-4o")
    assert [m["role"] for m in call.request.messages] == ["system", "user", "assistant", "tool"]
    assert call.request.messages[3]["tool_call_id"] == "t1" and call.request.messages[3]["content"] == "4"
    assert call.response.content == "You rolled 4." and call.response.finish_reason == "stop"


def test_langsmith_whole_documents() -> None:
    prompt = {"messages": [{"role": "user", "content": "2+2?"}]}
    completion = {"choices": [{"message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}]}
    call = _one({"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                 "gen_ai.prompt": json.dumps(prompt), "gen_ai.completion": json.dumps(completion)})
    assert call.request.messages == [{"role": "user", "content": "2+2?"}]
    assert call.response.content == "4" and call.response.finish_reason == "stop"


def test_tool_results_only_give_no_empty_user_message() -> None:
    inputs = [{"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
              {"role": "assistant", "parts": [{"type": "tool_call", "id": "a", "name": "w", "arguments": {}}]},
              {"role": "user", "parts": [{"type": "tool_call_response", "id": "a", "response": {"t": 20}}]}]
    outputs = [{"role": "assistant", "parts": [{"type": "text", "content": "20 degrees"}], "finish_reason": "stop"}]
    call = _one({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                 "gen_ai.input.messages": json.dumps(inputs), "gen_ai.output.messages": json.dumps(outputs)})
    assert [m["role"] for m in call.request.messages] == ["user", "assistant", "tool"]
    assert call.request.messages[2] == {"role": "tool", "tool_call_id": "a", "content": '{"t":20}'}
    assert call.response.content == "20 degrees"


def test_finish_reason_without_content_and_mapping() -> None:
    call = _one({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                 "gen_ai.response.finish_reasons": ["tool_call"]})
    assert call.response is not None and call.response.finish_reason == "tool_calls"
    assert call.response.content is None and call.response.tool_calls == []


def test_cache_and_reasoning_counts_are_kept_apart_not_added() -> None:
    call = _one({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                 "gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 30,
                 "gen_ai.usage.cache_read.input_tokens": 100, "gen_ai.usage.reasoning.output_tokens": 0})
    assert (call.usage.input_tokens, call.usage.output_tokens) == (120, 30)
    assert call.metadata["otel"]["usage_details"] == {"gen_ai.usage.cache_read.input_tokens": 100}
