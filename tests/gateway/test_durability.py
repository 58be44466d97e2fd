"""Recording never loses what it acknowledged: kill -9 under load, restart, count; graceful drain."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from fledgling.calls import Call, Request
from fledgling.capture.recording.spool import Spool, claim_orphans, read_segment, spooled_ids
from fledgling.gateway.server import ServerThread
from fledgling.store import Store

from .conftest import FaultyUpstream, GatewayProcess, free_port, write_config

BODY = {"model": "gpt-4o", "messages": [{"role": "system", "content": "You triage tickets."},
                                        {"role": "user", "content": "my order is late"}]}


class Load:
    """Concurrent agents hammering the gateway until stopped; keeps the ids it got answers for."""

    def __init__(self, url: str, workers: int = 6):
        self.url = url + "/v1/chat/completions"
        self.answered: list[str] = []
        self.failed = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(self.url, json=BODY)
                except httpx.HTTPError:
                    self.failed += 1
                    time.sleep(0.01)
                    continue
                if r.status_code == 200:
                    self.answered.append(r.headers["x-fledgling-call-id"])

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _stored_ids(store: Store) -> set[str]:
    return {c.id for c in store.iter_calls()}


def test_kill_9_under_load_loses_nothing_acknowledged(store_url: str, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    with ServerThread(FaultyUpstream()) as up:
        config = write_config(tmp_path / "fledgling.toml", up + "/v1", store_url, spool_dir)
        port = free_port()
        first = GatewayProcess(config, port, tmp_path)
        load = Load(first.url)
        _wait_for(lambda: len(load.answered) >= 300)
        acked_before_kill = first.health()["recorder"]["acknowledged"]
        os.kill(first.proc.pid, signal.SIGKILL)  # mid-load: requests are in flight
        first.proc.wait(10)
        load.stop()
        assert acked_before_kill >= 200

        # What the dead gateway acknowledged is exactly what its spool files hold.
        acknowledged = spooled_ids(spool_dir)
        assert len(acknowledged) == len(set(acknowledged)) >= acked_before_kill
        assert set(acknowledged) <= set(load.answered) | _unanswered_guard(acknowledged, load)
        dead_files = set(spool_dir.glob("*.spool"))
        assert dead_files

        second = GatewayProcess(config, port, tmp_path)
        store = Store(store_url)
        try:
            _wait_for(lambda: set(acknowledged) <= _stored_ids(store))
            stored = _stored_ids(store)
            assert len(stored) >= acked_before_kill
            assert second.health()["recorder"]["replayed"] == len(acknowledged)
            # Calls answered long enough before the kill are all there (the fsync window is 5 ms).
            assert set(load.answered[:200]) <= stored
            # the replayed files are gone; the new gateway keeps only its own
            assert not (dead_files & set(spool_dir.glob("*.spool")))
            # and it records new traffic normally
            r = httpx.post(second.url + "/v1/chat/completions", json=BODY)
            _wait_for(lambda: store.get_call(r.headers["x-fledgling-call-id"]) is not None)
        finally:
            second.proc.send_signal(signal.SIGTERM)
            second.proc.wait(20)
            store.close()


def _unanswered_guard(acknowledged: list[str], load: Load) -> set[str]:
    """Calls spooled whose answer was still on its way when the process died (at most one per
    worker): spooled, so acknowledged, though the client never saw them."""
    extra = set(acknowledged) - set(load.answered)
    assert len(extra) <= len(load._threads)
    return extra


def test_sigterm_drains_spool_and_writer(store_url: str, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    with ServerThread(FaultyUpstream()) as up:
        config = write_config(tmp_path / "fledgling.toml", up + "/v1", store_url, spool_dir,
                              fsync_ms=200)  # a wide window: the drain must still get everything
        gw = GatewayProcess(config, free_port(), tmp_path)
        load = Load(gw.url, workers=3)
        _wait_for(lambda: len(load.answered) >= 150)
        load.stop()
        gw.proc.send_signal(signal.SIGTERM)
        out, _ = gw.proc.communicate(timeout=30)
    assert gw.proc.returncode == 0
    assert f"{len(load.answered)} calls stored this run" in out.decode()
    with Store(store_url) as store:
        assert _stored_ids(store) == set(load.answered)
    assert list(spool_dir.glob("*.spool")) == []


def _call(i: int) -> Call:
    return Call(id=f"call-{i}", source="gateway", created_at=datetime.now(UTC),
                request=Request(messages=[{"role": "user", "content": f"m{i}"}]))


def test_spool_group_commit_torn_tail_and_locks(tmp_path: Path) -> None:
    durable: list[str] = []
    spool = Spool(tmp_path, fsync_ms=1, on_durable=lambda seg, calls: durable.extend(c.id for c in calls))
    spool.start()
    for i in range(5):
        spool.append(_call(i))
    assert spool.flush(5)
    assert spool.acknowledged == 5 and durable == [f"call-{i}" for i in range(5)]
    [path] = tmp_path.glob("*.spool")
    assert claim_orphans(tmp_path) == []  # held by a live spool: not an orphan

    torn = tmp_path / "00000000000000000001-1.spool"
    torn.write_bytes(orjson.dumps({"call": _call(9).model_dump(mode="json")}) + b"\n"
                     + b'{"call": {"id": "call-10", "sou')
    assert [c.id for c in read_segment(torn)] == ["call-9"]
    assert [s.path for s in claim_orphans(tmp_path)] == [torn]
    spool.close()
    assert [c.id for c in read_segment(path)] == [f"call-{i}" for i in range(5)]
