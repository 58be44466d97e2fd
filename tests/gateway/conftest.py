"""Real servers on loopback: a stand-in upstream with injectable faults, the gateway in front.

Faults are chosen by the request's model name (the agent's own parameter, which the gateway
forwards untouched), e.g. `model="fault:timeout"`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fledgling.config import Settings, parse_settings
from fledgling.demo.standin import StandInUpstream, read_body
from fledgling.gateway.app import GatewayApp
from fledgling.gateway.server import ServerThread, build_app
from fledgling.store import Store

SYSTEM = "You are the support agent of an online shop. Use the tools."
TOOLS = [{"type": "function", "function": {
    "name": "lookup_order", "description": "Find an order",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                   "required": ["order_id"]}}}]
UPSTREAM_TIMEOUT_S = 0.6


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """Tool call when tools are offered, else text echoing the last user message."""
    last = request["messages"][-1].get("content", "")
    if request.get("tools"):
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function",
             "function": {"name": "lookup_order", "arguments": '{"order_id": "A1234"}'}}]}
    return {"role": "assistant", "content": f"You said: {last}. Anything else I can do?"}


class FaultyUpstream:
    """The stand-in upstream, plus faults selected by `model` and a log of what it was sent."""

    def __init__(self) -> None:
        self.inner = StandInUpstream(answer)
        self.seen_headers: list[dict[str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        self.seen_headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        body = await read_body(receive)
        try:
            model = orjson.loads(body).get("model", "")
        except orjson.JSONDecodeError:
            model = ""
        fault = model.removeprefix("fault:") if model.startswith("fault:") else None

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        if fault is None:
            return await self.inner(scope, replay, send)
        if fault == "timeout":
            await asyncio.sleep(UPSTREAM_TIMEOUT_S * 3)
            return await self.inner(scope, replay, send)
        if fault == "http500":
            return await _send(send, 500, b'{"error": {"message": "the model is overloaded", '
                                          b'"type": "server_error", "param": null, "code": null}}')
        if fault == "http429":
            return await _send(send, 429, b'{"error": {"message": "rate limit reached", '
                                          b'"type": "requests", "param": null, "code": "rate_limit_exceeded"}}')
        if fault == "html503":
            return await _send(send, 503, b"<html><body>Service Unavailable</body></html>", b"text/html")
        if fault == "garbage200":
            return await _send(send, 200, b"this is not json")
        if fault == "nochoices200":
            return await _send(send, 200, b'{"id": "x", "object": "chat.completion"}')
        if fault in ("stream-break", "stream-stall"):
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            await send({"type": "http.response.body", "more_body": True,
                        "body": b'data: {"id":"c","object":"chat.completion.chunk","model":"m",'
                                b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},'
                                b'"finish_reason":null}]}\n\n'})
            if fault == "stream-stall":
                await asyncio.sleep(UPSTREAM_TIMEOUT_S * 3)
                return
            raise RuntimeError("upstream crashed mid-stream")  # uvicorn drops the connection
        raise AssertionError(f"unknown fault {fault}")


async def _send(send: Any, status: int, body: bytes, ctype: bytes = b"application/json") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def upstream() -> Iterator[tuple[FaultyUpstream, str]]:
    app = FaultyUpstream()
    with ServerThread(app) as url:
        yield app, url + "/v1"


def gateway_settings(upstream_url: str, workdir: Path, *, timeout_s: float = UPSTREAM_TIMEOUT_S,
                     **gateway: Any) -> Settings:
    return parse_settings({
        "models": {
            "llm": {"kind": "openai", "base_url": upstream_url, "usd_per_mtok_in": 2.5,
                    "usd_per_mtok_out": 10.0, "timeout_s": timeout_s},
            "llm-keyed": {"kind": "openai", "base_url": upstream_url, "api_key_env": "TEST_UPSTREAM_KEY",
                          "timeout_s": timeout_s},
        },
        "tasks": {
            "support-agent": {"upstream": "llm"},
            "triage": {"upstream": "llm", "match": {"model": "triage-*"}},
            "billing": {"upstream": "llm", "match": {"path": "/agents/billing/"}},
            "refunds": {"upstream": "llm", "match": {"system_prompt_contains": "refund desk"}},
            "keyed": {"upstream": "llm-keyed", "match": {"model": "keyed"}},
        },
        "gateway": {"upstream": "llm", "spool_dir": str(workdir / "spool"), "spool_fsync_ms": 2,
                    **gateway},
    })


@dataclass
class Gateway:
    url: str
    app: GatewayApp
    store: Store
    spool_dir: Path

    def drain(self) -> None:
        assert self.app.recorder.drain(10), self.app.recorder.stats()


@pytest.fixture
def make_gateway(upstream: tuple[FaultyUpstream, str], tmp_path: Path):
    started: list[ServerThread] = []

    def make(store: Store, *, keys: frozenset[str] = frozenset(), upstream_url: str | None = None,
             **gateway: Any) -> Gateway:
        settings = gateway_settings(upstream_url or upstream[1], tmp_path, **gateway)
        app = build_app(settings, store, keys=keys)
        server = ServerThread(app)
        url = server.start()
        started.append(server)
        return Gateway(url, app, store, tmp_path / "spool")

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def gateway(make_gateway, sqlite_store: Store) -> Gateway:
    return make_gateway(sqlite_store)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    """`fledgling gateway` as a real subprocess (for kill -9 and signal tests)."""

    def __init__(self, config: Path, port: int, cwd: Path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "FLEDGLING_CONFIG": str(config)}
        env.pop("FLEDGLING_GATEWAY_KEYS", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from fledgling.cli import main; main()", "gateway",
             "--port", str(port)], env=env, cwd=cwd, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out, err = self.proc.communicate(timeout=5)
                raise AssertionError(f"gateway did not start: {err.decode()[-2000:]}")
            time.sleep(0.05)

    def health(self) -> dict[str, Any]:
        return httpx.get(self.url + "/health", timeout=5).json()


def write_config(path: Path, upstream_url: str, db_url: str, spool_dir: Path, fsync_ms: float = 5) -> Path:
    path.write_text(
        f'[store]\nurl = "{db_url}"\n\n'
        f'[models.llm]\nkind = "openai"\nbase_url = "{upstream_url}"\ntimeout_s = 5\n\n'
        f'[gateway]\nupstream = "llm"\nspool_dir = "{spool_dir}"\nspool_fsync_ms = {fsync_ms}\n')
    return path
