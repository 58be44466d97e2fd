"""OpenTelemetry GenAI spans (OTLP JSON or protobuf) -> `Call`s.

An inference span (`gen_ai.operation.name` = chat / text_completion / generate_content, or an
older span with `gen_ai.prompt.*` attributes), an OpenInference span of kind LLM, and the AI SDK's
`ai.*.doGenerate` / `doStream` span are each one LLM call. Messages are read from, in order:
the `gen_ai.input.messages` / `gen_ai.output.messages` attributes (parts-based JSON), the
`gen_ai.client.inference.operation.details` event, OpenInference's flattened
`llm.input_messages.N.*` / `llm.output_messages.N.*` (or its raw `input.value`), the AI SDK's
`ai.prompt.messages` / `ai.response.*`, pydantic-ai 0.x's `events` attribute, the older
per-message events (`gen_ai.user.message`, `gen_ai.choice`, ...), the
`gen_ai.content.prompt/completion` events, langsmith's whole-document `gen_ai.prompt` /
`gen_ai.completion`, and OpenLLMetry's `gen_ai.prompt.N.*` / `gen_ai.completion.N.*`. Every
shape goes through `fledgling.capture.messages`. Tool-execution spans (`execute_tool {name}`),
embeddings, chains and agent spans are not LLM calls and are counted as ignored.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fledgling.calls import Call, Request, Response, Usage, default_task, stable_id
from fledgling.capture import coerce, messages
from fledgling.capture.coerce import BadField
from fledgling.capture.records import Skipped, Tally, reading, records
from fledgling.errors import InputError

SOURCE = "otel"
_LLM_OPERATIONS = {"chat", "text_completion", "generate_content", "completion"}
_MESSAGE_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                   "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")
_FUNCTION = re.compile(r"^llm\.request\.functions\.(\d+)\.(.+)$")
_OI_TOOL = re.compile(r"^llm\.tools\.(\d+)\.tool\.json_schema$")
_VERCEL_CALLS = {"ai.generateText.doGenerate", "ai.streamText.doStream", "ai.generateObject.doGenerate",
                 "ai.streamObject.doStream"}
"""The AI SDK's spans that are one provider call (the outer `ai.generateText` wraps them)."""
_FLOAT_PARAMS = {"gen_ai.request.temperature": "temperature", "gen_ai.request.top_p": "top_p",
                 "gen_ai.request.frequency_penalty": "frequency_penalty",
                 "gen_ai.request.presence_penalty": "presence_penalty"}
_INT_PARAMS = {"gen_ai.request.max_tokens": "max_tokens", "gen_ai.request.seed": "seed",
               "gen_ai.request.choice.count": "n", "gen_ai.request.top_k": "top_k"}


def calls_from_otlp_json(payload: dict[str, Any], *, source_name: str = "otel",
                         origin: str = "OTLP payload", task: str | None = None) -> list[Call]:
    """The LLM calls in one OTLP/JSON `ExportTraceServiceRequest` payload.

    `source_name` becomes `Call.source`; `origin` names the payload in error messages. Ids are
    `stable_id("otel", traceId, spanId)`, so a span sent twice is stored once.
    """
    return [call for _, call in _calls(payload, source_name=source_name, origin=origin, task=task,
                                       where_prefix="", tally=Tally(strict=True))]


def calls_from_otlp_protobuf(body: bytes, *, source_name: str = "otel",
                             task: str | None = None) -> list[Call]:
    """The LLM calls in one protobuf-encoded `ExportTraceServiceRequest` body."""
    return calls_from_otlp_json(payload_from_protobuf(body), source_name=source_name,
                                origin="OTLP protobuf body", task=task)


def payload_from_protobuf(body: bytes) -> dict[str, Any]:
    """An `ExportTraceServiceRequest` body as the OTLP/JSON dict (ids as hex, enums as ints)."""
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
        payload = MessageToDict(req, use_integers_for_enums=True)
    except (DecodeError, ValueError, TypeError, RecursionError) as exc:
        raise InputError(f"not a protobuf ExportTraceServiceRequest ({str(exc)[:120]})",
                         source="OTLP protobuf body") from None
    for rs in payload.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return payload


def calls_in_file(path: Path, task: str | None, tally: Tally) -> Iterator[Call]:
    """Calls in an OTLP JSON file (one payload) or JSONL (one payload per line, as the
    collector's file exporter writes)."""
    for where, payload, suspect in records(path, tally):
        if suspect:
            with reading(str(path), where):
                if coerce.unstorable(payload):
                    raise BadField(None, "holds a NUL character, which the store cannot keep")
        for _, call in _calls(payload, source_name=SOURCE, origin=str(path), task=task,
                              where_prefix=f"{where} ", tally=tally):
            yield call


def _calls(payload: Any, *, source_name: str, origin: str, task: str | None, where_prefix: str,
           tally: Tally) -> Iterator[tuple[str, Call]]:
    with reading(origin, where_prefix.strip() or "payload"):
        spans = list(_spans(payload))
    for loc, span, resource in spans:
        try:
            with reading(origin, f"{where_prefix}{loc}"):
                call = call_from_span(span, resource, source_name=source_name, task=task)
        except InputError as exc:
            if tally.strict or not isinstance(span.get("attributes"), list):
                raise
            tally.skipped.append(Skipped(origin, f"{where_prefix}{loc}", exc.reason, exc.field,
                                         f"span {str(span.get('name'))[:80]!r}"))
            continue
        if call is None:
            tally.ignored += 1
            continue
        yield loc, call


def _spans(payload: Any) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    if not isinstance(payload, dict):
        raise BadField(None, f"an OTLP payload must be an object, got {coerce.type_name(payload)}")
    if "resourceSpans" not in payload:
        if payload:
            raise BadField("resourceSpans", "is missing; is this an OTLP trace export?")
        return
    for i, rs in enumerate(coerce.array(payload["resourceSpans"], "resourceSpans")):
        rs = coerce.obj(rs, f"resourceSpans[{i}]", required=True)
        resource = coerce.obj(rs.get("resource"), f"resourceSpans[{i}].resource")
        res_attrs = attributes(resource.get("attributes"), f"resourceSpans[{i}].resource.attributes")
        scopes = rs.get("scopeSpans", rs.get("instrumentationLibrarySpans"))
        for j, ss in enumerate(coerce.array(scopes, f"resourceSpans[{i}].scopeSpans")):
            ss = coerce.obj(ss, f"resourceSpans[{i}].scopeSpans[{j}]", required=True)
            for k, span in enumerate(coerce.array(ss.get("spans"), f"resourceSpans[{i}].scopeSpans[{j}].spans")):
                loc = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                if not isinstance(span, dict):
                    raise BadField(loc, f"must be a span object, got {coerce.type_name(span)}")
                yield loc, span, res_attrs


# -- attribute values ------------------------------------------------------------------------

def attributes(raw: Any, field: str) -> dict[str, Any]:
    """OTLP `[{key, value: AnyValue}]` -> {key: python value}."""
    out: dict[str, Any] = {}
    for n, kv in enumerate(coerce.array(raw, field)):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise BadField(f"{field}[{n}]", "must be {\"key\": ..., \"value\": ...}")
        out[kv["key"]] = any_value(kv.get("value"), f"{field}[{kv['key']}]")
    return out


def any_value(raw: Any, field: str) -> Any:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadField(field, f"must be an OTLP AnyValue object, got {coerce.type_name(raw)}")
    if "stringValue" in raw:
        return coerce.text(raw["stringValue"], field)
    if "intValue" in raw:
        value = raw["intValue"]
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise BadField(field, "intValue must be an integer")
        try:
            return int(value)
        except ValueError:
            raise BadField(field, f"intValue must be an integer, got {str(value)[:40]!r}") from None
    if "doubleValue" in raw:
        value = raw["doubleValue"]
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise BadField(field, f"doubleValue must be a number, got {value[:40]!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadField(field, "doubleValue must be a number")
        return float(value)
    if "boolValue" in raw:
        if not isinstance(raw["boolValue"], bool):
            raise BadField(field, "boolValue must be true or false")
        return raw["boolValue"]
    if "arrayValue" in raw:
        arr = coerce.obj(raw["arrayValue"], field)
        return [any_value(v, f"{field}[{i}]") for i, v in enumerate(coerce.array(arr.get("values"), field))]
    if "kvlistValue" in raw:
        kv = coerce.obj(raw["kvlistValue"], field)
        return attributes(kv.get("values"), field)
    if "bytesValue" in raw:
        return coerce.text(raw["bytesValue"], field)
    return None


# -- one span --------------------------------------------------------------------------------

def call_from_span(span: dict[str, Any], resource: dict[str, Any] | None = None, *,
                   source_name: str = SOURCE, task: str | None = None) -> Call | None:
    """One span -> `Call`, or None when the span is not an LLM call."""
    resource = resource or {}
    attrs = attributes(span.get("attributes"), "attributes")
    events = _events(span.get("events"))
    if not _is_inference(span, attrs):
        return None
    trace_id = coerce.text(span.get("traceId"), "traceId")
    span_id = coerce.text(span.get("spanId"), "spanId")
    if not trace_id or not span_id:
        raise BadField("traceId" if not trace_id else "spanId", "is missing")
    start = coerce.unix_nanos(span.get("startTimeUnixNano"), "startTimeUnixNano")
    end = coerce.unix_nanos(span["endTimeUnixNano"], "endTimeUnixNano") if span.get("endTimeUnixNano") else None
    inputs, response = _conversation(attrs, events)
    request = _request(attrs, inputs)
    reason = messages.finish_reason(attrs.get("gen_ai.response.finish_reasons"))
    if reason is not None:
        if response is None:
            response = Response(finish_reason=reason)  # kept even when the content is not sent
        elif response.finish_reason is None:
            response.finish_reason = reason
    if response is not None and response.finish_reason is not None:
        response.finish_reason = messages.finish_reason(response.finish_reason)
        if response.tool_calls and response.finish_reason == "stop" and attrs.get("openinference.span.kind"):
            response.finish_reason = "tool_calls"  # Gemini through OpenInference says STOP for calls
    status = coerce.obj(span.get("status"), "status")
    error = None
    if status.get("code") in (2, "2", "STATUS_CODE_ERROR"):
        error = coerce.text(status.get("message"), "status.message") or \
            coerce.text(attrs.get("error.type"), "error.type") or "error"
    model = attrs.get("gen_ai.request.model") or attrs.get("gen_ai.response.model") or \
        attrs.get("llm.model_name") or attrs.get("ai.model.id")
    provider = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system") or attrs.get("llm.provider") \
        or attrs.get("llm.system") or attrs.get("ai.model.provider")
    otel: dict[str, Any] = {"span_id": span_id, "span_name": span.get("name")}
    for key, name in (("gen_ai.response.id", "response_id"), ("gen_ai.response.model", "response_model"),
                      ("gen_ai.operation.name", "operation"), ("gen_ai.agent.name", "agent_name")):
        if attrs.get(key) is not None:
            otel[name] = attrs[key]
    if resource.get("service.name") is not None:
        otel["service_name"] = resource["service.name"]
    parts = {k: v for k, v in attrs.items() if k.startswith(_USAGE_PARTS) and k not in _INPUT_TOKENS + _OUTPUT_TOKENS
             and k != "llm.token_count.total" and isinstance(v, (int, str)) and str(v) not in ("0", "")}
    if parts:
        otel["usage_details"] = parts  # cache reads, reasoning, audio: parts of the totals, kept apart
    call = Call(
        id=stable_id("otel", trace_id, span_id),
        task=task or _task(attrs) or _task(resource) or default_task(request.messages),
        trace_id=trace_id,
        session_id=coerce.text(attrs.get("gen_ai.conversation.id") or attrs.get("session.id")
                               or attrs.get("gcp.vertex.agent.session_id"), "gen_ai.conversation.id"),
        source=source_name,
        created_at=start,
        provider=coerce.text(provider, "gen_ai.provider.name"),
        model=coerce.text(model, "gen_ai.request.model"),
        request=request,
        response=response,
        usage=_usage(attrs),
        latency_ms=max((end - start).total_seconds() * 1000, 0.0) if end else None,
        status="error" if error else "ok",
        error=error,
        metadata={"otel": otel},
    )
    return coerce.check_storable(call)


_USAGE_PARTS = ("gen_ai.usage.", "llm.token_count.", "ai.usage.")
_INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                 "ai.usage.inputTokens", "ai.usage.promptTokens")
_OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion",
                  "ai.usage.outputTokens", "ai.usage.completionTokens")


def _tokens(attrs: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """The first of the conventions' token counts the span carries (sub-counts such as
    `llm.token_count.prompt_details.cache_read` are parts of these, never added)."""
    for key in keys:
        if attrs.get(key) is not None:
            return coerce.integer(attrs[key], key, default=0)
    return None


def _usage(attrs: dict[str, Any]) -> Usage:
    inp, out = _tokens(attrs, _INPUT_TOKENS), _tokens(attrs, _OUTPUT_TOKENS)
    if inp is None and out is None:
        return Usage(missing=True)  # the span reported no counts: unknown, not 0
    return Usage(input_tokens=inp or 0, output_tokens=out or 0)


def _is_inference(span: dict[str, Any], attrs: dict[str, Any]) -> bool:
    kind = attrs.get("openinference.span.kind")
    if isinstance(kind, str):
        return kind.upper() == "LLM"
    vercel = attrs.get("ai.operationId")
    if isinstance(vercel, str):
        return vercel in _VERCEL_CALLS
    op = attrs.get("gen_ai.operation.name")
    if isinstance(op, str):
        return op in _LLM_OPERATIONS
    name = span.get("name")
    if isinstance(name, str) and name.startswith("execute_tool"):
        return False
    if attrs.get("traceloop.span.kind") in ("tool", "workflow", "task", "agent"):
        return False
    if attrs.get("llm.request.type") not in (None, "chat", "completion"):
        return False
    return any(k.startswith(("gen_ai.prompt.", "gen_ai.completion.", "gen_ai.input.messages",
                             "gen_ai.request.model")) for k in attrs)


def _task(attrs: dict[str, Any]) -> str | None:
    value = attrs.get("fledgling.task")
    return value if isinstance(value, str) and value else None


def _events(raw: Any) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for n, ev in enumerate(coerce.array(raw, "events")):
        ev = coerce.obj(ev, f"events[{n}]", required=True)
        name = ev.get("name")
        if not isinstance(name, str):
            raise BadField(f"events[{n}].name", "is missing")
        attrs = attributes(ev.get("attributes"), f"events[{n}].attributes")
        if "body" in ev:
            body = ev["body"]
            attrs["body"] = any_value(body, f"events[{n}].body") if isinstance(body, dict) and \
                len(body) == 1 and next(iter(body)).endswith("Value") else body
        out.append((name, attrs))
    return out


def _request(attrs: dict[str, Any], inputs: list[dict[str, Any]]) -> Request:
    body: dict[str, Any] = {"messages": inputs}
    for key, name in _FLOAT_PARAMS.items():
        if attrs.get(key) is not None:
            body[name] = coerce.number(attrs[key], key)
    for key, name in _INT_PARAMS.items():
        if attrs.get(key) is not None:
            body[name] = coerce.integer(attrs[key], key)
    stop = attrs.get("gen_ai.request.stop_sequences")
    if stop is not None:
        body["stop"] = stop
    tools = attrs.get("gen_ai.tool.definitions")
    where = "gen_ai.tool.definitions"
    if tools is None and attrs.get("ai.prompt.tools") is not None:
        tools, where = attrs["ai.prompt.tools"], "ai.prompt.tools"
    if tools is None and attrs.get("model_request_parameters") is not None:
        tools, where = attrs["model_request_parameters"], "model_request_parameters"
    if tools is None:
        indexed = sorted((k for k in attrs if _OI_TOOL.match(k)), key=lambda k: int(k.split(".")[2]))
        tools = [attrs[k] for k in indexed] or None
        where = "llm.tools"
    if tools is None:
        tools = _indexed_functions(attrs) or None
    body["tools"] = messages.tools(tools, where)
    params = coerce.maybe_json(attrs.get("llm.invocation_parameters"), "llm.invocation_parameters")
    if isinstance(params, dict):
        for key in ("temperature", "top_p"):
            if isinstance(params.get(key), (int, float)) and not isinstance(params.get(key), bool):
                body.setdefault(key, float(params[key]))
        for key in ("max_tokens", "seed"):
            if isinstance(params.get(key), int) and not isinstance(params.get(key), bool):
                body.setdefault(key, params[key])
    return Request.model_validate(body)


def _indexed_functions(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if m := _FUNCTION.match(key):
            found.setdefault(int(m.group(1)), {})[m.group(2)] = value
    return [found[i] for i in sorted(found)]


# -- messages --------------------------------------------------------------------------------

def _conversation(attrs: dict[str, Any], events: list[tuple[str, dict[str, Any]]]
                  ) -> tuple[list[dict[str, Any]], Response | None]:
    details = next((a for n, a in events if n == "gen_ai.client.inference.operation.details"), {})
    system = attrs.get("gen_ai.system_instructions", details.get("gen_ai.system_instructions"))
    inputs_raw = attrs.get("gen_ai.input.messages", details.get("gen_ai.input.messages"))
    outputs_raw = attrs.get("gen_ai.output.messages", details.get("gen_ai.output.messages"))
    response: Response | None
    if inputs_raw is not None or outputs_raw is not None:
        inputs = messages.messages(inputs_raw, "gen_ai.input.messages")
        response = messages.response(outputs_raw, "gen_ai.output.messages") if outputs_raw else None
    elif any(k.startswith(("llm.input_messages.", "llm.output_messages.")) for k in attrs) \
            or "input.value" in attrs and attrs.get("openinference.span.kind") is not None:
        inputs, response = _openinference(attrs)
    elif any(k.startswith(("ai.prompt", "ai.response.")) for k in attrs):
        inputs, response = _vercel(attrs)
    elif isinstance(attrs.get("events"), (str, list)) and not events:  # pydantic-ai 0.x, as attributes
        inputs, response = _from_message_events(_attribute_events(attrs["events"]))
    elif any(n in _MESSAGE_EVENTS or n == "gen_ai.choice" for n, _ in events):
        inputs, response = _from_message_events(events)
    elif any(n in ("gen_ai.content.prompt", "gen_ai.content.completion") for n, _ in events):
        inputs, response = _from_content_events(events)
    elif "gen_ai.prompt" in attrs or "gen_ai.completion" in attrs:  # langsmith: whole JSON documents
        inputs = messages.messages(attrs.get("gen_ai.prompt"), "gen_ai.prompt")
        response = messages.response(attrs.get("gen_ai.completion"), "gen_ai.completion")
    else:
        inputs, response = _from_indexed(attrs)
    if system is not None:
        sys_text = messages.system_text(system, "gen_ai.system_instructions")
        if sys_text and not (inputs and inputs[0].get("role") == "system"):
            inputs = [{"role": "system", "content": sys_text}, *inputs]
    return inputs, response


def _unflatten(attrs: dict[str, Any], prefix: str) -> dict[int, Any]:
    """`prefix.N.a.b.M.c = v` -> {N: {"a": {"b": {M: {"c": v}}}}} (OpenInference's flattening)."""
    root: dict[Any, Any] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        node = root
        parts = [int(p) if p.isdigit() else p for p in key[len(prefix):].split(".")]
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return {k: v for k, v in root.items() if isinstance(k, int)}


def _listed(node: Any) -> list[Any]:
    return [node[i] for i in sorted(k for k in node if isinstance(k, int))] if isinstance(node, dict) else []


def _openinference_message(entry: Any, field: str) -> dict[str, Any]:
    msg = entry.get("message") if isinstance(entry, dict) else None
    if not isinstance(msg, dict):
        raise BadField(field, "has no message")
    out: dict[str, Any] = {k: msg[k] for k in ("role", "content", "name", "tool_call_id") if k in msg}
    contents = _listed(msg.get("contents"))
    if contents and "content" not in out:
        out["content"] = [dict(c.get("message_content", {})) for c in contents if isinstance(c, dict)]
    calls = []
    for c in _listed(msg.get("tool_calls")):
        tc = c.get("tool_call", {}) if isinstance(c, dict) else {}
        fn = tc.get("function", {}) if isinstance(tc.get("function"), dict) else {}
        calls.append({"id": tc.get("id"), "type": "function",
                      "function": {"name": fn.get("name"), "arguments": fn.get("arguments", "{}")}})
    if calls:
        out["tool_calls"] = calls
    return messages.message(out, field)


def _openinference(attrs: dict[str, Any]) -> tuple[list[dict[str, Any]], Response | None]:
    """OpenInference: `llm.input_messages.N.message.*`, `llm.output_messages.N.message.*`; the
    raw `input.value` / `output.value` where those are missing or have gaps (a message the
    instrumentor could not flatten)."""
    flat_in = _unflatten(attrs, "llm.input_messages.")
    gaps = bool(flat_in) and sorted(flat_in) != list(range(len(flat_in)))
    inputs: list[dict[str, Any]] | None = None
    if (gaps or not flat_in) and isinstance(attrs.get("input.value"), str):
        try:
            inputs = messages.messages(attrs["input.value"], "input.value")
        except BadField:
            if not flat_in:
                raise
    if inputs is None:
        inputs = [_openinference_message(flat_in[i], f"llm.input_messages.{i}") for i in sorted(flat_in)]
    flat_out = _unflatten(attrs, "llm.output_messages.")
    response = None
    if flat_out:
        outs = [_openinference_message(flat_out[i], f"llm.output_messages.{i}") for i in sorted(flat_out)]
        response = messages.response([{**m, "role": "assistant"} for m in outs][:1], "llm.output_messages")
    elif attrs.get("output.value") is not None:
        response = messages.response(attrs["output.value"], "output.value")
    if response is not None and response.finish_reason is None and response.tool_calls:
        response.finish_reason = "tool_calls"
    return inputs, response


def _vercel(attrs: dict[str, Any]) -> tuple[list[dict[str, Any]], Response | None]:
    """The AI SDK: `ai.prompt.messages` (its messages), else `ai.prompt` ({system, prompt |
    messages}); `ai.response.text`, `ai.response.toolCalls`, `ai.response.finishReason`."""
    if attrs.get("ai.prompt.messages") is not None:
        inputs = messages.messages(attrs["ai.prompt.messages"], "ai.prompt.messages")
    else:
        inputs = messages.messages(attrs.get("ai.prompt"), "ai.prompt")
    text = attrs.get("ai.response.text")
    calls = messages.tool_calls(attrs.get("ai.response.toolCalls"), "ai.response.toolCalls")
    finish = messages.finish_reason(attrs.get("ai.response.finishReason"))
    if text is None and not calls and finish is None:
        return inputs, None
    return inputs, Response(content=coerce.text(text, "ai.response.text"), tool_calls=calls, finish_reason=finish)


def _attribute_events(raw: Any) -> list[tuple[str, dict[str, Any]]]:
    """pydantic-ai 0.x puts its message events in one `events` attribute (JSON), each with
    `event.name` beside the message fields."""
    out = []
    for n, ev in enumerate(coerce.array(raw, "events")):
        ev = coerce.obj(ev, f"events[{n}]", required=True)
        name = ev.get("event.name")
        if isinstance(name, str):
            out.append((name, {k: v for k, v in ev.items() if k != "event.name"}))
    return out


def _event_body(attrs: dict[str, Any]) -> dict[str, Any]:
    """Old per-message events carry their body as a `body`/`gen_ai.event.content` value, or as
    plain attributes (`content`, `tool_calls`, `message`, ...)."""
    for key in ("body", "gen_ai.event.content", "event.body"):
        if key in attrs:
            value = coerce.maybe_json(attrs[key], key)
            if isinstance(value, dict):
                return value
            if isinstance(value, str):
                return {"content": value}
    return {k: coerce.maybe_json(v, k) for k, v in attrs.items() if not k.startswith("gen_ai.")}


def _from_message_events(events: list[tuple[str, dict[str, Any]]]
                         ) -> tuple[list[dict[str, Any]], Response | None]:
    inputs: list[dict[str, Any]] = []
    response = None
    for n, (name, attrs) in enumerate(events):
        field = f"events[{n}]"
        body = _event_body(attrs)
        if name in _MESSAGE_EVENTS:
            msg = {"role": _MESSAGE_EVENTS[name], **{k: v for k, v in body.items() if k != "role"}}
            if msg["role"] == "tool" and "id" in msg and "tool_call_id" not in msg:
                msg["tool_call_id"] = msg.pop("id")
            inputs.append(messages.message(msg, field))
        elif name == "gen_ai.choice" and response is None:
            message = coerce.obj(body.get("message"), f"{field}.message") or \
                {k: v for k, v in body.items() if k in ("content", "tool_calls")}
            response = messages.response({"message": message, "finish_reason": body.get("finish_reason")},
                                         field)
    return inputs, response


def _from_content_events(events: list[tuple[str, dict[str, Any]]]
                         ) -> tuple[list[dict[str, Any]], Response | None]:
    inputs: list[dict[str, Any]] = []
    response = None
    for name, attrs in events:
        if name == "gen_ai.content.prompt":
            inputs = messages.messages(attrs.get("gen_ai.prompt"), "gen_ai.prompt")
        elif name == "gen_ai.content.completion":
            response = messages.response(attrs.get("gen_ai.completion"), "gen_ai.completion")
    return inputs, response


def _from_indexed(attrs: dict[str, Any]) -> tuple[list[dict[str, Any]], Response | None]:
    """OpenLLMetry: `gen_ai.prompt.N.role/content`, `gen_ai.completion.N.tool_calls.M.name`, ..."""
    groups: dict[str, dict[int, dict[str, Any]]] = {"prompt": {}, "completion": {}}
    for key, value in attrs.items():
        if m := _INDEXED.match(key):
            groups[m.group(1)].setdefault(int(m.group(2)), {})[m.group(3)] = value
    inputs = [_indexed_message(groups["prompt"][i], f"gen_ai.prompt.{i}") for i in sorted(groups["prompt"])]
    completions = groups["completion"]
    response = None
    if completions:
        first = min(completions)
        msg = _indexed_message({"role": "assistant", **completions[first]}, f"gen_ai.completion.{first}")
        response = messages.response({"message": msg, "finish_reason": completions[first].get("finish_reason")},
                                     f"gen_ai.completion.{first}")
    return inputs, response


def _indexed_message(flat: dict[str, Any], field: str) -> dict[str, Any]:
    calls: dict[int, dict[str, Any]] = {}
    fc: dict[str, Any] = {}
    msg: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        if parts[0] == "tool_calls" and len(parts) == 3 and parts[1].isdigit():
            calls.setdefault(int(parts[1]), {})[parts[2]] = value
        elif parts[0] == "function_call" and len(parts) == 2:
            fc[parts[1]] = value
        elif len(parts) == 1:
            msg[key] = value
    if calls:
        msg["tool_calls"] = [{"id": c.get("id"), "type": "function",
                              "function": {"name": c.get("name"), "arguments": c.get("arguments", "{}")}}
                             for _, c in sorted(calls.items())]
    elif fc:
        msg["function_call"] = fc
    msg.pop("finish_reason", None)
    return messages.message(msg, field)


# -- spans one at a time, and OTLP log records (for a receiver that joins them) ---------------

def spans_in(payload: Any, origin: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, span, resource attributes) of each span in an OTLP/JSON trace payload."""
    with reading(origin, "payload"):
        return list(_spans(payload))


def call_of(span: dict[str, Any], resource: dict[str, Any], where: str, origin: str, *,
            source_name: str = SOURCE) -> Call | None:
    """`call_from_span`, with a failure named by where the span was (an `InputError`)."""
    with reading(origin, where):
        return call_from_span(span, resource, source_name=source_name)


def has_content(call: Call) -> bool:
    """Whether the span carried the conversation itself (else its events may come as logs)."""
    answered = call.response is not None and (call.response.content is not None or bool(call.response.tool_calls))
    return bool(call.request.messages) or answered


def logs_payload_from_protobuf(body: bytes) -> dict[str, Any]:
    """An `ExportLogsServiceRequest` body as the OTLP/JSON dict (ids as hex)."""
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    req = ExportLogsServiceRequest()
    try:
        req.ParseFromString(body)
        payload = MessageToDict(req, use_integers_for_enums=True)
    except (DecodeError, ValueError, TypeError, RecursionError) as exc:
        raise InputError(f"not a protobuf ExportLogsServiceRequest ({str(exc)[:120]})",
                         source="OTLP protobuf body") from None
    for rl in payload.get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for record in sl.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64decode(record[key]).hex()
    return payload


OUTPUT_EVENTS = frozenset({"gen_ai.choice", "gen_ai.client.inference.operation.details",
                           "gen_ai.content.completion"})
"""Events that carry the answer: once one has joined its span, the span is complete."""


def log_events(payload: Any, origin: str) -> tuple[list[tuple[str, str, dict[str, Any]]], int]:
    """The GenAI events in an OTLP/JSON logs payload, each as (trace id, span id, span event)
    in the shape a span's own `events` have, and how many records were not GenAI events (or
    named no span)."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    other = 0
    with reading(origin, "payload"):
        if not isinstance(payload, dict):
            raise BadField(None, f"an OTLP payload must be an object, got {coerce.type_name(payload)}")
        if "resourceLogs" not in payload and payload:
            raise BadField("resourceLogs", "is missing; is this an OTLP logs export?")
        for i, rl in enumerate(coerce.array(payload.get("resourceLogs"), "resourceLogs")):
            rl = coerce.obj(rl, f"resourceLogs[{i}]", required=True)
            for j, sl in enumerate(coerce.array(rl.get("scopeLogs"), f"resourceLogs[{i}].scopeLogs")):
                sl = coerce.obj(sl, f"resourceLogs[{i}].scopeLogs[{j}]", required=True)
                for k, rec in enumerate(coerce.array(sl.get("logRecords"), f"resourceLogs[{i}].scopeLogs[{j}]")):
                    here = f"resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}]"
                    rec = coerce.obj(rec, here, required=True)
                    attrs = attributes(rec.get("attributes"), f"{here}.attributes")
                    name = rec.get("eventName") or attrs.pop("event.name", None)
                    trace_id, span_id = rec.get("traceId"), rec.get("spanId")
                    if not (isinstance(name, str) and name.startswith("gen_ai.") and isinstance(trace_id, str)
                            and trace_id and isinstance(span_id, str) and span_id):
                        other += 1
                        continue
                    event: dict[str, Any] = {"name": name, "attributes": [
                        {"key": key, "value": value} for key, value in
                        ((kv["key"], kv.get("value")) for kv in coerce.array(rec.get("attributes"), here))
                        if key != "event.name"]}
                    if rec.get("body") is not None:
                        event["body"] = rec["body"]
                    found.append((trace_id, span_id, event))
    return found, other
