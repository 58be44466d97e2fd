"""`fledgling gateway --workers N` as a real process tree for the multi-process tests: started on a
free port, waited for, and taken down whole when a test fails half-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .conftest import free_port


def start_gateway(config: Path, cwd: Path, *, workers: int = 2, extra_env: dict[str, str] | None = None,
                  quiet: bool = False, new_session: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    """(the supervisor process, the gateway's base URL): `fledgling gateway --workers N` with
    `config`, without gateway keys; its output captured unless `quiet`."""
    port = free_port()
    env = {**os.environ, "FLEDGLING_CONFIG": str(config), **(extra_env or {})}
    env.pop("FLEDGLING_GATEWAY_KEYS", None)
    out = subprocess.DEVNULL if quiet else subprocess.PIPE
    sup = subprocess.Popen([sys.executable, "-c", "from fledgling.cli import main; main()", "gateway",
                            "--port", str(port), "--workers", str(workers)], env=env, cwd=cwd,
                           stdout=out, stderr=out, start_new_session=new_session)
    return sup, f"http://127.0.0.1:{port}"


def kill_tree(sup: subprocess.Popen[bytes]) -> None:
    """After a failed step: the supervisor and every process it forked, killed (a no-op when the
    test stopped it itself)."""
    if sup.poll() is not None:
        return
    leftover = _children(sup.pid)
    sup.kill()
    for pid in leftover:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sup.communicate(timeout=30)


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:  # the process is gone
        return []


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
