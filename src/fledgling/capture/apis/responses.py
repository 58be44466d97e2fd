"""OpenAI Responses API (`POST /v1/responses`) <-> the canonical chat-completions shape.

Reading (wire -> canonical), one function per item kind, each reusable on its own:

    input_items(input)             the `input` (a string or items) -> chat messages
    message_item(item)             a `message` item (input_text / output_text parts) -> a message
    function_call_item(item)       a `function_call` item -> a chat tool call
    function_call_output_item(it)  a `function_call_output` item -> a `tool` message
    tool_to_chat(tool)             a flat function tool {type, name, parameters, strict} -> chat's
    text_format_to_chat(fmt)       `text.format` -> `response_format`
    tool_choice_to_chat(choice)    `tool_choice` -> chat's
    request_to_chat(body)          the whole request -> a chat-completions request body
    output_items(output)           `output` items -> (text, tool calls, refusal)
    usage_of(raw)                  `usage` -> (Usage, detail: cached_tokens, reasoning_tokens)
    response_to_canonical(body)    a `response` object -> (Response, Usage, model, detail)
    events_to_canonical(events)    the stream's event payloads -> the same

Writing (canonical -> wire), for answers the gateway makes itself (the candidate's):

    render_response(answer, ...)   a `response` object
    render_events(response)        the event sequence a stream of that response is
    encode_events(events)          those events as SSE bytes (`event:` + `data:` lines)
    message_to_items(message)      a chat message -> Responses input items
    self_contained(body, history)  a chained request with its conversation spelled out

What has no place in the chat shape (reasoning items, hosted tools such as web_search, image
parts) is skipped and named in `notes`, never silently. Usage keeps OpenAI's meaning:
`input_tokens` counts the cached ones too, `output_tokens` the reasoning ones.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from fledgling.calls import Response, ToolCall, Usage

TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def _note(notes: list[str] | None, text: str) -> None:
    if notes is not None and text not in notes:
        notes.append(text)


# -- reading: request ------------------------------------------------------------------------------


def part_text(part: Any) -> str | None:
    """The text of an `input_text` / `output_text` / `text` part (or a bare string), else None."""
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and part.get("type") in ("input_text", "output_text", "text", "refusal"):
        text = part.get("text", part.get("refusal"))
        return text if isinstance(text, str) else None
    return None


def content_to_chat(content: Any, notes: list[str] | None = None) -> str | list[dict[str, Any]] | None:
    """A message's content: a string stays one; text parts join into one string; with an image,
    the chat parts list (`text`, `image_url`)."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ValueError(f"message content is a {type(content).__name__}, not a string or a list")
    texts = [part_text(p) for p in content]
    if all(t is not None for t in texts):
        return "".join(t for t in texts if t is not None)
    parts: list[dict[str, Any]] = []
    for part, text in zip(content, texts, strict=True):
        if text is not None:
            parts.append({"type": "text", "text": text})
        elif isinstance(part, dict) and part.get("type") == "input_image" and part.get("image_url"):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            _note(notes, f"skipped a content part of type {kind!r} (no chat equivalent)")
    return parts


def message_item(item: dict[str, Any], notes: list[str] | None = None) -> dict[str, Any]:
    """A `message` item (or an easy input message `{role, content}`) -> a chat message."""
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise ValueError(f"a message item has role {role!r}")
    return {"role": role, "content": content_to_chat(item.get("content"), notes)}


def function_call_item(item: dict[str, Any]) -> dict[str, Any]:
    """A `function_call` item -> a chat tool call (its `call_id` is the id the output names)."""
    name, args = item.get("name"), item.get("arguments", "")
    if not isinstance(name, str):
        raise ValueError("a function_call item has no name")
    if not isinstance(args, str):
        args = orjson.dumps(args).decode()
    return {"id": item.get("call_id") or item.get("id"), "type": "function",
            "function": {"name": name, "arguments": args or "{}"}}


def function_call_output_item(item: dict[str, Any], notes: list[str] | None = None) -> dict[str, Any]:
    """A `function_call_output` item -> a `tool` message."""
    output = item.get("output")
    content = output if isinstance(output, str) else content_to_chat(output, notes)
    if isinstance(content, list):  # a tool message's content is text
        content = "".join(p.get("text", "") for p in content)
    return {"role": "tool", "tool_call_id": item.get("call_id"), "content": content or ""}


def input_items(value: Any, notes: list[str] | None = None) -> list[dict[str, Any]]:
    """The request's `input` -> chat messages. Consecutive `function_call` items join the
    assistant message before them (chat holds one assistant turn's calls in one message)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise ValueError(f"input is a {type(value).__name__}, not a string or a list of items")
    messages: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict):
            raise ValueError(f"an input item is a {type(item).__name__}, not an object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            messages.append(message_item(item, notes))
        elif kind == "function_call":
            last = messages[-1] if messages else None
            if last is None or last["role"] != "assistant":
                last = {"role": "assistant", "content": None}
                messages.append(last)
            if last.get("content") == "":
                last["content"] = None
            last.setdefault("tool_calls", []).append(function_call_item(item))
        elif kind == "function_call_output":
            messages.append(function_call_output_item(item, notes))
        else:
            _note(notes, f"skipped input items of type {kind!r} (no chat equivalent)")
    return messages


def tool_to_chat(tool: Any, notes: list[str] | None = None) -> dict[str, Any] | None:
    """A flat function tool -> a chat tool; None (named in `notes`) for a hosted tool."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
        _note(notes, f"skipped tools of type {kind!r} (not a function tool)")
        return None
    fn: dict[str, Any] = {"name": tool.get("name")}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            fn[key] = tool[key]
    return {"type": "function", "function": fn}


def tool_choice_to_chat(choice: Any) -> str | dict[str, Any] | None:
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        return choice.get("mode") or "auto"
    return None


def text_format_to_chat(fmt: Any) -> dict[str, Any] | None:
    """`text.format` -> `response_format`: json_schema (name, schema, strict, description)
    moves under `json_schema`; json_object stays; plain text is no format."""
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        inner = {k: fmt[k] for k in ("name", "description", "schema", "strict") if fmt.get(k) is not None}
        return {"type": "json_schema", "json_schema": inner}
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    return None


def request_to_chat(body: dict[str, Any], notes: list[str] | None = None) -> dict[str, Any]:
    """A Responses request -> the chat-completions request it means. `ValueError` when the
    body is not one."""
    if not isinstance(body, dict):
        raise ValueError("a Responses request is a JSON object")
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif isinstance(instructions, list):
        messages.extend(input_items(instructions, notes))
    messages.extend(input_items(body.get("input"), notes))
    out: dict[str, Any] = {"messages": messages}
    if isinstance(body.get("model"), str):
        out["model"] = body["model"]
    if isinstance(body.get("tools"), list):
        tools = [t for t in (tool_to_chat(t, notes) for t in body["tools"]) if t is not None]
        if tools:
            out["tools"] = tools
    if (choice := tool_choice_to_chat(body.get("tool_choice"))) is not None and "tools" in out:
        out["tool_choice"] = choice
    if (fmt := text_format_to_chat((body.get("text") or {}).get("format")
                                   if isinstance(body.get("text"), dict) else None)) is not None:
        out["response_format"] = fmt
    for src, dst in (("temperature", "temperature"), ("top_p", "top_p"), ("max_output_tokens", "max_tokens"),
                     ("parallel_tool_calls", "parallel_tool_calls"), ("stream", "stream")):
        if body.get(src) is not None:
            out[dst] = body[src]
    return out


# -- reading: response -----------------------------------------------------------------------------


def output_items(output: Any, notes: list[str] | None = None) -> tuple[str | None, list[ToolCall], str | None]:
    """`output` items -> (the assistant's text, its tool calls, a refusal)."""
    if not isinstance(output, list):
        raise ValueError(f"output is a {type(output).__name__}, not a list")
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[ToolCall] = []
    for item in output:
        if not isinstance(item, dict):
            raise ValueError(f"an output item is a {type(item).__name__}, not an object")
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "refusal":
                    refusals.append(str(part.get("refusal") or ""))
                elif (text := part_text(part)) is not None:
                    texts.append(text)
        elif kind == "function_call":
            tc = function_call_item(item)
            calls.append(ToolCall(id=tc["id"], name=tc["function"]["name"], arguments=tc["function"]["arguments"]))
        elif kind != "reasoning":
            _note(notes, f"skipped output items of type {kind!r} (no chat equivalent)")
    return ("".join(texts) if texts else None), calls, ("".join(refusals) if refusals else None)


def usage_of(raw: Any) -> tuple[Usage, dict[str, int]]:
    """`usage` -> (Usage, detail). No usage -> `Usage(missing=True)`."""
    if not isinstance(raw, dict):
        return Usage(missing=True), {}
    try:
        usage = Usage(input_tokens=int(raw.get("input_tokens") or 0), output_tokens=int(raw.get("output_tokens") or 0))
    except (TypeError, ValueError):
        raise ValueError(f"unreadable usage {str(raw)[:200]}") from None
    detail: dict[str, int] = {}
    for group, key in (("input_tokens_details", "cached_tokens"), ("input_tokens_details", "cache_write_tokens"),
                       ("output_tokens_details", "reasoning_tokens")):
        value = (raw.get(group) or {}).get(key) if isinstance(raw.get(group), dict) else None
        if isinstance(value, int):
            detail[key] = value
    return usage, detail


def _finish(body: dict[str, Any], tool_calls: list[ToolCall]) -> str:
    status = body.get("status")
    if status == "incomplete":
        reason = (body.get("incomplete_details") or {}).get("reason")
        return "length" if reason == "max_output_tokens" else "content_filter" if reason == "content_filter" \
            else str(reason or "length")
    return "tool_calls" if tool_calls else "stop"


def response_to_canonical(body: dict[str, Any], notes: list[str] | None = None
                          ) -> tuple[Response, Usage, str | None, dict[str, int]]:
    """A `response` object -> (the answer, its usage, the model, usage detail). A failed
    response is a `ValueError` naming its error."""
    if not isinstance(body, dict) or body.get("object") not in ("response", None):
        raise ValueError("not a Responses `response` object")
    if body.get("status") == "failed" or body.get("error"):
        err = body.get("error") or {}
        raise ValueError(f"the response failed: {err.get('message') if isinstance(err, dict) else err}")
    text, calls, refusal = output_items(body.get("output"), notes)
    response = Response(content=text, tool_calls=calls, finish_reason=_finish(body, calls))
    if refusal:
        response.refusal = refusal  # type: ignore[attr-defined]
    usage, detail = usage_of(body.get("usage"))
    model = body.get("model") if isinstance(body.get("model"), str) else None
    return response, usage, model, detail


def events_to_canonical(events: list[dict[str, Any]], notes: list[str] | None = None
                        ) -> tuple[Response, Usage, str | None, dict[str, int]]:
    """A stream's events -> as `response_to_canonical`. The terminal event carries the whole
    response; a stream cut before it is rebuilt from the finished items and the deltas (and
    says so in `notes`). An `error` event is a `ValueError`."""
    items: dict[int, dict[str, Any]] = {}
    text: dict[int, list[str]] = {}
    args: dict[int, list[str]] = {}
    started: dict[str, Any] | None = None
    for ev in events:
        kind = ev.get("type")
        if kind == "error":
            raise ValueError(f"error event in stream: {ev.get('message') or ev.get('code') or ev}")
        if kind in TERMINAL and isinstance(ev.get("response"), dict):
            return response_to_canonical(ev["response"], notes)
        if kind in ("response.created", "response.in_progress") and isinstance(ev.get("response"), dict):
            started = ev["response"]
        index = ev.get("output_index")
        if not isinstance(index, int):
            continue
        if kind in ("response.output_item.added", "response.output_item.done") and isinstance(ev.get("item"), dict):
            items[index] = ev["item"]
        elif kind == "response.output_text.delta" and isinstance(ev.get("delta"), str):
            text.setdefault(index, []).append(ev["delta"])
        elif kind == "response.function_call_arguments.delta" and isinstance(ev.get("delta"), str):
            args.setdefault(index, []).append(ev["delta"])
    if not items and started is None:
        raise ValueError("the stream holds no Responses event")
    _note(notes, "the stream ended before response.completed: rebuilt from its items")
    output = []
    for index in sorted(items):
        item = dict(items[index])
        if item.get("type") == "message" and not item.get("content") and index in text:
            item["content"] = [{"type": "output_text", "text": "".join(text[index])}]
        if item.get("type") == "function_call" and not item.get("arguments") and index in args:
            item["arguments"] = "".join(args[index])
        output.append(item)
    base = started or {}
    return response_to_canonical({**base, "object": "response", "status": "incomplete",
                                  "incomplete_details": {"reason": "stream_cut"}, "output": output,
                                  "usage": None}, notes)


def response_id(body: Any) -> str | None:
    """The id of a `response` object, or of the response a stream's events carry."""
    if isinstance(body, dict) and isinstance(body.get("id"), str) and body.get("object") == "response":
        return body["id"]
    if isinstance(body, list):
        for ev in body:
            if isinstance(ev, dict) and isinstance(ev.get("response"), dict):
                rid = ev["response"].get("id")
                if isinstance(rid, str):
                    return rid
    return None


# -- writing ---------------------------------------------------------------------------------------


def message_to_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    """One chat message -> the Responses input items it is (the reverse of `input_items`)."""
    role, content = message.get("role"), message.get("content")
    if role == "tool":
        return [{"type": "function_call_output", "call_id": message.get("tool_call_id"),
                 "output": content if isinstance(content, str) else orjson.dumps(content).decode()}]
    out: list[dict[str, Any]] = []
    if isinstance(content, list):
        text_kind = "output_text" if role == "assistant" else "input_text"
        parts = [{"type": text_kind, "text": p.get("text", "")} if p.get("type") == "text" else
                 {"type": "input_image", "image_url": (p.get("image_url") or {}).get("url")}
                 for p in content if isinstance(p, dict) and p.get("type") in ("text", "image_url")]
        out.append({"type": "message", "role": role, "content": parts})
    elif content:
        out.append({"type": "message", "role": role, "content": content})
    for tc in message.get("tool_calls") or []:
        fn = tc.get("function") or {}
        out.append({"type": "function_call", "call_id": tc.get("id"), "name": fn.get("name"),
                    "arguments": fn.get("arguments") or "{}"})
    return out


def self_contained(body: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """A request chained by `previous_response_id` made whole: the conversation so far (chat
    messages) as input items before the request's own, and no `previous_response_id`."""
    own = body.get("input")
    own_items = [{"role": "user", "content": own}] if isinstance(own, str) else list(own or [])
    items = [item for m in history for item in message_to_items(m)]
    return {**{k: v for k, v in body.items() if k != "previous_response_id"}, "input": items + own_items}



def render_response(answer: Response, *, response_id: str, model: str, usage: Usage | None,
                    request: dict[str, Any] | None = None, created_at: float | None = None) -> dict[str, Any]:
    """A canonical answer as a completed Responses `response` object; `request` (the caller's
    Responses body) fills the echoed settings (tools, instructions, ...)."""
    request = request or {}
    stem = response_id.removeprefix("resp_")
    output: list[dict[str, Any]] = []
    if answer.content:
        output.append({"id": f"msg_{stem}", "type": "message", "role": "assistant", "status": "completed",
                       "content": [{"type": "output_text", "text": answer.content, "annotations": [],
                                    "logprobs": []}]})
    for i, tc in enumerate(answer.tool_calls):
        output.append({"id": f"fc_{stem}_{i}", "type": "function_call", "status": "completed",
                       "call_id": tc.id or f"call_{stem}_{i}", "name": tc.name, "arguments": tc.arguments})
    body: dict[str, Any] = {
        "id": response_id, "object": "response", "created_at": int(created_at or time.time()),
        "status": "completed", "error": None, "incomplete_details": None,
        "instructions": request.get("instructions"), "max_output_tokens": request.get("max_output_tokens"),
        "model": model, "output": output, "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "temperature": request.get("temperature"), "top_p": request.get("top_p"),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"), "tools": request.get("tools") or [],
        "truncation": "disabled", "metadata": request.get("metadata") or {}, "store": False,
        "usage": None,
    }
    if usage is not None and not usage.missing:
        body["usage"] = {"input_tokens": usage.input_tokens,
                         "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                         "output_tokens": usage.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                         "total_tokens": usage.input_tokens + usage.output_tokens}
    return body


def render_events(response: dict[str, Any], *, piece_chars: int = 16) -> list[dict[str, Any]]:
    """The event sequence OpenAI streams for a completed `response`: created, in_progress, per
    output item added (message: content_part.added, output_text.delta pieces, .done,
    content_part.done; function_call: arguments delta, done), output_item.done, completed."""
    events: list[dict[str, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    opening = {**response, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=opening)
    emit("response.in_progress", response=opening)
    for index, item in enumerate(response.get("output") or []):
        if item.get("type") == "message":
            emit("response.output_item.added", output_index=index,
                 item={**item, "status": "in_progress", "content": []})
            for ci, part in enumerate(item.get("content") or []):
                text = part.get("text", "")
                common = {"item_id": item["id"], "output_index": index, "content_index": ci}
                emit("response.content_part.added", **common,
                     part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})
                for start in range(0, len(text), piece_chars):
                    emit("response.output_text.delta", **common, delta=text[start:start + piece_chars], logprobs=[])
                emit("response.output_text.done", **common, text=text, logprobs=[])
                emit("response.content_part.done", **common, part=part)
        elif item.get("type") == "function_call":
            emit("response.output_item.added", output_index=index,
                 item={**item, "status": "in_progress", "arguments": ""})
            arguments = item.get("arguments", "")
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                if piece:
                    emit("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                         delta=piece)
            emit("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                 arguments=arguments)
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.completed", response=response)
    return events


def error_event(message: str, code: str | None, sequence_number: int = 0) -> dict[str, Any]:
    """The `error` event a Responses stream ends with when it fails midway."""
    return {"type": "error", "sequence_number": sequence_number, "code": code, "message": message, "param": None}


def encode_events(events: list[dict[str, Any]]) -> list[bytes]:
    """Each event as one SSE message: `event: <type>` and its JSON `data:` line."""
    return [b"event: " + str(ev.get("type")).encode() + b"\ndata: " + orjson.dumps(ev) + b"\n\n" for ev in events]
