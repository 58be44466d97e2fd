"""The JSON API over a live dashboard: token and session auth, CSRF on changes, JSON errors,
pagination, rollout and model changes, and jobs started in worker processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fledgling.config import Settings
from fledgling.store import CallFilter, Store
from fledgling.swap import rollout
from fledgling.ui import create_app
from tests.ui.conftest import TOKEN, Served
from tests.ui.data import build

BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Path]]:
    workdir = tmp_path_factory.mktemp("api")
    store = Store(f"sqlite:///{workdir}/fledgling.db")
    build(store, workdir, n=200)
    yield store, workdir
    store.close()


@pytest.fixture(scope="module")
def api(api_store) -> Iterator[Served]:
    store, workdir = api_store
    served = Served(create_app(Settings(), store, token=TOKEN, jobs_dir=workdir / "jobs"))
    yield served
    served.stop()


def test_unauthenticated_calls_get_401_in_json(api) -> None:
    for method, path in (("GET", "/api/tasks"), ("GET", "/api/openapi.json"), ("POST", "/api/jobs"),
                         ("GET", "/api/jobs/nope")):
        r = httpx.request(method, api.url + path, json={})
        assert r.status_code == 401, path
        assert r.headers["content-type"] == "application/json"
        assert "unauthorized" in r.json()["error"]
        assert r.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.get(api.url + "/api/tasks", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and "wrong" in wrong.json()["error"]


def test_the_schema_is_served_with_every_route(api) -> None:
    r = httpx.get(api.url + "/api/openapi.json", headers=BEARER)
    assert r.status_code == 200
    paths = r.json()["paths"]
    for p in ("/tasks", "/calls", "/contracts", "/datasets", "/eval-runs", "/reports/{task}", "/models",
              "/models/select", "/training", "/rollout", "/rollout/{task}", "/rollout/{task}/rollback",
              "/jobs", "/jobs/{job_id}", "/jobs/{job_id}/cancel", "/jobs/{job_id}/log",
              "/autopilot/{task}", "/autopilot/{task}/approve"):
        assert p in paths, p


def test_reads_with_a_token(api, api_store) -> None:
    store, _ = api_store
    tasks = httpx.get(api.url + "/api/tasks", headers=BEARER).json()
    by_task = {t["task"]: t for t in tasks}
    assert by_task["support-agent"]["calls"] == store.count_calls(CallFilter(task="support-agent"))
    assert by_task["support-agent"]["mode"] == "record"
    datasets = httpx.get(api.url + "/api/datasets", params={"task": "support-agent"}, headers=BEARER).json()
    assert [d["version"] for d in datasets] == [1]
    one = httpx.get(api.url + "/api/datasets/support-agent/1", headers=BEARER).json()
    assert "report" in one
    assert httpx.get(api.url + "/api/datasets/support-agent/99", headers=BEARER).status_code == 404
    runs = httpx.get(api.url + "/api/eval-runs", params={"task": "support-agent"}, headers=BEARER).json()
    assert {r["model"] for r in runs} == {"recorded", "sloppy-candidate"}
    report = httpx.get(api.url + "/api/reports/support-agent", headers=BEARER).json()
    assert report["verdict"] in ("SWAP", "NOT YET", "NO") and report["primary"] == "sloppy-candidate"
    contracts = httpx.get(api.url + "/api/contracts", params={"task": "support-agent"}, headers=BEARER).json()
    assert contracts and contracts[0]["task"] == "support-agent"
    training = httpx.get(api.url + "/api/training", headers=BEARER).json()
    assert {r["id"] for r in training} == {"support-agent-lora-done", "ticket-triage-lora-live"}
    assert httpx.get(api.url + "/api/training/nope", headers=BEARER).json()["error"].startswith("no training run")


def test_calls_are_filtered_and_paginated_without_overlap(api, api_store) -> None:
    store, _ = api_store
    total = store.count_calls(CallFilter(task="support-agent", status="ok"))
    seen: list[str] = []
    cursor = None
    while True:
        params = {"task": "support-agent", "status": "ok", "limit": 37, **({"before": cursor} if cursor else {})}
        page = httpx.get(api.url + "/api/calls", params=params, headers=BEARER).json()
        assert all(item["task"] == "support-agent" and item["status"] == "ok" for item in page["items"])
        seen += [item["id"] for item in page["items"]]
        cursor = page["older"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == total
    stamps = [httpx.get(api.url + f"/api/calls/{cid}", headers=BEARER).json()["created_at"] for cid in seen[:3]]
    assert stamps == sorted(stamps, reverse=True)
    bad = httpx.get(api.url + "/api/calls", params={"before": "garbage"}, headers=BEARER)
    assert bad.status_code == 400 and "not a cursor" in bad.json()["error"]
    nul = httpx.get(api.url + "/api/calls", params={"task": "a\x00b"}, headers=BEARER)
    assert nul.status_code == 400 and "NUL" in nul.json()["error"]
    over = httpx.get(api.url + "/api/calls", params={"limit": 10_000}, headers=BEARER)
    assert over.status_code == 422 and "limit" in over.json()["error"]


def test_a_session_change_without_the_csrf_header_is_refused(api, api_store) -> None:
    store, _ = api_store
    with httpx.Client(base_url=api.url, follow_redirects=False) as browser_like:
        login = browser_like.get("/login")
        csrf = login.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        r = browser_like.post("/login", data={"token": TOKEN, "csrf_token": csrf, "next": "/"})
        assert r.status_code == 303
        token = browser_like.get("/api/session").json()["csrf_token"]
        body = {"mode": "shadow", "reason": "csrf test"}
        refused = browser_like.post("/api/rollout/ticket-triage", json=body)
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["error"]
        wrong = browser_like.post("/api/rollout/ticket-triage", json=body, headers={"X-CSRF-Token": "x" * 40})
        assert wrong.status_code == 403
        assert rollout.current(store, Settings(), "ticket-triage").mode == "record"  # nothing changed
        # with the header it is the ordinary API, which refuses shadow without a candidate
        no_candidate = browser_like.post("/api/rollout/ticket-triage", json=body, headers={"X-CSRF-Token": token})
        assert no_candidate.status_code == 400 and "has no candidate model" in no_candidate.json()["error"]


def test_select_a_model_then_change_and_roll_back_the_rollout(api, api_store) -> None:
    store, _ = api_store
    r = httpx.post(api.url + "/api/models/select", json={"task": "support-agent", "model": "smollm2-135m-instruct"},
                   headers=BEARER)
    assert r.status_code == 200 and r.json()["selected"] == "smollm2-135m-instruct"
    models = httpx.get(api.url + "/api/models", params={"task": "support-agent"}, headers=BEARER).json()
    assert models["selected"] == "smollm2-135m-instruct"
    unknown = httpx.post(api.url + "/api/models/select", json={"task": "support-agent", "model": "nope"},
                         headers=BEARER)
    assert unknown.status_code == 400 and "nope" in unknown.json()["error"]
    r = httpx.post(api.url + "/api/rollout/support-agent", json={"mode": "canary", "canary_percent": 10,
                                                                "reason": "api test"}, headers=BEARER)
    assert r.status_code == 200 and r.json()["mode"] == "canary"
    state = rollout.current(store, Settings(), "support-agent")
    assert (state.mode, state.canary_percent, state.updated_by) == ("canary", 10.0, "api")
    shown = httpx.get(api.url + "/api/rollout/support-agent", headers=BEARER).json()
    assert shown["events"][0]["reason"] == "api test"
    r = httpx.post(api.url + "/api/rollout/support-agent/rollback", json={"to": "record"}, headers=BEARER)
    assert r.json()["mode"] == "record"
    assert rollout.events(store, "support-agent")[0].kind == "rollback"
    bad = httpx.post(api.url + "/api/rollout/support-agent", json={"mode": "sideways"}, headers=BEARER)
    assert bad.status_code == 422 and "mode" in bad.json()["error"]


def wait_job(api, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = httpx.get(api.url + f"/api/jobs/{job_id}", headers=BEARER).json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def test_jobs_start_refuse_a_second_report_and_log(api, api_store) -> None:
    store, _ = api_store
    body = {"kind": "curate", "task": "support-agent", "arguments": {"seed": 3}}
    r = httpx.post(api.url + "/api/jobs", json=body, headers=BEARER)
    assert r.status_code == 202, r.text
    job = r.json()
    again = httpx.post(api.url + "/api/jobs", json=body, headers=BEARER)
    assert again.status_code == 409 and job["id"] in again.json()["error"]
    done = wait_job(api, job["id"])
    assert done["state"] == "succeeded", done
    assert done["result"]["dataset_version"] == store.datasets.latest_version("support-agent")
    log = httpx.get(api.url + f"/api/jobs/{job['id']}/log", headers=BEARER).json()
    assert f"curate job {job['id']}" in log["log"]
    listed = httpx.get(api.url + "/api/jobs", params={"task": "support-agent"}, headers=BEARER).json()
    assert job["id"] in [j["id"] for j in listed]
    ended = httpx.post(api.url + f"/api/jobs/{job['id']}/cancel", headers=BEARER)
    assert ended.status_code == 400 and "already ended" in ended.json()["error"]
    bad = httpx.post(api.url + "/api/jobs", json={"kind": "train", "task": "support-agent",
                                                  "arguments": {"epochs": -1}}, headers=BEARER)
    assert bad.status_code == 400 and "epochs" in bad.json()["error"]
    assert httpx.get(api.url + "/api/jobs/nope", headers=BEARER).status_code == 404
    kinds = httpx.get(api.url + "/api/jobs/kinds", headers=BEARER).json()
    assert set(kinds) == {"curate", "train", "eval", "report", "calibrate", "publish", "autopilot"}


def test_the_autopilot_switch_runs_it_as_a_job_and_stops_it(api, api_store) -> None:
    store, _ = api_store
    on = httpx.post(api.url + "/api/autopilot/ticket-triage", json={"enabled": True, "interval_s": 0.2},
                    headers=BEARER).json()
    assert on["switch"]["enabled"] is True and on["job"].startswith("autopilot-ticket-triage-")
    deadline = time.monotonic() + 120
    while store.jobs.get(on["job"]).message is None or "round" not in store.jobs.get(on["job"]).message:
        assert time.monotonic() < deadline, store.jobs.get(on["job"])
        time.sleep(0.2)
    again = httpx.post(api.url + "/api/autopilot/ticket-triage", json={"enabled": True}, headers=BEARER).json()
    assert again["job"] == on["job"]  # already running: not a second one
    off = httpx.post(api.url + "/api/autopilot/ticket-triage", json={"enabled": False}, headers=BEARER).json()
    assert off["switch"]["enabled"] is False
    assert wait_job(api, on["job"])["state"] in ("cancelled", "succeeded")
    shown = httpx.get(api.url + "/api/autopilot/ticket-triage", headers=BEARER).json()
    assert shown["switch"]["enabled"] is False and shown["decisions"] == []  # no traffic to act on
