"""Replaying recorded calls through a real gateway (the demo's live capture), and the caller
headers it relies on: X-Fledgling-Call-Id (idempotency) and X-Fledgling-Metadata."""

from __future__ import annotations

from pathlib import Path

import httpx

from fledgling.demo import generate_calls
from fledgling.gateway.replay import replay_through_gateway
from fledgling.store import Store


def test_replay_records_the_same_calls_once(store: Store, tmp_path: Path) -> None:
    calls = list(generate_calls(seed=5, n=120))
    failures = sum(c.response is None for c in calls)
    result = replay_through_gateway(calls, store, spool_dir=tmp_path / "spool")
    assert (result.sent, result.identical, result.failed) == (120, 120 - failures, failures)
    assert store.count_calls() == 120
    for original in calls[:20]:
        got = store.get_call(original.id)
        assert (got.source, got.task, got.session_id, got.trace_id) == (
            "gateway", original.task, original.session_id, original.trace_id)
        assert got.response == original.response and got.usage == original.usage
        assert got.metadata["ground_truth"] == original.metadata["ground_truth"]
        assert got.status == original.status
    again = replay_through_gateway(calls, store, spool_dir=tmp_path / "spool")
    assert again.identical == result.identical and store.count_calls() == 120


def test_bad_caller_headers_get_400(gateway) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    url = gateway.url + "/v1/chat/completions"
    r = httpx.post(url, json=body, headers={"x-fledgling-call-id": "no spaces allowed"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_call_id"
    r = httpx.post(url, json=body, headers={"x-fledgling-metadata": "[1]"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_metadata"
