"""Call factories for curation tests: a small support agent with two tools and planted faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from fledgling.calls import Call, Feedback, Request, Response

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SYSTEM = "You are the support agent of Acme. Use the tools to help the customer."
TOOLS = [
    {"type": "function", "function": {
        "name": "lookup_order", "description": "Find an order by id.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "update_contact", "description": "Change the customer's email or phone.",
        "parameters": {"type": "object", "properties": {"email": {"type": "string"},
                                                         "phone": {"type": "string"}},
                       "required": ["email"], "additionalProperties": False}}},
]
QUESTIONS = ["where is my order {oid}? it was due last week",
             "can you check the status of order {oid} for me please",
             "order {oid} has not arrived, what happened to it",
             "I am still waiting for {oid}, any news on the delivery",
             "has {oid} shipped yet? I need it by friday"]


def tool_call(name: str, args: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return {"id": f"tc_{i}", "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(args).decode()}}


def make_call(i: int, *, user: str | None = None, response: Response | None = None,
              session: str | None = None, trace: str | None = None, status: str = "ok",
              extra_messages: list[dict[str, Any]] | None = None, feedback: Feedback | None = None,
              metadata: dict[str, Any] | None = None, task: str = "support-agent") -> Call:
    oid = f"ORD-{10000 + i * 7919 % 89999}"
    user = user or QUESTIONS[i % len(QUESTIONS)].format(oid=oid) + f" (ticket {i * 31 % 997})"
    if response is None and status == "ok":
        response = Response(tool_calls=[tool_call("lookup_order", {"order_id": oid}, i)],
                            finish_reason="tool_calls")
    return Call(id=f"call-{i:06d}", task=task, session_id=session, trace_id=trace, source="test",
                created_at=T0 + timedelta(seconds=i), model="gpt-4o",
                request=Request(messages=[{"role": "system", "content": SYSTEM},
                                          {"role": "user", "content": user},
                                          *(extra_messages or [])], tools=TOOLS),
                response=response, status=status, error="upstream 503" if status == "error" else None,
                feedback=feedback, metadata=metadata or {})


def contact_call(i: int, **kw: Any) -> Call:
    email, phone = f"user{i}@example.com", f"+1 415-555-{i % 10000:04d}"
    digits = phone.replace(" ", "").replace("-", "")
    return make_call(i, user=f"please change my email to {email}, my phone is {phone} (ref {i})",
                     response=Response(tool_calls=[tool_call("update_contact", {"email": email, "phone": digits}, i)],
                                       finish_reason="tool_calls"), **kw)
