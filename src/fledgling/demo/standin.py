"""A stand-in upstream: a small, real OpenAI-compatible server that answers from a script.

It speaks the chat-completions protocol (JSON and streaming SSE, tool calls, usage) so the
gateway can be exercised end to end where no hosted LLM exists: the demo replays recorded
answers through it, the overhead benchmark uses its instant answer, the tests inject faults
around it. The answer function gets the request body and returns the assistant message; it
may add `usage` (OpenAI's usage object) to report exact token counts, `logprobs` (the
choice's logprobs object) and `latency_ms` (how long the answer took when it was recorded), or
return `{"error": "..."}` to answer with an HTTP 500 carrying that message.

With `latency_scale` above 0 the stand-in waits `latency_ms` times the scale before it answers,
so a gateway in front of it records the latency the hosted LLM had, not a loopback's
milliseconds; at 0 (the default, for tests) it answers at once.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from fledgling.calls import Call
from fledgling.transport.asgi import Receive, Send, send_bytes, send_error
from fledgling.transport.sse import stream_chunks

Answer = Callable[[dict[str, Any]], dict[str, Any]]


def fixed_answer(content: str = "ok") -> Answer:
    return lambda _request: {"role": "assistant", "content": content}


def request_key(request: dict[str, Any]) -> str:
    """What identifies a request for replay: its messages and tools."""
    raw = orjson.dumps([request.get("messages"), request.get("tools")], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


async def read_body(receive: Receive) -> bytes:
    """The whole request body of an ASGI http request."""
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            return body


class RecordedAnswers:
    """Replays recorded calls' answers: each request gets the answer recorded for it, with the
    latency recorded for it (when the call has one).

    A request that names its call (`x-request-id: <call id>`, a header the gateway passes on)
    gets exactly that call's answer. Otherwise identical requests made several times get their
    answers in recorded order — which under concurrency is not the order they arrive in, so two
    identical requests, one recorded as failed, could swap answers."""

    def __init__(self, calls: Iterable[Call]):
        self._answers: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        self._by_id: dict[str, dict[str, Any]] = {}
        for call in calls:
            req = call.request.model_dump(mode="json", exclude_none=True)
            if call.response is None:
                answer: dict[str, Any] = {"error": call.error or "the recorded call failed"}
            else:
                answer = {**call.response.message(), "finish_reason": call.response.finish_reason,
                          "usage": {
                    "prompt_tokens": call.usage.input_tokens,
                    "completion_tokens": call.usage.output_tokens,
                    "total_tokens": call.usage.input_tokens + call.usage.output_tokens}}
            if call.latency_ms is not None:
                answer["latency_ms"] = call.latency_ms
            self._answers[request_key(req)].append(answer)
            self._by_id[call.id] = answer

    def __call__(self, request: dict[str, Any], request_id: str | None = None) -> dict[str, Any]:
        if request_id is not None and request_id in self._by_id:
            return self._by_id[request_id]
        queue = self._answers.get(request_key(request))
        if not queue:
            raise LookupError("no recorded answer for this request")
        return queue.popleft() if len(queue) > 1 else queue[0]


class StandInUpstream:
    """ASGI app: `POST */chat/completions` and `GET */models`."""

    def __init__(self, answer: Answer | None = None, *, model: str = "stand-in-llm", latency_scale: float = 0.0):
        if latency_scale < 0:
            raise ValueError(f"latency_scale must be 0 or more, not {latency_scale}")
        self.answer = answer or fixed_answer()
        self.model = model
        self.latency_scale = latency_scale
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while (await receive())["type"] != "lifespan.shutdown":
                    await send({"type": "lifespan.startup.complete"})
                await send({"type": "lifespan.shutdown.complete"})
            return
        body = await read_body(receive)
        path = scope["path"]
        if path.endswith("/models"):
            await send_bytes(send, 200, orjson.dumps(
                {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "fledgling"}]}))
            return
        if not path.endswith("/chat/completions"):
            await send_error(send, 404, "not_found", f"{path} not served")
            return
        self.requests += 1
        try:
            request = orjson.loads(body)
            if isinstance(self.answer, RecordedAnswers):
                rid = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"x-request-id"), None)
                message = dict(self.answer(request, rid))
            else:
                message = dict(self.answer(request))
        except (orjson.JSONDecodeError, LookupError, KeyError, TypeError) as exc:
            await send_error(send, 400, "bad_request", f"stand-in cannot answer: {exc}")
            return
        latency_ms = message.pop("latency_ms", None)
        if self.latency_scale > 0 and isinstance(latency_ms, int | float) and latency_ms > 0:
            await asyncio.sleep(latency_ms * self.latency_scale / 1000)
        if "error" in message:
            await send_error(send, 500, "recorded_error", str(message["error"]))
            return
        logprobs = message.pop("logprobs", None)
        finish = message.pop("finish_reason", None) or ("tool_calls" if message.get("tool_calls") else "stop")
        usage = message.pop("usage", None) or {"prompt_tokens": _tokens(request.get("messages")),
                                               "completion_tokens": _tokens([message])}
        usage.setdefault("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
        model = request.get("model") or self.model
        cid = "chatcmpl-" + hashlib.sha1(body).hexdigest()[:24]
        if request.get("stream"):
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            for chunk in stream_chunks(cid, model, message, usage if include_usage else None, finish):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        await send_bytes(send, 200, orjson.dumps({
            "id": cid, "object": "chat.completion", "created": 1700000000, "model": model,
            "choices": [{"index": 0, "message": {"refusal": None, **message},
                         "logprobs": logprobs, "finish_reason": finish}],
            "usage": usage}))


def _tokens(messages: Any) -> int:
    """A rough token count (4 characters a token) so usage and cost figures are non-trivial."""
    return max(1, len(orjson.dumps(messages or [])) // 4)
