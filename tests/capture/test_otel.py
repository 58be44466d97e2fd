"""OTLP GenAI spans: current conventions (JSON), older ones (JSONL), and protobuf bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from fledgling.calls import default_task, stable_id
from fledgling.capture.otel import calls_from_otlp_json, calls_from_otlp_protobuf, calls_in_file
from fledgling.capture.records import Tally
from fledgling.errors import InputError
from tests.capture.conftest import protobuf_body


def _payload(fixtures: Path) -> dict:
    return orjson.loads((fixtures / "otel_genai_current.json").read_bytes())


def test_current_conventions(fixtures: Path) -> None:
    calls = calls_from_otlp_json(_payload(fixtures))
    assert len(calls) == 3  # agent, execute_tool and embeddings spans are not LLM calls
    chat, details, failed = calls
    assert chat.id == stable_id("otel", "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
    assert chat.source == "otel" and chat.task == "support-agent"  # fledgling.task attribute
    assert (chat.provider, chat.model) == ("openai", "gpt-4o")
    assert chat.metadata["otel"]["response_model"] == "gpt-4o-2024-08-06"
    assert chat.created_at == datetime.fromtimestamp(1717236000, UTC) and chat.latency_ms == pytest.approx(845)
    assert (chat.usage.input_tokens, chat.usage.output_tokens) == (311, 24)
    assert (chat.request.temperature, chat.request.max_tokens, chat.request.seed) == (0.2, 512, 7)
    assert chat.session_id == "conv-77"
    roles = [m["role"] for m in chat.request.messages]
    assert roles == ["system", "user", "assistant", "tool", "user"]  # system_instructions first
    assert chat.request.messages[2]["tool_calls"][0]["function"]["name"] == "lookup_order"
    assert chat.request.messages[3] == {"role": "tool", "tool_call_id": "call_1", "content": '{"status":"shipped"}'}
    assert chat.request.tools == [{"type": "function", "function": {
        "name": "lookup_order", "description": "Find an order by id",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}]
    assert chat.response.tool_calls[0].name == "lookup_order"
    assert chat.response.tool_calls[0].parsed_arguments() == {"order_id": "B-77"}
    assert chat.response.finish_reason == "tool_calls"  # the conventions' tool_call, mapped

    # messages in the operation-details event, as structured (kvlist/array) attribute values
    assert details.response.content == "Order B-77 is still being processed."
    assert details.response.finish_reason == "stop"
    assert [m["role"] for m in details.request.messages] == ["system", "user"]
    assert details.task == default_task(details.request.messages)

    assert failed.status == "error" and failed.error == "Request timed out." and failed.response is None
    assert failed.provider == "openai"  # deprecated gen_ai.system
    assert failed.latency_ms == pytest.approx(30_000)


def test_older_conventions_in_collector_jsonl(fixtures: Path) -> None:
    tally = Tally()
    calls = list(calls_in_file(fixtures / "otel_genai_legacy.jsonl", None, tally))
    assert tally.ignored == 1  # the traceloop workflow span
    events, tool_events, openllmetry, content = calls
    assert [m["role"] for m in events.request.messages] == ["system", "user"]
    assert events.response.content == '{"category": "billing"}' and events.response.finish_reason == "stop"

    assert [m["role"] for m in tool_events.request.messages] == ["user", "assistant", "tool"]
    assert tool_events.request.messages[1]["tool_calls"][0]["function"]["name"] == "issue_refund"
    assert tool_events.request.messages[2]["tool_call_id"] == "call_9"
    assert tool_events.response.content == "Done: order C-9 is refunded."

    assert [m["content"] for m in openllmetry.request.messages] == ["You are the Acme support agent.",
                                                                    "Refund C-9, it arrived broken"]
    assert openllmetry.request.tools[0]["function"]["parameters"]["required"] == ["order_id", "reason"]
    assert openllmetry.response.tool_calls[0].parsed_arguments() == {"order_id": "C-9", "reason": "damaged"}
    assert openllmetry.response.finish_reason == "tool_calls"
    assert (openllmetry.usage.input_tokens, openllmetry.usage.output_tokens) == (130, 22)  # old names

    assert content.request.messages == [{"role": "user", "content": "ping"}] and content.response.content == "pong"


def test_protobuf_body_maps_like_json(fixtures: Path) -> None:
    payload = _payload(fixtures)
    assert calls_from_otlp_protobuf(protobuf_body(payload)) == calls_from_otlp_json(payload)


def test_protobuf_garbage_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not a protobuf ExportTraceServiceRequest"):
        calls_from_otlp_protobuf(b"\x0a\xff\xff\xff\xff\x0f garbage")


@pytest.mark.parametrize("mutate, field", [
    (lambda s: s.update(startTimeUnixNano="soon"), "startTimeUnixNano"),
    (lambda s: s.pop("traceId"), "traceId"),
    (lambda s: s["attributes"].append({"key": "gen_ai.usage.input_tokens", "value": {"intValue": "x"}}),
     "attributes[gen_ai.usage.input_tokens]"),
    (lambda s: s["attributes"].append({"key": "gen_ai.usage.output_tokens", "value": {"doubleValue": 1.5}}),
     "gen_ai.usage.output_tokens"),
    (lambda s: s["attributes"].append({"key": "gen_ai.output.messages",
                                       "value": {"stringValue": '[{"role": "assistant", "parts": 3}]'}}),
     "gen_ai.output.messages[0].parts"),
    (lambda s: s["attributes"].append({"oops": 1}), "attributes[18]"),
])
def test_bad_span_names_span_and_field(fixtures: Path, mutate, field: str) -> None:
    payload = _payload(fixtures)
    mutate(payload["resourceSpans"][0]["scopeSpans"][0]["spans"][1])
    with pytest.raises(InputError) as info:
        calls_from_otlp_json(payload, origin="upload.json")
    assert info.value.source == "upload.json"
    assert info.value.record == "resourceSpans[0].scopeSpans[0].spans[1]"
    assert info.value.field == field


def test_not_otlp_at_all() -> None:
    with pytest.raises(InputError, match="resourceSpans"):
        calls_from_otlp_json({"spans": []})
    with pytest.raises(InputError):
        calls_from_otlp_json([1, 2])  # type: ignore[arg-type]
    assert calls_from_otlp_json({}) == []  # an empty export is valid


def test_a_span_that_cannot_be_mapped_is_skipped_and_named_in_a_file(fixtures: Path, tmp_path: Path) -> None:
    payload = _payload(fixtures)
    payload["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["startTimeUnixNano"] = "soon"
    path = tmp_path / "spans.json"
    path.write_bytes(orjson.dumps(payload))
    tally = Tally()
    calls = list(calls_in_file(path, None, tally))
    assert len(calls) == 2
    [skip] = tally.skipped
    assert (skip.record, skip.field) == ("line 1 resourceSpans[0].scopeSpans[0].spans[1]", "startTimeUnixNano")
    with pytest.raises(InputError, match="startTimeUnixNano"):
        list(calls_in_file(path, None, Tally(strict=True)))
