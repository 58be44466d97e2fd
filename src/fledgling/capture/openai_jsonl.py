"""OpenAI-format JSONL: `{request, response}` chat-completions pairs, and fine-tuning lines.

Full shape (what `dump_call` writes, so a dump reads back as an equal `Call`):
`{"request": <chat-completions body>, "response": <chat.completion> | null, "id", "task",
"session_id", "trace_id", "created_at", "latency_ms", "cost_usd", "provider", "status",
"error", "feedback", "metadata", "source"}`; all but `request` optional.
Fine-tuning shape: `{"messages": [...], "tools": [...]}`, the last message being the answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fledgling.calls import Call, Feedback, Request, Response, Status, Usage, default_task, stable_id
from fledgling.capture import coerce, messages
from fledgling.capture.coerce import BadField
from fledgling.capture.records import Tally, reading, records

SOURCE = "openai-jsonl"


def dump_call(call: Call) -> dict[str, Any]:
    """The full-shape line for a call: a chat-completions request/response pair plus our fields."""
    request = call.request.model_dump(mode="json", exclude_none=True)
    if call.model is not None:
        request["model"] = call.model
    line: dict[str, Any] = {
        "id": call.id, "task": call.task, "source": call.source,
        "created_at": call.created_at.isoformat(), "request": request,
        "response": _completion(call) if call.response is not None else None,
        "status": call.status,
    }
    if call.response is None:
        line["usage"] = call.usage.model_dump()  # null counts when unknown
    for key in ("trace_id", "session_id", "provider", "latency_ms", "cost_usd", "error"):
        if (value := getattr(call, key)) is not None:
            line[key] = value
    if call.usage.missing:
        line["cost_usd"] = None  # unknown usage: unknown cost, said so rather than left out
    if call.feedback is not None:
        line["feedback"] = call.feedback.model_dump(mode="json", exclude_none=True)
    if call.metadata:
        line["metadata"] = call.metadata
    return line


def _completion(call: Call) -> dict[str, Any]:
    resp = call.response
    assert resp is not None
    message = {"role": "assistant", **resp.model_dump(mode="json", exclude={"tool_calls", "finish_reason"})}
    if resp.tool_calls:
        message["tool_calls"] = [tc.to_openai() for tc in resp.tool_calls]
    body: dict[str, Any] = {
        "object": "chat.completion", "created": int(call.created_at.timestamp()),
        "choices": [{"index": 0, "message": message, "finish_reason": resp.finish_reason}],
        "usage": None if call.usage.missing else  # unknown usage is null, never 0
        {"prompt_tokens": call.usage.input_tokens, "completion_tokens": call.usage.output_tokens,
         "total_tokens": call.usage.input_tokens + call.usage.output_tokens},
    }
    if call.model is not None:
        body["model"] = call.model
    return body


def read_calls(path: Path | str, task: str | None = None) -> Iterator[Call]:
    """Every call in a JSONL file, streamed; raises `InputError` naming line and field."""
    yield from calls_in_file(Path(path), task, Tally())


def calls_in_file(path: Path, task: str | None, tally: Tally) -> Iterator[Call]:
    source = str(path)
    imported_at = datetime.now(UTC)
    for where, value, suspect in records(path, tally):
        with reading(source, where):
            call = call_from_record(value, task=task, default_time=imported_at, suspect=suspect)
        yield call


def call_from_record(record: Any, *, task: str | None = None,
                     default_time: datetime | None = None, suspect: bool = True) -> Call:
    """One JSONL record (either shape) -> `Call`. Raises `BadField` on a bad value."""
    if not isinstance(record, dict):
        raise BadField(None, f"each line must be a JSON object, got {coerce.type_name(record)}")
    if suspect and coerce.unstorable(record):
        raise BadField(None, "holds a NUL character or invalid Unicode, which the store cannot keep")
    if "request" in record:
        return _from_pair(record, task, default_time)
    if "messages" in record:
        return _from_finetuning(record, task, default_time)
    raise BadField("request", "is missing (expected {\"request\", \"response\"} or {\"messages\": [...]})")


def _from_pair(rec: dict[str, Any], task: str | None, default_time: datetime | None) -> Call:
    req = coerce.obj(rec["request"], "request", required=True)
    if not isinstance(req.get("messages"), list):
        raise BadField("request.messages", "is missing or not an array")
    resp_raw = rec.get("response")
    response: Response | None = None
    usage = Usage()
    model = req.get("model")
    created = None
    if resp_raw is not None:
        body = coerce.obj(resp_raw, "response")
        response = _response(body)
        usage = Usage(missing=True) if "usage" in body and body["usage"] is None else \
            _usage(body.get("usage"), "response.usage")
        model = body.get("model", model)
        if body.get("created") is not None:
            created = coerce.timestamp(body["created"], "response.created")
    if "usage" in rec:
        usage = Usage(missing=True) if rec["usage"] is None else _usage(rec["usage"], "usage")
    request = Request.model_validate({k: v for k, v in req.items() if k not in ("model", "stream")})
    return _call(rec, request, response, usage, coerce.text(model, "request.model"), task,
                 created, default_time)


def _response(body: dict[str, Any]) -> Response:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise BadField("response.choices", "is missing or empty")
    choice = coerce.obj(choices[0], "response.choices[0]", required=True)
    msg = coerce.obj(choice.get("message"), "response.choices[0].message", required=True)
    fields = {k: v for k, v in msg.items() if k != "role"}
    if isinstance(fields.get("content"), list):
        fields["content"] = "".join(p.get("text", "") for p in fields["content"]
                                    if isinstance(p, dict) and isinstance(p.get("text"), str))
    fields["tool_calls"] = messages.tool_calls(fields.get("tool_calls"), "response.choices[0].message.tool_calls")
    fields["finish_reason"] = choice.get("finish_reason")
    return Response.model_validate(fields)


def _usage(raw: Any, field: str) -> Usage:
    u = coerce.obj(raw, field)
    if any(k in u and u[k] is None for k in ("prompt_tokens", "input_tokens", "completion_tokens", "output_tokens")):
        return Usage(missing=True)  # null counts (as `fledgling export` writes unknown usage)
    return Usage(
        input_tokens=coerce.integer(u.get("prompt_tokens", u.get("input_tokens")),
                                    f"{field}.prompt_tokens", default=0),
        output_tokens=coerce.integer(u.get("completion_tokens", u.get("output_tokens")),
                                     f"{field}.completion_tokens", default=0))


def _from_finetuning(rec: dict[str, Any], task: str | None, default_time: datetime | None) -> Call:
    msgs = rec["messages"]
    if not isinstance(msgs, list) or not msgs:
        raise BadField("messages", "must be a non-empty array of messages")
    last = msgs[-1]
    if not isinstance(last, dict) or last.get("role") != "assistant":
        raise BadField(f"messages[{len(msgs) - 1}].role",
                       "the last message must be the assistant's answer")
    fields = {k: v for k, v in last.items() if k not in ("role", "weight")}
    fields["tool_calls"] = messages.tool_calls(fields.get("tool_calls"), f"messages[{len(msgs) - 1}].tool_calls")
    response = Response.model_validate(fields)
    body = {k: v for k, v in rec.items() if k in ("tools", "tool_choice", "response_format",
                                                  "parallel_tool_calls")}
    request = Request.model_validate({"messages": msgs[:-1], **body})
    return _call(rec, request, response, Usage(), coerce.text(rec.get("model"), "model"), task,
                 None, default_time)


def _call(rec: dict[str, Any], request: Request, response: Response | None, usage: Usage,
          model: str | None, task: str | None, created: datetime | None,
          default_time: datetime | None) -> Call:
    metadata = coerce.obj(rec.get("metadata"), "metadata")
    call_id = coerce.text(rec.get("id"), "id") or _content_id(rec)
    if len(call_id) > 64:
        call_id = _content_id({"id": call_id})
    if rec.get("created_at") is not None:
        created = coerce.timestamp(rec["created_at"], "created_at")
    error = coerce.text(rec.get("error") if not isinstance(rec.get("error"), dict)
                        else rec["error"].get("message"), "error")
    status = _status(rec.get("status") or ("error" if error or response is None else "ok"))
    feedback = rec.get("feedback")
    call = Call(
        id=call_id,
        task=task or coerce.text(rec.get("task"), "task") or _metadata_task(metadata)
        or default_task(request.messages),
        trace_id=coerce.text(rec.get("trace_id"), "trace_id"),
        session_id=coerce.text(rec.get("session_id"), "session_id"),
        source=coerce.text(rec.get("source"), "source") or SOURCE,
        created_at=created or default_time or datetime.now(UTC),
        provider=coerce.text(rec.get("provider"), "provider"),
        model=model, request=request, response=response, usage=usage,
        latency_ms=coerce.number(rec.get("latency_ms"), "latency_ms"),
        cost_usd=coerce.number(rec.get("cost_usd"), "cost_usd"),
        status=status, error=error,
        feedback=Feedback.model_validate(coerce.obj(feedback, "feedback")) if feedback is not None else None,
        metadata=metadata,
    )
    return coerce.check_storable(call)


def _metadata_task(metadata: dict[str, Any]) -> str | None:
    fl = metadata.get("fledgling")
    value = (fl.get("task") if isinstance(fl, dict) else None) or metadata.get("fledgling.task") \
        or metadata.get("task")
    return value if isinstance(value, str) and value else None


def _content_id(rec: dict[str, Any]) -> str:
    """Lines without an id are identified by their content, so re-importing them adds nothing."""
    return stable_id(SOURCE, hashlib.sha256(orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)).hexdigest())


def _status(value: Any) -> Status:
    """The record's `ok` or `error`; anything else is a bad field."""
    if value not in ("ok", "error"):
        raise BadField("status", f"must be 'ok' or 'error', got {str(value)[:20]!r}")
    return value
