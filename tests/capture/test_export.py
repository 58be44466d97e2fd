"""Back out: stored calls as OTLP GenAI spans (a round trip through the gateway's own
`/v1/traces` gives back the same calls) and eval results as Langfuse scores (against a loopback
server speaking Langfuse's scores and ingestion endpoints)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fledgling.calls import Call, Request, Response, Usage
from fledgling.capture import import_files
from fledgling.capture.export import payload, send_langfuse_scores, send_otel
from fledgling.config import parse_settings
from fledgling.curate.redact import redact_messages
from fledgling.errors import UpstreamError
from fledgling.gateway.server import ServerThread, build_app
from fledgling.store import CallFilter, Store
from tests.capture.conftest import FIXTURES
from tests.capture.langfuse_server import LangfuseServer

TRACES = sorted((FIXTURES / "langfuse_real").glob("*.trace.json"))
FLEDGLING = str(Path(sys.executable).parent / "fledgling")


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Any, str, Store]]:
    """A real gateway: its `/v1/traces` is the OTLP backend the export is sent to."""
    settings = parse_settings({"models": {"llm": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
                               "gateway": {"upstream": "llm", "spool_dir": str(tmp_path / "spool"),
                                           "spool_fsync_ms": 2}})
    with Store(f"sqlite:///{tmp_path}/received.db") as store:
        app = build_app(settings, store)
        server = ServerThread(app)
        url = server.start()
        try:
            yield app, url, store
        finally:
            server.stop()


def _received(app: Any, store: Store) -> dict[str, Call]:
    app.otlp.close()
    assert app.recorder.drain(10)
    return {c.metadata["otel"]["span_id"]: c for c in store.query_calls(CallFilter(source="otel"), limit=1000).items}


def _same(a: Call, b: Call) -> None:
    assert b.request.messages == a.request.messages, a.id
    assert b.request.tools == a.request.tools, a.id
    assert (b.request.temperature, b.request.seed, b.request.max_tokens) == \
        (a.request.temperature, a.request.seed, a.request.max_tokens)
    assert (b.response is None) == (a.response is None or a.response == Response()), a.id
    if a.response is not None and b.response is not None:
        assert (b.response.content, b.response.tool_calls, b.response.finish_reason) == \
            (a.response.content, a.response.tool_calls, a.response.finish_reason), a.id
    assert (b.usage.input_tokens, b.usage.output_tokens) == (a.usage.input_tokens, a.usage.output_tokens)
    assert (b.model, b.provider, b.task, b.session_id, b.status) == (a.model, a.provider, a.task, a.session_id,
                                                                     a.status)
    assert b.trace_id == a.trace_id.replace("-", "")


def test_round_trip_through_otlp_gives_back_the_same_calls(sqlite_store: Store, receiver: tuple) -> None:
    import_files(sqlite_store, "langfuse", TRACES)
    calls = list(sqlite_store.iter_calls(CallFilter(source="langfuse")))
    assert len(calls) == 23
    app, url, store = receiver
    result = send_otel(calls, url + "/v1/traces", content=True, batch=5)
    assert (result.calls, result.requests) == (23, 5)
    back = _received(app, store)
    assert len(back) == 23
    for call in calls:
        _same(call, back[call.metadata["langfuse"]["observation_id"]])
    again = send_otel(calls, url + "/v1/traces", content=True)  # the same spans: stored once
    assert again.calls == 23 and len(_received(app, store)) == 23


def test_without_content_only_figures_leave(sqlite_store: Store, receiver: tuple) -> None:
    import_files(sqlite_store, "langfuse", TRACES[:3])
    calls = list(sqlite_store.iter_calls(CallFilter(source="langfuse")))
    body = orjson.dumps(payload(calls))
    for secret in ("Twitter", "weather", "messages", "content"):
        assert secret.encode() not in body
    app, url, store = receiver
    send_otel(calls, url + "/v1/traces")
    back = _received(app, store)
    for call in calls:
        twin = back[call.metadata["langfuse"]["observation_id"]]
        assert twin.request.messages == [] and twin.request.tools is None
        assert (twin.usage, twin.model, twin.task) == (call.usage, call.model, call.task)


def _call(text: str) -> Call:
    return Call(id="call_redact_1", source="gateway", task="support", trace_id="0af7651916cd43dd8448eb211c80319c",
                created_at=datetime(2026, 1, 1, tzinfo=UTC), model="gpt-4o", provider="openai",
                request=Request(messages=[{"role": "system", "content": "Help."}, {"role": "user", "content": text}]),
                response=Response(content="Mail sent to jane.doe@example.com", finish_reason="stop"),
                usage=Usage(input_tokens=10, output_tokens=5), latency_ms=120.0)


def test_redaction_when_asked(receiver: tuple) -> None:
    call = _call("Email jane.doe@example.com my key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789")
    app, url, store = receiver
    send_otel([call], url + "/v1/traces", content=True, redact=lambda m: redact_messages(m)[0])
    [back] = _received(app, store).values()
    sent = orjson.dumps([back.request.messages, back.response.content]).decode()
    assert "jane.doe@example.com" not in sent and "sk-proj-abcdefghijklmnop" not in sent
    assert back.request.messages[0] == {"role": "system", "content": "Help."}
    assert back.request.messages[1]["content"].startswith("Email ") and back.latency_ms == pytest.approx(120.0)


def test_cli_export_otel(tmp_path: Path, receiver: tuple) -> None:
    db = f"sqlite:///{tmp_path}/source.db"
    with Store(db) as source:
        import_files(source, "langfuse", TRACES[:2])
        n = source.count_calls()
    env = {**os.environ, "FLEDGLING_DB_URL": db, "COLUMNS": "250"}
    env.pop("FLEDGLING_CONFIG", None)
    app, url, store = receiver
    run = subprocess.run([FLEDGLING, "export", "otel", "--endpoint", url + "/v1/traces", "--content", "--redact"],
                         env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"sent {n} calls as spans" in run.stdout and "with content, redacted" in run.stdout
    assert len(_received(app, store)) == n
    bad = subprocess.run([FLEDGLING, "export", "otel", "--endpoint", "http://127.0.0.1:9/v1/traces"],
                         env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "cannot reach" in bad.stderr


def test_a_refusing_collector_stops_the_export_saying_how_far_it_got(receiver: tuple) -> None:
    _, url, _ = receiver
    with pytest.raises(UpstreamError, match="after 0 calls were sent"):
        send_otel([_call("hi")], url + "/v1/not-traces")


def _eval_items(calls: list[Call]) -> list[dict[str, Any]]:
    items = []
    for i, call in enumerate(calls):
        items.append({"call_id": call.id, "label_source": "reference", "prediction": None, "error": None,
                      "parse_failed": False, "latency_ms": 10.0, "input_tokens": 1, "output_tokens": 1,
                      "scores": {"tool_name_match": i % 2 == 0, "args_exact_match": 0.5, "note": "text"}})
    items.append({**items[0], "call_id": "call_gone"})
    return items


def test_eval_results_as_langfuse_scores(sqlite_store: Store) -> None:
    import_files(sqlite_store, "langfuse", [FIXTURES / "langfuse_real" / "openai-agents-2025-09-30.trace.json"])
    calls = list(sqlite_store.iter_calls(CallFilter(source="langfuse")))
    items = _eval_items(calls)
    with LangfuseServer() as lf:
        result = send_langfuse_scores(items, sqlite_store.get_call, lf.url, lf.public_key, lf.secret_key,
                                      run_id="run-1")
        assert result.sent == 2 * len(calls) and result.skipped == ["call_gone: the call is not in the store"]
        scores = sorted(lf.scores.values(), key=lambda s: (s["observationId"], s["name"]))
        again = send_langfuse_scores(items, sqlite_store.get_call, lf.url, lf.public_key, lf.secret_key,
                                     run_id="run-1")
        assert again.sent == result.sent and len(lf.scores) == len(scores)  # same ids: replaced, not added
        with pytest.raises(Exception, match="refused the credentials"):
            send_langfuse_scores(items, sqlite_store.get_call, lf.url, "pk-wrong", "sk", run_id="run-1")
    by_obs = {c.metadata["langfuse"]["observation_id"]: c for c in calls}
    for s in scores:
        call = by_obs[s["observationId"]]
        assert s["traceId"] == call.trace_id and s["dataType"] == "NUMERIC"
        i = calls.index(call)
        want = {"fledgling.tool_name_match": 1.0 if i % 2 == 0 else 0.0, "fledgling.args_exact_match": 0.5}
        assert s["value"] == want[s["name"]]


def test_the_loopback_langfuse_ingestion_endpoint_speaks_its_batch_shape() -> None:
    with LangfuseServer() as lf:
        batch = {"batch": [{"id": "e1", "type": "score-create", "timestamp": "2026-01-01T00:00:00Z",
                            "body": {"id": "s1", "traceId": "t", "name": "n", "value": 1}},
                           {"id": "e2", "type": "score-create", "timestamp": "2026-01-01T00:00:00Z",
                            "body": {"traceId": "t", "name": "n", "value": "x"}}]}
        r = httpx.post(lf.url + "/api/public/ingestion", json=batch, auth=(lf.public_key, lf.secret_key))
    assert r.status_code == 207
    assert r.json()["successes"] == [{"id": "e1", "status": 201}] and r.json()["errors"][0]["id"] == "e2"
    assert list(lf.scores) == ["s1"]
