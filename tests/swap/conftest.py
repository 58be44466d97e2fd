"""Real servers on loopback: the stand-in LLM, a programmable stand-in candidate (a second
OpenAI-compatible server), and the gateway in front of both, driven with the `openai` client.

Requests ask the support agent about an order; the right answer is `lookup_order` with the
order id from the message. The LLM gives it; the candidate gives what its `behaviour` says.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from openai import OpenAI

from fledgling.calls import Call
from fledgling.config import Settings, parse_settings
from fledgling.demo.standin import StandInUpstream, read_body
from fledgling.gateway.app import GatewayApp
from fledgling.gateway.server import ServerThread, build_app
from fledgling.store import CallFilter, Store

TASK = "support-agent"
ADMIN_KEY = "admin-secret"
SYSTEM = "You are the support agent of an online shop. Use the tools."
TOOLS = [
    {"type": "function", "function": {
        "name": "lookup_order", "description": "Find an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "cancel_order", "description": "Cancel an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"},
                                                        "reason": {"type": "string"}},
                       "required": ["order_id", "reason"], "additionalProperties": False}}},
]
_ORDER = re.compile(r"A\d{4}")


def order_of(request: dict[str, Any]) -> str:
    return _ORDER.findall(request["messages"][-1]["content"])[0]


def tool_message(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": name, "arguments": orjson.dumps(args).decode()}}]}


def right_answer(request: dict[str, Any]) -> dict[str, Any]:
    return tool_message("lookup_order", {"order_id": order_of(request)})


def bucket(request: dict[str, Any]) -> int:
    """0..99, fixed per order id: which requests a planted fault hits."""
    return int(hashlib.sha256(order_of(request).encode()).hexdigest()[:8], 16) % 100


class Programmable:
    """A stand-in OpenAI-compatible server whose answer per request is set by `behaviour`:
    good | wrong (a valid call with the wrong order id) | invalid (unknown tool) | badargs
    (arguments missing a required field) | error (HTTP 500) | slow (good, after `slow_s`) |
    unsure (good, with low token log-probabilities). Asked for `logprobs`, a good answer comes
    with a mean of -0.05 per token, an unsure one with -2.5."""

    def __init__(self, name: str, behaviour: Callable[[dict[str, Any]], str] = lambda r: "good",
                 slow_s: float = 2.0):
        self.behaviour = behaviour
        self.slow_s = slow_s
        self.seen: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.inner = StandInUpstream(self._answer, model=name)

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        kind = request.pop("_kind")
        if kind == "wrong":
            return tool_message("lookup_order", {"order_id": "A0000"})
        if kind == "invalid":
            return tool_message("lookup_ordr", {"order_id": order_of(request)})
        if kind == "badargs":
            return tool_message("cancel_order", {"order_id": order_of(request)})
        if kind == "error":
            return {"error": "the candidate server crashed"}
        answer = right_answer(request)
        if request.get("logprobs"):
            lp = -2.5 if kind == "unsure" else -0.05
            answer["logprobs"] = {"content": [{"token": "t", "logprob": lp, "bytes": None, "top_logprobs": []}] * 4}
        return answer

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            return await self.inner(scope, receive, send)
        body = await read_body(receive)
        if not body:  # the caller gave up (a timed-out candidate call) before sending
            return None
        request = orjson.loads(body)
        kind = self.behaviour(request)
        self.seen[kind] += 1
        self.requests.append(request)
        if kind == "slow":  # answers after slow_s, unless the caller gives up first
            try:
                await asyncio.wait_for(_disconnect(receive), self.slow_s)
                return None
            except TimeoutError:
                pass
        patched = orjson.dumps({**request, "_kind": kind})

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": patched, "more_body": False}

        await self.inner(scope, replay, send)


async def _disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


@dataclass
class Swap:
    """The gateway with its LLM and candidate stand-ins."""

    url: str
    app: GatewayApp
    store: Store
    settings: Settings
    llm: Programmable
    candidate: Programmable
    admin: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.admin = httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)

    def client(self) -> OpenAI:
        return OpenAI(base_url=self.url + "/v1", api_key="agent-key", max_retries=0, timeout=20)

    def set_mode(self, mode: str, percent: float = 0) -> None:
        r = self.admin.post(f"/admin/rollout/{TASK}", json={"mode": mode, "percent": percent, "reason": "test"})
        assert r.status_code == 200, r.text

    def ask(self, i: int, *, session: str | None = None, client: OpenAI | None = None,
            stream: bool = False, tools: list[dict[str, Any]] = TOOLS) -> tuple[Any, dict[str, str]]:
        headers = {"X-Fledgling-Task": TASK}
        if session:
            headers["X-Fledgling-Session"] = session
        raw = (client or self.client()).chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "system", "content": SYSTEM},
                                      {"role": "user", "content": f"Where is my order A{i:04d}?"}],
            tools=tools, extra_headers=headers, temperature=0.7, stream=stream)
        return raw.parse(), dict(raw.headers)

    def calls(self) -> list[Call]:
        assert self.app.recorder.drain(20), self.app.recorder.stats()
        return list(self.store.iter_calls(CallFilter(task=TASK)))

    def figures(self) -> dict[str, Any]:
        return self.admin.get("/admin/swap").json()["tasks"][TASK]


def swap_settings(llm_url: str, cand_url: str, workdir: Path, cand: dict[str, Any] | None = None,
                  fallback_on: list[str] | None = None, **swap: Any) -> Settings:
    task_extra = {"fallback_on": fallback_on} if fallback_on is not None else {}
    return parse_settings({
        "models": {
            "llm": {"kind": "openai", "base_url": llm_url, "usd_per_mtok_in": 2.5, "usd_per_mtok_out": 10.0,
                    "timeout_s": 5},
            "cand": cand or {"kind": "openai", "base_url": cand_url, "model": "slm"},
        },
        "tasks": {TASK: {"upstream": "llm", "candidate": "cand", **task_extra,
                         "swap": {"budget_ms": 400, "retries": 1, "breaker_failures": 3,
                                  "breaker_cooldown_s": 0.5, **swap}}},
        "gateway": {"upstream": "llm", "spool_dir": str(workdir / "spool"), "spool_fsync_ms": 2},
    })


@pytest.fixture
def make_swap(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Swap]]:
    """Servers on the test's store (SQLite and PostgreSQL), stopped before the store goes."""
    servers: list[ServerThread] = []
    swaps: list[Swap] = []
    monkeypatch.setenv("FLEDGLING_ADMIN_KEY", ADMIN_KEY)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # as `fledgling gateway` runs (server.serve); 4 loops share the GIL here
    monkeypatch.delenv("FLEDGLING_GATEWAY_KEYS", raising=False)

    def make(*, llm: Programmable | None = None, candidate: Programmable | None = None,
             cand: dict[str, Any] | None = None, fallback_on: list[str] | None = None, **swap: Any) -> Swap:
        llm = llm or Programmable("stand-in-llm")
        candidate = candidate or Programmable("slm")
        urls = []
        for app in (llm, candidate):
            s = ServerThread(app)
            urls.append(s.start() + "/v1")
            servers.append(s)
        settings = swap_settings(urls[0], urls[1], tmp_path, cand, fallback_on, **swap)
        app = build_app(settings, store, keys=frozenset())
        s = ServerThread(app)
        url = s.start()
        servers.append(s)
        out = Swap(url, app, store, settings, llm, candidate)
        swaps.append(out)
        return out

    yield make
    for sw in swaps:
        sw.admin.close()
    for s in reversed(servers):
        s.stop()
    sys.setswitchinterval(switch)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)
