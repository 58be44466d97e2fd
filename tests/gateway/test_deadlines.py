"""Streams and deadlines, on loopback: a client that leaves ends the upstream relay, and an
upstream that trickles, stalls or never accepts is cut at its deadline.

The upstream here is a raw HTTP/1.1 server (asyncio streams, its own thread) so that it can
trickle a body byte by byte and notice the moment its client hangs up: it watches its socket
for end-of-file while it writes.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import orjson
import pytest

from fledgling.calls import Call
from fledgling.config import parse_settings
from fledgling.demo.standin import StandInUpstream
from fledgling.gateway.app import GatewayApp
from fledgling.gateway.server import ServerThread, build_app
from fledgling.store import CallFilter, Store
from fledgling.swap.router import Router

TASK = "support-agent"
ADMIN_KEY = "admin-secret"
STEP_S = 0.03  # between two pieces of a slow answer
DRIP_CHUNKS = 150  # a drip stream lasts DRIP_CHUNKS * STEP_S = 4.5 s


def words(n: int) -> str:
    return "".join(f"w{i} " for i in range(n))


def sse_chunk(text: str) -> bytes:
    return b"data: " + orjson.dumps({
        "id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 1, "model": "slow-llm",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}) + b"\n\n"


@dataclass
class Conn:
    """One request the slow upstream served."""

    behaviour: str
    words: int  # in a drip stream
    sent: int = 0  # pieces written
    finished: bool = False  # wrote the whole answer
    hung_up_at: float | None = None  # when the client's end of the connection went away
    hung_up: threading.Event = field(default_factory=threading.Event)
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # the same, for the upstream's loop


class SlowUpstream:
    """An OpenAI-compatible upstream whose request's `model` picks how it answers:

        drip[:N]      an SSE stream of N words (DRIP_CHUNKS), one every STEP_S
        trickle-json  a JSON answer of 100 kB, declared up front, one byte every STEP_S
        trickle-sse   an SSE stream that never ends, one word every STEP_S
        stall-sse     one SSE chunk, then silence for 10 s
        stall-json    the headers and a few bytes of a JSON body, then silence for 10 s
        silent        nothing at all for 10 s (not even headers)
    """

    def __init__(self) -> None:
        self.conns: list[Conn] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-upstream", daemon=True)
        self.url = ""

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), self._loop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(asyncio.sleep(0))  # let the cancelled handlers finish
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        request = orjson.loads(await reader.readexactly(length))
        kind, _, count = request["model"].partition(":")
        conn = Conn(kind, int(count or DRIP_CHUNKS))
        self.conns.append(conn)

        async def watch() -> None:  # the gateway never sends more on this connection: EOF = gone
            await reader.read()
            conn.hung_up_at = time.monotonic()
            conn.hung_up.set()
            conn.gone.set()

        watcher = asyncio.ensure_future(watch())
        try:
            await self._answer(conn, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            await asyncio.sleep(0)
            if not watcher.done():
                watcher.cancel()
            writer.close()

    async def _answer(self, conn: Conn, writer: asyncio.StreamWriter) -> None:
        kind = conn.behaviour

        async def linger() -> None:  # silence, until the client hangs up (or 10 s)
            try:
                await asyncio.wait_for(conn.gone.wait(), 10)
            except TimeoutError:
                pass

        async def write(data: bytes) -> None:
            if conn.hung_up.is_set():
                raise ConnectionResetError("the client hung up")
            writer.write(data)
            await writer.drain()
            conn.sent += 1

        async def chunk(data: bytes) -> None:  # HTTP/1.1 chunked framing
            await write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        if kind == "silent":
            await linger()
            return
        if kind in ("trickle-json", "stall-json"):
            await write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: 100000\r\n\r\n")
            await write(b'{"id": ')
            if kind == "stall-json":
                await linger()
                return
            while True:
                await asyncio.sleep(STEP_S)
                await write(b" ")
        await write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n")
        if kind == "stall-sse":
            await chunk(sse_chunk("Hel"))
            await linger()
            return
        i = 0
        while kind == "trickle-sse" or i < conn.words:
            await chunk(sse_chunk(f"w{i} "))
            i += 1
            await asyncio.sleep(STEP_S)
        await chunk(b"data: [DONE]\n\n")
        await write(b"0\r\n\r\n")
        conn.finished = True

    def only(self) -> Conn:
        [conn] = self.conns
        return conn


@pytest.fixture
def slow() -> Iterator[SlowUpstream]:
    with SlowUpstream() as up:
        yield up


@dataclass
class Gateway:
    url: str
    app: GatewayApp

    def post(self, model: str, *, stream: bool) -> httpx.Response:
        return httpx.post(self.url + "/v1/chat/completions", json=body(model, stream=stream),
                          headers={"X-Fledgling-Task": TASK}, timeout=10)

    def stream(self, model: str, within: float = 3.0) -> bytes:
        """The whole SSE body, failing (rather than hanging) if it takes longer than `within` s."""
        t0 = time.monotonic()
        raw = b""
        with httpx.Client(timeout=10) as client, client.stream(
                "POST", self.url + "/v1/chat/completions", json=body(model, stream=True),
                headers={"X-Fledgling-Task": TASK}) as resp:
            for piece in resp.iter_bytes():
                raw += piece
                assert time.monotonic() - t0 < within, "the stream did not end in time"
        return raw

    def call(self) -> Call:
        """The one call the test made, as stored. When its client left, nobody waited for the
        acknowledgment: the call is recorded just after the upstream connection is closed."""
        store, deadline = self.app.recorder.store, time.monotonic() + 5
        while not store.query_calls(CallFilter(task=TASK)).items:
            assert time.monotonic() < deadline, "the call was never recorded"
            time.sleep(0.02)
        assert self.app.recorder.drain(10), self.app.recorder.stats()
        [call] = store.query_calls(CallFilter(task=TASK)).items
        return call


def body(model: str, *, stream: bool) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "Tell me a story"}]}


def events(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: {")]


@pytest.fixture
def start_gateway(sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A gateway on loopback in front of `base_url`, with [gateway] deadlines given in seconds,
    and a task in `mode` (a shadow candidate is a stand-in that answers at once)."""
    servers: list[ServerThread] = []
    monkeypatch.setenv("FLEDGLING_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.delenv("FLEDGLING_GATEWAY_KEYS", raising=False)

    def start(base_url: str, *, connect: float = 2.0, idle: float = 2.0, total: float = 10.0,
              mode: str = "record") -> Gateway:
        candidate = ServerThread(StandInUpstream(model="slm"))
        servers.append(candidate)
        settings = parse_settings({
            "models": {"llm": {"kind": "openai", "base_url": base_url},
                       "cand": {"kind": "openai", "base_url": candidate.start() + "/v1", "model": "slm"}},
            "tasks": {TASK: {"upstream": "llm", "candidate": "cand"}},
            "gateway": {"upstream": "llm", "spool_dir": str(tmp_path / "spool"), "spool_fsync_ms": 2,
                        "upstream_connect_timeout_s": connect, "upstream_idle_timeout_s": idle,
                        "upstream_total_timeout_s": total},
        })
        app = build_app(settings, sqlite_store, keys=frozenset())
        server = ServerThread(app)
        url = server.start()
        servers.append(server)
        if mode != "record":
            percent = 1 if mode == "canary" else 0  # a canary's LLM share: 99%
            r = httpx.post(f"{url}/admin/rollout/{TASK}", json={"mode": mode, "percent": percent, "reason": "test"},
                           headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
            assert r.status_code == 200, r.text
        return Gateway(url, app)

    yield start
    for server in reversed(servers):
        server.stop()


# -- a client that leaves mid-stream -----------------------------------------------------------

@pytest.mark.parametrize("mode", ["record", "shadow"])
def test_a_client_that_leaves_mid_stream_closes_the_upstream_and_the_partial_answer_is_kept(
        slow: SlowUpstream, start_gateway, mode: str) -> None:
    gw = start_gateway(slow.url, mode=mode)
    seen = ""
    with httpx.Client(timeout=10) as client, client.stream(
            "POST", gw.url + "/v1/chat/completions", json=body("drip", stream=True),
            headers={"X-Fledgling-Task": TASK}) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                seen += orjson.loads(line[6:])["choices"][0]["delta"]["content"]
            if seen.count("w") == 3:
                break
    left_at = time.monotonic()  # the client's connection is closed as the blocks end

    conn = slow.only()
    assert conn.hung_up.wait(DRIP_CHUNKS * STEP_S), "the upstream never saw its connection close"
    assert conn.hung_up_at - left_at < 1.0, "the gateway kept reading the stream after the client left"
    assert not conn.finished and conn.sent < DRIP_CHUNKS / 2

    call = gw.call()
    assert call.status == "error" and call.error == "client disconnected mid-stream"
    assert seen == words(3)
    partial = call.response.content
    assert partial.startswith(seen) and words(DRIP_CHUNKS).startswith(partial)
    assert len(partial) < len(words(DRIP_CHUNKS))


def test_a_stream_the_client_reads_to_the_end_is_not_cut(slow: SlowUpstream, start_gateway) -> None:
    """The disconnect watch must not mistake a finished request for a client that left."""
    gw = start_gateway(slow.url)
    raw = gw.stream("drip:20")
    text = "".join(e["choices"][0]["delta"]["content"] for e in events(raw))
    assert text == words(20) and raw.rstrip().endswith(b"data: [DONE]")
    call = gw.call()
    assert call.status == "ok" and call.response.content == words(20)
    assert slow.only().finished


# -- the total deadline: an upstream that trickles --------------------------------------------

def test_a_trickling_answer_is_cut_at_the_total_deadline(slow: SlowUpstream, start_gateway) -> None:
    gw = start_gateway(slow.url, idle=0.5, total=0.6)
    t0 = time.monotonic()
    r = gw.post("trickle-json", stream=False)
    elapsed = time.monotonic() - t0
    assert r.status_code == 504, r.text
    error = r.json()["error"]
    assert error["code"] == "upstream_timeout" and error["type"] == "upstream_error"
    assert error["message"] == "upstream 'llm' did not finish within its total deadline of 0.6s"
    assert 0.55 < elapsed < 2.0
    assert slow.only().hung_up.wait(2) and slow.only().sent > 5  # it was trickling, not idle
    call = gw.call()
    assert call.status == "error" and call.error == error["message"]


def test_a_trickling_stream_is_cut_at_the_total_deadline(slow: SlowUpstream, start_gateway) -> None:
    gw = start_gateway(slow.url, idle=0.5, total=0.6)
    t0 = time.monotonic()
    raw = gw.stream("trickle-sse")
    elapsed = time.monotonic() - t0
    got = events(raw)
    *chunks, last = got
    assert last == {"error": {"message": "upstream 'llm' did not finish within its total deadline of 0.6s",
                              "type": "upstream_error", "param": None, "code": "upstream_timeout"}}
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
    assert len(chunks) > 5 and text == words(len(chunks))
    assert 0.55 < elapsed < 2.0
    assert slow.only().hung_up.wait(2)
    call = gw.call()
    assert call.status == "error" and call.error == last["error"]["message"]
    assert call.response.content == text


# -- the idle deadline: an upstream that stops ------------------------------------------------

@pytest.mark.parametrize(("behaviour", "message"), [
    ("silent", "upstream 'llm' did not answer within 0.3s"),
    ("stall-json", "upstream 'llm' stopped sending for 0.3s mid-answer"),
])
def test_an_upstream_that_goes_silent_is_cut_at_the_idle_deadline(
        slow: SlowUpstream, start_gateway, behaviour: str, message: str) -> None:
    gw = start_gateway(slow.url, idle=0.3, total=10)
    t0 = time.monotonic()
    r = gw.post(behaviour, stream=False)
    elapsed = time.monotonic() - t0
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
    assert r.json()["error"]["message"] == message
    assert 0.25 < elapsed < 1.5
    call = gw.call()
    assert call.status == "error" and call.error == message


def test_a_stream_that_stalls_is_cut_at_the_idle_deadline(slow: SlowUpstream, start_gateway) -> None:
    gw = start_gateway(slow.url, idle=0.3, total=10)
    t0 = time.monotonic()
    raw = gw.stream("stall-sse")
    elapsed = time.monotonic() - t0
    first, last = events(raw)
    assert first["choices"][0]["delta"]["content"] == "Hel"
    assert last["error"]["code"] == "upstream_timeout"
    assert last["error"]["message"] == "upstream 'llm' stalled mid-stream"
    assert 0.25 < elapsed < 1.5
    assert slow.only().hung_up.wait(2)
    call = gw.call()
    assert call.status == "error" and call.error == "upstream 'llm' stalled mid-stream"
    assert call.response.content == "Hel"


# -- the connect deadline: a listener that never accepts --------------------------------------

@pytest.fixture
def full_backlog() -> Iterator[str]:
    """A listening socket whose accept queue is full: the kernel drops further SYNs, so a
    connect to it neither succeeds nor fails until the caller gives up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    for s in [*fillers, listener]:
        s.close()


def test_an_upstream_that_never_accepts_is_cut_at_the_connect_deadline(
        full_backlog: str, start_gateway) -> None:
    gw = start_gateway(full_backlog, connect=0.3, idle=5, total=10)
    t0 = time.monotonic()
    r = gw.post("any", stream=False)
    elapsed = time.monotonic() - t0
    assert r.status_code == 504, r.text
    assert r.json()["error"] == {"message": "cannot connect to upstream 'llm' within 0.3s",
                                 "type": "upstream_error", "param": None, "code": "upstream_timeout"}
    assert 0.25 < elapsed < 1.5
    call = gw.call()
    assert call.status == "error" and call.error == "cannot connect to upstream 'llm' within 0.3s"


# -- where the deadlines come from ------------------------------------------------------------

def test_deadlines_come_from_gateway_settings_and_a_model_may_keep_its_own_idle_deadline() -> None:
    settings = parse_settings({
        "models": {"plain": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
                   "patient": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "timeout_s": 300}},
        "tasks": {"a": {"upstream": "plain"}, "b": {"upstream": "patient"}},
        "gateway": {"upstream": "http://127.0.0.1:9/v1", "upstream_connect_timeout_s": 3,
                    "upstream_idle_timeout_s": 20, "upstream_total_timeout_s": 120},
    })
    router = Router(settings)

    def deadlines(task: str) -> tuple[float, float, float]:
        u = router.route(task).upstream
        return u.connect_timeout_s, u.timeout_s, u.total_timeout_s

    assert {task: deadlines(task) for task in ("a", "b", "other")} == {
        "a": (3, 20, 120), "b": (3, 300, 120), "other": (3, 20, 120)}


# -- a client that leaves before any answer ------------------------------------------------------

@pytest.mark.parametrize("mode", ["record", "shadow", "canary"])
def test_a_client_that_leaves_before_the_answer_closes_the_upstream(
        slow: SlowUpstream, start_gateway, mode: str) -> None:
    """The upstream has not even sent its headers when the client gives up: the gateway stops
    waiting on its behalf (a real LLM would bill the whole answer) and records why."""
    gw = start_gateway(slow.url, idle=8.0, total=9.0, mode=mode)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gw.url + "/v1/chat/completions", json=body("silent", stream=False),
                   headers={"X-Fledgling-Task": TASK}, timeout=httpx.Timeout(10, read=0.4))
    left_at = time.monotonic()
    conn = slow.only()
    assert conn.hung_up.wait(5), "the upstream never saw its connection close"
    assert conn.hung_up_at - left_at < 1.0, "the gateway kept waiting after the client left"
    call = gw.call()
    assert call.status == "error" and call.error == "client disconnected before the answer"
