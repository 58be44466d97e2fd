"""The live gate rolls a bad canary back to shadow by itself (and leaves a good one alone); the
admin API changes nothing without its key."""

from __future__ import annotations

import httpx

from fledgling.swap import rollout
from tests.swap.conftest import ADMIN_KEY, TASK, Programmable, bucket, wait_for

N = 160


def _run_canary(sw) -> None:
    sw.set_mode("canary", 50)
    client = sw.client()
    for i in range(N):
        sw.ask(i, session=f"s{i}", client=client)
    sw.calls()  # drained
    wait_for(lambda: not sw.app.swap._shadows)


def test_rollback_fires_on_a_planted_bad_candidate(make_swap):
    # wrong on 40% of requests (fixed by order id), right otherwise
    sw = make_swap(candidate=Programmable("slm", lambda r: "wrong" if bucket(r) < 40 else "good"))
    _run_canary(sw)
    state = rollout.current(sw.store, sw.settings, TASK)
    assert state.mode == "shadow"
    events = rollout.events(sw.store, TASK)
    assert events[0].kind == "rollback" and events[0].actor == "live-gate"
    assert events[0].from_mode == "canary" and events[0].to_mode == "shadow"
    assert "disagreed with the LLM" in events[0].reason
    # after the rollback everything goes to the LLM again, with the candidate in shadow
    modes = [c.metadata["route"]["mode"] for c in sorted(sw.calls(), key=lambda c: c.created_at)]
    flipped = modes.index("shadow")
    assert 5 < flipped < N and set(modes[flipped:]) == {"shadow"}
    assert sw.figures()["rollbacks"] == 1


def test_rollback_does_not_fire_on_a_good_candidate(make_swap):
    # wrong on 3% of requests: inside the acceptable 5%
    sw = make_swap(candidate=Programmable("slm", lambda r: "wrong" if bucket(r) < 3 else "good"))
    _run_canary(sw)
    assert rollout.current(sw.store, sw.settings, TASK).mode == "canary"
    assert [e.kind for e in rollout.events(sw.store, TASK)] == ["change"]
    fig = sw.figures()
    assert fig["compared"] > 50 and fig["agreement"] < 1.0  # it did see the planted mistakes
    assert fig["rollbacks"] == 0


def test_admin_api_refuses_unauthenticated_changes(make_swap, monkeypatch):
    sw = make_swap()
    url = f"{sw.url}/admin/rollout/{TASK}"
    body = {"mode": "swapped"}
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(url + "/rollback", json={}).status_code == 401
    assert httpx.get(f"{sw.url}/admin/swap").status_code == 401
    assert httpx.get(f"{sw.url}/admin/rollout").status_code == 401
    assert rollout.current(sw.store, sw.settings, TASK).mode == "record"
    assert rollout.events(sw.store, TASK) == []
    bad = httpx.post(url, json={"mode": "sideways"}, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert bad.status_code == 400 and "not one of" in bad.json()["error"]["message"]
    ok = httpx.post(url, json=body, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert ok.status_code == 200 and ok.json()["mode"] == "swapped"
    assert rollout.events(sw.store, TASK)[0].actor == "admin-api"
    assert sw.ask(1)[1]["x-fledgling-served-by"] == "candidate"  # applied at once, no restart


def test_admin_api_is_off_without_any_key(make_swap, monkeypatch):
    monkeypatch.delenv("FLEDGLING_ADMIN_KEY")
    sw = make_swap()
    r = httpx.post(f"{sw.url}/admin/rollout/{TASK}", json={"mode": "swapped"},
                   headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 403 and "FLEDGLING_ADMIN_KEY" in r.json()["error"]["message"]
    assert rollout.current(sw.store, sw.settings, TASK).mode == "record"
