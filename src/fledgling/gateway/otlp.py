"""`POST /v1/traces` and `POST /v1/logs`: an OTLP/HTTP receiver for OpenTelemetry GenAI spans.

Agents already instrumented with OpenTelemetry can export to the gateway instead of (or beside)
calling through it; their LLM spans become calls in the same spool. The span -> `Call` mapping
is the otel importer's, so a span means the same whether it arrives live or from a file.

Some instrumentations (the official `opentelemetry-instrumentation-openai-v2` in its default
mode) send the messages as log records, not on the span. `Receiver` joins them by trace and
span id, in either arrival order: an LLM span without content waits (at most `wait_s`) for its
events; events wait (as long) for their span. Both waits are bounded in count; a span whose
events never come is recorded as it is, events whose span never comes are dropped, and both are
counted in `stats()` (shown on /health).
"""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from fledgling.calls import Call
from fledgling.capture import otel
from fledgling.errors import InputError
from fledgling.payload import storable_problem
from fledgling.transport.asgi import Problem

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def _storable(calls: list[Call]) -> list[Call]:
    """Refuse the export (400) when a span's call holds what the store cannot keep: attribute
    values are JSON text parsed again, so the body's own check does not cover them."""
    for call in calls:
        if (problem := storable_problem(call.model_dump(), f"span {call.id}")) is not None:
            raise Problem(400, "unstorable_body", problem)
    return calls


def empty_response(content_type: str) -> tuple[bytes, bytes]:
    """An `ExportTraceServiceResponse` with no partial failure, in the request's encoding."""
    if content_type.split(";", 1)[0].strip().lower() == PROTOBUF:
        return b"", PROTOBUF.encode()
    return b"{}", JSON.encode()


def _gunzip(body: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    out = d.decompress(body, limit + 1)
    if len(out) > limit:
        raise Problem(413, "request_too_large", f"decompressed OTLP body exceeds {limit} bytes")
    if not d.eof:
        raise EOFError("truncated gzip stream")
    return out



# -- the receiver that joins log events to their spans ---------------------------------------

@dataclass
class _Pending:
    deadline: float
    span: dict[str, Any]
    resource: dict[str, Any]
    where: str
    call: Call


@dataclass
class _Waiting:
    deadline: float
    events: list[dict[str, Any]] = field(default_factory=list)


class Receiver:
    """Spans and log records in, calls out (to `record`), with the join described above."""

    def __init__(self, record: Callable[[Call], Any], *, wait_s: float = 10.0, max_waiting: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.record = record
        self.wait_s = wait_s
        self.max_waiting = max_waiting
        self.clock = clock
        self._lock = threading.Lock()
        self._spans: dict[tuple[str, str], _Pending] = {}
        self._events: dict[tuple[str, str], _Waiting] = {}
        self._sweeper: threading.Thread | None = None
        self._stopped = threading.Event()
        self.counts = {"spans_joined": 0, "spans_without_events": 0, "events_joined": 0,
                       "events_never_joined": 0, "log_records_not_genai": 0}

    def traces(self, body: bytes, content_type: str, content_encoding: str | None, limit: int) -> None:
        payload = _payload(body, content_type, content_encoding, limit, logs=False)
        try:
            spans = otel.spans_in(payload, _origin(content_type))
            found = []
            for where, span, resource in spans:
                call = otel.call_of(span, resource, where, _origin(content_type))
                if call is not None:
                    found.append((where, span, resource, call))
        except InputError as exc:
            raise Problem(400, "invalid_otlp", str(exc)) from None
        _storable([c for *_, c in found])
        ready: list[Call] = []
        with self._lock:
            now = self.clock()
            for where, span, resource, call in found:
                key = (span["traceId"], span["spanId"])
                waiting = self._events.pop(key, None)
                if waiting is not None and not otel.has_content(call):
                    if any(e["name"] in otel.OUTPUT_EVENTS for e in waiting.events):
                        ready.append(self._joined(span, resource, where, call, waiting.events))
                    else:  # the answer's event is still to come
                        span.setdefault("events", []).extend(waiting.events)
                        self.counts["events_joined"] += len(waiting.events)
                        self._spans[key] = _Pending(now + self.wait_s, span, resource, where, call)
                        self._start_sweeper()
                elif waiting is not None:  # the span carried the content itself
                    self.counts["events_joined"] += len(waiting.events)
                    ready.append(call)
                elif otel.has_content(call):
                    ready.append(call)
                else:
                    self._spans[key] = _Pending(now + self.wait_s, span, resource, where, call)
                    self._start_sweeper()
            ready.extend(self._expire(now))
        for call in ready:
            self.record(call)

    def logs(self, body: bytes, content_type: str, content_encoding: str | None, limit: int) -> None:
        payload = _payload(body, content_type, content_encoding, limit, logs=True)
        try:
            events, other = otel.log_events(payload, _origin(content_type))
        except InputError as exc:
            raise Problem(400, "invalid_otlp", str(exc)) from None
        ready: list[Call] = []
        with self._lock:
            now = self.clock()
            self.counts["log_records_not_genai"] += other
            touched: dict[tuple[str, str], bool] = {}
            for trace_id, span_id, event in events:
                key = (trace_id, span_id)
                pending = self._spans.get(key)
                if pending is not None:
                    pending.span.setdefault("events", []).append(event)
                    self.counts["events_joined"] += 1
                else:
                    self._events.setdefault(key, _Waiting(now + self.wait_s)).events.append(event)
                touched[key] = touched.get(key, False) or event["name"] in otel.OUTPUT_EVENTS
            for key, complete in touched.items():
                if complete and key in self._spans:
                    ready.append(self._complete(self._spans.pop(key)))
            ready.extend(self._expire(now))
        for call in ready:
            self.record(call)

    def sweep(self) -> None:
        """Record the spans whose wait is over, drop the events whose wait is over."""
        with self._lock:
            ready = self._expire(self.clock())
        for call in ready:
            self.record(call)

    def _start_sweeper(self) -> None:
        """A daemon thread records the spans whose wait ends while no export arrives."""
        if self._sweeper is None:
            self._sweeper = threading.Thread(target=self._sweep_loop, name="otlp-join", daemon=True)
            self._sweeper.start()

    def _sweep_loop(self) -> None:
        while not self._stopped.wait(min(1.0, self.wait_s / 4)):
            self.sweep()

    def close(self) -> None:
        """Record every span still waiting (the gateway is stopping)."""
        self._stopped.set()
        with self._lock:
            ready = self._expire(float("inf"))
        for call in ready:
            self.record(call)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {**self.counts, "spans_waiting": len(self._spans),
                    "events_waiting": sum(len(w.events) for w in self._events.values())}

    def _joined(self, span: dict[str, Any], resource: dict[str, Any], where: str, call: Call,
                events: list[dict[str, Any]]) -> Call:
        span.setdefault("events", []).extend(events)
        self.counts["events_joined"] += len(events)
        return self._complete(_Pending(0.0, span, resource, where, call))

    def _complete(self, pending: _Pending) -> Call:
        try:
            joined = otel.call_of(pending.span, pending.resource, pending.where, "OTLP logs")
        except InputError:  # the events did not read: keep the span's own call
            joined = None
        if joined is None or not otel.has_content(joined):
            self.counts["spans_without_events"] += 1
            return pending.call
        self.counts["spans_joined"] += 1
        return joined

    def _expire(self, now: float) -> list[Call]:
        ready: list[Call] = []
        while self._spans:
            key, pending = next(iter(self._spans.items()))
            if pending.deadline > now and len(self._spans) <= self.max_waiting:
                break
            del self._spans[key]
            ready.append(self._complete(pending) if pending.span.get("events") else pending.call)
            if not pending.span.get("events"):
                self.counts["spans_without_events"] += 1
        while self._events:
            key, waiting = next(iter(self._events.items()))
            if waiting.deadline > now and len(self._events) <= self.max_waiting:
                break
            del self._events[key]
            self.counts["events_never_joined"] += len(waiting.events)
        return ready


def _origin(content_type: str) -> str:
    return "OTLP protobuf body" if content_type.split(";", 1)[0].strip().lower() == PROTOBUF else "OTLP/JSON body"


def _payload(body: bytes, content_type: str, content_encoding: str | None, limit: int, *, logs: bool) -> Any:
    if content_encoding and content_encoding.lower() == "gzip":
        try:
            body = _gunzip(body, limit)
        except (OSError, EOFError, zlib.error) as exc:
            raise Problem(400, "invalid_body", f"Content-Encoding is gzip but the body is not: {exc}") from None
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == PROTOBUF:
        try:
            return otel.logs_payload_from_protobuf(body) if logs else otel.payload_from_protobuf(body)
        except InputError as exc:
            raise Problem(400, "invalid_otlp", str(exc)) from None
    if kind == JSON:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Problem(400, "invalid_json", f"OTLP/JSON body is not valid JSON: {exc}") from None
        if (problem := storable_problem(payload, "the OTLP/JSON body")) is not None:
            raise Problem(400, "unstorable_body", problem)
        return payload
    raise Problem(415, "unsupported_media_type",
                  f"Content-Type '{content_type}' is not OTLP/HTTP; send {PROTOBUF} or {JSON}")


async def receive_off_loop(receiver: Receiver, path: str, body: bytes, content_type: str,
                           content_encoding: str | None, limit: int) -> None:
    """`/v1/traces` or `/v1/logs`, in a worker thread: a large export must not stall chat traffic."""
    handle = receiver.logs if path == "/v1/logs" else receiver.traces
    await asyncio.to_thread(handle, body, content_type, content_encoding, limit)
