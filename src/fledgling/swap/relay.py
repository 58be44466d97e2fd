"""The LLM's side of a turn: forward the request upstream and relay the answer (a stream as it
comes), and the one reading of what an upstream answered.

Every path that reaches the LLM classifies its answer here: an answer in the turn's API (a chat
completion, a Responses `response`, an Anthropic `message`), an error the upstream meant (>= 400
with an `error` object), or a malformed body (anything else), which the gateway answers as 502
in the caller's API shape.

A streamed chat completion whose client did not ask for usage is sent upstream with
`stream_options.include_usage` (so the call's tokens are known); the usage-only chunk that
brings is recorded and kept from the client, which gets the stream it asked for.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import aiohttp
import orjson

from fledgling.capture.apis import PATHS, api_of, is_answer
from fledgling.capture.recording.exchange import upstream_error_reason
from fledgling.payload import parsed_storable_problem
from fledgling.swap.turn import Turn
from fledgling.transport.asgi import Receive, send_bytes, send_error
from fledgling.transport.upstream import (
    Upstream,
    UpstreamFault,
    UpstreamPool,
    response_headers,
    timeout_reason,
)

CLIENT_CLOSED = 499  # the status a call gets when its client left before the answer was done
DONE = b"data: [DONE]"
# What the last piece of each API's stream holds (a client may stop reading there, so that piece
# waits until the call is recorded). A false match only delays one piece.
STREAM_ENDS = {"chat": (DONE,), "responses": (b"response.completed", b"response.failed", b"response.incomplete"),
               "messages": (b"message_stop",)}
T = TypeVar("T")
WATCH_AFTER_S = 0.05  # how long an upstream may take before the client's disconnect is watched


@dataclass
class UpstreamAnswer:
    """What an upstream's reply is: `answer` for a completion, `reason` for the other kinds."""

    kind: Literal["completion", "error", "malformed"]
    status: int
    answer: dict[str, Any] | None = None
    reason: str | None = None


def classify(upstream: Upstream, status: int, raw: bytes, api: str = "chat") -> UpstreamAnswer:
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = None
    if status == 200 and isinstance(answer, dict) and is_answer(api_of(api), answer):
        return UpstreamAnswer("completion", status, answer)
    if status >= 400 and isinstance(answer, dict) and "error" in answer:
        return UpstreamAnswer("error", status, None, upstream_error_reason(status, answer))
    snippet = raw[:200].decode("utf-8", "replace")
    return UpstreamAnswer("malformed", status, None,
                          f"upstream '{upstream.name}' answered {status} with a malformed body: {snippet!r}")


class Relay:
    def __init__(self, pool: UpstreamPool):
        self.pool = pool

    async def forward(self, turn: Turn, *, served_by: bytes | None = None) -> None:
        """Relay the LLM's answer to the client (a stream as it comes) and note it on the
        exchange. `served_by` adds X-Fledgling-Served-By."""
        upstream, ex, request = turn.route.upstream, turn.exchange, turn.wire_request
        call_header = turn.call_header
        ours = [call_header, (b"x-fledgling-served-by", served_by)] if served_by else [call_header]
        body = turn.body
        if upstream.model is not None and request.get("model") != upstream.model:
            request = {**request, "model": upstream.model}
            body = orjson.dumps(request)
        if turn.strip_usage:
            body = orjson.dumps({**request, "stream_options": {**(request.get("stream_options") or {}),
                                                               "include_usage": True}})
        streams = bool(ex.metadata["stream"])
        sent: list[aiohttp.ClientResponse] = []
        path = PATHS[api_of(turn.api)]

        async def ask() -> tuple[aiohttp.ClientResponse, bytes | None]:
            """The upstream's response, and its body unless it is a stream to relay."""
            resp = await self.pool.send(upstream, path, body, turn.headers, turn.caller_auth)
            sent.append(resp)
            if resp.status == 200 and streams and resp.content_type == "text/event-stream":
                return resp, None
            return resp, await self.pool.read(upstream, resp)

        try:
            resp, raw = await _unless_client_leaves(turn, ask())
            ex.status_code = resp.status
            if raw is None:
                await self._stream(turn, resp, ours)
                return
        except ClientLeft:  # nobody to answer: stop waiting for (and paying for) the upstream
            for resp in sent:
                resp.close()
            ex.error, ex.status_code = "client disconnected before the answer", CLIENT_CLOSED
            ex.latency_ms = turn.elapsed_ms()
            return
        except UpstreamFault as fault:
            ex.error = fault.message
            ex.status_code = fault.status
            await send_error(turn.send, fault.status, fault.code, fault.message, [call_header], turn.api)
            return
        ex.latency_ms = turn.elapsed_ms()
        got = classify(upstream, resp.status, raw, turn.api)
        if got.kind == "completion":
            ex.response = got.answer
            ex.response_storable = parsed_storable_problem(raw, got.answer) is None
            await send_bytes(turn.send, 200, raw, headers=[*response_headers(resp), *ours])
        elif got.kind == "error":
            ex.error = got.reason
            await send_bytes(turn.send, resp.status, raw, headers=[*response_headers(resp), call_header])
        else:
            ex.error = got.reason
            ex.metadata["upstream_status"] = resp.status
            ex.status_code = 502
            await send_error(turn.send, 502, "bad_upstream_response", got.reason or "", [call_header], turn.api)

    async def call(self, upstream: Upstream, body: bytes, turn: Turn) -> tuple[UpstreamAnswer, bytes,
                                                                               list[tuple[bytes, bytes]]]:
        """One non-streaming request to the LLM: its classified answer, raw body and headers.
        Raises `UpstreamFault` when there is no answer at all, `ClientLeft` when the client
        disconnected first."""

        async def ask() -> tuple[aiohttp.ClientResponse, bytes]:
            resp = await self.pool.send(upstream, PATHS[api_of(turn.api)], body, turn.headers, turn.caller_auth)
            return resp, await self.pool.read(upstream, resp)

        resp, raw = await _unless_client_leaves(turn, ask())
        return classify(upstream, resp.status, raw, turn.api), raw, response_headers(resp)

    async def _stream(self, turn: Turn, resp: aiohttp.ClientResponse, ours: list[tuple[bytes, bytes]]) -> None:
        """Pass each SSE chunk on as it arrives, keep a copy to reassemble for the record.

        The relay watches for the client's disconnect (uvicorn's `send` stays silent once the
        client is gone): when the client goes first, the relay stops and the upstream connection
        is closed, so the upstream stops generating (and billing) the rest.
        """
        ex, upstream = turn.exchange, turn.route.upstream
        chunks: list[bytes] = []
        tail: list[bytes] = []  # the piece that ends the stream: a client stops reading there
        ends = STREAM_ENDS[api_of(turn.api)]
        strip = UsageStrip() if turn.strip_usage else None
        await turn.send({"type": "http.response.start", "status": 200,
                         "headers": [*response_headers(resp), *ours]})

        async def pump() -> None:
            async for data in resp.content.iter_any():
                if not chunks:
                    ex.metadata["ttft_ms"] = round(turn.elapsed_ms(), 3)
                chunks.append(data)
                out = strip.feed(data) if strip is not None else data
                if not out:
                    continue
                if tail:
                    await turn.send({"type": "http.response.body", "body": tail.pop(), "more_body": True})
                if any(end in out for end in ends):
                    tail.append(out)
                    continue
                await turn.send({"type": "http.response.body", "body": out, "more_body": True})

        client_left = False
        try:
            await _unless_client_leaves(turn, pump())
        except ClientLeft:
            client_left = True
        except (TimeoutError, aiohttp.ClientError) as exc:
            timeout = isinstance(exc, TimeoutError)
            ex.error = (timeout_reason(upstream, exc, "stalled mid-stream") if isinstance(exc, TimeoutError) else
                        f"upstream '{ex.upstream}' broke the stream: {type(exc).__name__}")
            await turn.send({"type": "http.response.body", "more_body": True,
                             "body": _stream_error(turn.api, ex.error, timeout)})
        except OSError:  # a server that raises on sending to a closed connection
            client_left = True
        finally:
            if client_left:
                ex.error, ex.status_code = "client disconnected mid-stream", CLIENT_CLOSED
            if ex.error is None:
                resp.release()
            else:
                resp.close()  # the upstream sees the connection end, and stops
            ex.stream_chunks = chunks
            ex.latency_ms = turn.elapsed_ms()
        if client_left:
            return
        rest = strip.flush() if strip is not None else b""
        await turn.send({"type": "http.response.body", "body": b"".join([*tail, rest]), "more_body": False})


class ClientLeft(Exception):
    """The client disconnected while the gateway waited on its behalf."""


async def _unless_client_leaves(turn: Turn, work: Awaitable[T]) -> T:
    """`work`'s result, unless the client disconnects first: then `work` is cancelled (its
    upstream connection closed) and `ClientLeft` raised.

    The watcher cancels the waiting task itself, as `asyncio.timeout` does, rather than running
    `work` as a task of its own; and it starts only once `work` has taken `WATCH_AFTER_S`: an
    answer that fast is not worth a task (a client that left meanwhile is still seen at once,
    `http.disconnect` waits in `receive`)."""
    me = asyncio.current_task()
    assert me is not None
    state = {"done": False, "left": False}
    watchers: list[asyncio.Future[None]] = []

    async def watch() -> None:
        await _client_gone(turn.receive)
        if not state["done"]:
            state["left"] = True
            me.cancel()

    timer = asyncio.get_running_loop().call_later(
        WATCH_AFTER_S, lambda: watchers.append(asyncio.ensure_future(watch())))
    try:
        result = await work
        state["done"] = True
        return result
    except asyncio.CancelledError:
        if state["left"]:
            me.uncancel()
            raise ClientLeft from None
        raise
    finally:
        state["done"] = True
        timer.cancel()
        for watcher in watchers:
            watcher.cancel()


async def _client_gone(receive: Receive) -> None:
    """Returns once the client has disconnected: with the request body read, `http.disconnect`
    is the only message an ASGI server has left to give."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _stream_error(api: str, message: str, timeout: bool) -> bytes:
    """The event that ends a broken stream, in the caller's API."""
    code = "upstream_timeout" if timeout else "upstream_connection_error"
    if api == "responses":
        return b"event: error\ndata: " + orjson.dumps({"type": "error", "sequence_number": 0, "code": code,
                                                       "message": message, "param": None}) + b"\n\n"
    if api == "messages":
        return b"event: error\ndata: " + orjson.dumps({"type": "error", "error": {
            "type": "overloaded_error" if timeout else "api_error", "message": message}}) + b"\n\n"
    return b"data: " + orjson.dumps({"error": {"message": message, "type": "upstream_error", "param": None,
                                               "code": code}}) + b"\n\n"


_EVENT_END = re.compile(rb"\r?\n\r?\n")  # a blank line ends an SSE event (LF or CRLF)


class UsageStrip:
    """Takes a chat-completions SSE stream piece by piece and gives back what the client gets:
    every event but the usage the gateway asked for (a chunk with no choices is dropped, a
    `usage` riding on a chunk with choices is taken off it, and so is the `"usage": null` that
    OpenAI puts on every chunk once usage is asked for). An event split across pieces waits for
    its end."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        self._pending += data
        ends = [m.end() for m in _EVENT_END.finditer(self._pending)]
        if not ends:
            return b""
        done, self._pending = self._pending[:ends[-1]], self._pending[ends[-1]:]
        if b'"usage"' not in done:
            return done
        starts = [0, *ends[:-1]]
        return b"".join(self._event(done[a:b]) for a, b in zip(starts, ends, strict=True))

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return self._event(rest) if rest.strip() else rest

    @staticmethod
    def _event(event: bytes) -> bytes:
        if b'"usage"' not in event:
            return event
        lines = event.split(b"\n")
        for i, line in enumerate(lines):
            if not line.startswith(b"data:"):
                continue
            line = line.rstrip(b"\r")
            try:
                chunk = orjson.loads(line[5:].strip())
            except orjson.JSONDecodeError:
                return event
            if not isinstance(chunk, dict) or "usage" not in chunk:
                return event
            if chunk["usage"] is not None and not chunk.get("choices"):
                return b""  # the usage-only chunk the client did not ask for
            lines[i] = b"data: " + orjson.dumps({k: v for k, v in chunk.items() if k != "usage"}) + (
                b"\r" if lines[i].endswith(b"\r") else b"")
        return b"\n".join(lines)
