"""Export formats: one JSON line per training example.

`chat` (default) is the conversational shape TRL's SFTTrainer and Unsloth read:
`{"messages": [...], "tools": [...], "call_ids": [...]}`. Tool-call arguments are JSON objects
(what Hugging Face chat templates expect; a string would be rendered as a quoted string), tool
results carry the `name` of the tool they answer, and `content` is never null. `call_ids` is
the provenance; TRL ignores columns it does not use.

`openai` is OpenAI's fine-tuning file: `{"messages": [...], "tools": [...]}` with arguments as
JSON strings and nothing else on the line, because the upload validation does not promise to
accept extra keys. Its provenance (which call is on which line) is recorded in the store
(`dataset_items`) and in `<split>.call_ids.txt` beside the file.

Lines are serialised with sorted keys, so the same example gives the same bytes whichever
database it came from (PostgreSQL's JSONB does not keep key order).
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

Format = Literal["chat", "openai"]
FORMATS: tuple[str, ...] = ("chat", "openai")


def example_line(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                 call_ids: list[str], fmt: Format) -> bytes:
    """The JSONL line (with its newline) for one example in the given format."""
    if fmt == "chat":
        record: dict[str, Any] = {"messages": _chat_messages(messages), "call_ids": call_ids}
        if tools:
            record["tools"] = tools
    else:
        record = {"messages": _openai_messages(messages)}
        if tools:
            record["tools"] = tools
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names: dict[str, str] = {}
    out = []
    for msg in messages:
        role = "system" if msg.get("role") == "developer" else msg.get("role")
        new: dict[str, Any] = {"role": role, "content": _text(msg.get("content"))}
        if msg.get("tool_calls"):
            new["tool_calls"] = []
            for i, tc in enumerate(msg["tool_calls"]):
                fn = tc.get("function") or {}
                tc_id = tc.get("id") or f"call_{i}"
                names[tc_id] = fn.get("name", "")
                new["tool_calls"].append({"id": tc_id, "type": "function", "function": {
                    "name": fn.get("name", ""), "arguments": _arguments_object(fn.get("arguments"))}})
        if role == "tool":
            if msg.get("tool_call_id"):
                new["tool_call_id"] = msg["tool_call_id"]
            name = msg.get("name") or names.get(msg.get("tool_call_id") or "")
            if name:
                new["name"] = name
        out.append(new)
    return out


def _openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for msg in messages:
        role = "system" if msg.get("role") == "developer" else msg.get("role")
        new: dict[str, Any] = {"role": role}
        if msg.get("tool_calls"):
            new["content"] = _text(msg.get("content")) or None
            new["tool_calls"] = []
            for i, tc in enumerate(msg["tool_calls"]):
                fn = tc.get("function") or {}
                args = fn.get("arguments")
                new["tool_calls"].append({"id": tc.get("id") or f"call_{i}", "type": "function",
                                          "function": {"name": fn.get("name", ""),
                                                       "arguments": _arguments_text(args)}})
        else:
            new["content"] = _text(msg.get("content"))
        if role == "tool" and msg.get("tool_call_id"):
            new["tool_call_id"] = msg["tool_call_id"]
        out.append(new)
    return out


def _arguments_object(args: Any) -> Any:
    if isinstance(args, str):
        try:
            return orjson.loads(args or "{}")
        except orjson.JSONDecodeError:
            return args  # only past turns can hold invalid JSON; the label was validated
    return {} if args is None else args


def _arguments_text(args: Any) -> str:
    if isinstance(args, str):
        return args
    return orjson.dumps({} if args is None else args, option=orjson.OPT_SORT_KEYS).decode()
