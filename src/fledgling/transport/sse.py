"""Server-sent events in the shape OpenAI streams a chat completion: what the gateway sends when
a whole answer (the candidate's, or a buffered LLM answer) goes to a client that asked to stream."""

from __future__ import annotations

from typing import Any

import orjson


def stream_chunks(cid: str, model: str, message: dict[str, Any], usage: dict[str, int] | None,
                  finish: str | None = None) -> list[bytes]:
    """The SSE events OpenAI sends for `message`: role, content pieces, tool-call pieces
    (id and name first, then the arguments in two halves), finish, optional usage, [DONE]."""
    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        obj = {"id": cid, "object": "chat.completion.chunk", "created": 1700000000, "model": model,
               "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
               **extra}
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    out = [event({"role": "assistant", "content": ""})]
    content = message.get("content") or ""
    for i in range(0, len(content), 8):
        out.append(event({"content": content[i:i + 8]}))
    for idx, tc in enumerate(message.get("tool_calls") or []):
        fn = tc["function"]
        args = fn.get("arguments") or ""
        half = len(args) // 2
        out.append(event({"tool_calls": [{"index": idx, "id": tc.get("id"), "type": "function",
                                          "function": {"name": fn["name"], "arguments": args[:half]}}]}))
        out.append(event({"tool_calls": [{"index": idx, "function": {"arguments": args[half:]}}]}))
    out.append(event({}, finish or ("tool_calls" if message.get("tool_calls") else "stop")))
    if usage is not None:
        out.append(b"data: " + orjson.dumps({"id": cid, "object": "chat.completion.chunk",
                                             "created": 1700000000, "model": model, "choices": [],
                                             "usage": usage}) + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out
