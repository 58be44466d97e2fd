"""One message normaliser: every shape tracing tools log -> OpenAI chat messages, tools, answer.

The lingua franca is the chat-completions shape. Ways in, each seen in real traces:

- chat messages (`role`, `content`, `tool_calls`, `tool_call_id`), OpenAI content parts;
- LangChain messages (`type` human/ai/system/tool, `additional_kwargs.tool_calls`, `tool_calls`
  with `name`/`args`), serialised (`{"lc": 1, "kwargs": ...}`); its Langfuse handler appends the
  tool definitions as `role: tool` items (they become tools); LangGraph JS names a tool result's
  role after the tool;
- parts-based GenAI messages (`{role, parts: [text | tool_call | tool_call_response]}`), how the
  current OpenTelemetry conventions and Langfuse store spans;
- Responses-API items (`message` with `input_text`/`output_text`, `function_call`,
  `function_call_output`) and responses (`{"object": "response", "output": [...]}`);
- Anthropic content blocks (`text`, `tool_use`, `tool_result`);
- Gemini `contents` / `parts` (`functionCall`, `functionResponse`, snake_case too) with
  `config.system_instruction` and `tools[].function_declarations`;
- Vercel AI SDK messages (`tool-call` / `tool-result` parts) and `{toolCallId, toolName, input}`
  tool calls;
- Python-repr text (Agno's `role='user' content='...'`), read with `ast`, never `eval`.

What is not understood raises `BadField` naming the field and the shape, so the importer can
count and name it instead of losing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from fledgling.calls import Response, ToolCall
from fledgling.capture import pyrepr
from fledgling.capture.apis import anthropic, responses
from fledgling.capture.coerce import BadField, maybe_json, text, type_name

_ROLES = {
    "system": "system", "developer": "developer", "user": "user", "human": "user",
    "assistant": "assistant", "ai": "assistant", "model": "assistant", "tool": "tool",
    "function": "function", "humanmessage": "user", "aimessage": "assistant",
    "aimessagechunk": "assistant", "systemmessage": "system", "toolmessage": "tool",
    "functionmessage": "function", "humanmessagechunk": "user", "chatmessage": "user",
    "ipython": "tool",
}
_FINISH = {"tool_call": "tool_calls", "tool_calls": "tool_calls", "tool-calls": "tool_calls",
           "tool_use": "tool_calls", "function_call": "tool_calls", "stop": "stop", "end_turn": "stop",
           "stop_sequence": "stop", "completed": "stop", "length": "length", "max_tokens": "length",
           "max_output_tokens": "length", "content_filter": "content_filter", "safety": "content_filter",
           "content-filter": "content_filter", "error": "error"}
_TEXT_PARTS = {"text", "input_text", "output_text"}
_SKIPPED_PARTS = {"thinking", "redacted_thinking", "reasoning"}
_RESPONSES_ITEMS = {"function_call", "function_call_output", "reasoning", "message"}
_LANGCHAIN_TYPES = {"human", "ai", "system", "tool", "function", "chat", "developer", "AIMessageChunk",
                    "HumanMessage", "AIMessage", "SystemMessage", "ToolMessage"}


def role_of(raw: str, field: str) -> str:
    role = _ROLES.get(raw.lower())
    if role is None:
        raise BadField(field, f"unknown message role {raw[:40]!r}")
    return role


def finish_reason(raw: Any) -> str | None:
    """A source's stop reason in chat-completions words (`tool_call` -> `tool_calls`,
    Gemini's `STOP` -> `stop`, Anthropic's `end_turn` -> `stop`); unknown ones kept as sent."""
    raw = maybe_json(raw)
    if isinstance(raw, list):
        raw = next((r for r in raw if isinstance(r, str)), None)
    if not isinstance(raw, str) or not raw:
        return None
    return _FINISH.get(raw.lower(), raw.lower())


def shape(value: Any) -> str:
    """A short description of a value's shape for a warning: `{contents, config}`, `[text]`."""
    try:
        value = maybe_json(value)
    except BadField:
        return "deeply nested JSON text"
    if isinstance(value, dict):
        keys = sorted(str(k) for k in value)
        return "{" + ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "") + "}"
    if isinstance(value, list):
        return "[" + (shape(value[0]) if value else "") + "]"
    if isinstance(value, str):
        return "text"
    return type_name(value)


# -- conversations ---------------------------------------------------------------------------

@dataclass
class Conversation:
    """What an input holds: the messages, and the tools it carried (LangChain's tool items,
    Gemini's config, a `{"messages", "tools"}` object)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)


def conversation(raw: Any, field: str) -> Conversation:
    """A request's input in any of the shapes above."""
    conv = _read(raw, field)
    for msg in conv.messages:
        msg.pop("_finish", None)
    return conv


def _read(raw: Any, field: str) -> Conversation:
    raw = _decoded(raw, field)
    conv = Conversation()
    if raw is None:
        return conv
    if isinstance(raw, str):
        conv.messages.append({"role": "user", "content": raw})
        return conv
    if isinstance(raw, dict):
        _from_object(raw, field, conv)
        return conv
    if not isinstance(raw, list):
        raise BadField(field, f"must be a list of messages, got {type_name(raw)}")
    if raw and isinstance(raw[0], list):  # LangChain batches: [[msg, msg, ...]]
        raw = raw[0]
    _from_items(raw, field, conv)
    return conv


def messages(raw: Any, field: str) -> list[dict[str, Any]]:
    """The messages of an input (tools it carried are left out; see `conversation`)."""
    return conversation(raw, field).messages


def _from_object(raw: dict[str, Any], field: str, conv: Conversation) -> None:
    if "contents" in raw:  # Gemini: {model, config: {system_instruction, tools}, contents}
        config = _decoded(raw.get("config") or raw.get("generation_config") or {}, f"{field}.config")
        config = config if isinstance(config, dict) else {}
        system = raw.get("system_instruction", raw.get("systemInstruction",
                         config.get("system_instruction", config.get("systemInstruction"))))
        if system is not None:
            conv.messages.append({"role": "system", "content": _gemini_text(system, f"{field}.system_instruction")})
        conv.tools.extend(tools(raw.get("tools", config.get("tools")), f"{field}.config.tools") or [])
        contents = _decoded(raw["contents"], f"{field}.contents")
        if isinstance(contents, (str, dict)):
            contents = [contents]
        if not isinstance(contents, list):
            raise BadField(f"{field}.contents", f"must be a list of contents, got {type_name(contents)}")
        _from_items([{"role": "user", "parts": [{"text": c}]} if isinstance(c, str) else c for c in contents],
                    f"{field}.contents", conv)
        return
    for key in ("messages", "input", "prompt"):
        if key in raw and not _is_message(raw):
            if raw.get("tools") is not None:
                conv.tools.extend(tools(raw["tools"], f"{field}.tools") or [])
            system = raw.get("system", raw.get("instructions"))
            if system is not None:
                conv.messages.append({"role": "system", "content": _block_text(system, f"{field}.system")})
            inner = _read(raw[key], f"{field}.{key}")
            conv.messages.extend(inner.messages)
            conv.tools.extend(inner.tools)
            return
    if _is_message(raw):
        _from_items([raw], field, conv, single=True)
        return
    raise BadField(field, f"holds no messages (shape {shape(raw)}; expected a list of messages or "
                   "{\"messages\": [...]})")


def _is_message(raw: dict[str, Any]) -> bool:
    return any(k in raw for k in ("role", "parts", "lc")) or raw.get("type") in _RESPONSES_ITEMS \
        or raw.get("type") in _LANGCHAIN_TYPES


def _from_items(items: list[Any], field: str, conv: Conversation, *, single: bool = False) -> None:
    tool_names = {t["function"]["name"] for t in conv.tools}
    for i, item in enumerate(items):
        here = field if single else f"{field}[{i}]"
        for msg in _item(item, here, conv, tool_names):
            prev = conv.messages[-1] if conv.messages else None
            if msg.pop("_merge", False) and prev is not None and prev.get("role") == "assistant" \
                    and (prev.get("tool_calls") or prev.get("_from_item")):
                prev.setdefault("tool_calls", []).extend(msg.get("tool_calls", []))
                continue
            conv.messages.append(msg)
    for msg in conv.messages:
        msg.pop("_from_item", None)
        msg.pop("_merge", None)


def _item(raw: Any, field: str, conv: Conversation, tool_names: set[str]) -> list[dict[str, Any]]:
    """One source item -> the chat messages it is (none, one, or several)."""
    raw = _decoded(raw, field)
    if isinstance(raw, str):
        fields = pyrepr.keyword_fields(raw)
        if fields is None or "role" not in fields[0]:
            raise BadField(field, "is text, not a message (expected a message object)")
        raw = fields[0]
    if not isinstance(raw, dict):
        raise BadField(field, f"must be a message object, got {type_name(raw)}")
    if raw.get("lc") is not None and isinstance(raw.get("kwargs"), dict):
        ident = raw.get("id")
        kind = ident[-1] if isinstance(ident, list) and ident and isinstance(ident[-1], str) else ""
        raw = {**raw["kwargs"], "type": raw["kwargs"].get("type") or kind}
    kind = raw.get("type")
    if kind in ("function_call", "function_call_output", "reasoning") and "role" not in raw:
        return _responses_item(raw, field)
    role_raw = raw.get("role") or (kind if kind != "message" else None)
    if not isinstance(role_raw, str) or not role_raw:
        raise BadField(f"{field}.role", f"is missing (shape {shape(raw)})")
    if role_raw == "chat" and isinstance(raw.get("role"), str):
        role_raw = raw["role"]
    role = _ROLES.get(role_raw.lower())
    decoded = _decoded(raw.get("content"), f"{field}.content")
    content_raw = decoded if _typed_parts(decoded) else raw.get("content")  # JSON text stays text
    if role == "tool" and _tool_definitions(decoded):
        found = tools(decoded if isinstance(decoded, list) else [decoded], f"{field}.content") or []
        conv.tools.extend(found)
        tool_names.update(t["function"]["name"] for t in found)
        return []
    if role is None:
        if raw.get("tool_call_id") or role_raw in tool_names:
            role, raw = "tool", {**raw, "name": raw.get("name") or role_raw}
        else:
            raise BadField(f"{field}.role", f"unknown message role {role_raw[:40]!r}")
    parts = _decoded(raw.get("parts"), f"{field}.parts")
    if isinstance(parts, list):
        return _parts(role, parts, raw, f"{field}.parts")
    if parts is not None:
        raise BadField(f"{field}.parts", f"must be an array of parts, got {type_name(parts)}")
    if isinstance(content_raw, list) and any(isinstance(p, dict) and p.get("type") not in (None, "text", "image_url")
                                             or isinstance(p, dict) and ("toolCallId" in p)
                                             for p in content_raw):
        return _parts(role, content_raw, raw, f"{field}.content")
    return [_chat_message(role, raw, content_raw, field)]


def _chat_message(role: str, raw: dict[str, Any], content_raw: Any, field: str) -> dict[str, Any]:
    out: dict[str, Any] = {"role": role, "content": content(content_raw, f"{field}.content")}
    extra_raw = raw.get("additional_kwargs")
    extra: dict[str, Any] = extra_raw if isinstance(extra_raw, dict) else {}
    if role == "assistant":
        calls = tool_calls(raw.get("tool_calls"), f"{field}.tool_calls")
        if not calls:
            calls = tool_calls(extra.get("tool_calls"), f"{field}.additional_kwargs.tool_calls")
        fc = raw.get("function_call") or extra.get("function_call")
        if not calls and fc:
            calls = [tool_call({"function": fc}, f"{field}.function_call")]
        if calls:
            out["tool_calls"] = [tc.to_openai() for tc in calls]
    if role in ("tool", "function"):
        call_id = raw.get("tool_call_id") or extra.get("tool_call_id")
        if call_id is not None:
            out["tool_call_id"] = text(call_id, f"{field}.tool_call_id")
    name = raw.get("name") or (raw.get("tool_name") if role == "tool" else None)
    if isinstance(name, str) and name:
        out["name"] = name
    return out


def _responses_item(raw: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """Responses-API items, read by the gateway's own converters (`capture/apis/responses.py`)."""
    kind = raw["type"]
    try:
        if kind == "function_call":
            call = responses.function_call_item(raw)
            call["id"] = text(call.get("id"), f"{field}.call_id")
            return [{"role": "assistant", "content": None, "tool_calls": [call], "_merge": True}]
        if kind == "function_call_output":
            msg = responses.function_call_output_item(raw)
            msg["tool_call_id"] = text(msg.get("tool_call_id"), f"{field}.call_id")
            if not isinstance(msg.get("content"), str):
                msg["content"] = _result_text(raw.get("output"))
            return [msg]
    except (ValueError, TypeError, AttributeError) as exc:
        raise BadField(field, str(exc)) from None
    return []  # reasoning: the model's summary of its thinking, not part of the conversation


def _parts(role: str, parts: list[Any], raw: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """A message made of parts or blocks -> tool results (as tool messages) and one message."""
    texts: list[str] = []
    others: list[dict[str, Any]] = []
    calls: list[ToolCall] = []
    results: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        here = f"{field}[{j}]"
        part = _decoded(part, here)
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise BadField(here, f"must be a part object, got {type_name(part)}")
        kind = part.get("type")
        fc = part.get("functionCall", part.get("function_call"))
        fr = part.get("functionResponse", part.get("function_response"))
        if isinstance(fc, dict):
            calls.append(ToolCall(id=text(fc.get("id"), f"{here}.function_call.id"), name=_name(fc, here),
                                  arguments=_arguments(fc.get("args", fc.get("arguments")))))
        elif isinstance(fr, dict):
            results.append({"role": "tool", "tool_call_id": text(fr.get("id"), f"{here}.function_response.id"),
                            "name": fr.get("name") if isinstance(fr.get("name"), str) else None,
                            "content": _result_text(fr.get("response"))})
        elif kind == "tool_use":  # Anthropic, read by the gateway's converter (capture/apis/anthropic.py)
            try:
                block = anthropic.tool_use_block(part)
            except (ValueError, TypeError) as exc:
                raise BadField(f"{here}.name", str(exc)) from None
            calls.append(ToolCall(id=text(block["id"], f"{here}.id"), name=block["function"]["name"],
                                  arguments=block["function"]["arguments"]))
        elif kind == "tool_result" and "tool_use_id" in part:
            try:
                tool_msg = anthropic.tool_result_block(part)
            except (ValueError, TypeError, AttributeError) as exc:
                raise BadField(here, str(exc)) from None
            tool_msg["tool_call_id"] = text(tool_msg.get("tool_call_id"), f"{here}.tool_use_id")
            if not isinstance(tool_msg.get("content"), str):
                tool_msg["content"] = _result_text(part.get("content"))
            results.append(tool_msg)
        elif kind in ("tool_call", "tool-call", "function_call"):
            calls.append(ToolCall(id=text(part.get("id", part.get("toolCallId", part.get("call_id"))), f"{here}.id"),
                                  name=_name(part, here),
                                  arguments=_arguments(part.get("arguments", part.get("input", part.get("args"))))))
        elif kind in ("tool_call_response", "tool_result", "tool-result", "function_call_output"):
            call_id = part.get("id", part.get("tool_use_id", part.get("toolCallId", part.get("call_id"))))
            result = next((part[k] for k in ("response", "result", "content", "output") if k in part), None)
            result_msg: dict[str, Any] = {"role": "tool", "tool_call_id": text(call_id, f"{here}.id"),
                                          "content": _result_text(result)}
            name = part.get("name", part.get("toolName"))
            if isinstance(name, str) and name:
                result_msg["name"] = name
            results.append(result_msg)
        elif part.get("thought") is True or kind in _SKIPPED_PARTS or \
                isinstance(kind, str) and kind.endswith("ReasoningContent"):  # .NET's reasoning part
            continue
        elif kind in _TEXT_PARTS or (kind is None and "text" in part):
            value = part.get("text", part.get("content"))
            texts.append(text(value, f"{here}.text") or "")
        elif kind is None and "content" in part and isinstance(part["content"], str):
            texts.append(part["content"])
        else:
            others.append(part)
    out = [{k: v for k, v in r.items() if v is not None} for r in results]
    if role == "tool" and out and not (texts or calls or others):
        return out
    if role == "tool" and not out:
        msg: dict[str, Any] = {"role": "tool", "content": "".join(texts) if texts else None}
        if isinstance(raw.get("tool_call_id"), str):
            msg["tool_call_id"] = raw["tool_call_id"]
        return [msg]
    if texts or calls or others or not out:
        msg = {"role": role, "content": _joined(texts, others)}
        if calls:
            msg["tool_calls"] = [tc.to_openai() for tc in calls]
        if isinstance(raw.get("name"), str) and raw["name"] and role != "assistant":
            msg["name"] = raw["name"]
        if role == "assistant":
            msg["_from_item"] = True
        reason = raw.get("finish_reason")
        if reason is not None:
            msg["_finish"] = reason
        if role == "user":
            return [*out, msg]
        return [*out, msg] if out else [msg]
    return out


def _joined(texts: list[str], others: list[dict[str, Any]]) -> str | list[Any] | None:
    if not others:
        return "".join(texts) if texts else None
    return [*({"type": "text", "text": t} for t in texts), *others]


def _typed_parts(value: Any) -> bool:
    """Content parts or blocks (each an object with a `type`), as opposed to JSON data."""
    items = value if isinstance(value, list) else [value]
    return bool(items) and all(isinstance(v, dict) and isinstance(v.get("type"), str) for v in items)


def _tool_definitions(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    return bool(items) and all(isinstance(v, dict) and v.get("type") == "function"
                               and isinstance(v.get("function"), dict) and "name" in v["function"]
                               for v in items)


def content(raw: Any, field: str) -> str | list[Any] | None:
    if raw is None or isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        if raw and all(isinstance(p, dict) and p.get("type") in _TEXT_PARTS for p in raw):
            return "".join(text(p.get("text"), f"{field}.text") or "" for p in raw)
        return raw
    if isinstance(raw, dict):
        return [raw]
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return str(raw)
    raise BadField(field, f"must be text or a list of parts, got {type_name(raw)}")


def message(raw: Any, field: str) -> dict[str, Any]:
    """One chat message in the OpenAI shape (a source item that is exactly one message)."""
    conv = Conversation()
    found = _item(raw, field, conv, set())
    if len(found) != 1:
        raise BadField(field, f"is {len(found)} messages, expected one (shape {shape(raw)})")
    for key in ("_merge", "_from_item", "_finish"):
        found[0].pop(key, None)
    return found[0]


# -- tool calls and tools --------------------------------------------------------------------

def tool_call(raw: Any, field: str) -> ToolCall:
    """One tool call: OpenAI (`function.name/arguments`), LangChain (`name`/`args`), Vercel
    (`toolCallId`/`toolName`/`input`), Anthropic (`tool_use`), or flat."""
    raw = _decoded(raw, field)
    if not isinstance(raw, dict):
        raise BadField(field, f"must be a tool call object, got {type_name(raw)}")
    inner = raw.get("function")
    fn = inner if isinstance(inner, dict) else raw
    name = fn.get("name", raw.get("toolName"))
    if not isinstance(name, str) or not name:
        raise BadField(f"{field}.name", "is missing")
    args = fn.get("arguments", fn.get("args", raw.get("input")))
    call_id = raw.get("id", raw.get("tool_call_id", raw.get("toolCallId", raw.get("call_id"))))
    return ToolCall(id=text(call_id, f"{field}.id"), name=name, arguments=_arguments(args))


def tool_calls(raw: Any, field: str) -> list[ToolCall]:
    raw = _decoded(raw, field)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadField(field, f"must be an array, got {type_name(raw)}")
    return [tool_call(tc, f"{field}[{i}]") for i, tc in enumerate(raw)]


def tool(raw: Any, field: str) -> dict[str, Any]:
    """A tool definition as chat completions takes it: `{"type": "function", "function": {...}}`,
    from OpenAI's nested or flat shape, Anthropic's `input_schema`, MCP's and Vercel's
    `inputSchema`, pydantic-ai's `parameters_json_schema`."""
    raw = _decoded(raw, field)
    if not isinstance(raw, dict):
        raise BadField(field, f"must be a tool definition object, got {type_name(raw)}")
    inner = raw.get("function")
    fn = inner if isinstance(inner, dict) else raw
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise BadField(f"{field}.name", "is missing")
    out: dict[str, Any] = {"name": name}
    if isinstance(fn.get("description"), str):
        out["description"] = fn["description"]
    params = None
    for key in ("parameters", "input_schema", "inputSchema", "parameters_json_schema", "parametersJsonSchema",
                "args_schema", "json_schema"):
        if fn.get(key) is not None:
            params = _decoded(fn[key], f"{field}.{key}")
            break
    if isinstance(params, dict) and isinstance(params.get("jsonSchema"), dict):  # AI SDK's jsonSchema()
        params = params["jsonSchema"]
    if params is not None:
        if not isinstance(params, dict):
            raise BadField(f"{field}.parameters", f"must be a JSON Schema object, got {type_name(params)}")
        out["parameters"] = params
    if isinstance(fn.get("strict"), bool):
        out["strict"] = fn["strict"]
    return {"type": "function", "function": out}


def tools(raw: Any, field: str) -> list[dict[str, Any]] | None:
    """Tool definitions; Gemini's `[{function_declarations: [...]}]` is flattened."""
    raw = _decoded(raw, field)
    if raw is None:
        return None
    if isinstance(raw, dict) and ("function_declarations" in raw or "functionDeclarations" in raw):
        raw = [raw]
    if isinstance(raw, dict) and ("function_tools" in raw or "output_tools" in raw):
        # pydantic-ai's `model_request_parameters`: its tools and the tools that end the run
        raw = [*(raw.get("function_tools") or []), *(raw.get("output_tools") or [])]
    if not isinstance(raw, list):
        raise BadField(field, f"must be an array of tools, got {type_name(raw)}")
    out: list[dict[str, Any]] = []
    for i, t in enumerate(raw):
        here = f"{field}[{i}]"
        t = _decoded(t, here)
        decls = t.get("function_declarations", t.get("functionDeclarations")) if isinstance(t, dict) else None
        if isinstance(decls, list):
            out.extend(tool(d, f"{here}.function_declarations[{j}]") for j, d in enumerate(decls))
        elif isinstance(t, dict) and t.get("type") not in (None, "function", "custom") and "name" not in t \
                and not isinstance(t.get("function"), dict):
            continue  # a provider's built-in tool (web_search, code_execution): not a function
        else:
            out.append(tool(t, here))
    return out


# -- the answer ------------------------------------------------------------------------------

def response(raw: Any, field: str) -> Response | None:
    """The assistant's answer from an output: a message, a chat.completion, a choice, a
    Responses-API response, a Gemini candidate, Anthropic blocks, parts-based messages,
    Vercel tool calls, or text."""
    raw = _decoded(raw, field)
    if raw is None:
        return None
    if isinstance(raw, str):
        return None if raw == "None" else Response(content=raw)  # "None": Python's str(None)
    if isinstance(raw, list):
        if not raw:
            return None
        if all(isinstance(r, dict) and "toolCallId" in r for r in raw):
            return Response(tool_calls=[tool_call(r, f"{field}[{i}]") for i, r in enumerate(raw)],
                            finish_reason="tool_calls")
        if all(isinstance(r, dict) and ("parts" in r or r.get("type") in _RESPONSES_ITEMS) for r in raw):
            return _from_output_messages(raw, field, None)
        return response(raw[0], f"{field}[0]")
    if not isinstance(raw, dict):
        raise BadField(field, f"must be an assistant message, got {type_name(raw)}")
    if isinstance(raw.get("choices"), list):
        if not raw["choices"]:
            raise BadField(f"{field}.choices", "is empty")
        return response(raw["choices"][0], f"{field}.choices[0]")
    if isinstance(raw.get("candidates"), list) and raw["candidates"]:
        return response(raw["candidates"][0], f"{field}.candidates[0]")
    if isinstance(raw.get("generations"), list):
        return response(raw["generations"], f"{field}.generations")
    if raw.get("object") == "response" or (isinstance(raw.get("output"), list) and "status" in raw):
        resp = _from_output_messages(raw["output"], f"{field}.output", None)
        if resp is not None and resp.finish_reason is None and isinstance(raw.get("status"), str):
            resp.finish_reason = {"incomplete": "length", "failed": "error"}.get(
                raw["status"], "tool_calls" if resp.tool_calls else "stop")
        return resp
    finish = raw.get("finish_reason", raw.get("stop_reason", raw.get("finishReason")))
    for key in ("generation_info", "response_metadata"):
        if not finish and isinstance(raw.get(key), dict):
            finish = raw[key].get("finish_reason", raw[key].get("stop_reason"))
    if isinstance(raw.get("content"), dict) and "parts" in raw["content"]:  # a Gemini candidate
        return _from_output_messages([{"role": "model", **raw["content"]}], f"{field}.content", finish)
    if "toolCallId" in raw:
        return Response(tool_calls=[tool_call(raw, field)], finish_reason="tool_calls")
    if isinstance(raw.get("message"), dict):
        msgs = _read({"role": "assistant", **raw["message"]}, f"{field}.message").messages
    elif "text" in raw and "role" not in raw and "type" not in raw:
        msgs = [{"role": "assistant", "content": text(raw["text"], f"{field}.text")}]
    else:
        base = raw if _is_message(raw) else {"role": "assistant", **raw}
        msgs = _read(base, field).messages
    return _answer(msgs, finish)


def _from_output_messages(raw: list[Any], field: str, finish: Any) -> Response | None:
    msgs = _read(raw, field).messages
    return _answer(msgs, finish)


def _answer(msgs: list[dict[str, Any]], finish: Any) -> Response | None:
    """The assistant messages of an output -> one answer (texts joined, tool calls in order)."""
    mine = [m for m in msgs if m.get("role") == "assistant"] or msgs
    if not mine:
        return None
    texts: list[str] = []
    calls: list[Any] = []
    for m in mine:
        body = m.get("content")
        body = body if isinstance(body, str) else _parts_text(body)
        if body:
            texts.append(body)
        calls.extend(m.get("tool_calls") or [])
        if finish is None:
            finish = m.get("_finish")
    reason = finish_reason(finish)
    if calls and reason == "stop" and isinstance(finish, str) and finish.upper() == "STOP":
        reason = "tool_calls"  # Gemini says STOP for a function call as well
    return Response(content="".join(texts) if texts else None, tool_calls=calls, finish_reason=reason)


def _parts_text(parts: Any) -> str | None:
    if not parts or not isinstance(parts, list):
        return None
    texts = [t for p in parts if isinstance(p, dict) and isinstance(t := p.get("text"), str)]
    return "".join(texts) if texts else None


# -- small readers ---------------------------------------------------------------------------

def _decoded(value: Any, field: str | None) -> Any:
    """JSON text, or Python-literal text (`{'a': 1}`), decoded; anything else as it is."""
    value = maybe_json(value, field)
    if isinstance(value, str):
        head = value.lstrip()[:1]
        if head in ("{", "[") and value.rstrip()[-1:] in ("}", "]"):
            found = pyrepr.literal(value)
            if not pyrepr.is_nothing(found) and isinstance(found, (dict, list)):
                return found
    return value


def _name(raw: dict[str, Any], field: str) -> str:
    name = raw.get("name", raw.get("toolName"))
    if not isinstance(name, str) or not name:
        raise BadField(f"{field}.name", "is missing")
    return name


def _arguments(args: Any) -> str:
    if args is None:
        return "{}"
    if isinstance(args, str):
        return args
    return orjson.dumps(args).decode()


def _result_text(result: Any) -> str:
    if isinstance(result, dict) and set(result) == {"type", "value"} and result["type"] in ("text", "json"):
        result = result["value"]  # the AI SDK's tool-result output: {type: text | json, value}
    if isinstance(result, str):
        return result
    if isinstance(result, list) and result and all(isinstance(b, dict) and b.get("type") == "text" for b in result):
        return "".join(str(b.get("text", "")) for b in result)
    return orjson.dumps(result).decode()


def _gemini_text(raw: Any, field: str) -> str | None:
    raw = _decoded(raw, field)
    if isinstance(raw, str) or raw is None:
        return raw
    if isinstance(raw, dict):
        raw = raw.get("parts", [raw])
    if isinstance(raw, list):
        return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in raw
                       if isinstance(p, (str, dict)))
    raise BadField(field, f"must be text or parts, got {type_name(raw)}")


def system_text(raw: Any, field: str) -> str | None:
    """A system prompt given as text or as text parts (Anthropic blocks, GenAI system
    instructions `[{"type": "text", "content": ...}]`)."""
    return _block_text(raw, field)


def _block_text(raw: Any, field: str) -> str | None:
    raw = _decoded(raw, field)
    if raw is None or isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        return "\n".join(str(b.get("text", b.get("content", ""))) if isinstance(b, dict) else str(b) for b in raw)
    raise BadField(field, f"must be text or text blocks, got {type_name(raw)}")
