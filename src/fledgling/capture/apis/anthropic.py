"""Anthropic Messages API (`POST /v1/messages`) <-> the canonical chat-completions shape.

Reading (wire -> canonical), one function per block kind, each reusable on its own:

    system_to_chat(system)         `system` (a string or text blocks) -> a system message, or None
    text_block(block)              a `text` block -> its text
    tool_use_block(block)          a `tool_use` block {id, name, input} -> a chat tool call
    tool_result_block(block)       a `tool_result` block {tool_use_id, content} -> a `tool` message
    message_to_chat(message)       one Messages message -> the chat messages it is (tool results
                                   first, as the API requires them first in a user turn)
    tool_to_chat(tool)             {name, description, input_schema, strict} -> a chat tool
    tool_choice_to_chat(choice)    auto / any / tool / none -> chat's
    request_to_chat(body)          the whole request -> a chat-completions request body
    content_blocks(content)        an answer's blocks -> (text, tool calls)
    usage_of(raw)                  `usage` -> (Usage, detail with the cache tokens)
    message_to_canonical(body)     a `message` answer -> (Response, Usage, model, detail)
    events_to_canonical(events)    the stream's event payloads -> the same

Writing (canonical -> wire): `render_message`, `render_events`, `encode_events`. (The API's
error shape is the gateway's: `transport/asgi.py`.)

Usage: Anthropic's `input_tokens` leaves out the cached prompt tokens; the canonical
`input_tokens` is every prompt token the model read (input + cache_creation + cache_read, as
chat's `prompt_tokens` is), and the detail keeps the three apart. Thinking blocks and hosted
tools have no chat equivalent: skipped, and named in `notes`.
"""

from __future__ import annotations

from typing import Any

import orjson

from fledgling.calls import Response, ToolCall, Usage

STOP_TO_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls", "refusal": "content_filter", "pause_turn": "stop"}
FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                  "content_filter": "refusal"}


def _note(notes: list[str] | None, text: str) -> None:
    if notes is not None and text not in notes:
        notes.append(text)


# -- reading: request ------------------------------------------------------------------------------


def text_block(block: Any) -> str | None:
    if isinstance(block, str):
        return block
    if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
        return str(block["text"])
    return None


def system_to_chat(system: Any) -> dict[str, Any] | None:
    if system is None or system == "" or system == []:
        return None
    if isinstance(system, str):
        return {"role": "system", "content": system}
    if isinstance(system, list):
        return {"role": "system", "content": "".join(t for b in system if (t := text_block(b)) is not None)}
    raise ValueError(f"system is a {type(system).__name__}, not a string or blocks")


def tool_use_block(block: dict[str, Any]) -> dict[str, Any]:
    """A `tool_use` block -> a chat tool call; `input` (an object) becomes the arguments text."""
    name = block.get("name")
    if not isinstance(name, str):
        raise ValueError("a tool_use block has no name")
    raw = block.get("input")
    args = raw if isinstance(raw, str) else orjson.dumps(raw if raw is not None else {}).decode()
    return {"id": block.get("id"), "type": "function", "function": {"name": name, "arguments": args}}


def tool_result_block(block: dict[str, Any], notes: list[str] | None = None) -> dict[str, Any]:
    """A `tool_result` block -> a `tool` message (text content; an error result is noted)."""
    content = block.get("content")
    if isinstance(content, list):
        texts = []
        for b in content:
            if (t := text_block(b)) is not None:
                texts.append(t)
            else:
                _note(notes, "skipped non-text content in tool_result blocks")
        content = "".join(texts)
    if block.get("is_error"):
        _note(notes, "a tool_result was marked is_error (kept as the tool message's text)")
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": content or ""}


def _image_part(block: dict[str, Any]) -> dict[str, Any] | None:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        return {"type": "image_url", "image_url": {"url": url}}
    if source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source.get("url")}}
    return None


def message_to_chat(message: Any, notes: list[str] | None = None) -> list[dict[str, Any]]:
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise ValueError("a message is an object with role user or assistant")
    role, content = message["role"], message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise ValueError(f"a message's content is a {type(content).__name__}, not a string or blocks")
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if (text := text_block(block)) is not None:
            parts.append({"type": "text", "text": text})
        elif kind == "tool_result":
            tools.append(tool_result_block(block, notes))
        elif kind == "tool_use":
            calls.append(tool_use_block(block))
        elif kind == "image" and (image := _image_part(block)) is not None:
            parts.append(image)
        else:
            _note(notes, f"skipped content blocks of type {kind!r} (no chat equivalent)")
    out: list[dict[str, Any]] = list(tools)
    if parts or calls or not tools:
        text_only = all(p["type"] == "text" for p in parts)
        body: str | list[dict[str, Any]] | None = "".join(p["text"] for p in parts) if text_only else parts
        msg: dict[str, Any] = {"role": role, "content": body if (body or not calls) else None}
        if calls:
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def tool_to_chat(tool: Any, notes: list[str] | None = None) -> dict[str, Any] | None:
    """A custom tool -> a chat function tool (`strict` kept); a hosted tool -> None, noted."""
    if not isinstance(tool, dict) or "input_schema" not in tool or tool.get("type") not in (None, "custom"):
        kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
        _note(notes, f"skipped tools of type {kind!r} (not a custom tool)")
        return None
    fn: dict[str, Any] = {"name": tool.get("name"), "parameters": tool["input_schema"]}
    if tool.get("description") is not None:
        fn["description"] = tool["description"]
    if tool.get("strict") is not None:
        fn["strict"] = tool["strict"]
    return {"type": "function", "function": fn}


def tool_choice_to_chat(choice: Any) -> str | dict[str, Any] | None:
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind == "tool" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))


def output_format_to_chat(body: dict[str, Any]) -> dict[str, Any] | None:
    """`output_config.format` (or the older `output_format`) json_schema -> `response_format`."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}
    return None


def request_to_chat(body: dict[str, Any], notes: list[str] | None = None) -> dict[str, Any]:
    """A Messages request -> the chat-completions request it means. `ValueError` when the body
    is not one."""
    if not isinstance(body, dict):
        raise ValueError("a Messages request is a JSON object")
    messages: list[dict[str, Any]] = []
    if (system := system_to_chat(body.get("system"))) is not None:
        messages.append(system)
    raw = body.get("messages")
    if not isinstance(raw, list):
        raise ValueError("a Messages request needs `messages`, a list")
    for message in raw:
        messages.extend(message_to_chat(message, notes))
    out: dict[str, Any] = {"messages": messages}
    if isinstance(body.get("model"), str):
        out["model"] = body["model"]
    if isinstance(body.get("tools"), list):
        tools = [t for t in (tool_to_chat(t, notes) for t in body["tools"]) if t is not None]
        if tools:
            out["tools"] = tools
    choice = body.get("tool_choice")
    if (mapped := tool_choice_to_chat(choice)) is not None and "tools" in out:
        out["tool_choice"] = mapped
    if isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    if (fmt := output_format_to_chat(body)) is not None:
        out["response_format"] = fmt
    for src, dst in (("max_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"),
                     ("stop_sequences", "stop"), ("stream", "stream")):
        if body.get(src) is not None:
            out[dst] = body[src]
    return out


# -- reading: answer -------------------------------------------------------------------------------


def content_blocks(content: Any, notes: list[str] | None = None) -> tuple[str | None, list[ToolCall]]:
    if not isinstance(content, list):
        raise ValueError(f"content is a {type(content).__name__}, not a list of blocks")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if (text := text_block(block)) is not None and isinstance(block, dict):
            texts.append(text)
        elif kind == "tool_use" and isinstance(block, dict):
            tc = tool_use_block(block)
            calls.append(ToolCall(id=tc["id"], name=tc["function"]["name"], arguments=tc["function"]["arguments"]))
        elif kind not in ("thinking", "redacted_thinking"):
            _note(notes, f"skipped answer blocks of type {kind!r} (no chat equivalent)")
    return ("".join(texts) if texts else None), calls


def usage_of(raw: Any) -> tuple[Usage, dict[str, int]]:
    """`usage` -> (Usage, detail). No usage -> `Usage(missing=True)`."""
    if not isinstance(raw, dict):
        return Usage(missing=True), {}
    try:
        parts = {k: int(raw.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens",
                                                  "cache_read_input_tokens", "output_tokens")}
    except (TypeError, ValueError):
        raise ValueError(f"unreadable usage {str(raw)[:200]}") from None
    usage = Usage(input_tokens=parts["input_tokens"] + parts["cache_creation_input_tokens"]
                  + parts["cache_read_input_tokens"], output_tokens=parts["output_tokens"])
    detail = {"uncached_input_tokens": parts["input_tokens"],
              "cache_creation_input_tokens": parts["cache_creation_input_tokens"],
              "cache_read_input_tokens": parts["cache_read_input_tokens"]}
    return usage, detail


def message_to_canonical(body: dict[str, Any], notes: list[str] | None = None
                         ) -> tuple[Response, Usage, str | None, dict[str, int]]:
    if not isinstance(body, dict) or body.get("type") != "message":
        raise ValueError("not a Messages `message` object")
    text, calls = content_blocks(body.get("content"), notes)
    stop = body.get("stop_reason")
    finish = STOP_TO_FINISH.get(str(stop), str(stop)) if stop is not None else None
    usage, detail = usage_of(body.get("usage"))
    model = body.get("model") if isinstance(body.get("model"), str) else None
    return Response(content=text, tool_calls=calls, finish_reason=finish), usage, model, detail


def events_to_canonical(events: list[dict[str, Any]], notes: list[str] | None = None
                        ) -> tuple[Response, Usage, str | None, dict[str, int]]:
    """A stream's events -> as `message_to_canonical`: message_start holds the message and
    its input usage; blocks start, grow by text_delta / input_json_delta, stop; message_delta
    brings the stop reason and the output usage (cumulative). An `error` event is a
    `ValueError`."""
    message: dict[str, Any] | None = None
    blocks: dict[int, dict[str, Any]] = {}
    pieces: dict[int, list[str]] = {}
    usage: dict[str, Any] = {}
    ended = False
    for ev in events:
        kind = ev.get("type")
        if kind == "error":
            err = ev.get("error") or {}
            raise ValueError(f"error event in stream: {err.get('message') if isinstance(err, dict) else err}")
        if kind == "message_start" and isinstance(ev.get("message"), dict):
            message = dict(ev["message"])
            usage.update(message.get("usage") or {})
        elif kind == "content_block_start" and isinstance(ev.get("index"), int):
            blocks[ev["index"]] = dict(ev.get("content_block") or {})
        elif kind == "content_block_delta" and isinstance(ev.get("index"), int):
            delta = ev.get("delta") or {}
            piece = delta.get("text") if delta.get("type") == "text_delta" else \
                delta.get("partial_json") if delta.get("type") == "input_json_delta" else None
            if isinstance(piece, str):
                pieces.setdefault(ev["index"], []).append(piece)
        elif kind == "message_delta":
            if message is not None and isinstance(ev.get("delta"), dict):
                message.update({k: v for k, v in ev["delta"].items() if v is not None})
            usage.update({k: v for k, v in (ev.get("usage") or {}).items() if v is not None})
        elif kind == "message_stop":
            ended = True
    if message is None:
        raise ValueError("the stream holds no message_start")
    if not ended:
        _note(notes, "the stream ended before message_stop")
    content = []
    for index in sorted(blocks):
        block = blocks[index]
        joined = "".join(pieces.get(index, []))
        if block.get("type") == "text":
            block["text"] = block.get("text", "") + joined
        elif block.get("type") == "tool_use" and index in pieces:
            try:
                block["input"] = orjson.loads(joined) if joined.strip() else {}
            except orjson.JSONDecodeError:
                block["input"] = joined  # kept as the model wrote it: a contract check will say why
        content.append(block)
    message["content"] = content
    message["usage"] = usage or None
    return message_to_canonical(message, notes)


# -- writing ---------------------------------------------------------------------------------------


def render_message(answer: Response, *, message_id: str, model: str, usage: Usage | None) -> dict[str, Any]:
    """A canonical answer as a Messages `message` object."""
    content: list[dict[str, Any]] = []
    if answer.content:
        content.append({"type": "text", "text": answer.content})
    for i, tc in enumerate(answer.tool_calls):
        try:
            args = orjson.loads(tc.arguments or "{}")
        except orjson.JSONDecodeError:
            args = {}
        content.append({"type": "tool_use", "id": tc.id or f"toolu_{message_id}_{i}", "name": tc.name,
                        "input": args})
    finish = "tool_calls" if answer.tool_calls else (answer.finish_reason or "stop")
    known = usage is not None and not usage.missing
    return {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": FINISH_TO_STOP.get(finish, "end_turn"), "stop_sequence": None,
            "usage": {"input_tokens": usage.input_tokens if usage and known else 0,
                      "output_tokens": usage.output_tokens if usage and known else 0,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def render_events(message: dict[str, Any], *, piece_chars: int = 16) -> list[dict[str, Any]]:
    """The event sequence Anthropic streams for `message`: message_start (no content, the input
    usage), ping, per block start / deltas / stop, message_delta (stop reason, output usage),
    message_stop."""
    usage = message.get("usage") or {}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {**message, "content": [], "stop_reason": None, "stop_sequence": None,
                                              "usage": {**usage, "output_tokens": 0}}},
        {"type": "ping"}]
    for index, block in enumerate(message.get("content") or []):
        if block.get("type") == "text":
            events.append({"type": "content_block_start", "index": index,
                           "content_block": {"type": "text", "text": ""}})
            text = block.get("text", "")
            for start in range(0, len(text), piece_chars):
                events.append({"type": "content_block_delta", "index": index,
                               "delta": {"type": "text_delta", "text": text[start:start + piece_chars]}})
        elif block.get("type") == "tool_use":
            events.append({"type": "content_block_start", "index": index,
                           "content_block": {**block, "input": {}}})
            args = orjson.dumps(block.get("input", {})).decode()
            half = len(args) // 2
            for piece in (args[:half], args[half:]):
                if piece:
                    events.append({"type": "content_block_delta", "index": index,
                                   "delta": {"type": "input_json_delta", "partial_json": piece}})
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta", "delta": {"stop_reason": message.get("stop_reason"), "stop_sequence": None},
                   "usage": {"output_tokens": usage.get("output_tokens", 0)}})
    events.append({"type": "message_stop"})
    return events


def encode_events(events: list[dict[str, Any]]) -> list[bytes]:
    return [b"event: " + str(ev.get("type")).encode() + b"\ndata: " + orjson.dumps(ev) + b"\n\n" for ev in events]
