"""Back out: stored calls as OTLP GenAI spans, eval results as Langfuse scores.

Teams that keep Langfuse (or any OpenTelemetry backend) as their observability layer can send
what Fledgling recorded there. Each call becomes one span in the current GenAI conventions
(`chat {model}`, `gen_ai.provider.name`, `gen_ai.request.*`, `gen_ai.usage.*`,
`gen_ai.response.finish_reasons`, `gen_ai.conversation.id`, `fledgling.task`); the messages
(`gen_ai.system_instructions`, `gen_ai.input.messages`, `gen_ai.output.messages`,
`gen_ai.tool.definitions`) only when content is asked for, as the conventions make content
opt-in, and through the caller's redaction when one is given. The otel importer reads these
spans back into the same calls.

Eval items become Langfuse scores (`POST /api/public/scores`), one per metric, on the trace and
observation the call was imported from.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from fledgling.calls import Call
from fledgling.errors import InputError, UpstreamError

Redact = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
"""Messages in, the same messages redacted out (the answer is passed last, as a message)."""

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


# -- calls -> OTLP spans ---------------------------------------------------------------------

def span_of(call: Call, *, content: bool = False, redact: Redact | None = None) -> dict[str, Any]:
    """One call as an OTLP/JSON span in the current GenAI conventions."""
    trace_id, span_id = _ids(call)
    attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "fledgling.task": call.task,
                             "fledgling.call_id": call.id, "fledgling.source": call.source}
    for key, value in (("gen_ai.provider.name", call.provider), ("gen_ai.request.model", call.model),
                       ("gen_ai.conversation.id", call.session_id),
                       ("gen_ai.request.temperature", call.request.temperature),
                       ("gen_ai.request.top_p", call.request.top_p),
                       ("gen_ai.request.max_tokens", call.request.max_tokens),
                       ("gen_ai.request.seed", call.request.seed)):
        if value is not None:
            attrs[key] = value
    if not call.usage.missing:  # unknown usage: no token attributes rather than 0
        attrs["gen_ai.usage.input_tokens"] = call.usage.input_tokens
        attrs["gen_ai.usage.output_tokens"] = call.usage.output_tokens
    if call.response is not None and call.response.finish_reason:
        attrs["gen_ai.response.finish_reasons"] = [call.response.finish_reason]
    if call.error:
        attrs["error.type"] = call.error[:200]
    if content:
        attrs.update(_content(call, redact))
    start = int(call.created_at.timestamp() * 1e9)
    end = start + int((call.latency_ms or 0.0) * 1e6)
    span: dict[str, Any] = {"traceId": trace_id, "spanId": span_id, "name": f"chat {call.model or ''}".strip(),
                            "kind": 3, "startTimeUnixNano": str(start), "endTimeUnixNano": str(end),
                            "attributes": [{"key": k, "value": _any_value(v)} for k, v in attrs.items()]}
    if call.status == "error":
        span["status"] = {"code": 2, "message": (call.error or "error")[:500]}
    return span


def payload(calls: Iterable[Call], *, content: bool = False, redact: Redact | None = None,
            service: str = "fledgling") -> dict[str, Any]:
    """An OTLP/JSON `ExportTraceServiceRequest` holding one span per call."""
    spans = [span_of(c, content=content, redact=redact) for c in calls]
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name",
                                                            "value": {"stringValue": service}}]},
                               "scopeSpans": [{"scope": {"name": "fledgling.export"}, "spans": spans}]}]}


@dataclass
class ExportResult:
    endpoint: str
    calls: int = 0
    requests: int = 0


def send_otel(calls: Iterable[Call], endpoint: str, *, content: bool = False, redact: Redact | None = None,
              batch: int = 200, headers: dict[str, str] | None = None, timeout: float = 30.0) -> ExportResult:
    """POST the calls as OTLP/JSON to `endpoint` (a collector's `/v1/traces`), `batch` spans a
    request. A refused request stops the export with an `UpstreamError` saying how far it got."""
    result = ExportResult(endpoint)
    with httpx.Client(timeout=timeout, headers=headers or {}) as client:
        for chunk in _chunks(calls, batch):
            body = orjson.dumps(payload(chunk, content=content, redact=redact))
            _post(client, endpoint, body, f"after {result.calls} calls were sent")
            result.calls += len(chunk)
            result.requests += 1
    return result


def _content(call: Call, redact: Redact | None) -> dict[str, Any]:
    msgs = [dict(m) for m in call.request.messages]
    answer = call.response.message() if call.response is not None else None
    if redact is not None:
        done = redact([*msgs, *([answer] if answer else [])])
        msgs, answer = (done[:-1], done[-1]) if answer else (done, None)
    out: dict[str, Any] = {}
    if msgs and msgs[0].get("role") in ("system", "developer") and isinstance(msgs[0].get("content"), str):
        out["gen_ai.system_instructions"] = orjson.dumps([{"type": "text", "content": msgs[0]["content"]}]).decode()
        msgs = msgs[1:]
    out["gen_ai.input.messages"] = orjson.dumps([_parts_message(m) for m in msgs]).decode()
    if answer is not None:
        message = _parts_message(answer)
        if call.response is not None and call.response.finish_reason:
            message["finish_reason"] = call.response.finish_reason
        out["gen_ai.output.messages"] = orjson.dumps([message]).decode()
    if call.request.tools:
        out["gen_ai.tool.definitions"] = orjson.dumps(call.request.tools).decode()
    return out


def _parts_message(msg: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat message as a parts-based GenAI message (tool-call arguments kept as sent)."""
    role = msg.get("role", "user")
    parts: list[dict[str, Any]] = []
    if role == "tool":
        part: dict[str, Any] = {"type": "tool_call_response", "id": msg.get("tool_call_id"),
                                "response": msg.get("content")}
        if msg.get("name"):
            part["name"] = msg["name"]
        return {"role": "tool", "parts": [part]}
    body = msg.get("content")
    if isinstance(body, str):
        parts.append({"type": "text", "content": body})
    elif isinstance(body, list):
        for p in body:
            if isinstance(p, dict) and p.get("type") == "text":
                parts.append({"type": "text", "content": p.get("text", "")})
            elif isinstance(p, dict):
                parts.append(p)
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function", {})
        parts.append({"type": "tool_call", "id": tc.get("id"), "name": fn.get("name"),
                      "arguments": fn.get("arguments", "{}")})
    out: dict[str, Any] = {"role": role, "parts": parts}
    if msg.get("name") and role != "assistant":
        out["name"] = msg["name"]
    return out


def _ids(call: Call) -> tuple[str, str]:
    """The call's own trace and span ids where they are OTel ids, else ids derived from its id
    (the same every export, so a backend sees a re-export as the same span)."""
    digest = hashlib.sha256(call.id.encode()).hexdigest()
    trace_id = call.trace_id.replace("-", "").lower() if call.trace_id else ""
    span = (call.metadata.get("otel") or {}).get("span_id") or \
        (call.metadata.get("langfuse") or {}).get("observation_id")
    span_id = span.lower() if isinstance(span, str) else ""
    return (trace_id if _HEX32.match(trace_id) else digest[:32],
            span_id if _HEX16.match(span_id) else digest[32:48])


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    return {"stringValue": str(value)}


# -- eval items -> Langfuse scores -----------------------------------------------------------

@dataclass
class ScoresResult:
    host: str
    sent: int = 0
    skipped: list[str] = field(default_factory=list)
    """Items not sent, each with why (its call is gone, or has no trace id)."""


def langfuse_scores(items: Iterable[dict[str, Any]], calls: Callable[[str], Call | None], *,
                    run_id: str, prefix: str = "fledgling") -> Iterator[dict[str, Any] | str]:
    """Score bodies for `POST /api/public/scores`, one per numeric metric of each eval item;
    a string (the reason) for an item that cannot be placed on a trace."""
    for item in items:
        call = calls(item["call_id"])
        if call is None:
            yield f"{item['call_id']}: the call is not in the store"
            continue
        trace_id = call.trace_id
        if not trace_id:
            yield f"{item['call_id']}: the call has no trace id"
            continue
        observation = (call.metadata.get("langfuse") or {}).get("observation_id") or \
            (call.metadata.get("otel") or {}).get("span_id")
        for metric, value in sorted((item.get("scores") or {}).items()):
            if isinstance(value, bool):
                value = float(value)
            if not isinstance(value, (int, float)):
                continue
            body: dict[str, Any] = {
                "id": hashlib.sha256(f"{run_id}\x1f{item['call_id']}\x1f{metric}".encode()).hexdigest()[:32],
                "traceId": trace_id, "name": f"{prefix}.{metric}", "value": float(value),
                "dataType": "NUMERIC", "comment": f"fledgling eval run {run_id}"}
            if observation:
                body["observationId"] = observation
            yield body


def send_langfuse_scores(items: Iterable[dict[str, Any]], calls: Callable[[str], Call | None], host: str,
                         public_key: str, secret_key: str, *, run_id: str,
                         timeout: float = 30.0) -> ScoresResult:
    """POST each score to the Langfuse host (Basic auth with the project's keys). Score ids are
    derived from run, call and metric, so sending a run again updates rather than duplicates."""
    host = host.rstrip("/")
    result = ScoresResult(host)
    with httpx.Client(base_url=host, auth=(public_key, secret_key), timeout=timeout) as client:
        for body in langfuse_scores(items, calls, run_id=run_id):
            if isinstance(body, str):
                result.skipped.append(body)
                continue
            _post(client, f"{host}/api/public/scores", orjson.dumps(body), f"after {result.sent} scores were sent")
            result.sent += 1
    return result


def _post(client: httpx.Client, url: str, body: bytes, progress: str) -> None:
    try:
        resp = client.post(url, content=body, headers={"Content-Type": "application/json"})
    except httpx.HTTPError as exc:
        raise UpstreamError(f"cannot reach {url} ({type(exc).__name__}: {exc}); {progress}") from None
    if resp.status_code in (401, 403):
        raise InputError(f"{url} refused the credentials ({resp.status_code}); {progress}")
    if resp.status_code >= 400:
        raise UpstreamError(f"{url} answered {resp.status_code}: {resp.text[:200]}; {progress}")


def _chunks(calls: Iterable[Call], size: int) -> Iterator[list[Call]]:
    chunk: list[Call] = []
    for call in calls:
        chunk.append(call)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
