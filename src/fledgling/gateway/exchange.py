"""An `Exchange`: one chat-completions request and what came back, as captured on the wire.

The response path only fills in this small record; turning it into a `Call` (parsing the
answer, reassembling a streamed one, pricing it) happens later, off the response path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from fledgling.calls import Call, Request, Response, ToolCall, Usage, cost_usd


def new_call_id() -> str:
    return "call_" + os.urandom(16).hex()


@dataclass(slots=True)
class Exchange:
    """What the gateway (or the client wrapper) saw of one call."""

    id: str
    created_at: datetime
    request: dict[str, Any]
    task: str
    source: str = "gateway"
    session_id: str | None = None
    trace_id: str | None = None
    provider: str | None = None
    upstream: str | None = None
    price_in: float | None = None
    price_out: float | None = None
    latency_ms: float | None = None
    status_code: int | None = None
    response: dict[str, Any] | None = None
    stream_chunks: list[Any] | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


_FIELDS = ("id", "task", "source", "session_id", "trace_id", "provider", "upstream", "price_in",
           "price_out", "latency_ms", "status_code", "response", "error", "metadata", "request")


def exchange_record(ex: Exchange) -> dict[str, Any]:
    """The exchange as plain JSON for the spool: cheap to write (no parsing, no validation),
    and complete, so a replay turns it into exactly the `Call` the live path would have."""
    rec = {name: getattr(ex, name) for name in _FIELDS}
    rec["created_at"] = ex.created_at.isoformat()
    if ex.stream_chunks is not None:
        raw = [c for c in ex.stream_chunks if isinstance(c, bytes | bytearray)]
        rec["stream_sse"] = b"".join(raw).decode("utf-8", "replace") if raw else None
        rec["stream_chunks"] = [c for c in ex.stream_chunks if isinstance(c, dict)]
    return rec


def exchange_from_record(rec: dict[str, Any]) -> Exchange:
    ex = Exchange(**{name: rec.get(name) for name in _FIELDS if name != "metadata"},
                  created_at=datetime.fromisoformat(rec["created_at"]), metadata=rec.get("metadata") or {})
    if "stream_chunks" in rec:
        chunks: list[Any] = list(rec.get("stream_chunks") or [])
        if rec.get("stream_sse"):
            chunks.insert(0, rec["stream_sse"].encode())
        ex.stream_chunks = chunks
    return ex


def exchange_to_call(ex: Exchange) -> Call:
    """The `Call` an exchange records. Never raises: what cannot be parsed is kept as an error."""
    error = ex.error
    response: Response | None = None
    usage = Usage()
    model = ex.request.get("model") if isinstance(ex.request.get("model"), str) else None
    metadata = dict(ex.metadata)
    try:
        if ex.stream_chunks is not None:
            response, usage, resp_model = reassemble_stream(ex.stream_chunks)
        elif ex.response is not None:
            response, usage, resp_model = parse_completion(ex.response)
        else:
            resp_model = None
        model = resp_model or model
    except (ValueError, TypeError, ValidationError) as exc:
        error = error or f"unreadable upstream response: {exc}"
        response = None
    if error is not None and response is not None and not (response.content or response.tool_calls):
        response = None
    return Call(
        id=ex.id, task=ex.task, trace_id=ex.trace_id, session_id=ex.session_id, source=ex.source,
        created_at=ex.created_at, provider=ex.provider, model=model,
        request=_request(ex.request, metadata), response=response, usage=usage,
        latency_ms=ex.latency_ms, cost_usd=cost_usd(usage, ex.price_in, ex.price_out),
        status="error" if error is not None else "ok", error=error, metadata=metadata)


def _request(body: dict[str, Any], metadata: dict[str, Any]) -> Request:
    try:
        return Request.model_validate(body)
    except ValidationError as exc:
        metadata["request_invalid"] = str(exc.errors()[0].get("msg"))
        messages = body.get("messages")
        return Request(messages=[m for m in messages if isinstance(m, dict)]
                       if isinstance(messages, list) else [])


def parse_completion(body: dict[str, Any]) -> tuple[Response, Usage, str | None]:
    """A `chat.completion` object -> the first choice, its usage and the model that answered."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("no choices in the chat.completion body")
    choice = choices[0]
    message = choice.get("message") or {}
    response = Response.from_message(message, choice.get("finish_reason"))
    if message.get("refusal"):
        response.refusal = message["refusal"]  # type: ignore[attr-defined]
    return response, usage_of(body.get("usage")), body.get("model")


def usage_of(raw: Any) -> Usage:
    """OpenAI's `prompt_tokens`/`completion_tokens` (or `input_tokens`/`output_tokens`)."""
    if not isinstance(raw, dict):
        return Usage()
    return Usage(input_tokens=int(raw.get("prompt_tokens", raw.get("input_tokens")) or 0),
                 output_tokens=int(raw.get("completion_tokens", raw.get("output_tokens")) or 0))


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    """The JSON `data:` payloads of a server-sent-events body, `[DONE]` excluded."""
    events: list[dict[str, Any]] = []
    for line in raw.splitlines():
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if not data or data == b"[DONE]":
            continue
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            events.append(obj)
    return events


def reassemble_stream(chunks: list[Any]) -> tuple[Response, Usage, str | None]:
    """Streamed `chat.completion.chunk`s (raw SSE bytes, or already-parsed dicts) -> one answer.

    Content deltas are concatenated; tool-call deltas are merged by their `index` (id and name
    arrive first, the arguments text in pieces).
    """
    events: list[dict[str, Any]] = []
    raw = b"".join(c for c in chunks if isinstance(c, bytes | bytearray))
    if raw:
        events.extend(sse_events(raw))
    events.extend(c for c in chunks if isinstance(c, dict))
    content: list[str] = []
    tools: dict[int, dict[str, Any]] = {}
    finish_reason = None
    usage = Usage()
    model = None
    for ev in events:
        if "error" in ev and not ev.get("choices"):
            raise ValueError(f"error event in stream: {_error_message(ev)}")
        model = ev.get("model") or model
        if ev.get("usage"):
            usage = usage_of(ev["usage"])
        for choice in ev.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                content.append(delta["content"])
            for tc in delta.get("tool_calls") or []:
                slot = tools.setdefault(tc.get("index", len(tools)), {"id": None, "name": "", "arguments": []})
                slot["id"] = tc.get("id") or slot["id"]
                fn = tc.get("function") or {}
                if fn.get("name"):
                    slot["name"] = fn["name"]
                if fn.get("arguments"):
                    slot["arguments"].append(fn["arguments"])
            if choice.get("finish_reason"):
                finish_reason = choice["finish_reason"]
    tool_calls = [ToolCall(id=t["id"], name=t["name"], arguments="".join(t["arguments"]) or "{}")
                  for _, t in sorted(tools.items())]
    response = Response(content="".join(content) if content else None, tool_calls=tool_calls,
                        finish_reason=finish_reason)
    return response, usage, model


def _error_message(body: Any) -> str:
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err.get("code") or err)
    return str(err if err is not None else body)[:300]


def upstream_error_reason(status: int, body: Any) -> str:
    """One line saying why the upstream refused or failed, for the recorded error call."""
    return f"upstream {status}: {_error_message(body)}"
