"""POST /v1/logs: GenAI events sent as OTLP log records join their spans, in either order.

The real instrumentations drive the official `openai` client against a loopback stand-in and
export OTLP/HTTP (protobuf) to a real gateway: `opentelemetry-instrumentation-openai-v2` in its
default mode (messages as log records) and Traceloop's `opentelemetry-instrumentation-openai`
(messages on the span). Every call is stored with its messages, tool calls and tokens.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fledgling.calls import Call
from fledgling.config import parse_settings
from fledgling.gateway.otlp import Receiver
from fledgling.gateway.server import ServerThread, build_app
from fledgling.store import CallFilter, Store
from tests.capture.otlp_rebuild import any_value, key_values
from tests.standin_apis import RunningStandIn

ROOT = Path(__file__).resolve().parents[2]
TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, str, Store]]:
    settings = parse_settings({"models": {"llm": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
                               "gateway": {"upstream": "llm", "spool_dir": str(tmp_path / "spool"),
                                           "spool_fsync_ms": 2}})
    with Store(f"sqlite:///{tmp_path}/gw.db") as store:
        app = build_app(settings, store)
        server = ServerThread(app)
        url = server.start()
        try:
            yield app, url, store
        finally:
            server.stop()


@pytest.mark.parametrize("mode", ["v2", "traceloop"])
def test_real_instrumentations_export_whole_calls(served: tuple[Any, str, Store], mode: str) -> None:
    app, url, store = served
    with RunningStandIn() as upstream:
        run = subprocess.run([sys.executable, "-m", "tests.capture.otel_agent", mode, url, upstream.url],
                             capture_output=True, text=True, timeout=180, cwd=ROOT)
        assert run.returncode == 0, run.stderr[-3000:]
        sent = [e for e in upstream.log if e.api == "chat"]
    agent = json.loads(run.stdout.strip().splitlines()[-1])
    app.otlp.close()
    assert app.recorder.drain(10)
    calls = sorted(store.query_calls(CallFilter(source="otel"), limit=100).items, key=lambda c: c.created_at)
    assert len(calls) == len(sent) == 2
    first, second = calls
    assert [m["role"] for m in first.request.messages] == ["system", "user"]
    assert first.request.messages[1]["content"] == sent[0].body["messages"][1]["content"]
    assert [(tc.name, tc.arguments) for tc in first.response.tool_calls] == [tuple(agent["tool_call"])]
    assert first.response.finish_reason == "tool_calls"
    assert [m["role"] for m in second.request.messages] == ["system", "user", "assistant", "tool"]
    assert second.request.messages[2]["tool_calls"][0]["function"]["name"] == "lookup_order"
    assert second.request.messages[3]["content"] == '{"status": "shipped"}'
    assert second.response.content == agent["answer"]
    for call, exchange in zip(calls, sent, strict=True):
        assert (call.usage.input_tokens, call.usage.output_tokens) == \
            (exchange.usage["input_tokens"], exchange.usage["output_tokens"])
    stats = app.otlp.stats()
    assert stats["events_never_joined"] == 0 and stats["spans_waiting"] == 0
    if mode == "v2":
        assert stats["spans_joined"] == 2


# -- the join, on its own (a clock the test moves) ---------------------------------------------

def _span(**attrs: Any) -> bytes:
    span = {"traceId": TRACE, "spanId": SPAN, "name": "chat gpt-4o", "startTimeUnixNano": "1767000000000000000",
            "attributes": key_values({"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                                      "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 9,
                                      "gen_ai.usage.output_tokens": 2, **attrs})}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def _logs(*events: tuple[str, dict[str, Any]], span_id: str = SPAN) -> bytes:
    records = [{"traceId": TRACE, "spanId": span_id, "eventName": name,
                "attributes": [{"key": "gen_ai.system", "value": {"stringValue": "openai"}}],
                "body": {"kvlistValue": {"values": [{"key": k, "value": any_value(v)}
                                                    for k, v in body.items()]}}}
               for name, body in events]
    return json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}).encode()


_USER = ("gen_ai.user.message", {"content": "hi"})
_CHOICE = ("gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hey"}})


class _Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def _receiver() -> tuple[Receiver, list[Call], _Clock]:
    got: list[Call] = []
    clock = _Clock()
    return Receiver(got.append, wait_s=5.0, clock=clock), got, clock


@pytest.mark.parametrize("order", ["span first", "logs first", "split around the span"])
def test_events_join_their_span_in_any_order(order: str) -> None:
    rx, got, _ = _receiver()
    kind = "application/json"
    if order == "span first":
        rx.traces(_span(), kind, None, 10**6)
        assert got == []  # waits for its events
        rx.logs(_logs(_USER, _CHOICE), kind, None, 10**6)
    elif order == "logs first":
        rx.logs(_logs(_USER, _CHOICE), kind, None, 10**6)
        rx.traces(_span(), kind, None, 10**6)
    else:
        rx.logs(_logs(_USER), kind, None, 10**6)
        rx.traces(_span(), kind, None, 10**6)
        assert got == []  # the answer's event is still to come
        rx.logs(_logs(_CHOICE), kind, None, 10**6)
    [call] = got
    assert call.request.messages == [{"role": "user", "content": "hi"}]
    assert (call.response.content, call.response.finish_reason) == ("hey", "stop")
    assert rx.stats() == {"spans_joined": 1, "spans_without_events": 0, "events_joined": 2,
                               "events_never_joined": 0, "log_records_not_genai": 0, "spans_waiting": 0,
                               "events_waiting": 0}


def test_what_never_joins_is_counted_and_the_span_still_recorded() -> None:
    rx, got, clock = _receiver()
    kind = "application/json"
    rx.traces(_span(), kind, None, 10**6)
    rx.logs(_logs(_USER, span_id="aaaaaaaaaaaaaaaa"), kind, None, 10**6)
    clock.now += 6
    rx.sweep()
    [call] = got
    assert call.request.messages == [] and call.usage.input_tokens == 9
    stats = rx.stats()
    assert (stats["spans_without_events"], stats["events_never_joined"], stats["spans_waiting"]) == (1, 1, 0)


def test_a_span_with_its_own_content_does_not_wait() -> None:
    rx, got, _ = _receiver()
    inputs = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}])
    rx.traces(_span(**{"gen_ai.input.messages": inputs}), "application/json", None, 10**6)
    assert len(got) == 1 and got[0].request.messages == [{"role": "user", "content": "hi"}]


def test_the_waits_are_bounded() -> None:
    got: list[Call] = []
    rx = Receiver(got.append, wait_s=60.0, max_waiting=3)
    for i in range(5):
        body = _span().replace(SPAN.encode(), f"{i:016x}".encode())
        rx.traces(body, "application/json", None, 10**6)
    assert len(got) == 2 and rx.stats()["spans_waiting"] == 3  # the oldest went on as they were
    rx.close()
    assert len(got) == 5


def test_logs_route_refuses_bad_bodies(served: tuple[Any, str, Store]) -> None:
    _, url, _ = served
    r = httpx.post(url + "/v1/logs", content=b"\xff\x00garbage", headers={"content-type": "application/x-protobuf"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_otlp"
    r = httpx.post(url + "/v1/logs", content=b'{"resourceSpans": []}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "resourceLogs" in r.json()["error"]["message"]
    assert httpx.get(url + "/v1/logs").status_code == 405
    r = httpx.post(url + "/v1/logs", content=_logs(_USER), headers={"content-type": "application/json"})
    assert r.status_code == 200 and httpx.get(url + "/health").json()["otlp"]["events_waiting"] == 1
