"""One LLM call a scenario asks for: the messages sent and the answer that would be right."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

AnswerKind = Literal["tool", "text", "json"]


@dataclass
class ScriptedCall:
    """A turn of a scripted conversation: what the agent sends, and the answer that is right."""

    messages: list[dict[str, Any]]
    ground_truth: dict[str, Any]
    intent: str
    turn: int
    answer_kind: AnswerKind
    extra: dict[str, Any] = field(default_factory=dict)


def assistant_text(content: str) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def assistant_tools(calls: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """An assistant message calling tools, from (call id, tool name, arguments) triples."""
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": cid, "type": "function", "function": {"name": name, "arguments": compact(args)}}
        for cid, name, args in calls]}


def compact(value: Any) -> str:
    """JSON the way hosted models emit tool arguments: compact, key order kept."""
    return orjson.dumps(value).decode()
