"""The request pipeline: authenticate -> read and check the body -> resolve the task -> route ->
hand the turn to its routing mode (`fledgling.swap.modes`), which answers and records it.

The response path does no disk or database work: the exchange goes to the recorder, whose
threads spool and store it.
"""

from __future__ import annotations

import hmac
import os
import re
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from fledgling.capture.recording.exchange import Exchange, new_call_id
from fledgling.capture.recording.recorder import Recorder
from fledgling.payload import parsed_storable_problem, storable_problem
from fledgling.swap.modes import SwapRouter
from fledgling.swap.router import Router
from fledgling.swap.turn import Turn
from fledgling.transport.asgi import Problem, Receive, Send, read_body

_CALL_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def gateway_keys(raw: str | None = None) -> frozenset[str]:
    """`FLEDGLING_GATEWAY_KEYS`: comma-separated keys; when set, every request needs one."""
    raw = os.environ.get("FLEDGLING_GATEWAY_KEYS", "") if raw is None else raw
    return frozenset(k.strip() for k in raw.split(",") if k.strip())


class Pipeline:
    def __init__(self, router: Router, swap: SwapRouter, recorder: Recorder, *,
                 keys: frozenset[str] = frozenset(), max_body_bytes: int = 8 * 1024 * 1024):
        self.router = router
        self.swap = swap
        self.recorder = recorder
        self.keys = tuple(k.encode() for k in keys)
        self.max_body_bytes = max_body_bytes

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
        if (problem := parsed_storable_problem(body, request, "the request body")) is not None:
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
        await self.swap.serve(Turn(route=route, body=body, request=request, headers=headers,
                                   caller_auth=caller_auth, exchange=ex, receive=receive,
                                   client_send=send, started=started))


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
