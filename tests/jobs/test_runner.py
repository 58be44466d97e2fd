"""Jobs run in worker processes: they report progress and a result to the store, a second start
of the same task and kind is refused, a cancel stops the worker, and a dead worker's job is
marked failed with the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fledgling.config import Settings
from fledgling.errors import InputError
from fledgling.jobs import runner
from fledgling.store import Store
from fledgling.store.jobs import Job

from .conftest import TASK
from .llm_server import ChatServer


def wait_for(store: Store, job_id: str, *, timeout: float = 120.0, until=lambda j: not j.active) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = store.jobs.get(job_id)
        assert job is not None
        if until(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.state} after {timeout}s: {job.log_tail[-2000:]}")
        time.sleep(0.1)


def test_the_running_key_refuses_a_second_active_job_of_a_task_and_kind(store_url: str) -> None:
    store = Store(store_url)
    first = store.jobs.create("j1", kind="eval", task="t", arguments={})
    assert first is not None and first.state == "queued"
    assert store.jobs.create("j2", kind="eval", task="t", arguments={}) is None
    assert store.jobs.get("j2") is None  # nothing written by the refused start
    assert store.jobs.create("j3", kind="train", task="t", arguments={}) is not None  # another kind
    assert store.jobs.create("j4", kind="eval", task="u", arguments={}) is not None  # another task
    assert store.jobs.finish("j1", "failed", error="boom")
    assert not store.jobs.finish("j1", "cancelled")  # the first ending wins
    assert store.jobs.get("j1").state == "failed"
    assert store.jobs.create("j5", kind="eval", task="t", arguments={}) is not None
    assert [j.id for j in store.jobs.find(task="t", active=True)] == ["j5", "j3"]
    store.close()


def test_bad_arguments_are_refused_before_anything_is_stored(filled: Store) -> None:
    with pytest.raises(InputError, match="epochs"):
        runner.start(filled, Settings(), "train", TASK, {"epochs": 0})
    with pytest.raises(InputError, match="unknown job kind 'bake'"):
        runner.start(filled, Settings(), "bake", TASK, {})
    with pytest.raises(InputError, match="nonsense"):
        runner.start(filled, Settings(), "curate", TASK, {"nonsense": 1})
    assert filled.jobs.find() == []


def test_a_curate_job_runs_in_a_worker_and_stores_its_result(filled: Store, tmp_path: Path) -> None:
    before = filled.datasets.find(TASK)
    job = runner.start(filled, Settings(), "curate", TASK, {"seed": 1, "out_dir": str(tmp_path / "ds")})
    assert job.worker_pid is not None and job.worker_pid != os.getpid()
    done = wait_for(filled, job.id)
    assert done.state == "succeeded", done.error
    assert done.progress == 1.0
    assert done.running_key is None and done.finished_at is not None
    versions = {d["version"] for d in filled.datasets.find(TASK)} - {d["version"] for d in before}
    assert versions == {done.result["dataset_version"]}
    assert Path(done.result["path"]).is_dir()
    assert f"curate job {job.id}" in done.log_tail
    assert "done" in runner.read_log(job.id)


def test_second_start_is_refused_and_cancel_stops_the_worker(filled: Store) -> None:
    llm = ChatServer(delay_s=0.3)
    try:
        args = {"model": f"openai:{llm.base_url}#slow", "batch_size": 1}
        job = runner.start(filled, Settings(), "eval", TASK, args)
        with pytest.raises(runner.JobRefused, match=f"already has a eval job running \\({job.id}\\)"):
            runner.start(filled, Settings(), "eval", TASK, args)
        running = wait_for(filled, job.id, until=lambda j: (j.progress or 0) > 0 and j.state == "running")
        assert "items" in (running.message or "")
        # a dashboard that restarts now reaps only dead workers: this one keeps running
        assert runner.reap(filled) == [] and filled.jobs.get(job.id).state == "running"
        runner.cancel(filled, job.id)
        done = wait_for(filled, job.id, timeout=30)
        assert done.state == "cancelled"
        deadline = time.monotonic() + 10
        while runner.worker_alive(job.worker_pid, job.id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not runner.worker_alive(job.worker_pid, job.id)
        with pytest.raises(InputError, match="already ended"):
            runner.cancel(filled, job.id)
        assert filled.eval_runs.find(TASK) == []  # a cancelled eval stores no run
        # the kind is free again
        again = runner.start(filled, Settings(), "eval", TASK, {**args, "limit": 1})
        assert wait_for(filled, again.id).state == "succeeded"
    finally:
        llm.close()


def test_a_killed_worker_leaves_its_job_failed_with_the_reason(filled: Store) -> None:
    llm = ChatServer(delay_s=0.3)
    try:
        job = runner.start(filled, Settings(), "eval", TASK, {"model": f"openai:{llm.base_url}#slow",
                                                                "batch_size": 1})
        wait_for(filled, job.id, until=lambda j: j.state == "running")
        os.kill(job.worker_pid, signal.SIGKILL)
        done = wait_for(filled, job.id, timeout=30)
        assert done.state == "failed"
        assert "killed by signal 9" in done.error
    finally:
        llm.close()


def test_reap_fails_jobs_whose_worker_is_gone_after_a_restart(filled: Store) -> None:
    """As after a dashboard restart: a job row whose worker pid no longer runs this job."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    filled.jobs.create("gone", kind="train", task=TASK, arguments={})
    filled.jobs.update("gone", state="running", worker_pid=dead.pid)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:  # a live process that is not this job's worker (a reused pid) counts as gone too
        filled.jobs.create("reused", kind="eval", task=TASK, arguments={})
        filled.jobs.update("reused", state="running", worker_pid=other.pid)
        filled.jobs.create("fresh", kind="curate", task=TASK, arguments={})  # queued, just made
        assert sorted(runner.reap(filled)) == ["gone", "reused"]
    finally:
        other.kill()
        other.wait()
    gone = filled.jobs.get("gone")
    assert gone.state == "failed" and f"worker process {dead.pid} is gone" in gone.error
    assert filled.jobs.get("fresh").state == "queued"
    assert runner.reap(filled) == []


def test_a_job_cancelled_before_its_worker_started_stays_cancelled(filled: Store, tmp_path: Path) -> None:
    filled.jobs.create("early", kind="curate", task=TASK, arguments={})
    assert filled.jobs.finish("early", "cancelled", error="cancelled before its worker ran")
    env = {**os.environ, runner.ENV_DB_URL: filled.url, runner.ENV_LOG: str(tmp_path / "early.log")}
    done = subprocess.run([sys.executable, "-m", runner.WORKER_MODULE, "early"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "not waiting to run" in done.stderr
    assert filled.jobs.get("early").state == "cancelled"


def test_a_workers_settings_read_back_equal_the_callers_local_models_included() -> None:
    """A job's worker gets the caller's settings through the environment; a local model's
    `engine` and `gguf_type` survive the trip (the attribute is `local_engine`, the key `engine`)."""
    import json as json_module

    from fledgling.config import Settings, parse_settings
    from fledgling.jobs.runner import encode_settings

    settings = parse_settings({"models": {"slm": {"kind": "gguf", "path": "smollm2", "engine": "transformers",
                                                  "gguf_type": "source"}}})
    back = Settings.model_validate(json_module.loads(encode_settings(settings)))
    assert back.models == settings.models and back.tasks == settings.tasks
    assert back.models["slm"].local_engine == "transformers" and back.models["slm"].gguf_type == "source"
