"""Chat messages, tool calls and tool definitions from the shapes tracing tools log -> OpenAI's.

The lingua franca is the chat-completions shape. Langfuse's OpenAI integration logs exactly
that; its LangChain integration logs LangChain messages (`type` human/ai/system/tool,
`additional_kwargs.tool_calls`, `tool_calls` with `name`/`args`), sometimes in LangChain's
serialised form (`{"lc": 1, "type": "constructor", "id": [..., "HumanMessage"], "kwargs": ...}`).
"""

from __future__ import annotations

from typing import Any

import orjson

from fledgling.calls import Response, ToolCall
from fledgling.capture.coerce import BadField, maybe_json, text, type_name

_ROLES = {
    "system": "system", "developer": "developer", "user": "user", "human": "user",
    "assistant": "assistant", "ai": "assistant", "model": "assistant", "tool": "tool",
    "function": "function", "humanmessage": "user", "aimessage": "assistant",
    "aimessagechunk": "assistant", "systemmessage": "system", "toolmessage": "tool",
    "functionmessage": "function", "humanmessagechunk": "user", "chatmessage": "user",
}


def role_of(raw: str, field: str) -> str:
    role = _ROLES.get(raw.lower())
    if role is None:
        raise BadField(field, f"unknown message role {raw[:40]!r}")
    return role


def message(raw: Any, field: str) -> dict[str, Any]:
    """One chat message in the OpenAI shape."""
    raw = maybe_json(raw, field)
    if not isinstance(raw, dict):
        raise BadField(field, f"must be a message object, got {type_name(raw)}")
    if raw.get("lc") is not None and isinstance(raw.get("kwargs"), dict):
        ident = raw.get("id")
        kind = ident[-1] if isinstance(ident, list) and ident and isinstance(ident[-1], str) else ""
        raw = {**raw["kwargs"], "type": raw["kwargs"].get("type") or kind}
    kind = raw.get("role") or raw.get("type")
    if not isinstance(kind, str) or not kind:
        raise BadField(f"{field}.role", "is missing")
    if kind == "chat" and isinstance(raw.get("role"), str):
        kind = raw["role"]
    role = role_of(kind, f"{field}.role")
    out: dict[str, Any] = {"role": role, "content": content(raw.get("content"), f"{field}.content")}
    extra = raw.get("additional_kwargs") if isinstance(raw.get("additional_kwargs"), dict) else {}
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
    name = raw.get("name")
    if isinstance(name, str) and name:
        out["name"] = name
    return out


def messages(raw: Any, field: str) -> list[dict[str, Any]]:
    """A conversation: a list of messages, a `{"messages": [...]}` object, or a bare prompt."""
    raw = maybe_json(raw, field)
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if isinstance(raw, dict):
        if "messages" in raw:
            return messages(raw["messages"], f"{field}.messages")
        if "role" in raw or "type" in raw or "lc" in raw:
            return [message(raw, field)]
        if "prompt" in raw:
            return messages(raw["prompt"], f"{field}.prompt")
        raise BadField(field, "holds no messages (expected a list of messages or {\"messages\": [...]})")
    if not isinstance(raw, list):
        raise BadField(field, f"must be a list of messages, got {type_name(raw)}")
    if raw and isinstance(raw[0], list):  # LangChain batches: [[msg, msg, ...]]
        raw = raw[0]
    return [message(m, f"{field}[{i}]") for i, m in enumerate(raw)]


def content(raw: Any, field: str) -> str | list[Any] | None:
    if raw is None or isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        return raw
    if isinstance(raw, dict):
        return [raw]
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return str(raw)
    raise BadField(field, f"must be text or a list of parts, got {type_name(raw)}")


def tool_call(raw: Any, field: str) -> ToolCall:
    """One tool call: OpenAI (`function.name/arguments`), LangChain (`name`/`args`), or flat."""
    raw = maybe_json(raw, field)
    if not isinstance(raw, dict):
        raise BadField(field, f"must be a tool call object, got {type_name(raw)}")
    inner = raw.get("function")
    fn = inner if isinstance(inner, dict) else raw
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise BadField(f"{field}.name", "is missing")
    args = fn.get("arguments", fn.get("args", raw.get("input")))
    if args is None:
        args = "{}"
    elif not isinstance(args, str):
        args = orjson.dumps(args).decode()
    call_id = raw.get("id", raw.get("tool_call_id"))
    return ToolCall(id=text(call_id, f"{field}.id"), name=name, arguments=args)


def tool_calls(raw: Any, field: str) -> list[ToolCall]:
    raw = maybe_json(raw, field)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadField(field, f"must be an array, got {type_name(raw)}")
    return [tool_call(tc, f"{field}[{i}]") for i, tc in enumerate(raw)]


def tool(raw: Any, field: str) -> dict[str, Any]:
    """A tool definition as chat completions takes it: `{"type": "function", "function": {...}}`."""
    raw = maybe_json(raw, field)
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
    params = maybe_json(fn.get("parameters", fn.get("input_schema", fn.get("args_schema"))),
                        f"{field}.parameters")
    if params is not None:
        if not isinstance(params, dict):
            raise BadField(f"{field}.parameters", f"must be a JSON Schema object, got {type_name(params)}")
        out["parameters"] = params
    if isinstance(fn.get("strict"), bool):
        out["strict"] = fn["strict"]
    return {"type": "function", "function": out}


def tools(raw: Any, field: str) -> list[dict[str, Any]] | None:
    raw = maybe_json(raw, field)
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise BadField(field, f"must be an array of tools, got {type_name(raw)}")
    return [tool(t, f"{field}[{i}]") for i, t in enumerate(raw)]


def response(raw: Any, field: str) -> Response | None:
    """The assistant's answer from an output: a message, a chat.completion, a choice, or text."""
    raw = maybe_json(raw, field)
    if raw is None:
        return None
    if isinstance(raw, str):
        return Response(content=raw)
    if isinstance(raw, list):
        if not raw:
            return None
        return response(raw[0], f"{field}[0]")
    if not isinstance(raw, dict):
        raise BadField(field, f"must be an assistant message, got {type_name(raw)}")
    if isinstance(raw.get("choices"), list):
        if not raw["choices"]:
            raise BadField(f"{field}.choices", "is empty")
        return response(raw["choices"][0], f"{field}.choices[0]")
    if isinstance(raw.get("generations"), list):
        return response(raw["generations"], f"{field}.generations")
    finish = raw.get("finish_reason")
    for key in ("generation_info", "response_metadata"):
        if not finish and isinstance(raw.get(key), dict):
            finish = raw[key].get("finish_reason")
    if isinstance(raw.get("message"), dict):
        msg = message({"role": "assistant", **raw["message"]}, f"{field}.message")
    elif "text" in raw and "role" not in raw and "type" not in raw:
        msg = {"content": text(raw["text"], f"{field}.text")}
    else:
        base = raw if ("role" in raw or "type" in raw or "lc" in raw) else {"role": "assistant", **raw}
        msg = message(base, field)
    return Response(content=msg.get("content") if isinstance(msg.get("content"), str)
                    else _parts_text(msg.get("content")),
                    tool_calls=msg.get("tool_calls") or [],
                    finish_reason=text(finish, f"{field}.finish_reason"))


def _parts_text(parts: Any) -> str | None:
    if not parts:
        return None
    texts = [t for p in parts if isinstance(p, dict) and isinstance(t := p.get("text"), str)]
    return "".join(texts) if texts else None
