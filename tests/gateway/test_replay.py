"""Replaying recorded calls through a real gateway (the demo's live capture), and the caller
headers it relies on: X-Fledgling-Call-Id (idempotency) and X-Fledgling-Metadata."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from fledgling.demo import generate_calls
from fledgling.demo.live_capture import replay_through_gateway
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


def test_replayed_metadata_keeps_every_character(store: Store, tmp_path: Path) -> None:
    """The demo's ground truth names customers such as Tomás and Zoe Müller: recorded through a
    gateway it must stay what it was (it came back as "TomÃ¡s" once, scoring right answers
    wrong)."""
    calls = list(generate_calls(seed=0, n=400))
    accented = [c for c in calls if any(ord(ch) > 127 for ch in repr(c.metadata["ground_truth"]))]
    assert len(accented) >= 2, "the demo traffic should name customers with accents"
    replay_through_gateway(accented, store, spool_dir=tmp_path / "spool")
    for original in accented:
        assert store.get_call(original.id).metadata["ground_truth"] == original.metadata["ground_truth"]


def test_metadata_sent_as_utf8_bytes_is_read_as_utf8(gateway) -> None:
    """A client that puts non-ASCII JSON in the header as raw UTF-8 bytes (aiohttp and httpx do,
    given a str) gets it stored as written; bytes that are not UTF-8 get a 400."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    url = gateway.url + "/v1/chat/completions"
    meta = {"customer": "Zoe Müller", "city": "Kraków", "note": "東京"}
    r = httpx.post(url, json=body, headers={"x-fledgling-metadata": json.dumps(meta, ensure_ascii=False)
                                            .encode(), "x-fledgling-call-id": "utf8-meta"})
    assert r.status_code == 200, r.text
    gateway.drain()
    got = gateway.store.get_call("utf8-meta").metadata
    assert {k: got[k] for k in meta} == meta
    r = httpx.post(url, json=body, headers={"x-fledgling-metadata": b'{"name": "Zo\xe9"}'})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_metadata"


def test_bad_caller_headers_get_400(gateway) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    url = gateway.url + "/v1/chat/completions"
    r = httpx.post(url, json=body, headers={"x-fledgling-call-id": "no spaces allowed"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_call_id"
    r = httpx.post(url, json=body, headers={"x-fledgling-metadata": "[1]"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_metadata"


def test_identical_requests_get_their_own_recorded_answers_in_any_order() -> None:
    """Two calls with the same request, one failed and one answered: asked by call id (the
    `x-request-id` header the replay sends and the gateway passes on), each gets its own
    outcome, whatever order the requests arrive in."""
    from fledgling.demo.standin import RecordedAnswers, StandInUpstream
    from fledgling.gateway.server import ServerThread

    calls = list(generate_calls(seed=5, n=400))
    first_seen: dict[str, object] = {}
    pair = None
    for c in calls:
        other = first_seen.setdefault(c.request.model_dump_json(), c)
        if other is not c and other.status != c.status:
            pair = [other, c]
            break
    assert pair is not None, "the demo traffic should hold identical requests with different outcomes"
    with ServerThread(StandInUpstream(RecordedAnswers(pair))) as upstream:
        for call in reversed(pair):
            body = call.request.model_dump(mode="json", exclude_none=True) | {"model": "m"}
            r = httpx.post(upstream + "/v1/chat/completions", json=body, headers={"x-request-id": call.id})
            assert (r.status_code == 200) == (call.status == "ok")
            if call.response is not None:
                assert r.json()["choices"][0]["message"].get("content") == call.response.content
