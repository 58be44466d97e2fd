"""`python -m fledgling.jobs.worker JOB_ID`: run one stored job in this process.

The runner (`fledgling.jobs.runner`) starts it with the store URL, the settings and the log
path in the environment. It marks the job running, runs its kind's function, and ends it:
`succeeded` with the result, `failed` with the error, or `cancelled` on SIGTERM (which arrives
as KeyboardInterrupt, so a training run is left `interrupted` and can be resumed).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fledgling.config import Settings
from fledgling.errors import FledglingError
from fledgling.jobs.kinds import KINDS, JobContext, check_arguments
from fledgling.jobs.runner import ENV_DB_URL, ENV_LOG, ENV_SETTINGS
from fledgling.store import Store

PROGRESS_INTERVAL_S = 0.5
TAIL_CHARS = 4000


def _tail(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_CHARS))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def run(job_id: str) -> int:
    store = Store(os.environ[ENV_DB_URL])
    settings = Settings.model_validate(json.loads(os.environ.get(ENV_SETTINGS) or "{}"))
    log = Path(os.environ[ENV_LOG]) if os.environ.get(ENV_LOG) else None
    job = store.jobs.get(job_id)
    if job is None or not job.active:
        print(f"job {job_id} is not waiting to run", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if not store.jobs.mark_running(job_id, os.getpid()):
        print(f"job {job_id} was cancelled before it started", file=sys.stderr)
        return 2
    last = 0.0

    def progress(fraction: float | None, message: str | None) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < PROGRESS_INTERVAL_S and (fraction or 0) < 1:
            return
        last = now
        sys.stdout.flush()
        values: dict[str, Any] = {"log_tail": _tail(log)}
        if fraction is not None:
            values["progress"] = max(0.0, min(1.0, fraction))
        if message is not None:
            values["message"] = message[:500]
        store.jobs.update(job_id, **values)

    print(f"{datetime.now(UTC).isoformat(timespec='seconds')} {job.kind} job {job_id} on task "
          f"{job.task}: {json.dumps(job.arguments)}", flush=True)
    try:
        args = check_arguments(job.kind, job.arguments)
        result = KINDS[job.kind].run(JobContext(store, settings, job.task, args, progress))
    except KeyboardInterrupt:
        print("cancelled", flush=True)
        store.jobs.finish(job_id, "cancelled", error="cancelled", log_tail=_tail(log))
        return 130
    except FledglingError as exc:
        print(f"error: {exc}", flush=True)
        store.jobs.finish(job_id, "failed", error=str(exc), log_tail=_tail(log))
        return 1
    except Exception as exc:
        traceback.print_exc()
        sys.stdout.flush()
        store.jobs.finish(job_id, "failed", error=f"{type(exc).__name__}: {exc}"[:2000], log_tail=_tail(log))
        return 1
    print("done", flush=True)
    store.jobs.finish(job_id, "succeeded", result=result, progress=1.0, message="done", log_tail=_tail(log))
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
