"""POST /v1/traces: OTLP/HTTP GenAI spans (JSON, protobuf, gzip) become recorded calls."""

from __future__ import annotations

import gzip

import httpx
import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from fledgling.store import CallFilter

T0 = 1_767_000_000_000_000_000


def _attrs(question: str, answer: str) -> dict[str, object]:
    return {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 21, "gen_ai.usage.output_tokens": 9,
        "gen_ai.input.messages": orjson.dumps([{"role": "user", "parts": [
            {"type": "text", "content": question}]}]).decode(),
        "gen_ai.output.messages": orjson.dumps([{"role": "assistant", "parts": [
            {"type": "text", "content": answer}], "finish_reason": "stop"}]).decode(),
    }


def _json_payload(trace_hex: str) -> dict:
    attrs = [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
             for k, v in _attrs("What is 2+2?", "4").items()]
    span = {"traceId": trace_hex, "spanId": "00f067aa0ba902b7", "name": "chat gpt-4o-mini",
            "kind": 3, "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 250_000_000),
            "attributes": attrs}
    return {"resourceSpans": [{"resource": {"attributes": []},
                               "scopeSpans": [{"scope": {"name": "agent"}, "spans": [span]}]}]}


def _protobuf_payload(trace: bytes) -> bytes:
    attrs = [KeyValue(key=k, value=AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v))
             for k, v in _attrs("Capital of France?", "Paris").items()]
    span = Span(trace_id=trace, span_id=bytes.fromhex("b7ad6b7169203331"), name="chat gpt-4o-mini",
                kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=T0,
                end_time_unix_nano=T0 + 400_000_000, attributes=attrs)
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
    return req.SerializeToString()


def test_otlp_json_and_protobuf_spans_are_recorded(gateway) -> None:
    url = gateway.url + "/v1/traces"
    r = httpx.post(url, content=orjson.dumps(_json_payload("4bf92f3577b34da6a3ce929d0e0e4736")),
                   headers={"content-type": "application/json"})
    assert (r.status_code, r.json()) == (200, {})
    body = _protobuf_payload(bytes.fromhex("0af7651916cd43dd8448eb211c80319c"))
    r = httpx.post(url, content=body, headers={"content-type": "application/x-protobuf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    # a gzip'd re-send of the same span (exporters retry) is stored once
    r = httpx.post(url, content=gzip.compress(body),
                   headers={"content-type": "application/x-protobuf", "content-encoding": "gzip"})
    assert r.status_code == 200

    gateway.drain()
    calls = {c.trace_id: c for c in gateway.store.query_calls(CallFilter(source="otel")).items}
    assert set(calls) == {"4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"}
    json_call = calls["4bf92f3577b34da6a3ce929d0e0e4736"]
    assert json_call.request.messages[-1]["content"] == "What is 2+2?"
    assert json_call.response.content == "4"
    assert (json_call.usage.input_tokens, json_call.usage.output_tokens) == (21, 9)
    assert json_call.model == "gpt-4o-mini"
    assert calls["0af7651916cd43dd8448eb211c80319c"].response.content == "Paris"


def test_bad_otlp_bodies_are_refused_cleanly(gateway) -> None:
    url = gateway.url + "/v1/traces"
    r = httpx.post(url, content=b"\xff\x00garbage", headers={"content-type": "application/x-protobuf"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_otlp"
    r = httpx.post(url, content=b"{oops", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(url, content=b"hello", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = httpx.post(url, content=b"not gzip", headers={"content-type": "application/json",
                                                      "content-encoding": "gzip"})
    assert r.status_code == 400
    gateway.drain()
    assert gateway.store.count_calls() == 0
