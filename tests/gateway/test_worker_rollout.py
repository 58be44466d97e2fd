"""`fledgling gateway --workers 2`: a rollout change made through one worker's admin API reaches
the other worker within about a second (each worker re-reads the rollout state from the store
once its cache is a second old)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from fledgling.gateway.workers import PUBLISH_S
from fledgling.store import Store
from tests.standin_apis import RunningStandIn

from .supervised import _up, _wait_for, kill_tree, start_gateway

ADMIN = "admin-key-for-the-rollout-test-0123456789"
CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "What is the weather in Oslo?"}]}
TASK = {"x-fledgling-task": "weather"}
REACH_S = 2.0  # the cache's 1 s, the request that finds it stale, the query; slack for a busy machine


def test_a_rollout_change_through_one_worker_reaches_the_other(store_url: str, tmp_path: Path) -> None:
    llm, cand = RunningStandIn(), RunningStandIn(voice="[slm] ", model="slm")
    with llm, cand:
        config = tmp_path / "fledgling.toml"
        config.write_text(
            f'[store]\nurl = "{store_url}"\n\n'
            f'[models.llm]\nkind = "openai"\nbase_url = "{llm.url}/v1"\n\n'
            f'[models.cand]\nkind = "openai"\nbase_url = "{cand.url}/v1"\nmodel = "slm"\n\n'
            '[tasks.weather]\nupstream = "llm"\ncandidate = "cand"\n\n'
            '[tasks.weather.swap]\nbudget_ms = 5000\nretries = 0\n\n'
            f'[gateway]\nupstream = "llm"\nspool_dir = "{tmp_path / "spool"}"\nspool_fsync_ms = 5\n')
        sup, url = start_gateway(config, tmp_path, extra_env={"FLEDGLING_ADMIN_KEY": ADMIN})
        sent: list[tuple[float, str, str]] = []  # (sent, served by, call id), after the change
        try:
            _wait_for(lambda: _up(url), timeout=60)
            with httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as fresh:
                def ask() -> tuple[str, str]:
                    r = fresh.post(url + "/v1/chat/completions", json=CHAT, headers=TASK)
                    assert r.status_code == 200, r.text
                    return r.headers.get("x-fledgling-served-by", "upstream"), r.headers["x-fledgling-call-id"]

                for _ in range(40):  # both workers serving, their rollout caches loaded (record)
                    assert ask()[0] == "upstream"
                with httpx.Client(timeout=10) as admin:  # one connection: one worker takes the change
                    r = admin.post(url + "/admin/rollout/weather", json={"mode": "swapped", "reason": "test"},
                                   headers={"authorization": f"Bearer {ADMIN}"})
                    changed_at = time.monotonic()
                    assert r.status_code == 200 and r.json()["mode"] == "swapped", r.text
                    changer = admin.get(url + "/health").json()["worker"]["index"]
                while time.monotonic() < changed_at + REACH_S + 1.0:
                    at = time.monotonic()
                    served_by, call_id = ask()
                    sent.append((at - changed_at, served_by, call_id))
                # /admin/swap, whichever worker answers: the task's figures summed over both
                time.sleep(3 * PUBLISH_S)
                views = [fresh.get(url + "/admin/swap", headers={"authorization": f"Bearer {ADMIN}"}).json()
                         for _ in range(6)]
            sup.send_signal(signal.SIGTERM)
            _, err = sup.communicate(timeout=60)
            assert sup.returncode == 0, err.decode()[-2000:]
        finally:
            kill_tree(sup)
    with Store(store_url, migrate=False) as store:
        worker_of = {c.id: c.metadata["gateway_worker"] for c in store.iter_calls()}
    other = [(after, by) for after, by, cid in sent if worker_of[cid] != changer]
    mine = [(after, by) for after, by, cid in sent if worker_of[cid] == changer]
    assert mine and all(by == "candidate" for _, by in mine)  # at once where the change was made
    late = [after for after, by in other if by != "candidate"]
    reached = max(late, default=0.0)
    print(f"the other worker served the old rollout until {reached:.2f} s after the change")
    assert reached < REACH_S
    swapped = [by for _, by, _ in sent if by == "candidate"]
    for view in views:
        fig = view["tasks"]["weather"]
        parts = [w["tasks"]["weather"] for w in view["workers"] if "weather" in w["tasks"]]
        assert fig["mode"] == "swapped" and len(view["workers"]) == 2
        # counted by a worker from its first request in swapped mode (its record-mode ones are not)
        assert fig["requests"] == sum(p["requests"] for p in parts) >= len(swapped)
        assert fig["served_by"].get("candidate", 0) == sum(p["served_by"].get("candidate", 0) for p in parts)
        assert fig["served_by"]["candidate"] == len(swapped)
        assert fig["candidate_share"] == len(swapped) / sum(fig["served_by"].values())
        assert set(fig["gate"]) <= {"worker-0", "worker-1"}
        assert all(set(by_worker) <= {"worker-0", "worker-1"} for by_worker in view["circuits"].values())
    assert [by for after, by in other if after >= REACH_S] and all(by == "candidate" for after, by in other
                                                                   if after >= REACH_S)
