"""Jobs and the autopilot, by clicks in Chromium: start a training job on a tiny model and watch
it to the catalog, cancel a job, approve the autopilot's promotion; the API refuses an anonymous
call (401) and a page's POST without the CSRF header (403)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import expect

from fledgling.config import Settings
from fledgling.jobs.autopilot import Autopilot, Recipe, make_pipeline
from fledgling.jobs.steps import CurateArgs
from fledgling.models import catalog
from fledgling.store import Store
from fledgling.swap import rollout
from fledgling.ui import create_app
from tests.jobs.llm_server import ChatServer
from tests.jobs.test_autopilot import HOLD, plant, recorded_trainer, settings_for
from tests.models.tiny import build_tiny_model
from tests.ui.conftest import TOKEN, Served
from tests.ui.data import build

TASK = "support-agent"


@pytest.fixture(scope="module")
def jobs_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Path, Served, Served]]:
    workdir = tmp_path_factory.mktemp("ui-jobs")
    store = Store(f"sqlite:///{workdir}/fledgling.db")
    build(store, workdir, n=300)
    build_tiny_model(workdir / "tiny", seed=0)
    open_ = Served(create_app(Settings(), store, token="", jobs_dir=workdir / "jobs"))
    secured = Served(create_app(Settings(), store, token=TOKEN, jobs_dir=workdir / "jobs"))
    yield store, workdir, open_, secured
    open_.stop()
    secured.stop()
    store.close()


def in_thread(fn):
    """Run `fn` off the main thread, where Playwright's sync API keeps its event loop (the
    autopilot's evals run their own)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


def _start(page, url: str, kind: str, arguments: dict) -> str:
    page.goto(url + "/jobs")
    page.select_option("#job-kind", kind)
    page.select_option("#job-task", TASK)
    page.fill("#job-arguments", json.dumps(arguments))
    page.click("#start-button")
    page.wait_for_url(re.compile(r"/jobs/[^/]+$"))
    return page.url.rsplit("/", 1)[-1]


def test_train_a_tiny_model_from_the_dashboard_watch_it_and_find_it_in_the_catalog(jobs_env, watched) -> None:
    store, workdir, server, _ = jobs_env
    page = watched.page
    job_id = _start(page, server.url, "train", {
        "base": str(workdir / "tiny"), "epochs": 4, "max_examples": 160, "batch_size": 1, "grad_accum": 1,
        "max_length": 256, "rank": 4, "seed": 0, "precision": "fp32", "out_dir": str(workdir / "run")})
    assert job_id.startswith("train-support-agent-")
    assert store.jobs.get(job_id).active
    watched.shot("job-train-started")
    seen: list[float] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            state = page.inner_text("#job-state", timeout=2000)
            value = float(page.get_attribute("#job-progress", "value", timeout=2000) or 0)
        except Exception:  # the page reloads itself when the job ends
            continue
        seen.append(value)
        if state in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)
    assert page.inner_text("#job-state") == "succeeded", page.inner_text("main")[-3000:]
    partial = sorted({v for v in seen if 0 < v < 1})
    assert partial, f"no progress between 0 and 1 was shown: {sorted(set(seen))}"
    watched.shot("job-train-done")
    model = json.loads(page.inner_text("#job-result"))["model"]
    assert model and catalog.get_model(store, model).run_id == model
    page.click("#job-model")
    page.wait_for_url(re.compile(r"/models\?task=support-agent"))
    assert page.locator("#catalog tr", has_text=model).count() == 1
    assert watched.errors == []


def test_cancel_a_running_job(jobs_env, watched) -> None:
    store, _, server, _ = jobs_env
    llm = ChatServer(delay_s=0.5)
    try:
        page = watched.page
        job_id = _start(page, server.url, "eval", {"model": f"openai:{llm.base_url}#slow", "batch_size": 1})
        expect(page.locator("#job-state")).to_have_text("running", timeout=60_000)
        page.click("#cancel-button")
        page.wait_for_url(re.compile(re.escape(job_id) + "$"))
        expect(page.locator("#job-state")).to_have_text("cancelled", timeout=60_000)
        assert store.jobs.get(job_id).state == "cancelled"
        page.goto(server.url + "/jobs")
        assert "cancelled" in page.locator("#jobs tr", has_text=job_id).inner_text()
        watched.shot("job-cancelled")
        assert watched.errors == []
    finally:
        llm.close()


def test_approve_a_promotion_on_the_rollout_page(jobs_env, watched, tmp_path: Path) -> None:
    store, _, server, _ = jobs_env
    cfg = settings_for(require_approval=True)
    pilot = Autopilot(store, cfg, TASK, pipeline=make_pipeline(
        Recipe(curate=CurateArgs(out_dir=str(tmp_path / "ds"))), recorded_trainer("approved-candidate")))
    in_thread(pilot.tick)
    plant(store, HOLD, mode="shadow")
    [pending] = in_thread(pilot.tick)
    assert pending["status"] == "pending"
    page = watched.page
    page.goto(server.url + "/rollout")
    row = page.locator(f"#decision-{pending['id']}")
    assert "waiting for approval" in row.inner_text()
    watched.shot("autopilot-pending")
    assert rollout.current(store, cfg, TASK).mode == "shadow"
    row.locator("button.approve").click()
    page.wait_for_url(re.compile(r"changed=support-agent"))
    assert "approved" in page.locator(f"#decision-{pending['id']}").inner_text()
    assert store.autopilots.event(pending["id"])["decided_by"] == "dashboard"
    [done] = in_thread(pilot.tick)
    assert done["decision"] == "promote" and done["evidence"]["approved_event"] == pending["id"]
    page.reload()
    assert "canary 10%" in page.locator("#rollouts tr", has_text=TASK).inner_text()
    promote = page.locator(f"#decision-{done['id']}")
    promote.locator("summary").click()
    evidence = json.loads(promote.locator("pre.evidence").inner_text())
    assert evidence["live"]["requests"] == HOLD and evidence["report"]["verdict"] == "SWAP"
    watched.shot("autopilot-approved")
    assert watched.errors == []


def test_the_api_refuses_anonymous_calls_and_csrf_less_posts_from_a_page(jobs_env, watched) -> None:
    store, _, server, secured = jobs_env
    page = watched.page
    response = page.goto(secured.url + "/api/tasks")
    assert response.status == 401 and "unauthorized" in json.loads(page.inner_text("body"))["error"]
    page.goto(server.url + "/rollout")  # the open dashboard: the page may read, not change, without the header
    before = rollout.current(store, Settings(), "ticket-triage")
    result = page.evaluate("""async () => {
        const r = await fetch('/api/rollout/ticket-triage/rollback', {method: 'POST',
            headers: {'content-type': 'application/json'}, body: JSON.stringify({to: 'record'})});
        return [r.status, await r.json()];
    }""")
    assert result[0] == 403 and "X-CSRF-Token" in result[1]["error"]
    assert rollout.current(store, Settings(), "ticket-triage") == before
    watched.errors.clear()  # the refused fetch logs a console error by design
