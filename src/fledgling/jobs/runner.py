"""Start, follow and cancel jobs. Each job runs in its own worker process
(`python -m fledgling.jobs.worker JOB_ID`), never in the caller's: the dashboard stays
responsive, a crash in training cannot take it down, and a worker keeps running (and
reporting to the store) when the dashboard restarts.

The worker gets the store URL and the settings through its environment, writes its output to
`<jobs dir>/<id>.log`, and keeps the job's row current (state, progress, log tail, result).
`reap()` marks a job whose worker is gone as failed, with the reason: the dashboard calls it
when it starts and whenever it lists jobs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fledgling.config import Settings
from fledgling.errors import FledglingError, InputError
from fledgling.jobs.kinds import check_arguments
from fledgling.store import Store
from fledgling.store.jobs import Job

JOBS_DIR = Path(".fledgling") / "jobs"
WORKER_MODULE = "fledgling.jobs.worker"
ENV_DB_URL = "FLEDGLING_DB_URL"
ENV_SETTINGS = "FLEDGLING_JOB_SETTINGS"
ENV_LOG = "FLEDGLING_JOB_LOG"
START_GRACE_S = 60.0  # a queued job with no worker pid after this long never started


def encode_settings(settings: Settings) -> str:
    """The settings as the worker process reads them back (`Settings.model_validate`): keys as
    fledgling.toml spells them (`engine`, not the attribute `local_engine`)."""
    return json.dumps(settings.model_dump(mode="json", by_alias=True))


class JobRefused(FledglingError):
    """A job cannot start: this task and kind already has one queued or running."""

    exit_code = 3


def new_job_id(kind: str, task: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", task)[:40].strip("-") or "task"
    return f"{kind}-{slug}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def log_path(job_id: str, jobs_dir: Path = JOBS_DIR) -> Path:
    return jobs_dir / f"{job_id}.log"


def start(store: Store, settings: Settings, kind: str, task: str, arguments: dict[str, Any] | None = None,
          *, jobs_dir: Path = JOBS_DIR) -> Job:
    """Check the arguments, store the job and start its worker; refused (`JobRefused`) while the
    task has a queued or running job of this kind."""
    if not task or len(task) > 200:
        raise InputError("a job needs a task name of 1 to 200 characters")
    args = check_arguments(kind, arguments or {})
    job_id = new_job_id(kind, task)
    job = store.jobs.create(job_id, kind=kind, task=task, arguments=args.model_dump(mode="json"))
    if job is None:
        running = store.jobs.find(task=task, kind=kind, active=True, limit=1)
        which = f" ({running[0].id})" if running else ""
        raise JobRefused(f"task '{task}' already has a {kind} job running{which}; wait for it to "
                         "end or cancel it first")
    jobs_dir.mkdir(parents=True, exist_ok=True)
    log = log_path(job_id, jobs_dir)
    env = {**os.environ, ENV_DB_URL: store.url, ENV_LOG: str(log.resolve()),
           ENV_SETTINGS: encode_settings(settings)}
    try:
        with log.open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, job_id], env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    except OSError as exc:
        store.jobs.finish(job_id, "failed", error=f"the worker process could not start: {exc}")
        raise FledglingError(f"job {job_id}: the worker process could not start: {exc}") from None
    store.jobs.update(job_id, worker_pid=proc.pid)
    threading.Thread(target=_await_worker, args=(store, job_id, proc, log), daemon=True,
                     name=f"job-{job_id}").start()
    found = store.jobs.get(job_id)
    assert found is not None
    return found


def get(store: Store, job_id: str) -> Job:
    job = store.jobs.get(job_id)
    if job is None:
        raise InputError(f"no job '{job_id}'")
    return job


def cancel(store: Store, job_id: str) -> Job:
    """Ask the job's worker (and what it started) to stop; it records `cancelled` itself. A job
    whose worker is gone is marked cancelled here."""
    job = get(store, job_id)
    if not job.active:
        raise InputError(f"job {job_id} already ended ({job.state})")
    store.jobs.update(job_id, message="cancel requested")
    if job.worker_pid is not None and worker_alive(job.worker_pid, job_id):
        try:
            os.killpg(job.worker_pid, signal.SIGTERM)
        except ProcessLookupError:
            store.jobs.finish(job_id, "cancelled", error="cancelled (the worker was already gone)")
    else:
        store.jobs.finish(job_id, "cancelled", error="cancelled before its worker ran")
    return get(store, job_id)


def list_jobs(store: Store, *, task: str | None = None, kind: str | None = None,
              active: bool | None = None, limit: int = 50, offset: int = 0) -> list[Job]:
    reap(store)
    return store.jobs.find(task=task, kind=kind, active=active, limit=limit, offset=offset)


def reap(store: Store) -> list[str]:
    """Mark failed every active job whose worker process is gone; returns their ids."""
    gone = []
    now = datetime.now(UTC)
    for job in store.jobs.find(active=True, limit=1000):
        if job.worker_pid is None:
            created = job.created_at if job.created_at.tzinfo else job.created_at.replace(tzinfo=UTC)
            if (now - created).total_seconds() < START_GRACE_S:
                continue
            reason = "its worker process never started"
        elif worker_alive(job.worker_pid, job.id):
            continue
        else:
            reason = (f"its worker process {job.worker_pid} is gone (killed, or the machine or "
                      "dashboard restarted) before it reported an end")
        if store.jobs.finish(job.id, "failed", error=reason):
            gone.append(job.id)
    return gone


def read_log(job_id: str, jobs_dir: Path = JOBS_DIR, max_chars: int = 64_000) -> str:
    """The end of the job's log file ('' when it has none)."""
    path = log_path(job_id, jobs_dir)
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_chars))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def worker_alive(pid: int, job_id: str) -> bool:
    """Whether `pid` is still this job's worker (not a zombie, not a reused pid)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.parent.exists() and Path("/proc/self").exists():
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            return False
        return job_id.encode() in args
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _await_worker(store: Store, job_id: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for the worker (so it leaves no zombie); a worker that exits without ending its
    job (a crash, a kill -9) leaves it failed with its exit status and the log's last lines."""
    code = proc.wait()
    try:
        job = store.jobs.get(job_id)
    except Exception:  # the store went away meanwhile (shutdown): reap() settles the job later
        return
    if job is None or not job.active:
        return
    tail = read_log(job_id, log.parent, 2000)
    if job.message == "cancel requested" and code == -signal.SIGTERM:  # before its handler was set
        store.jobs.finish(job_id, "cancelled", error="cancelled", log_tail=tail)
        return
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    store.jobs.finish(job_id, "failed", error=f"its worker process {how} before it reported an end",
                      log_tail=tail)
