"""`fledgling gateway --workers 2`: `/health` and `/admin/swap` answer for the whole gateway,
whichever worker takes the connection: the totals are the sum of every worker's part (and the
store writer process's), and equal what the store holds."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import text

from fledgling.gateway.server import ServerThread
from fledgling.gateway.workers import PUBLISH_S
from fledgling.store import Store

from .conftest import FaultyUpstream, write_config
from .supervised import _up, _wait_for, kill_tree, start_gateway
from .test_workers import BODY

ADMIN = "admin-key-for-the-views-test-0123456789"


@contextmanager
def gateway(store_url: str, tmp_path: Path, workers: int = 2) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    spool_dir = tmp_path / "spool"
    with ServerThread(FaultyUpstream()) as up:
        config = write_config(tmp_path / "fledgling.toml", up + "/v1", store_url, spool_dir)
        sup, url = start_gateway(config, tmp_path, workers=workers, extra_env={"FLEDGLING_ADMIN_KEY": ADMIN})
        try:
            _wait_for(lambda: _up(url), timeout=60)
            yield url, sup
            sup.send_signal(signal.SIGTERM)
            _, err = sup.communicate(timeout=60)
            assert sup.returncode == 0, err.decode()[-2000:]
        finally:
            kill_tree(sup)


def _served_by(url: str) -> list[int]:
    """The worker pids in a fresh /health (every part), once all of them have published."""
    return sorted(p["pid"] for p in httpx.get(url + "/health").json()["workers"] if p["name"].startswith("worker"))


def test_health_and_admin_swap_sum_every_worker(store_url: str, tmp_path: Path) -> None:
    with gateway(store_url, tmp_path) as (url, _sup):
        _wait_for(lambda: len(_served_by(url)) == 2)
        # traffic to both workers: a fresh connection per request, until each has answered some
        ids: list[str] = []
        with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            def appended() -> list[int]:
                return [p["recorder"]["appended"] for p in client.get(url + "/health").json()["workers"]
                        if p["name"].startswith("worker")]

            while len(ids) < 60 or min(appended()) < 10:
                for _ in range(10):
                    r = client.post(url + "/v1/chat/completions", json=BODY)
                    assert r.status_code == 200
                    ids.append(r.headers["x-fledgling-call-id"])
                assert len(ids) < 2000, "the kernel never spread connections over both workers"
            # every call is in the store, and the snapshots have caught up with it
            with Store(store_url, migrate=False) as store:
                def settled() -> bool:
                    with store.engine.connect() as conn:
                        held = conn.execute(text("select count(*) from calls")).scalar_one()
                    health = client.get(url + "/health").json()
                    return held == len(ids) and health["recorder"]["stored"] == len(ids)

                _wait_for(settled, timeout=30)
                with store.engine.connect() as conn:
                    rows, distinct = conn.execute(text("select count(*), count(distinct id) from calls")).one()
            assert rows == distinct == len(ids)
            # a worker's snapshot is up to PUBLISH_S old: let every worker publish after the traffic
            time.sleep(3 * PUBLISH_S)

            # whichever worker answers, the totals are the sum of the parts it lists
            answering: set[int] = set()
            for _ in range(40):
                health = client.get(url + "/health").json()
                answering.add(health["worker"]["pid"])
                parts = health["workers"]
                assert {p["name"] for p in parts} == {"worker-0", "worker-1", "writer"}
                assert health["missing"] == []
                assert health["status"] == "ok", health["reasons"]
                for key in ("appended", "acknowledged", "stored"):
                    assert health["recorder"][key] == sum(p["recorder"].get(key, 0) for p in parts)
                assert health["recorder"]["appended"] == len(ids), health
                assert health["recorder"]["stored"] == len(ids)
                assert all(p["recorder"]["appended"] >= 10 for p in parts if p["name"].startswith("worker"))
                # the serving processes store nothing themselves: the writer process stores it all
                writer = next(p for p in parts if p["name"] == "writer")
                assert writer["recorder"]["stored"] == len(ids) and writer["recorder"]["store_pending_files"] == 0
                if len(answering) == 2:
                    break
            assert len(answering) == 2, "every /health came from one worker"

            # refused requests are summed too: 5 unknown paths, spread over the workers
            for _ in range(5):
                assert client.get(url + "/nowhere").status_code == 404
            time.sleep(3 * PUBLISH_S)
            for _ in range(6):
                health = client.get(url + "/health").json()
                assert health["refused"]["404 GET /nowhere"] == 5
                assert sum(p.get("refused", {}).get("404 GET /nowhere", 0) for p in health["workers"]) == 5

            # /admin/swap: the recording totals, and each worker's own figures, circuits and gate
            swap = client.get(url + "/admin/swap", headers={"Authorization": f"Bearer {ADMIN}"}).json()
            assert swap["recording"]["stored"] == len(ids)
            assert swap["recording"]["status"] == "ok"
            assert sorted(w["name"] for w in swap["workers"]) == ["worker-0", "worker-1"]
            assert all({"tasks", "circuits", "candidates", "recording"} <= set(w) for w in swap["workers"])
            assert swap["worker"]["pid"] in {w["pid"] for w in swap["workers"]}


def test_a_dead_worker_is_named_until_its_successor_publishes(store_url: str, tmp_path: Path) -> None:
    with gateway(store_url, tmp_path) as (url, sup):
        _wait_for(lambda: len(_served_by(url)) == 2)
        victim = _served_by(url)[0]
        os.kill(sup.pid, signal.SIGSTOP)  # no restart yet: the dead worker stays missing
        os.kill(victim, signal.SIGKILL)
        try:
            def names_it() -> bool:
                health = httpx.get(url + "/health").json()
                return health["status"] == "degraded" and len(health["missing"]) == 1 and all(
                    p["pid"] != victim for p in health["workers"])

            _wait_for(names_it, timeout=10)
        finally:
            os.kill(sup.pid, signal.SIGCONT)
        _wait_for(lambda: httpx.get(url + "/health").json()["missing"] == [], timeout=30)
