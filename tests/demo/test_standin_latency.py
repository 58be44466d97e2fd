"""The stand-in LLM replays each recorded call's latency (scaled), so the calls a real gateway
captures in front of it carry the hosted model's latency, not a loopback's milliseconds."""

from __future__ import annotations

import time

import httpx
import pytest

from fledgling.demo import generate_calls
from fledgling.demo.live_capture import replay_through_gateway
from fledgling.demo.standin import RecordedAnswers, StandInUpstream
from fledgling.gateway.server import ServerThread


def _ask(base: str, call) -> tuple[float, httpx.Response]:
    body = call.request.model_dump(mode="json", exclude_none=True) | {"model": "m"}
    started = time.perf_counter()
    resp = httpx.post(base + "/v1/chat/completions", json=body, headers={"x-request-id": call.id}, timeout=30)
    return (time.perf_counter() - started) * 1000, resp


def test_the_standin_waits_the_recorded_latency_times_the_scale():
    calls = [c for c in generate_calls(seed=1, n=40) if c.response is not None][:4]
    assert all(600 <= c.latency_ms <= 3000 for c in calls)  # the generated traffic is realistic
    with ServerThread(StandInUpstream(RecordedAnswers(calls), latency_scale=0.25)) as base:
        for call in calls:
            took, resp = _ask(base, call)
            assert resp.status_code == 200
            assert took >= call.latency_ms * 0.25
            assert "latency_ms" not in resp.json()["choices"][0]["message"]


def test_at_scale_zero_the_standin_answers_at_once():
    slow = next(c for c in generate_calls(seed=1, n=40) if c.response is not None)
    slow = slow.model_copy(update={"latency_ms": 60_000.0})
    with ServerThread(StandInUpstream(RecordedAnswers([slow]))) as base:
        took, resp = _ask(base, slow)
    assert resp.status_code == 200 and took < 10_000


def test_a_negative_scale_is_refused():
    with pytest.raises(ValueError, match="latency_scale"):
        StandInUpstream(latency_scale=-1)


def test_calls_captured_through_the_gateway_carry_the_replayed_latency(sqlite_store, tmp_path):
    calls = list(generate_calls(seed=2, n=30))
    result = replay_through_gateway(calls, sqlite_store, spool_dir=tmp_path / "spool", latency_scale=0.2)
    assert result.sent == 30 and result.recorded == 30
    stored = {c.id: c for c in sqlite_store.iter_calls()}
    for call in calls:
        assert stored[call.id].latency_ms >= call.latency_ms * 0.2, call.id
