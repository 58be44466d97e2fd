"""The request pipeline: authenticate -> read and check the body -> resolve the task -> route ->
hand the turn to its routing mode (`fledgling.swap.modes`), which answers and records it.

One pipeline for the three APIs (`chat`, `responses`, `messages`): a Responses or Messages body
is read as the canonical chat request (`fledgling.capture.apis`) for the task, the candidate and
the record, and forwarded as it came. Responses chained by `previous_response_id` share one
session: the pipeline remembers which session each response id it relayed belongs to, and asks
the store for an id it never saw (relayed by another `--workers` process, or before a restart).

A task in shadow, canary or swapped mode also needs the conversation a chained request continues
(the candidate sees only the request): for those tasks the pipeline holds each answered
conversation by its response id (`HELD`, oldest forgotten first). A chained request then reaches
the candidate whole; and when its previous response was the candidate's, which the upstream never
saw, the upstream gets it whole too (`responses.self_contained`). A chained request whose
conversation is not held (the task was in record mode, the gateway restarted) stays with the
upstream, which holds it.

The response path does no disk or database work: the exchange goes to the recorder, whose
threads spool and store it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from fledgling.capture.apis import Api, responses, to_chat_request
from fledgling.capture.recording.exchange import Exchange, new_call_id
from fledgling.capture.recording.recorder import Recorder
from fledgling.payload import parsed_storable_problem, storable_problem
from fledgling.store import Store
from fledgling.swap.apis import recorded_answer
from fledgling.swap.modes import SwapRouter
from fledgling.swap.router import Router
from fledgling.swap.turn import Turn
from fledgling.transport.asgi import Problem, Receive, Send, read_body

_CALL_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
log = logging.getLogger("fledgling.gateway")
CHAIN_MEMORY = 100_000  # response ids remembered for previous_response_id (oldest forgotten first)
CHAIN_LOOKUP_S = 24 * 3600  # how far back the store is asked for a response id this process never saw
HELD = 10_000  # conversations held for chained requests of tasks in a swap mode


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
        self.chains: dict[str, str] = {}  # response id -> the session of its conversation
        self.worker: int | None = None  # `--workers N`: recorded as metadata.gateway_worker
        # response id -> (the conversation's chat messages, answer included; the upstream knows the id)
        self.held: dict[str, tuple[list[dict[str, Any]], bool]] = {}

    # -- step 1: authenticate --------------------------------------------------------------

    def authenticate(self, headers: dict[str, str]) -> str | None:
        """Raises 401 when gateway keys are set and none was presented. Returns the caller's
        Authorization to pass upstream, which only happens when the gateway has no keys of its
        own (then the caller's credentials are the upstream's business)."""
        auth = headers.get("authorization")
        if not self.keys:
            return auth or (f"Bearer {key}" if (key := headers.get("x-api-key")) else None)
        presented = headers.get("api-key") or headers.get("x-api-key") or (
            auth[7:] if auth and auth[:7].lower() == "bearer " else "")
        given = presented.strip().encode()
        if not any(hmac.compare_digest(given, k) for k in self.keys):
            raise Problem(401, "invalid_api_key",
                          "missing or wrong gateway key: send one of FLEDGLING_GATEWAY_KEYS as "
                          "'Authorization: Bearer <key>' (the OpenAI client's api_key)")
        return None

    # -- the pipeline ---------------------------------------------------------------------

    async def chat(self, scope: dict[str, Any], receive: Receive, send: Send,
                   headers: dict[str, str]) -> None:
        await self.serve("chat", scope, receive, send, headers)

    async def serve(self, api: Api, scope: dict[str, Any], receive: Receive, send: Send,
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
        wire, metadata = request, {**_caller_metadata(headers), "path": path, "stream": request.get("stream") is True}
        if self.worker is not None:
            metadata["gateway_worker"] = self.worker
        if api != "chat":
            notes: list[str] = []
            try:
                request = to_chat_request(api, wire, notes)
            except (ValueError, TypeError, AttributeError) as exc:  # forwarded all the same
                request = {"messages": [], "stream": wire.get("stream") is True}
                notes.append(f"the {api} request could not be read as chat: {exc}")
            metadata.update(api=api, wire_request=wire)
            if notes:
                metadata["request_notes"] = notes
        task = self.router.resolve_task(path, request, headers)
        route = self.router.route(task)
        session = headers.get("x-fledgling-session")
        previous = wire.get("previous_response_id") if api == "responses" else None
        if session is None and isinstance(previous, str):
            session = self.chains.get(previous) or await self._stored_session(previous, task)
            session = session or previous  # unknown id: named after it, as its root is
        ex = Exchange(id=_call_id(headers), created_at=created, request=request, task=task,
                      session_id=session, trace_id=_trace_id(headers), metadata=metadata)
        if route is None:
            ex.error = f"no upstream for task '{task}'"
            ex.status_code = 404
            self.recorder.record(ex)
            raise Problem(404, "no_route", f"task '{task}' has no upstream: set [tasks.{task}] "
                          "upstream or [gateway] upstream in fledgling.toml")
        if isinstance(previous, str) and route.mode != "record":
            held = self.held.get(previous)
            if held is None:  # held upstream only: a candidate would see only the new input items
                ex.metadata["swap_skipped"] = "previous_response_id: the conversation is held upstream"
                route = replace(route, mode="record")
            else:
                history, upstream_knows = held
                own = request["messages"]
                request = {**request, "messages": [*(m for m in own if m.get("role") in ("system", "developer")),
                                                   *history,
                                                   *(m for m in own if m.get("role") not in ("system", "developer"))]}
                ex.request = request
                ex.metadata["conversation_held"] = {"previous_response_id": previous, "messages": len(history),
                                                    "upstream_knows": upstream_knows}
                if not upstream_knows:
                    wire = responses.self_contained(wire, history)
                    body = orjson.dumps(wire)
        ex.provider, ex.upstream = route.upstream.provider, route.upstream.name
        ex.price_in, ex.price_out = route.upstream.price_in, route.upstream.price_out
        ex.metadata["upstream"] = route.upstream.name
        strip_usage = api == "chat" and request.get("stream") is True and not (
            isinstance(opts := request.get("stream_options"), dict) and opts.get("include_usage") is True)
        if strip_usage:
            ex.metadata["usage_requested"] = True  # asked upstream; kept from the client
        if api == "responses" and ex.session_id is None:
            ex.session_id = "session_" + ex.id.removeprefix("call_")  # the root of a possible chain
        await self.swap.serve(Turn(route=route, body=body, request=request, headers=headers,
                                   caller_auth=caller_auth, exchange=ex, receive=receive,
                                   client_send=send, started=started, api=api,
                                   wire=wire if api != "chat" else None, strip_usage=strip_usage))
        if api == "responses" and ex.session_id is not None:
            self._remember(ex)
        if api == "responses" and route.mode != "record":
            self._hold(ex, request)

    def _hold(self, ex: Exchange, request: dict[str, Any]) -> None:
        """Hold the conversation this answer ends, for a request that continues it."""
        answer = recorded_answer("responses", ex)
        rid = responses.response_id(ex.response) if ex.response is not None else self._streamed_id(ex)
        if answer is None or rid is None:
            return
        served = (ex.metadata.get("route") or {}).get("served_by")
        history = [m for m in request["messages"] if m.get("role") not in ("system", "developer")]
        if len(self.held) >= HELD:
            self.held.pop(next(iter(self.held)))
        self.held[rid] = ([*history, answer.message()], served != "candidate")

    @staticmethod
    def _streamed_id(ex: Exchange) -> str | None:
        first = next((c for c in ex.stream_chunks or [] if isinstance(c, bytes | bytearray)), b"")
        m = _RESPONSE_ID.search(bytes(first[:4096]))
        return m.group(1).decode() if m else None

    async def _stored_session(self, response_id: str, task: str) -> str | None:
        """The session of the stored call that answered `response_id`: the link relayed by another
        worker (`--workers N`) or before a restart. None when the store has no such call (yet: a
        call reaches it a fraction of a second after its answer) or cannot be read."""
        try:
            session = await asyncio.to_thread(stored_session, self.recorder.store, response_id, task)
        except Exception as exc:  # the store is down: the chain gets a session named after the id
            log.warning("previous_response_id %s: the store could not be read (%s)", response_id[:100],
                        str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
            return None
        if session is not None:
            self._chain(response_id, session)
        return session

    def _chain(self, response_id: str, session: str) -> None:
        if len(self.chains) >= CHAIN_MEMORY:
            self.chains.pop(next(iter(self.chains)))
        self.chains[response_id] = session

    def _remember(self, ex: Exchange) -> None:
        """Note the session of the response this exchange relayed, for the next link."""
        rid = responses.response_id(ex.response) if ex.response is not None else self._streamed_id(ex)
        if rid is None or ex.session_id is None:
            return
        self._chain(rid, ex.session_id)


def stored_session(store: Store, response_id: str, task: str) -> str | None:
    """The session of the newest call of `task` in the last `CHAIN_LOOKUP_S` whose answer had
    `response_id` (`metadata.response_id`, written by `exchange_to_call`)."""
    return store.session_of_response(response_id, task, datetime.now(UTC) - timedelta(seconds=CHAIN_LOOKUP_S))


_RESPONSE_ID = re.compile(rb'"response":\s*\{[^{}]*?"id":\s*"([A-Za-z0-9_.:-]{1,200})"')


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
    """`X-Fledgling-Metadata`: a JSON object the caller wants kept with the call. JSON is UTF-8:
    a header sent with non-ASCII bytes (`"Tomás"` as UTF-8 rather than `"Tom\\u00e1s"`) is read
    as UTF-8, not as the Latin-1 an HTTP server hands headers over in, which would store
    `"TomÃ¡s"`."""
    raw = headers.get("x-fledgling-metadata")
    if not raw:
        return {}
    try:
        meta = orjson.loads(raw.encode("latin-1"))  # the header's own bytes (latin-1 is lossless)
    except (orjson.JSONDecodeError, UnicodeEncodeError):
        meta = None
    if not isinstance(meta, dict):
        raise Problem(400, "invalid_metadata", "X-Fledgling-Metadata must be a JSON object in UTF-8")
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
