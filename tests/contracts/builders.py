"""Small builders for calls and contracts used by the contract tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from fledgling.calls import Call, Request, Response

T0 = datetime(2026, 5, 1, tzinfo=UTC)

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"order_id": {"type": "string"},
                   "reason": {"type": "string", "enum": ["changed_mind", "other"]},
                   "notify": {"type": "boolean"}},
    "required": ["order_id"], "additionalProperties": False,
}
REFUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"},
                   "items": {"type": "array", "items": {
                       "type": "object",
                       "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
                       "required": ["sku", "qty"], "additionalProperties": False}}},
    "required": ["order_id", "amount"],
}
TRIAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"priority": {"type": "string", "enum": ["low", "high"]},
                   "customer": {"type": "object", "properties": {"tier": {"type": "string"}},
                                "required": ["tier"], "additionalProperties": False},
                   "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["priority", "customer"], "additionalProperties": False,
}


def tool(name: str, parameters: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": name, "parameters": parameters}
    if description is not None:
        fn["description"] = description
    return {"type": "function", "function": fn}


TOOLS = [tool("cancel_order", ORDER_SCHEMA, "Cancel an order."), tool("issue_refund", REFUND_SCHEMA)]


def tool_answer(*calls: tuple[str, Any], finish_reason: str = "tool_calls") -> Response:
    return Response(tool_calls=[
        {"id": f"c{i}", "type": "function",
         "function": {"name": name, "arguments": args if isinstance(args, str) else orjson.dumps(args).decode()}}
        for i, (name, args) in enumerate(calls)], finish_reason=finish_reason)


def call(i: int, *, tools: list[dict[str, Any]] | None = None, response: Response | None = None,
         response_format: dict[str, Any] | None = None, task: str = "t", status: str = "ok",
         at: datetime | None = None, **request: Any) -> Call:
    return Call(id=f"call-{i}", task=task, source="test", created_at=at or T0 + timedelta(minutes=i),
                request=Request(messages=[{"role": "user", "content": f"hi {i}"}], tools=tools,
                                response_format=response_format, **request),
                response=None if status == "error" else response or Response(content="ok"),
                status=status, error="boom" if status == "error" else None, model="gpt-4o")


def json_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "out", "strict": True, "schema": schema}}
