"""An `Exchange`: one LLM request and what came back, as captured on the wire.

The response path only fills in this small record; turning it into a `Call` (parsing the
answer, reassembling a streamed one, pricing it) happens later, off the response path.

`request` is the canonical chat-completions request. An exchange of another API names it in
`metadata["api"]` (`responses`, `messages`) and keeps the caller's own body in
`metadata["wire_request"]`; its answer (`response` or `stream_chunks`) is in that API's shape
and is read with `fledgling.capture.apis`. Usage the answer did not report is unknown
(`Usage.missing`), never 0.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from fledgling.calls import Call, Request, Response, ToolCall, Usage, cost_usd
from fledgling.capture.apis import api_of, parse_answer, parse_stream, responses
from fledgling.payload import parsed_storable_problem, storable_problem


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
    # The relay checked the answer's bytes (`payload.parsed_storable_problem`): no walk needed.
    # Not spooled: a replayed exchange is checked again.
    response_storable: bool = False


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
    fields: dict[str, Any] = {name: rec.get(name) for name in _FIELDS if name != "metadata"}
    ex = Exchange(**fields, created_at=datetime.fromisoformat(rec["created_at"]),
                  metadata=rec.get("metadata") or {})
    if "stream_chunks" in rec:
        chunks: list[Any] = list(rec.get("stream_chunks") or [])
        if rec.get("stream_sse"):
            chunks.insert(0, rec["stream_sse"].encode())
        ex.stream_chunks = chunks
    return ex


RAW_KEEP_CHARS = 4096
"""How much of an answer that could not be understood is kept with its error call."""


def exchange_to_call(ex: Exchange) -> Call:
    """The `Call` an exchange records. Never raises: an answer that cannot be understood (or that
    the store could not hold) becomes an error call with the reason, its raw text kept (bounded)
    in `metadata["raw_response"]`; an exchange that cannot be read at all becomes a bare error
    call carrying what could be salvaged."""
    try:
        return _to_call(ex)
    except Exception as exc:  # the recorder must get a call for every exchange, whatever it holds
        return _salvaged_call(ex, exc)


def _to_call(ex: Exchange) -> Call:
    error = ex.error
    response: Response | None = None
    usage = Usage(missing=True)
    body = ex.request if isinstance(ex.request, dict) else {}
    model = body.get("model") if isinstance(body.get("model"), str) else None
    metadata = dict(ex.metadata) if isinstance(ex.metadata, dict) else {}
    notes: list[str] = []
    api = api_of(metadata.get("api"))
    detail: dict[str, int] = {}
    try:
        if ex.stream_chunks is not None and api != "chat":
            response, usage, resp_model, detail = parse_stream(api, stream_events(ex.stream_chunks, notes), notes)
        elif ex.stream_chunks is not None:
            response, usage, resp_model = reassemble_stream(ex.stream_chunks, notes=notes)
        elif ex.response is not None:
            problem = None if ex.response_storable else storable_problem(ex.response, "the upstream answer")
            if problem is not None:
                raise ValueError(problem)
            if api == "chat":
                response, usage, resp_model = parse_completion(ex.response, notes=notes)
            else:
                response, usage, resp_model, detail = parse_answer(api, ex.response, notes)
        else:
            resp_model = None
        model = resp_model or model
    except ValueError as exc:
        error = error or f"unreadable upstream response: {_one_line(exc)}"
        response = None
        metadata["raw_response"] = raw_text(ex)
    if notes:
        metadata["response_notes"] = notes
    if api == "responses" and (rid := response_id_of(ex)) is not None:
        metadata["response_id"] = rid  # what a later request's previous_response_id names
    if detail:
        metadata["usage_detail"] = detail
    if error is not None and response is not None and not (response.content or response.tool_calls):
        response = None
    return Call(
        id=ex.id, task=ex.task, trace_id=ex.trace_id, session_id=ex.session_id, source=ex.source,
        created_at=ex.created_at, provider=ex.provider, model=model,
        request=_request(body, metadata), response=response, usage=usage,
        latency_ms=ex.latency_ms, cost_usd=cost_usd(usage, ex.price_in, ex.price_out),
        status="error" if error is not None else "ok", error=error, metadata=metadata)


_RESPONSE_ID = re.compile(rb'"response":\s*\{[^{}]*?"id":\s*"([A-Za-z0-9_.:-]{1,200})"')


def response_id_of(ex: Exchange) -> str | None:
    """The id the upstream gave a Responses answer (the first stream event carries it)."""
    if ex.response is not None:
        return responses.response_id(ex.response)
    first = next((c for c in ex.stream_chunks or [] if isinstance(c, bytes | bytearray)), b"")
    m = _RESPONSE_ID.search(bytes(first[:4096]))
    return m.group(1).decode() if m else None


def _salvaged_call(ex: Exchange, exc: Exception) -> Call:
    """The last resort: only fields that cannot fail validation, the rest as bounded text."""
    created = ex.created_at if isinstance(ex.created_at, datetime) else datetime.now(UTC)
    return Call(
        id=str(ex.id), task=str(ex.task or "default"), source=str(ex.source or "gateway"),
        created_at=created, request=Request(messages=[]), status="error",
        error=f"unreadable exchange ({type(exc).__name__}): {_one_line(exc)}",
        metadata={"raw_response": raw_text(ex), "raw_request": bounded_text(ex.request)})


def raw_text(ex: Exchange) -> str:
    """The answer as it came (SSE bytes, or the JSON body), as storable text of bounded size."""
    if ex.stream_chunks is not None:
        parts: list[str] = []
        for chunk in ex.stream_chunks:
            if isinstance(chunk, bytes | bytearray):
                parts.append(bytes(chunk[:RAW_KEEP_CHARS]).decode("utf-8", "replace"))
            else:
                parts.append(bounded_text(chunk))
            if sum(len(p) for p in parts) >= RAW_KEEP_CHARS:
                break
        return _storable("".join(parts))
    return bounded_text(ex.response)


def bounded_text(value: Any) -> str:
    """Any value as at most `RAW_KEEP_CHARS` characters of text the store can hold."""
    try:
        text = orjson.dumps(_shallow(value)).decode()
    except (TypeError, ValueError):
        text = f"<{type(value).__name__} that cannot be written as JSON>"
    return _storable(text)


def _shallow(value: Any, depth: int = 0) -> Any:
    """A copy cut off below a few levels: a preview of a hostile payload without recursing into
    all of it."""
    if depth >= 8:
        return "..." if isinstance(value, dict | list) else value
    if isinstance(value, dict):
        return {str(k): _shallow(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple):
        return [_shallow(v, depth + 1) for v in list(value)[:50]]
    if isinstance(value, bytes | bytearray):
        return bytes(value[:RAW_KEEP_CHARS]).decode("utf-8", "replace")
    if isinstance(value, str):
        return value[:RAW_KEEP_CHARS]
    if value is None or isinstance(value, bool | int | float):
        return value
    return repr(value)[:RAW_KEEP_CHARS]


def _storable(text: str) -> str:
    """Cut to size, NUL shown as the escape `\\u0000`, lone surrogates replaced."""
    text = text[:RAW_KEEP_CHARS].replace("\x00", "\\u0000")
    return text.encode("utf-8", "replace").decode("utf-8")


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def _request(body: dict[str, Any], metadata: dict[str, Any]) -> Request:
    try:
        return Request.model_validate(body)
    except ValidationError as exc:
        metadata["request_invalid"] = str(exc.errors()[0].get("msg"))
        messages = body.get("messages")
        return Request(messages=[m for m in messages if isinstance(m, dict)]
                       if isinstance(messages, list) else [])


def parse_completion(body: dict[str, Any], *,
                     notes: list[str] | None = None) -> tuple[Response, Usage, str | None]:
    """A `chat.completion` object -> the first choice, its usage and the model that answered.

    Raises only `ValueError` (whatever the shape). Oddities that do not make the answer
    unreadable (a non-string model, unreadable usage) are named in `notes` instead."""
    notes = [] if notes is None else notes
    if not isinstance(body, dict):
        raise ValueError(f"the chat.completion body is a {type(body).__name__}, not an object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("no choices in the chat.completion body")
    choice = choices[0]
    message = choice.get("message") or {}
    if not isinstance(message, dict):
        raise ValueError(f"choices[0].message is a {type(message).__name__}, not an object")
    try:
        response = Response.from_message(message, choice.get("finish_reason"))
    except (TypeError, AttributeError) as exc:
        raise ValueError(f"choices[0].message cannot be read: {exc}") from None
    if message.get("refusal"):
        response.refusal = message["refusal"]  # type: ignore[attr-defined]
    return response, _usage(body.get("usage"), notes), _model(body.get("model"), notes)


def _model(raw: Any, notes: list[str]) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw or None
    notes.append(f"the answer's model is {bounded_text(raw)[:100]}, not a string; kept the request's")
    return None


def _usage(raw: Any, notes: list[str]) -> Usage:
    if raw is not None and not isinstance(raw, dict):
        notes.append(f"unreadable usage {bounded_text(raw)[:200]}: stored as unknown")
        return Usage(missing=True)
    try:
        return usage_of(raw)
    except (TypeError, ValueError):
        notes.append(f"unreadable usage {bounded_text(raw)[:200]}: stored as unknown")
        return Usage(missing=True)


def usage_of(raw: Any) -> Usage:
    """OpenAI's `prompt_tokens`/`completion_tokens` (or `input_tokens`/`output_tokens`); no
    usage at all is `Usage(missing=True)`. `ValueError`/`TypeError` when the counts are not
    numbers."""
    if not isinstance(raw, dict):
        return Usage(missing=True)
    return Usage(input_tokens=int(raw.get("prompt_tokens", raw.get("input_tokens")) or 0),
                 output_tokens=int(raw.get("completion_tokens", raw.get("output_tokens")) or 0))


def sse_events(raw: bytes, *, notes: list[str] | None = None) -> list[dict[str, Any]]:
    """The JSON `data:` payloads of a server-sent-events body, `[DONE]` excluded. Data lines that
    are not JSON objects are skipped, and counted in `notes`."""
    events: list[dict[str, Any]] = []
    skipped = 0
    for line in raw.splitlines():
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if not data or data == b"[DONE]":
            continue
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            events.append(obj)
        else:
            skipped += 1
    if skipped and notes is not None:
        notes.append(f"{skipped} SSE data lines were not JSON objects and were skipped")
    return events


def stream_events(chunks: list[Any], notes: list[str] | None = None) -> list[dict[str, Any]]:
    """A recorded stream's event payloads, whatever its API (raw SSE bytes, or parsed dicts).
    `ValueError` when the store could not hold them."""
    events: list[dict[str, Any]] = []
    raw = b"".join(c for c in chunks if isinstance(c, bytes | bytearray))
    if raw:
        events.extend(sse_events(raw, notes=notes))
    events.extend(c for c in chunks if isinstance(c, dict))
    problem = (storable_problem(events, "a streamed event") if any(isinstance(c, dict) for c in chunks)
               else parsed_storable_problem(raw, events, "a streamed event"))
    if problem is not None:
        raise ValueError(problem)
    return events


def reassemble_stream(chunks: list[Any], *,
                      notes: list[str] | None = None) -> tuple[Response, Usage, str | None]:
    """Streamed `chat.completion.chunk`s (raw SSE bytes, or already-parsed dicts) -> one answer.

    Content deltas are concatenated; tool-call deltas are merged by their `index` (id and name
    arrive first, the arguments text in pieces). Raises only `ValueError`, naming the first
    chunk whose shape is not a chunk's (or that the store could not hold).
    """
    notes = [] if notes is None else notes
    events: list[dict[str, Any]] = []
    raw = b"".join(c for c in chunks if isinstance(c, bytes | bytearray))
    if raw:
        events.extend(sse_events(raw, notes=notes))
    events.extend(c for c in chunks if isinstance(c, dict))
    if raw.strip() and not events:
        raise ValueError("the stream holds no chat.completion.chunk")
    problem = (storable_problem(events, "a streamed chunk") if any(isinstance(c, dict) for c in chunks)
               else parsed_storable_problem(raw, events, "a streamed chunk"))
    if problem is not None:
        raise ValueError(problem)
    try:
        return _merge_chunks(events, notes)
    except (TypeError, AttributeError, KeyError) as exc:
        raise ValueError(f"a streamed chunk cannot be read: {exc}") from None


def _merge_chunks(events: list[dict[str, Any]], notes: list[str]) -> tuple[Response, Usage, str | None]:
    content: list[str] = []
    tools: dict[int, dict[str, Any]] = {}
    finish_reason = None
    usage = Usage(missing=True)
    model = None
    for ev in events:
        if "error" in ev and not ev.get("choices"):
            raise ValueError(f"error event in stream: {_error_message(ev)}")
        model = _model(ev.get("model"), notes) or model
        if ev.get("usage"):
            usage = _usage(ev["usage"], notes)
        choices = ev.get("choices") or []
        if not isinstance(choices, list):
            raise ValueError(f"a chunk's choices is a {type(choices).__name__}, not a list")
        for choice in choices:
            if not isinstance(choice, dict):
                raise ValueError(f"a chunk's choice is {bounded_text(choice)[:100]}, not an object")
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise ValueError(f"a chunk's delta is {bounded_text(delta)[:100]}, not an object")
            piece = delta.get("content")
            if piece:
                if not isinstance(piece, str):
                    raise ValueError(f"a chunk's content is a {type(piece).__name__}, not text")
                content.append(piece)
            tool_deltas = delta.get("tool_calls") or []
            if not isinstance(tool_deltas, list):
                raise ValueError("a chunk's tool_calls is not a list")
            for tc in tool_deltas:
                if not isinstance(tc, dict) or not isinstance(tc.get("function") or {}, dict):
                    raise ValueError(f"a chunk's tool call is {bounded_text(tc)[:100]}, not an object")
                index = tc.get("index", len(tools))
                if not isinstance(index, int):
                    raise ValueError(f"a chunk's tool call index is {bounded_text(index)[:50]}")
                slot = tools.setdefault(index, {"id": None, "name": "", "arguments": []})
                slot["id"] = tc.get("id") or slot["id"]
                fn = tc.get("function") or {}
                if fn.get("name"):
                    slot["name"] = fn["name"]
                if fn.get("arguments"):
                    args = fn["arguments"]
                    slot["arguments"].append(args if isinstance(args, str) else orjson.dumps(args).decode())
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
