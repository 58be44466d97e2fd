"""`fledgling gateway --workers 2`: two serving processes on one port, one store writer process,
one store; one worker killed with kill -9 under sustained load and restarted by the supervisor.
Every call the dead worker acknowledged (fsync'd to its spool) is stored, every call the live
workers answered is stored, and each call id is stored once."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from fledgling.capture.recording.spool import read_segment
from fledgling.gateway.server import ServerThread
from fledgling.store import Store

from .conftest import FaultyUpstream, write_config
from .supervised import _children, _gone, _up, _wait_for, kill_tree, start_gateway

BODY = {"model": "gpt-4o", "messages": [{"role": "system", "content": "You triage tickets."},
                                        {"role": "user", "content": "my order is late"}]}


class Load:
    """Agents posting until stopped, a new connection per request so the kernel spreads them over
    the workers; keeps (sent, answered, call id) of every 200."""

    def __init__(self, url: str, threads: int = 6):
        self.url = url + "/v1/chat/completions"
        self.answered: list[tuple[float, float, str]] = []  # (sent, answered, call id)
        self.failed = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    r = client.post(self.url, json=BODY)
                except httpx.HTTPError:
                    self.failed += 1
                    time.sleep(0.01)
                    continue
                if r.status_code == 200:
                    self.answered.append((sent, time.monotonic(), r.headers["x-fledgling-call-id"]))

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)






def _roles(url: str) -> tuple[list[int], int] | None:
    """The workers' pids and the store writer's, from /health once every part has published."""
    try:
        health = httpx.get(url + "/health", timeout=2).json()
    except httpx.HTTPError:
        return None
    if health.get("missing") != []:
        return None
    parts = {p["name"]: p["pid"] for p in health["workers"]}
    return [pid for name, pid in sorted(parts.items()) if name.startswith("worker-")], parts["writer"]


def _successor(children: list[int], victim: int, keep: tuple[int, int], box: list[int]) -> bool:
    """True once the supervisor has replaced the victim (beside the survivor and the writer in
    `keep`); the new worker's pid goes in box."""
    fresh = [p for p in children if p != victim and p not in keep]
    if len(children) == 3 and set(keep) <= set(children) and fresh:
        box.append(fresh[0])
        return True
    return False


def _files_of(spool_dir: Path, pid: int) -> list[Path]:
    return sorted(spool_dir.glob(f"*-{pid}.spool"))


def test_two_workers_kill_9_one_every_acknowledged_call_stored_once(store_url: str, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    with ServerThread(FaultyUpstream()) as up:
        config = write_config(tmp_path / "fledgling.toml", up + "/v1", store_url, spool_dir)
        sup, url = start_gateway(config, tmp_path)
        try:
            _wait_for(lambda: len(_children(sup.pid)) == 3 and _roles(url) is not None, timeout=60)
            roles = _roles(url)
            assert roles is not None
            workers, writer = roles
            assert set(_children(sup.pid)) == {*workers, writer}
            # /health says which worker answered it; fresh connections reach both
            seen: set[int] = set()
            _wait_for(lambda: seen.add(httpx.get(url + "/health").json()["worker"]["pid"]) or seen == set(workers))
            load = Load(url)
            # both workers take traffic: each has spool files of its own
            _wait_for(lambda: all(_files_of(spool_dir, w) for w in workers)
                      and sum(at < time.monotonic() - 1.0 for _, at, _ in load.answered) >= 250)

            # Freeze the supervisor and the store writer so the dead worker's files can be read
            # before the writer stores them (a second of them: the writer takes each file 0.2 s
            # after it was opened); the other worker keeps serving meanwhile.
            victim, survivor = workers
            os.kill(sup.pid, signal.SIGSTOP)
            os.kill(writer, signal.SIGSTOP)
            time.sleep(1.0)
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            time.sleep(0.3)
            dead_files = _files_of(spool_dir, victim)
            acknowledged = [c.id for f in dead_files for c in read_segment(f)]
            answered_while_down = len(load.answered)
            time.sleep(0.5)
            assert len(load.answered) > answered_while_down, "the surviving worker stopped serving"
            os.kill(writer, signal.SIGCONT)
            os.kill(sup.pid, signal.SIGCONT)

            # the supervisor restarts the worker; the writer stores the dead one's files
            # one read of the children per check: two reads can straddle the reaping of the victim
            successor_box: list[int] = []
            _wait_for(lambda: _successor(_children(sup.pid), victim, (survivor, writer), successor_box))
            successor = successor_box[0]
            _wait_for(lambda: not any(f.exists() for f in dead_files))
            mark = len(load.answered)
            _wait_for(lambda: len(load.answered) >= mark + 300 and bool(_files_of(spool_dir, successor)))
            load.stop()
            sup.send_signal(signal.SIGTERM)
            out, err = sup.communicate(timeout=60)
        finally:
            kill_tree(sup)
    assert sup.returncode == 0, err.decode()[-2000:]
    assert f"(pid {victim}) died (signal SIGKILL); restarting it" in out.decode()
    assert len(acknowledged) >= 50 and len(set(acknowledged)) == len(acknowledged)

    with Store(store_url) as store:
        with store.engine.connect() as conn:
            rows, distinct = conn.execute(text("select count(*), count(distinct id) from calls")).one()
        stored = {c.id for c in store.iter_calls()}
    answered = {cid for _, _, cid in load.answered}
    assert rows == distinct == len(stored)  # no call stored twice
    assert set(acknowledged) <= stored  # what the dead worker fsync'd survived its kill -9
    # Answered well before the kill (the fsync window is 5 ms; a second allows for a loaded
    # machine), or sent after it (so served by a live worker, which drained on SIGTERM): stored.
    before = {cid for _, at, cid in load.answered if at < killed_at - 1.0}
    after = {cid for sent, _, cid in load.answered if sent > killed_at}
    assert len(before) >= 200 and before <= stored
    assert len(after) >= 300 and after <= stored
    # what the store holds beyond the answers: only calls spooled whose answer was cut by the kill
    assert len(stored - answered) <= len(load._threads)
    assert list(spool_dir.glob("*.spool")) == []  # graceful stop: every worker drained






def test_supervisor_killed_workers_drain_and_exit(store_url: str, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    with ServerThread(FaultyUpstream()) as up:
        config = write_config(tmp_path / "fledgling.toml", up + "/v1", store_url, spool_dir, fsync_ms=200)
        sup, url = start_gateway(config, tmp_path, quiet=True)
        workers: list[int] = []
        try:
            _wait_for(lambda: len(_children(sup.pid)) == 3 and _up(url), timeout=60)
            workers = _children(sup.pid)  # and the writer
            with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
                ids = [client.post(url + "/v1/chat/completions", json=BODY).headers["x-fledgling-call-id"]
                       for _ in range(60)]
            os.kill(sup.pid, signal.SIGKILL)  # within the 200 ms fsync window of the last calls
            sup.wait(10)
            _wait_for(lambda: all(_gone(w) for w in workers))
        finally:
            for w in workers:
                if not _gone(w):
                    os.kill(w, signal.SIGKILL)
    with Store(store_url) as store:
        stored = {c.id for c in store.iter_calls()}
    assert set(ids) <= stored  # the workers drained on the SIGTERM the kernel sent them
    assert list(spool_dir.glob("*.spool")) == []


def test_store_writer_process_kill_9_restarted_every_call_stored_once(store_url: str, tmp_path: Path) -> None:
    """The writer process dies mid-batch (kill -9): its successor claims the files it had not
    deleted, and the idempotent inserts keep each call once."""
    spool_dir = tmp_path / "spool"
    with ServerThread(FaultyUpstream()) as up:
        config = write_config(tmp_path / "fledgling.toml", up + "/v1", store_url, spool_dir)
        sup, url = start_gateway(config, tmp_path)
        try:
            _wait_for(lambda: len(_children(sup.pid)) == 3 and _roles(url) is not None, timeout=60)
            roles = _roles(url)
            assert roles is not None
            workers, writer = roles
            load = Load(url)
            _wait_for(lambda: len(load.answered) >= 200)
            os.kill(writer, signal.SIGKILL)
            _wait_for(lambda: (r := _roles(url)) is not None and r[1] != writer and r[0] == workers)
            mark = len(load.answered)
            _wait_for(lambda: len(load.answered) >= mark + 200)
            load.stop()
            sup.send_signal(signal.SIGTERM)
            out, err = sup.communicate(timeout=60)
        finally:
            kill_tree(sup)
    assert sup.returncode == 0, err.decode()[-2000:]
    assert f"gateway store writer (pid {writer}) died (signal SIGKILL); restarting it" in out.decode()
    with Store(store_url) as store:
        with store.engine.connect() as conn:
            rows, distinct = conn.execute(text("select count(*), count(distinct id) from calls")).one()
        stored = {c.id for c in store.iter_calls()}
    answered = {cid for _, _, cid in load.answered}
    assert rows == distinct == len(stored)
    assert answered <= stored  # the workers were never touched: every answer was spooled and stored
    assert len(stored - answered) <= len(load._threads)
    assert list(spool_dir.glob("*.spool")) == []


def test_ctrl_c_to_the_whole_group_under_load_stores_every_answer(store_url: str, tmp_path: Path) -> None:
    """SIGINT to the process group at once (Ctrl-C in a terminal): the writer process is told to
    stop together with the workers, and still stores what they spool while they drain."""
    spool_dir = tmp_path / "spool"
    with ServerThread(FaultyUpstream()) as up:
        config = write_config(tmp_path / "fledgling.toml", up + "/v1", store_url, spool_dir)
        sup, url = start_gateway(config, tmp_path, new_session=True)
        try:
            _wait_for(lambda: len(_children(sup.pid)) == 3 and _roles(url) is not None, timeout=60)
            load = Load(url)
            _wait_for(lambda: len(load.answered) >= 300)
            os.killpg(sup.pid, signal.SIGINT)
            out, err = sup.communicate(timeout=90)
            load.stop()
        finally:
            if sup.poll() is None:
                os.killpg(sup.pid, signal.SIGKILL)
                sup.communicate(timeout=30)
    assert sup.returncode == 0, err.decode()[-2000:]
    with Store(store_url) as store:
        with store.engine.connect() as conn:
            rows, distinct = conn.execute(text("select count(*), count(distinct id) from calls")).one()
        stored = {c.id for c in store.iter_calls()}
    answered = {cid for _, _, cid in load.answered}
    assert rows == distinct == len(stored)
    assert answered <= stored  # answered while they drained too
    assert list(spool_dir.glob("*.spool")) == []
