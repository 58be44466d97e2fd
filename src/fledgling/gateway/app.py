"""The gateway as a raw ASGI app: a few routes, no framework on the hot path.

    POST <any prefix>/chat/completions   the recording proxy (see pipeline.py): OpenAI chat
    POST <any prefix>/responses          the same for the OpenAI Responses API
    POST <any prefix>/messages           the same for the Anthropic Messages API
    <any prefix>/responses/<...>,        the APIs' side routes (retrieve, cancel, input items,
    POST <any prefix>/messages/<...>     count tokens, ...): passed to the upstream, not recorded
    GET  /v1/models                      the default upstream's model list
    POST /v1/traces                      OTLP/HTTP receiver (protobuf or JSON)
    POST /v1/logs                        OTLP/HTTP log records: GenAI events joined to their spans
    GET  /health                         "ok" or "degraded" (with reasons), recorder counters,
                                         and the requests refused, by status, method and path
    /admin/...                           rollout changes and live swap figures (see admin.py)

Nothing is refused silently: every request the gateway answers itself with an error (an unknown
path, a wrong method, a missing key, a body it cannot take) is logged in one line and counted.
With `[gateway] access_log` (or `fledgling gateway --access-log`) every request is logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import Counter
from typing import Any

import orjson

from fledgling.capture.apis import Api
from fledgling.capture.recording.recorder import Recorder
from fledgling.config import Settings
from fledgling.gateway import otlp, workers
from fledgling.gateway.admin import PREFIX as ADMIN_PREFIX
from fledgling.gateway.admin import Admin, admin_keys
from fledgling.gateway.pipeline import Pipeline, gateway_keys
from fledgling.origin import HostCheck
from fledgling.swap.live_rollout import LiveRollout
from fledgling.swap.modes import SwapRouter
from fledgling.swap.router import Router
from fledgling.transport.asgi import Problem, Receive, Send, read_body, send_bytes, send_error, send_json
from fledgling.transport.upstream import UpstreamFault, UpstreamPool, response_headers

log = logging.getLogger("fledgling.gateway")
access = logging.getLogger("fledgling.gateway.access")
SERVED = "POST <prefix>/chat/completions, POST <prefix>/responses, POST <prefix>/messages, GET /v1/models, " \
         "POST /v1/traces, POST /v1/logs, GET /health"
REFUSED_KEYS = 200  # distinct "status method path" counted on /health; the rest go under "other"


class GatewayApp:
    def __init__(self, settings: Settings, recorder: Recorder, *, upstream: str | None = None,
                 keys: frozenset[str] | None = None, admin: frozenset[str] | None = None,
                 access_log: bool | None = None):
        self.settings = settings
        self.access_log = settings.gateway.access_log if access_log is None else access_log
        if self.access_log and not access.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            access.addHandler(handler)
            access.setLevel(logging.INFO)
            access.propagate = False
        self.refused: Counter[str] = Counter()
        self.recorder = recorder
        self.otlp = otlp.Receiver(recorder.record)
        self.router = Router(settings, upstream)
        self.pool = UpstreamPool()
        keys = gateway_keys() if keys is None else keys
        self.live = LiveRollout(recorder.store, settings)
        self.router.live = self.live
        self.swap = SwapRouter(settings, self.pool, recorder, self.live)
        self.pipeline = Pipeline(self.router, self.swap, recorder, keys=keys,
                                 max_body_bytes=settings.gateway.max_body_bytes)
        self.admin = Admin(self.swap, admin_keys(keys) if admin is None else admin)
        self.hosts = None if keys else HostCheck()  # no key: a DNS-rebinding page must not drive it
        self.worker: dict[str, int] | None = None  # `--workers N`: which one this is (gateway/server.py)
        self.admin.aggregate = self.swap_view
        self._publisher: asyncio.Task[None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await self.pool.start()
                self.recorder.start()
                await self.live.refresh()  # starts loading the candidates of non-record tasks
                if self.worker is not None:
                    self.pipeline.worker = self.worker["index"]
                    self._publisher = asyncio.get_running_loop().create_task(self._publish())
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if self._publisher is not None:
                    self._publisher.cancel()
                await self.swap.drain()
                await self.pool.close()
                await asyncio.to_thread(self.otlp.close)
                await asyncio.to_thread(self.recorder.close)
                if self._publisher is not None:  # last: the writer process waits for this
                    await asyncio.to_thread(workers.withdraw, self.settings.gateway.spool_dir, self._name)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if not self.access_log:
            await self._route(scope, receive, send)
            return
        started, status = time.perf_counter(), [0]

        async def watched(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._route(scope, receive, watched)
        finally:
            access.info("%s %s %s %.1fms", scope["method"], scope["path"], status[0] or "-",
                        (time.perf_counter() - started) * 1000)

    async def _route(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        method: str = scope["method"]
        served = _api_of(path)
        side = None if served else _side_route(path)
        named = side.split("/")[1] if side else served
        api: Api = "messages" if named == "messages" else "responses" if named == "responses" else "chat"
        try:
            if self.hosts is not None and (refused := self.hosts.refusal(method, headers)):
                raise Problem(403, "host_not_allowed", refused)
            if served is not None:
                if method != "POST":
                    raise Problem(405, "method_not_allowed", f"{method} {path}: use POST")
                await self.pipeline.serve(api, scope, receive, send, headers)
            elif side is not None:
                await self._pass(scope, receive, send, headers, side)
            elif path in ("/v1/traces", "/v1/logs"):
                if method != "POST":
                    raise Problem(405, "method_not_allowed", f"POST OTLP {path[4:]} to {path}")
                await self._otlp(path, receive, send, headers)
            elif path.startswith(ADMIN_PREFIX):
                await self.admin.handle(path, method, receive, send, headers)
            elif path in ("/health", "/healthz"):
                await send_json(send, 200, await self.health_view())
            elif path.endswith("/models") and method == "GET":
                self.pipeline.authenticate(headers)
                await self._models(send, headers)
            else:
                raise Problem(404, "not_found", f"{method} {path} is not served here; the gateway "
                              f"serves {SERVED}")
        except Problem as p:
            if p.status != 499:
                self._refuse(method, path, p)
                await send_error(send, p.status, p.code, p.message, api=api)
        except Exception:  # a bug must still answer in OpenAI's shape, and be logged
            log.exception("gateway error on %s %s", method, path)
            try:
                await send_error(send, 500, "gateway_error", "the gateway failed on this request; "
                                 "see its log")
            except RuntimeError:  # the response had already started
                pass

    def health(self) -> dict[str, Any]:
        """Always 200 while the gateway answers (it still serves and records what it can, so a
        liveness probe must not kill it); `status` is `degraded`, with `reasons`, while recording
        is impaired: spool or store writes failing, a thread died, calls waiting too long.
        `refused` counts the requests the gateway answered with its own error."""
        status, reasons = self.recorder.health()
        return {"status": status, "reasons": reasons, "recorder": self.recorder.stats(),
                "otlp": self.otlp.stats(), "refused": dict(self.refused.most_common()),
                **({"worker": self.worker} if self.worker else {})}

    # -- `--workers N`: every worker's part, merged (gateway/workers.py) -----------------------

    @property
    def _name(self) -> str:
        return f"worker-{self.worker['index']}" if self.worker else "gateway"

    def _part(self) -> dict[str, Any]:
        """This worker's own part, as it publishes it."""
        return {"worker": self.worker, "health": self.health(), "swap": self.admin.figures()}

    async def _publish(self) -> None:
        spool_dir = self.settings.gateway.spool_dir
        while True:
            try:
                await asyncio.to_thread(workers.publish, spool_dir, self._name, self._part())
            except Exception:  # a full disk must not end the loop: the snapshot just goes stale
                log.exception("cannot publish this worker's health snapshot")
            await asyncio.sleep(workers.PUBLISH_S)

    async def _parts(self) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Every live process's fresh part, this worker's taken now; and the workers missing."""
        parts = await asyncio.to_thread(workers.read_fresh, self.settings.gateway.spool_dir)
        parts[self._name] = {**self._part(), "pid": os.getpid(), "at": time.time()}
        return parts, workers.missing(parts, self.worker["workers"] if self.worker else 1,
                                      writer=self.recorder.external_writer)

    async def health_view(self) -> dict[str, Any]:
        """`/health`: one process's, or with `--workers N` the sum over every live worker (and
        the store writer process), with each one's part under `workers`."""
        if self.worker is None:
            return self.health()
        parts, absent = await self._parts()
        now = time.time()
        each = [{"name": name, "pid": p["pid"], "age_s": round(now - p["at"], 3), **p["health"]}
                for name, p in sorted(parts.items())]
        status, reasons = workers.merge_status([(e["name"], e["status"], e["reasons"]) for e in each])
        if absent:
            reasons.append(f"no fresh snapshot from {', '.join(absent)} (starting, restarting or hung)")
            status = "degraded"
        return {"status": status, "reasons": reasons,
                "recorder": workers.merge_recorders([e.get("recorder", {}) for e in each]),
                "otlp": workers.merge_counts([e.get("otlp", {}) for e in each]),
                "refused": workers.merge_counts([e.get("refused", {}) for e in each]),
                "worker": self.worker, "workers": each, "missing": absent}

    async def swap_view(self, mine: dict[str, Any]) -> dict[str, Any]:
        """`/admin/swap`: with `--workers N`, figures summed over the workers, gate statistics and
        circuit states per worker, and each worker's own figures under `workers`."""
        if self.worker is None:
            return mine
        parts, absent = await self._parts()
        parts[self._name]["swap"] = mine
        serving = {name: p["swap"] for name, p in sorted(parts.items()) if p.get("swap") is not None}
        tasks = workers.merge_tasks([s["tasks"] for s in serving.values()])
        modes = {t.task: t.mode for t in self.live.tasks()}
        for name, fig in tasks.items():
            fig["mode"] = modes.get(name, "record")
            fig["gate"] = {w: s["tasks"][name]["gate"] for w, s in serving.items() if name in s["tasks"]}
        circuits: dict[str, dict[str, str]] = {}
        for w, s in serving.items():
            for candidate, state in s["circuits"].items():
                circuits.setdefault(candidate, {})[w] = state
        health = await self.health_view()
        return {"tasks": tasks, "circuits": circuits,
                "candidates": sorted({c for s in serving.values() for c in s["candidates"]}),
                "recording": {"status": health["status"], "reasons": health["reasons"], **health["recorder"]},
                "worker": self.worker, "missing": absent,
                "workers": [{"name": w, "pid": parts[w]["pid"], **s} for w, s in serving.items()]}

    def _refuse(self, method: str, path: str, problem: Problem) -> None:
        """One log line and one count for a request the gateway did not serve."""
        log.warning("refused %s %s: %d %s (%s)", method, path[:200], problem.status, problem.code,
                    problem.message[:300])
        key = f"{problem.status} {method[:10]} {path[:100]}"
        if key not in self.refused and len(self.refused) >= REFUSED_KEYS:
            key = f"{problem.status} other"
        self.refused[key] += 1

    async def _otlp(self, path: str, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        self.pipeline.authenticate(headers)
        limit = self.settings.gateway.max_body_bytes
        body = await read_body(receive, limit, headers.get("content-length"))
        content_type = headers.get("content-type", "")
        await otlp.receive_off_loop(self.otlp, path, body, content_type, headers.get("content-encoding"), limit)
        reply, reply_type = otlp.empty_response(content_type)
        await send_bytes(send, 200, reply, content_type=reply_type)

    async def _pass(self, scope: dict[str, Any], receive: Receive, send: Send, headers: dict[str, str],
                    side: str) -> None:
        """A side route of the Responses or Messages API, to the task's upstream and back as it is:
        nothing to record (no model answered)."""
        caller_auth = self.pipeline.authenticate(headers)
        route = self.router.route(self.router.resolve_task(scope["path"], {}, headers))
        if route is None:
            raise Problem(404, "no_route", f"no upstream for {scope['method']} {scope['path']}: set "
                          "[gateway] upstream in fledgling.toml")
        method = scope["method"]
        body = await read_body(receive, self.settings.gateway.max_body_bytes, headers.get("content-length"))
        query = scope.get("query_string") or b""
        target = side + ("?" + query.decode("latin-1") if query else "")
        try:
            resp = await self.pool.send(route.upstream, target, body, headers, caller_auth, method=method)
            raw = await self.pool.read(route.upstream, resp)
        except UpstreamFault as fault:
            raise Problem(fault.status, fault.code, fault.message) from None
        await send_bytes(send, resp.status, raw, headers=response_headers(resp))

    async def _models(self, send: Send, headers: dict[str, str]) -> None:
        upstream = self.router.default
        if upstream is not None:
            try:
                resp = await self.pool.send(upstream, "/models", b"", headers,
                                            self.pipeline.authenticate(headers), method="GET")
                raw = await self.pool.read(upstream, resp)
                await send_bytes(send, resp.status, raw, headers=response_headers(resp))
                return
            except UpstreamFault as fault:
                log.info("listing models locally: %s", fault.message)
        data = [{"id": u.model or u.name, "object": "model", "owned_by": u.provider}
                for u in self.router.upstreams()]
        await send_bytes(send, 200, orjson.dumps({"object": "list", "data": data}))


def _api_of(path: str) -> Api | None:
    """The API a model-call path names, matched exactly: `<prefix>/chat/completions`,
    `<prefix>/responses`, and Anthropic's `<prefix>/v1/messages` (or a bare `/messages`). OpenAI's
    own `.../threads/{id}/messages` (Assistants) and `.../chat/completions/{id}/messages` (stored
    completions) are not Messages requests: they are refused like any path not served."""
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/responses"):
        return "responses"
    if path == "/messages" or path.endswith("/v1/messages"):
        return "messages"
    return None


def _side_route(path: str) -> str | None:
    """`<prefix>/responses/<id>...` or `<prefix>/v1/messages/<...>` -> the upstream path from the
    API's name on (`/responses/...`, `/messages/...`); None for any other path."""
    at = path.find("/responses/")
    if at >= 0 and path[at + len("/responses/"):]:
        return path[at:]
    if path.startswith("/messages/"):
        at = 0
    else:
        at = path.find("/v1/messages/")
        at = at + len("/v1") if at >= 0 else -1
    if at >= 0 and path[at + len("/messages/"):]:
        return path[at:]
    return None
