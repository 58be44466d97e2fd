"""Reading tool calls out of a local model's text, robustly.

Small models write tool calls in several shapes: SmolLM2's `<tool_call>[{...}]</tool_call>`,
Hermes-style `<tool_call>{...}</tool_call>`, a bare JSON object `{"name": ..., "arguments": ...}`
or a list of them, sometimes in a code fence, sometimes with `parameters` instead of
`arguments`, or with the arguments as a JSON string. Anything else is plain text. A text that
tried to be a tool call and could not be read is returned as text with `failed=True`: counted,
never raised.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from fledgling.calls import Response, ToolCall

_TAG = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.S)
_DECODER = json.JSONDecoder(strict=False)  # raw control characters inside strings are read, not refused


@dataclass
class Parsed:
    response: Response
    failed: bool


def strip_fence(text: str) -> str:
    text = text.strip()
    m = _FENCE.match(text)
    return m.group(1) if m else text


def _first_json(text: str) -> Any:
    """The first JSON value in `text` (leading prose and trailing text ignored); raises ValueError."""
    for i, ch in enumerate(text):
        if ch in "[{":
            try:
                return _DECODER.raw_decode(text, i)[0]
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON value")


def _as_calls(value: Any) -> list[ToolCall] | None:
    items = value if isinstance(value, list) else [value]
    calls: list[ToolCall] = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("function"), dict):
            item = item["function"]
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        args = item.get("arguments", item.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = _DECODER.decode(args or "{}")
            except json.JSONDecodeError:
                return None
        if not isinstance(args, dict):
            return None
        calls.append(ToolCall(id=f"call_{len(calls)}", name=item["name"],
                              arguments=json.dumps(args, ensure_ascii=False)))
    return calls


def parse_tool_calls(text: str, finish_reason: str | None = "stop") -> Parsed:
    """A `Response` from model text that may hold tool calls."""
    blocks = _TAG.findall(text)
    if blocks:
        calls: list[ToolCall] = []
        for block in blocks:
            try:
                found = _as_calls(_first_json(strip_fence(block)))
            except ValueError:
                found = None
            if found is None:
                return Parsed(Response(content=text, finish_reason=finish_reason), True)
            calls.extend(found)
        for i, call in enumerate(calls):
            call.id = f"call_{i}"
        return Parsed(Response(content=None, tool_calls=calls, finish_reason="tool_calls"), False)
    body = strip_fence(text)
    if body[:1] in ("{", "["):
        try:
            found = _as_calls(_first_json(body))
        except ValueError:
            return Parsed(Response(content=text, finish_reason=finish_reason), '"name"' in body)
        if found:
            return Parsed(Response(content=None, tool_calls=found, finish_reason="tool_calls"), False)
    return Parsed(Response(content=text, finish_reason=finish_reason), False)


def parse_json_content(text: str, finish_reason: str | None = "stop") -> Parsed:
    """A structured answer: the JSON in the text (fences and surrounding prose dropped)."""
    body = strip_fence(text)
    try:
        value = _first_json(body)
    except ValueError:
        return Parsed(Response(content=text, finish_reason=finish_reason), True)
    return Parsed(Response(content=json.dumps(value, ensure_ascii=False), finish_reason=finish_reason),
                  False)
