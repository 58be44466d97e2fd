"""Poison inputs under load: every acknowledged call is stored or quarantined, and counted.

A real gateway on loopback in front of a real loopback upstream whose answers are poisoned on
request (the last user message names the poison). Several clients send a mix of good and
poison calls; then acknowledged = stored + quarantined, later good calls are stored, `/health`
says `degraded` while a fault lasts (and `ok` again after), and a restarted gateway leaves
nothing in the spool. Runs on SQLite and PostgreSQL (`store_url`).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fledgling.calls import Call, Request
from fledgling.capture.recording.exchange import Exchange, exchange_to_call
from fledgling.capture.recording.quarantine import quarantine_report, read_quarantine
from fledgling.capture.recording.recorder import Recorder
from fledgling.demo.standin import read_body
from fledgling.errors import ConfigError
from fledgling.gateway.server import ServerThread, build_app
from fledgling.store import Store

from .conftest import gateway_settings

DEEP = 300  # deeper than orjson writes (254): the spool cannot write such an answer as is
MIDDLE = 200  # writable by orjson, deeper than the store's limit (128)


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def _completion(model: Any, content: Any = "fine", **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2}, **extra}


def _chunk(choices: Any, model: Any = "m") -> bytes:
    return b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "model": model,
                                     "choices": choices}) + b"\n\n"


class PoisonUpstream:
    """An OpenAI-compatible upstream; the last user message chooses the (poisoned) answer."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        req = orjson.loads(await read_body(receive))
        kind = req["messages"][-1]["content"]
        model = req.get("model")
        if req.get("stream"):
            good = [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}]
            events = [_chunk(good, model)]
            if kind == "sse-oops":
                events.append(_chunk(["oops"], model))
            elif kind == "sse-nul":
                events.append(_chunk([{"index": 0, "delta": {"content": "a\u0000b"}}], model))
            events.append(_chunk([{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}], model))
            events.append(b"data: [DONE]\n\n")
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            for ev in events:
                await send({"type": "http.response.body", "body": ev, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        answers: dict[str, Any] = {
            "good": _completion(model),
            "choice-string": {"choices": [{"message": "just a string"}]},
            "message-list": {"choices": [{"message": ["a", "b"]}], "model": model},
            "nul-answer": _completion(model, "a\u0000b"),
            "deep-answer": _completion(model, extra_field=_nested(DEEP)),
            "middle-answer": _completion(model, extra_field=_nested(MIDDLE)),
            "usage-overflow": {**_completion(model), "usage": {"prompt_tokens": 1e20}},
        }
        body = answers[kind] if kind in answers else _completion(model)
        if kind == "deep-answer":  # orjson cannot write it: spell the nesting out by hand
            raw = orjson.dumps(_completion(model, extra_field="X")).replace(
                b'"X"', b"[" * DEEP + b'"bottom"' + b"]" * DEEP)
        else:
            raw = orjson.dumps(body)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(raw)).encode())]})
        await send({"type": "http.response.body", "body": raw})


@pytest.fixture
def poison_url() -> Iterator[str]:
    with ServerThread(PoisonUpstream()) as url:
        yield url + "/v1"


class Gateway:
    """A real gateway (uvicorn thread) on loopback; stop() is a graceful shutdown."""

    def __init__(self, store_url: str, upstream_url: str, workdir: Path):
        self.store = Store(store_url)
        # not a timeout test: under the suite's load a good answer took longer than the usual
        # 0.6 s once, and was (rightly) recorded as an upstream error
        self.app = build_app(gateway_settings(upstream_url, workdir, timeout_s=10.0), self.store)
        self.app.recorder.fault_window_s = 1.5
        self.app.recorder.pending_bound_s = 1.0
        self.server = ServerThread(self.app)
        self.url = self.server.start()
        self.spool_dir = Path(self.app.recorder.spool.directory)

    def health(self) -> dict[str, Any]:
        return httpx.get(self.url + "/health", timeout=10).json()

    def stop(self) -> None:
        self.server.stop()
        self.store.close()


# Poison on the way in (refused, 400) and on the way back (odd or unstorable answers).
MIX: list[tuple[str, dict[str, Any]]] = [
    ("good", {}),
    ("choice-string", {}),
    ("good", {"stream": True}),
    ("sse-oops", {"stream": True}),
    ("sse-nul", {"stream": True}),
    ("model-7", {"model": 7}),
    ("message-list", {}),
    ("nul-answer", {}),
    ("good", {}),
    ("deep-answer", {}),
    ("middle-answer", {}),
    ("usage-overflow", {}),
    ("nul-request", {}),
    ("deep-request", {}),
]


def _body(kind: str, extra: dict[str, Any]) -> dict[str, Any]:
    user: Any = kind
    body: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": user}], **extra}
    if kind == "nul-request":
        body["messages"] = [{"role": "user", "content": "a\u0000b"}, {"role": "user", "content": "good"}]
    elif kind == "deep-request":
        body["metadata_blob"] = _nested(MIDDLE)
    return body


class Load:
    """Concurrent clients cycling through MIX until stopped; keeps what each answer was."""

    def __init__(self, url: str, workers: int = 4, kinds: list[tuple[str, dict[str, Any]]] = MIX):
        self.url = url + "/v1/chat/completions"
        self.kinds = kinds
        self.acked: dict[str, str] = {}  # call id -> kind, for every recorded (acknowledged) call
        self.refused: list[tuple[str, int]] = []
        self.statuses: list[tuple[str, int]] = []
        self.transport_errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def _run(self, offset: int) -> None:
        i = offset
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                kind, extra = self.kinds[i % len(self.kinds)]
                i += 1
                try:
                    r = client.post(self.url, content=orjson.dumps(_body(kind, extra)),
                                    headers={"content-type": "application/json"})
                    r.read()
                except httpx.HTTPError:
                    with self._lock:
                        self.transport_errors += 1
                    continue
                call_id = r.headers.get("x-fledgling-call-id")
                with self._lock:
                    self.statuses.append((kind, r.status_code))
                    if call_id is not None:
                        self.acked[call_id] = kind
                    else:
                        self.refused.append((kind, r.status_code))

    def count(self, kind: str | None = None) -> int:
        with self._lock:
            return sum(1 for k in self.acked.values() if kind is None or k == kind)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(20)


def _wait(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _quarantined_ids(spool_dir: Path) -> list[str]:
    return [e["id"] for e in read_quarantine(spool_dir)]


def _account(load: Load, store: Store, spool_dir: Path) -> tuple[set[str], list[str]]:
    """acknowledged = stored + quarantined, each call exactly once."""
    stored = {c.id for c in store.iter_calls()}
    quarantined = _quarantined_ids(spool_dir)
    acked = set(load.acked)
    assert len(quarantined) == len(set(quarantined)), "a record was quarantined twice"
    assert not (stored & set(quarantined)), "a record is both stored and quarantined"
    missing = acked - stored - set(quarantined)
    assert not missing, f"{len(missing)} acknowledged calls are neither stored nor quarantined: " \
                        f"{sorted({load.acked[m] for m in missing})}"
    assert len(acked) == len(stored & acked) + len(set(quarantined) & acked)
    return stored, quarantined


def _restart_leaves_nothing(store_url: str, upstream_url: str, workdir: Path) -> None:
    again = Gateway(store_url, upstream_url, workdir)
    try:
        assert again.app.recorder.drain(30), again.app.recorder.stats()
        r = httpx.post(again.url + "/v1/chat/completions", json=_body("good", {}), timeout=10)
        assert r.status_code == 200
        assert again.app.recorder.drain(30)
        assert again.store.get_call(r.headers["x-fledgling-call-id"]) is not None
    finally:
        again.stop()
    assert list(again.spool_dir.glob("*.spool")) == [], "spool files stuck after a restart"


def _check_kinds(load: Load, store: Store, quarantined: list[str]) -> None:
    """What each poison became, as stored."""
    by_kind: dict[str, list[Call]] = {}
    for call_id, kind in list(load.acked.items()):
        call = store.get_call(call_id)
        if call is not None:
            by_kind.setdefault(kind, []).append(call)
    for call in by_kind.get("good", []):
        assert call.status == "ok" and call.response is not None and call.response.content
    for kind in ("choice-string", "message-list", "sse-oops", "sse-nul", "nul-answer",
                 "deep-answer", "middle-answer"):
        for call in by_kind.get(kind, []):
            assert call.status == "error" and "unreadable upstream response" in call.error, (kind, call.error)
            assert call.metadata["raw_response"], kind
    for call in by_kind.get("choice-string", []):
        assert "just a string" in call.metadata["raw_response"]
    for call in by_kind.get("model-7", []):  # the answer is fine: kept, the odd model named
        assert call.status == "ok" and call.model is None and call.response.content == "fine"
        assert "not a string" in call.metadata["response_notes"][0]
    usage_ids = {i for i, k in load.acked.items() if k == "usage-overflow"}
    assert usage_ids and usage_ids <= set(quarantined), "a record the store refuses is quarantined"
    assert {k for k, _ in load.refused} <= {"nul-request", "deep-request"}
    assert {s for k, s in load.statuses if k in ("nul-request", "deep-request")} == {400}


def test_poison_answers_and_requests_under_load(store_url: str, poison_url: str, tmp_path: Path) -> None:
    gw = Gateway(store_url, poison_url, tmp_path)
    try:
        load = Load(gw.url)
        _wait(lambda: load.count("usage-overflow") >= 3 and load.count() >= 120, what="load")
        _wait(lambda: any("quarantined" in r for r in gw.health()["reasons"]), what="degraded health")
        assert gw.health()["status"] == "degraded"
        load.stop()
        assert not load.transport_errors
        assert gw.app.recorder.drain(30), gw.app.recorder.stats()
        _, quarantined = _account(load, gw.store, gw.spool_dir)
        _check_kinds(load, gw.store, quarantined)
        assert gw.health()["recorder"]["quarantined"] == len(quarantined)
        # good calls keep being stored after the poison, and health recovers once it stops
        r = httpx.post(gw.url + "/v1/chat/completions", json=_body("good", {}), timeout=10)
        assert gw.app.recorder.drain(10)
        assert gw.store.get_call(r.headers["x-fledgling-call-id"]).status == "ok"
        _wait(lambda: gw.health()["status"] == "ok", timeout=10, what="health back to ok")
        report = quarantine_report(gw.spool_dir)
        assert report["count"] == len(quarantined) and sum(report["by_reason"].values()) == len(quarantined)
    finally:
        gw.stop()
    _restart_leaves_nothing(store_url, poison_url, tmp_path)


GOOD_MIX = [("good", {}), ("good", {"stream": True}), ("choice-string", {}), ("good", {})]


def _make_immutable(path: Path, on: bool) -> None:
    """Read-only for root too: `chattr +i` on the directory, then on the files in it (chmod for
    others). The directory goes first, so no file can vanish or appear while the files are
    marked; a file the writer deleted just before is skipped."""
    if os.geteuid() != 0:
        for t in [path, *path.iterdir()]:
            t.chmod(0o500 if on and t.is_dir() else 0o400 if on else 0o700 if t.is_dir() else 0o600)
        return
    flag = "+i" if on else "-i"
    if on:
        subprocess.run(["chattr", flag, str(path)], check=True)
    for t in path.iterdir():
        subprocess.run(["chattr", flag, str(t)], check=False, capture_output=True)
    if not on:
        subprocess.run(["chattr", flag, str(path)], check=True)


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("chattr") is None, reason="needs chattr as root")
def test_read_only_spool_mid_run(store_url: str, poison_url: str, tmp_path: Path) -> None:
    gw = Gateway(store_url, poison_url, tmp_path)
    gw.app.recorder.spool.segment_bytes = 8 * 1024  # new segments keep being needed
    made_read_only = False
    try:
        load = Load(gw.url, kinds=GOOD_MIX)
        _wait(lambda: load.count() >= 40, what="load")
        _make_immutable(gw.spool_dir, True)
        made_read_only = True
        before = load.count()
        _wait(lambda: gw.health()["status"] == "degraded", what="degraded health")
        health = gw.health()
        assert any("spool" in r and "cannot write" in r for r in health["reasons"]), health
        _wait(lambda: load.count() >= before + 60, what="load while read-only")
        assert gw.app.recorder.stats()["unspooled"] > 0
        _make_immutable(gw.spool_dir, False)
        made_read_only = False
        after = load.count()
        _wait(lambda: load.count() >= after + 40, what="load after repair")
        load.stop()
        assert gw.app.recorder.drain(30), gw.app.recorder.stats()
        _account(load, gw.store, gw.spool_dir)
        _wait(lambda: gw.health()["status"] == "ok", timeout=10, what="health back to ok")
    finally:
        if made_read_only:
            _make_immutable(gw.spool_dir, False)
        gw.stop()
    _restart_leaves_nothing(store_url, poison_url, tmp_path)


def test_spool_directory_removed_mid_run(store_url: str, poison_url: str, tmp_path: Path) -> None:
    gw = Gateway(store_url, poison_url, tmp_path)
    try:
        load = Load(gw.url, kinds=GOOD_MIX)
        _wait(lambda: load.count() >= 40, what="load")
        shutil.rmtree(gw.spool_dir)
        _wait(lambda: gw.health()["status"] == "degraded", what="degraded health")
        assert any("vanished" in r for r in gw.health()["reasons"])
        before = load.count()
        _wait(lambda: load.count() >= before + 60, what="load after removal")
        _wait(lambda: list(gw.spool_dir.glob("*.spool")) != [], what="the spool writing again")
        load.stop()
        assert gw.app.recorder.drain(30), gw.app.recorder.stats()
        _account(load, gw.store, gw.spool_dir)
        assert stat.S_IMODE(gw.spool_dir.stat().st_mode) == 0o700  # recreated owner-only
        _wait(lambda: gw.health()["status"] == "ok", timeout=10, what="health back to ok")
    finally:
        gw.stop()
    _restart_leaves_nothing(store_url, poison_url, tmp_path)


def _kill_thread(thread: threading.Thread) -> None:
    """Raise SystemExit inside a running thread (what a fatal error there would do), again
    until it dies: one that lands in a finalizer (a driver's cleanup) is swallowed there."""
    deadline = time.monotonic() + 30
    while thread.is_alive():
        assert time.monotonic() < deadline, "the thread would not die"
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                   ctypes.py_object(SystemExit))
        thread.join(1.0)


@pytest.mark.parametrize("victim", ["writer", "spool"])
def test_killed_thread_is_restarted(store_url: str, poison_url: str, tmp_path: Path, victim: str) -> None:
    gw = Gateway(store_url, poison_url, tmp_path)
    part = gw.app.recorder.writer if victim == "writer" else gw.app.recorder.spool
    try:
        load = Load(gw.url, kinds=GOOD_MIX)
        _wait(lambda: load.count() >= 40, what="load")
        old = part._thread
        _kill_thread(old)
        _wait(lambda: not old.is_alive(), what="the thread to die")
        _wait(lambda: part.restarts == 1 and part.alive, timeout=10, what="the restart")
        health = gw.health()
        assert health["status"] == "degraded" and any("died" in r for r in health["reasons"]), health
        before = load.count()
        _wait(lambda: load.count() >= before + 60, what="load after the restart")
        load.stop()
        assert gw.app.recorder.drain(30), gw.app.recorder.stats()
        _account(load, gw.store, gw.spool_dir)
        _wait(lambda: gw.health()["status"] == "ok", timeout=10, what="health back to ok")
    finally:
        gw.stop()
    _restart_leaves_nothing(store_url, poison_url, tmp_path)


def test_store_refused_record_is_quarantined_not_retried_forever(store_url: str, tmp_path: Path) -> None:
    """A record with NUL (PostgreSQL refuses it; SQLite keeps it) recorded directly, as the
    client wrapper does, between good ones: the writer goes on, the bad one is counted."""
    with Store(store_url) as store:
        rec = Recorder(store, tmp_path / "spool", fsync_ms=1).start()
        try:
            def call(i: int, text: str) -> Call:
                return Call(id=f"call-{i}", source="instrument", created_at=_now(),
                            request=Request(messages=[{"role": "user", "content": text}]))

            ids = [f"call-{i}" for i in range(30)]
            for i in range(30):
                rec.record(call(i, "a\u0000b" if i % 10 == 5 else f"hello {i}"))
            assert rec.drain(30), rec.stats()
            stored = {c.id for c in store.iter_calls()}
            quarantined = _quarantined_ids(tmp_path / "spool")
            assert set(ids) == stored | set(quarantined) and not stored & set(quarantined)
            if store.dialect == "postgresql":
                assert sorted(quarantined) == ["call-15", "call-25", "call-5"]
                assert rec.health()[0] == "degraded"
            rec.record(call(99, "later"))
            assert rec.drain(10) and store.get_call("call-99") is not None
        finally:
            rec.close()
        assert list((tmp_path / "spool").glob("*.spool")) == []


def _now():
    from datetime import UTC, datetime
    return datetime.now(UTC)


ODD = [
    {"choices": [{"message": "just a string"}]},
    {"choices": ["oops"]},
    {"choices": [{"message": {"content": 5}}]},
    {"choices": [{"message": {"tool_calls": "x"}}]},
    {"choices": [{"message": {"tool_calls": [{"function": "f"}]}}]},
    {"choices": [{"message": {"content": "x"}, "finish_reason": {"a": 1}}]},
    {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "many"}},
    {"choices": [{"message": {"content": "x"}}], "usage": "lots"},
    {"choices": []},
    ["not", "an", "object"],
    "text",
]
ODD_SSE = [
    [b'data: {"choices":["oops"]}\n\n'],
    [b'data: {"choices":"oops"}\n\n'],
    [b'data: {"choices":[{"delta":"x"}]}\n\n'],
    [b'data: {"choices":[{"delta":{"content":7}}]}\n\n'],
    [b'data: {"choices":[{"delta":{"tool_calls":[{"index":{"a":1}}]}}]}\n\n'],
    [b'data: {"choices":[{"delta":{"tool_calls":["x"]}}]}\n\n'],
    [b'data: {"choices":[{"delta":{"content":"a\\u0000b"}}]}\n\n'],
    [b'data: {"model":7,"choices":[{"delta":{"content":"ok"}}]}\n\n', "stray", 5, None],
    [b"\x00\xff garbage"],
]


@pytest.mark.parametrize("answer", ODD + [{"stream": c} for c in ODD_SSE], ids=repr)
def test_any_exchange_converts_to_a_storable_call(answer: Any, store_url: str) -> None:
    stream = answer.get("stream") if isinstance(answer, dict) else None
    ex = Exchange(id="call_x", created_at=_now(), task="t", status_code=200,
                  request={"model": 7, "messages": [{"role": "user", "content": "hi"}, "junk"]},
                  response=None if stream else answer, stream_chunks=stream)
    call = exchange_to_call(ex)  # never raises
    assert call.id == "call_x"
    with Store(store_url) as store:
        assert store.insert_calls([call]) == 1  # and the store can hold it
        back = store.get_call("call_x")
    if back.status == "error":
        assert back.metadata["raw_response"] and back.response is None
    else:
        assert back.response is not None and back.metadata.get("response_notes")


def test_unwritable_spool_refuses_to_start(tmp_path: Path, poison_url: str) -> None:
    blocker = tmp_path / "spool"
    blocker.write_text("a file where the spool directory should be")
    with Store(f"sqlite:///{tmp_path}/f.db") as store, pytest.raises(ConfigError, match="spool directory"):
        build_app(gateway_settings(poison_url, tmp_path), store)


def test_spool_files_are_owner_only(poison_url: str, tmp_path: Path) -> None:
    gw = Gateway(f"sqlite:///{tmp_path}/f.db", poison_url, tmp_path)
    try:
        r = httpx.post(gw.url + "/v1/chat/completions", json=_body("usage-overflow", {}), timeout=10)
        assert r.status_code == 200
        assert gw.app.recorder.drain(10)
        assert stat.S_IMODE(gw.spool_dir.stat().st_mode) == 0o700
        for path in gw.spool_dir.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert (gw.spool_dir / "quarantine.jsonl").exists()
    finally:
        gw.stop()


def test_calls_waiting_on_a_locked_store_make_health_degraded_then_all_land(tmp_path: Path) -> None:
    """Another process holds the SQLite store's write lock: the writer cannot store anything.
    Calls wait (none is quarantined: a lock is not a refusal), /health says how long past the
    configured bound, and once the lock goes every call is stored."""
    import sqlite3

    from fledgling.config import GatewaySettings

    db = tmp_path / "fledgling.db"
    with Store(f"sqlite:///{db}") as store:
        cfg = GatewaySettings(spool_dir=str(tmp_path / "spool"), spool_fsync_ms=1,
                              health_pending_bound_s=0.5, health_fault_window_s=0.5)
        rec = Recorder.from_settings(store, cfg).start()
        holder = sqlite3.connect(db, timeout=0, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            for i in range(20):
                rec.record(Call(id=f"locked-{i}", source="instrument", created_at=_now(),
                                request=Request(messages=[{"role": "user", "content": f"hi {i}"}])))
            _wait(lambda: rec.health()[0] == "degraded"
                  and any("waiting for the store" in r for r in rec.health()[1]), what="degraded health")
            holder.execute("ROLLBACK")
            assert rec.drain(30), rec.stats()
            assert {c.id for c in store.iter_calls()} == {f"locked-{i}" for i in range(20)}
            assert _quarantined_ids(tmp_path / "spool") == []
            _wait(lambda: rec.health()[0] == "ok", timeout=10, what="health back to ok")
        finally:
            holder.close()
            rec.close()
