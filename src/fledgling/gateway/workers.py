"""`--workers N`: what each serving process (and the store writer process) tells the others, so
`GET /health` and `GET /admin/swap` answer for the whole gateway, whichever worker takes the
connection.

Every process writes a small JSON snapshot of its own part (recorder counters, refused
requests, OTLP counters, swap figures, gate statistics, circuits) every `PUBLISH_S` into
`<spool_dir>/.workers/<name>.json`, atomically (write a temporary file, then rename), so a reader
sees a whole snapshot or the previous one, never half. The answering worker reads the others'
fresh snapshots (written less than `FRESH_S` ago by a process that is still alive), adds its own
part taken live, and merges: counters are summed, `degraded` wins, each reason names its worker.
Nothing goes through the store, so the health of a gateway whose store is down still shows.
A worker that died is out of the totals from its death on (its successor starts at zero), and a
worker whose snapshot is missing or stale is named under `missing`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

PUBLISH_S = 0.5
FRESH_S = 2.0
DIRNAME = ".workers"

# recorder figures that are one process's own and are not summed
_NOT_SUMMED = frozenset({"dir", "fsync_ms", "spool_error", "store_error", "quarantine_file"})
_MAXED = frozenset({"store_pending_s"})
# task figures that are ratios or percentiles: recomputed from the sums, or the worst worker's
_RATIOS = {"candidate_share", "agreement", "audit_agreement"}
_PERCENTILES = {"candidate_p50_ms", "candidate_p95_ms", "llm_p50_ms", "llm_p95_ms"}


def directory(spool_dir: str | Path) -> Path:
    return Path(spool_dir) / DIRNAME


def publish(spool_dir: str | Path, name: str, part: dict[str, Any]) -> None:
    """Write this process's part as `<name>.json`, atomically."""
    where = directory(spool_dir)
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = where / f".{name}.{os.getpid()}.tmp"
    data = orjson.dumps({**part, "pid": os.getpid(), "at": time.time()}, default=str)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, where / f"{name}.json")


def withdraw(spool_dir: str | Path, name: str) -> None:
    """Remove this process's snapshot (a graceful stop), if it is still ours."""
    path = directory(spool_dir) / f"{name}.json"
    with contextlib.suppress(OSError, orjson.JSONDecodeError):
        if orjson.loads(path.read_bytes()).get("pid") == os.getpid():
            path.unlink()


def read_fresh(spool_dir: str | Path, *, fresh_s: float = FRESH_S) -> dict[str, dict[str, Any]]:
    """Every snapshot written less than `fresh_s` ago by a live process, by name."""
    where = directory(spool_dir)
    parts: dict[str, dict[str, Any]] = {}
    now = time.time()
    for path in sorted(where.glob("*.json")) if where.is_dir() else []:
        try:
            part = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue  # vanished or replaced meanwhile: the next read sees the new one
        if not isinstance(part, dict) or now - float(part.get("at", 0)) > fresh_s or not _alive(part.get("pid")):
            continue
        parts[path.stem] = part
    return parts


def serving(spool_dir: str | Path) -> bool:
    """Whether a worker of this process group is still running (its snapshot is withdrawn as
    the last step of its graceful stop, once its spool is written out), fresh or not: the store
    writer process waits for it before it stops."""
    where = directory(spool_dir)
    group = os.getpgid(0)
    for path in where.glob("worker-*.json") if where.is_dir() else []:
        try:
            pid = orjson.loads(path.read_bytes()).get("pid")
            if _alive(pid) and os.getpgid(pid) == group:
                return True
        except (OSError, orjson.JSONDecodeError, AttributeError):
            continue
    return False


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def merge_recorders(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Counters summed; the longest wait kept; one process's own paths and errors left out (each
    part keeps them)."""
    total: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key in _NOT_SUMMED or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if key in _MAXED:
                total[key] = max(total.get(key, 0), value)
            else:
                total[key] = total.get(key, 0) + value
    return total


def merge_counts(parts: list[dict[str, Any]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for part in parts:
        total.update({k: v for k, v in part.items() if isinstance(v, int) and not isinstance(v, bool)})
    return dict(total.most_common())


def merge_status(parts: list[tuple[str, str, list[str]]]) -> tuple[str, list[str]]:
    """(who, status, reasons) of each part -> one status, each reason prefixed with its part."""
    reasons = [f"{who}: {r}" for who, _, rs in parts for r in rs]
    degraded = any(status != "ok" for _, status, _ in parts)
    return ("degraded" if degraded or reasons else "ok"), reasons


def merge_tasks(parts: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each task's figures over every worker: counts summed (counters key by key), ratios
    recomputed from the sums, percentiles the worst worker's (per-worker samples are not shared)."""
    merged: dict[str, dict[str, Any]] = {}
    for tasks in parts:
        for name, fig in tasks.items():
            into = merged.setdefault(name, {})
            for key, value in fig.items():
                if key in _RATIOS or key in ("gate", "mode"):
                    continue
                if key in _PERCENTILES:
                    if value is not None:
                        into[key] = max(into.get(key) or value, value)
                    else:
                        into.setdefault(key, None)
                elif isinstance(value, dict):
                    counts = into.setdefault(key, {})
                    for k, v in value.items():
                        counts[k] = counts.get(k, 0) + v
                elif isinstance(value, int | float) and not isinstance(value, bool):
                    into[key] = round(into.get(key, 0) + value, 6)
    for fig in merged.values():
        served = sum(fig.get("served_by", {}).values())
        fig["candidate_share"] = fig.get("served_by", {}).get("candidate", 0) / served if served else 0.0
        fig["agreement"] = fig["agreed"] / fig["compared"] if fig.get("compared") else None
        judged = fig.get("audited", 0) - fig.get("audit_failed", 0)
        fig["audit_agreement"] = fig.get("audit_agreed", 0) / judged if judged > 0 else None
    return merged


def missing(parts: dict[str, dict[str, Any]], workers: int, *, writer: bool = False) -> list[str]:
    """Workers (and the writer process) with no fresh snapshot (starting, restarting, or hung)."""
    names = [f"worker-{i}" for i in range(workers)] + (["writer"] if writer else [])
    return [name for name in names if name not in parts]
