"""A small synthetic support-agent dataset in the curated chat-with-tools format."""

from __future__ import annotations

import json
from pathlib import Path

TOOLS = [
    {"type": "function", "function": {
        "name": "lookup_order", "description": "Look up an order by its id and return its status.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"]}}},
    {"type": "function", "function": {
        "name": "refund", "description": "Refund an order, fully or partly.",
        "parameters": {"type": "object", "properties": {
            "order_id": {"type": "string"}, "reason": {"type": "string", "enum": ["late", "damaged"]}},
            "required": ["order_id", "reason"]}}},
]
SYSTEM = "You are the support agent of an online shop. Be kind, be brief, use the tools."


def example(i: int) -> dict:
    order = f"A{100 + i}"
    if i % 2 == 0:
        user, name, args = f"where is my order {order}?", "lookup_order", {"order_id": order}
    else:
        reason = "late" if i % 3 else "damaged"
        user, name, args = f"refund {order}, it is {reason}", "refund", {"order_id": order, "reason": reason}
    return {"messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": user},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}]}],
        "tools": TOOLS, "call_ids": [f"call_{i:04d}"]}


def write_dataset(path: Path, n_train: int = 24, n_val: int = 6, n_test: int = 6) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    ranges = {"train": range(n_train), "val": range(n_train, n_train + n_val),
              "test": range(n_train + n_val, n_train + n_val + n_test)}
    for split, idx in ranges.items():
        (path / f"{split}.jsonl").write_text("".join(json.dumps(example(i)) + "\n" for i in idx))
    return path
