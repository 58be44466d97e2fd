"""The request pipeline: authenticate -> resolve task -> route -> call upstream -> record.

One pipeline serves every chat-completions request; a task in shadow, canary or swapped mode
leaves it at the route step for the swap path (swap.py). The response path does no disk or
database work: it hands an `Exchange` to the recorder, whose threads spool and store it.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from fledgling.capture.recording.exchange import Exchange, new_call_id, upstream_error_reason
from fledgling.capture.recording.recorder import Recorder
from fledgling.payload import storable_problem
from fledgling.swap.router import Route, Router, Upstream
from fledgling.transport.asgi import (
    Problem,
    Receive,
    Send,
    read_body,
    send_bytes,
    send_error,
)
from fledgling.transport.upstream import (
    UpstreamFault,
    UpstreamPool,
    response_headers,
    timeout_reason,
)

if TYPE_CHECKING:
    from fledgling.swap.modes import SwapRouter

CALL_ID_HEADER = b"x-fledgling-call-id"
CLIENT_CLOSED = 499  # the status a call gets when its client left before the answer was done
_CALL_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def gateway_keys(raw: str | None = None) -> frozenset[str]:
    """`FLEDGLING_GATEWAY_KEYS`: comma-separated keys; when set, every request needs one."""
    raw = os.environ.get("FLEDGLING_GATEWAY_KEYS", "") if raw is None else raw
    return frozenset(k.strip() for k in raw.split(",") if k.strip())


class Pipeline:
    def __init__(self, router: Router, pool: UpstreamPool, recorder: Recorder, *,
                 keys: frozenset[str] = frozenset(), max_body_bytes: int = 8 * 1024 * 1024):
        self.router = router
        self.pool = pool
        self.recorder = recorder
        self.keys = tuple(k.encode() for k in keys)
        self.max_body_bytes = max_body_bytes
        self.swap: SwapRouter | None = None

    # -- step 1: authenticate --------------------------------------------------------------

    def authenticate(self, headers: dict[str, str]) -> str | None:
        """Raises 401 when gateway keys are set and none was presented. Returns the caller's
        Authorization to pass upstream, which only happens when the gateway has no keys of its
        own (then the caller's credentials are the upstream's business)."""
        auth = headers.get("authorization")
        if not self.keys:
            return auth
        presented = headers.get("api-key") or (auth[7:] if auth and auth[:7].lower() == "bearer " else "")
        given = presented.strip().encode()
        if not any(hmac.compare_digest(given, k) for k in self.keys):
            raise Problem(401, "invalid_api_key",
                          "missing or wrong gateway key: send one of FLEDGLING_GATEWAY_KEYS as "
                          "'Authorization: Bearer <key>' (the OpenAI client's api_key)")
        return None

    # -- the chat-completions pipeline ------------------------------------------------------

    async def chat(self, scope: dict[str, Any], receive: Receive, send: Send,
                   headers: dict[str, str]) -> None:
        started = time.perf_counter()
        created = datetime.now(UTC)
        caller_auth = self.authenticate(headers)
        body = await read_body(receive, self.max_body_bytes, headers.get("content-length"))
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Problem(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
        if not isinstance(request, dict):
            raise Problem(400, "invalid_json", "request body must be a JSON object")
        if (problem := storable_problem(request, "the request body")) is not None:
            raise Problem(400, "unstorable_body", problem)
        path = scope["path"]
        task = self.router.resolve_task(path, request, headers)
        route = self.router.route(task)
        ex = Exchange(id=_call_id(headers), created_at=created, request=request, task=task,
                      session_id=headers.get("x-fledgling-session"), trace_id=_trace_id(headers),
                      metadata={**_caller_metadata(headers), "path": path,
                                "stream": request.get("stream") is True})
        if route is None:
            ex.error = f"no upstream for task '{task}'"
            ex.status_code = 404
            self.recorder.record(ex)
            raise Problem(404, "no_route", f"task '{task}' has no upstream: set [tasks.{task}] "
                          "upstream or [gateway] upstream in fledgling.toml")
        ex.provider, ex.upstream = route.upstream.provider, route.upstream.name
        ex.price_in, ex.price_out = route.upstream.price_in, route.upstream.price_out
        ex.metadata["upstream"] = route.upstream.name
        call_header = (CALL_ID_HEADER, ex.id.encode())
        if route.mode != "record" and self.swap is not None:
            await self.swap.serve(self, route, body, request, headers, caller_auth, ex, receive, send,
                                  call_header, started)
            return
        try:
            await self._forward(route, body, request, headers, caller_auth, ex, receive, send,
                                call_header, started)
        finally:
            if ex.latency_ms is None:
                ex.latency_ms = (time.perf_counter() - started) * 1000
            self.recorder.record(ex)

    async def _forward(self, route: Route, body: bytes, request: dict[str, Any],
                       headers: dict[str, str], caller_auth: str | None, ex: Exchange,
                       receive: Receive, send: Send, call_header: tuple[bytes, bytes], started: float,
                       *, served_by: bytes | None = None) -> None:
        """Relay the LLM's answer (a stream as it comes). `served_by` adds X-Fledgling-Served-By.
        `receive` is read only for the client's `http.disconnect` (the body is already read)."""
        upstream = route.upstream
        ours = [call_header, (b"x-fledgling-served-by", served_by)] if served_by else [call_header]
        if upstream.model is not None and request.get("model") != upstream.model:
            body = orjson.dumps({**request, "model": upstream.model})
        try:
            resp = await self.pool.send(upstream, "/chat/completions", body, headers, caller_auth)
            ex.status_code = resp.status
            streaming = (resp.status == 200 and ex.metadata["stream"]
                         and resp.content_type == "text/event-stream")
            if streaming:
                await self._relay_stream(upstream, resp, ex, receive, send, ours, started)
                return
            raw = await self.pool.read(upstream, resp)
        except UpstreamFault as fault:
            ex.error = fault.message
            ex.status_code = fault.status
            await send_error(send, fault.status, fault.code, fault.message, [call_header])
            return
        ex.latency_ms = (time.perf_counter() - started) * 1000
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = None
        if resp.status == 200 and isinstance(answer, dict) and isinstance(answer.get("choices"), list):
            ex.response = answer
            await send_bytes(send, 200, raw, headers=[*response_headers(resp), *ours])
        elif resp.status >= 400 and isinstance(answer, dict) and "error" in answer:
            ex.error = upstream_error_reason(resp.status, answer)
            await send_bytes(send, resp.status, raw, headers=[*response_headers(resp), call_header])
        else:
            snippet = raw[:200].decode("utf-8", "replace")
            ex.error = (f"upstream '{upstream.name}' answered {resp.status} with a malformed body: "
                        f"{snippet!r}")
            ex.metadata["upstream_status"] = resp.status
            ex.status_code = 502
            await send_error(send, 502, "bad_upstream_response", ex.error, [call_header])

    async def _relay_stream(self, upstream: Upstream, resp: aiohttp.ClientResponse, ex: Exchange,
                            receive: Receive, send: Send, ours: list[tuple[bytes, bytes]],
                            started: float) -> None:
        """Pass each SSE chunk on as it arrives, keep a copy to reassemble for the record.

        The relay runs beside a watch for the client's disconnect (uvicorn's `send` stays silent
        once the client is gone): when the client goes first, the relay stops and the upstream
        connection is closed, so the upstream stops generating (and billing) the rest.
        """
        chunks: list[bytes] = []
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*response_headers(resp), *ours]})

        async def pump() -> None:
            async for data in resp.content.iter_any():
                if not chunks:
                    ex.metadata["ttft_ms"] = round((time.perf_counter() - started) * 1000, 3)
                chunks.append(data)
                await send({"type": "http.response.body", "body": data, "more_body": True})

        relay = asyncio.ensure_future(pump())
        gone = asyncio.ensure_future(_client_gone(receive))
        client_left = False
        try:
            await asyncio.wait((relay, gone), return_when=asyncio.FIRST_COMPLETED)
            if relay.done():
                relay.result()
            else:
                client_left = True
        except (TimeoutError, aiohttp.ClientError) as exc:
            timeout = isinstance(exc, TimeoutError)
            ex.error = (timeout_reason(upstream, exc, "stalled mid-stream") if isinstance(exc, TimeoutError) else
                        f"upstream '{ex.upstream}' broke the stream: {type(exc).__name__}")
            await send({"type": "http.response.body", "more_body": True,
                        "body": b"data: " + _stream_error(ex.error, timeout) + b"\n\n"})
        except OSError:  # a server that raises on sending to a closed connection
            client_left = True
        finally:
            gone.cancel()
            if not relay.done():
                relay.cancel()
                await asyncio.wait((relay,))
            if client_left:
                ex.error, ex.status_code = "client disconnected mid-stream", CLIENT_CLOSED
            if ex.error is None:
                resp.release()
            else:
                resp.close()  # the upstream sees the connection end, and stops
            ex.stream_chunks = chunks
            ex.latency_ms = (time.perf_counter() - started) * 1000
        if client_left:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _client_gone(receive: Receive) -> None:
    """Returns once the client has disconnected: with the request body read, `http.disconnect`
    is the only message an ASGI server has left to give."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _stream_error(message: str, timeout: bool) -> bytes:
    code = "upstream_timeout" if timeout else "upstream_connection_error"
    return orjson.dumps({"error": {"message": message, "type": "upstream_error", "param": None,
                                   "code": code}})


def _call_id(headers: dict[str, str]) -> str:
    """`X-Fledgling-Call-Id` lets a caller choose the id (an idempotency key: a retried or
    replayed call is stored once); otherwise the gateway makes one."""
    chosen = headers.get("x-fledgling-call-id")
    if chosen is None:
        return new_call_id()
    if not _CALL_ID.match(chosen):
        raise Problem(400, "invalid_call_id", "X-Fledgling-Call-Id must be 1-128 characters of "
                      "letters, digits and . _ : -")
    return chosen


def _caller_metadata(headers: dict[str, str]) -> dict[str, Any]:
    """`X-Fledgling-Metadata`: a JSON object the caller wants kept with the call."""
    raw = headers.get("x-fledgling-metadata")
    if not raw:
        return {}
    try:
        meta = orjson.loads(raw)
    except orjson.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict):
        raise Problem(400, "invalid_metadata", "X-Fledgling-Metadata must be a JSON object")
    if (problem := storable_problem(meta, "X-Fledgling-Metadata")) is not None:
        raise Problem(400, "invalid_metadata", problem)
    return meta


def _trace_id(headers: dict[str, str]) -> str | None:
    explicit = headers.get("x-fledgling-trace")
    if explicit:
        return explicit
    tp = headers.get("traceparent")
    if tp and (m := _TRACEPARENT.match(tp.strip().lower())):
        return m.group(1)
    return None
