"""Live pull from a Langfuse host, against a real HTTP server on loopback speaking its API."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from fledgling.calls import stable_id
from fledgling.capture.langfuse import pull
from fledgling.errors import ConfigError, UpstreamError
from fledgling.store import CallFilter, Store
from tests.capture.langfuse_server import LangfuseServer

T0 = datetime(2024, 7, 1, 9, 0, tzinfo=UTC)
FLEDGLING = str(Path(sys.executable).parent / "fledgling")


def _generation(n: int, trace: str = "trace-a") -> dict:
    start = T0 + timedelta(minutes=n)
    return {
        "id": f"obs-{n:03d}", "traceId": trace, "type": "GENERATION", "name": "OpenAI-generation",
        "startTime": start.isoformat().replace("+00:00", "Z"),
        "endTime": (start + timedelta(milliseconds=700)).isoformat().replace("+00:00", "Z"),
        "model": "gpt-4o-mini", "modelParameters": {"temperature": "0"},
        "input": orjson.dumps([{"role": "system", "content": "Classify the ticket."},
                               {"role": "user", "content": f"ticket number {n}"}]).decode(),
        "output": {"role": "assistant", "content": '{"category": "bug"}'},
        "usageDetails": {"input": str(40 + n), "output": "6", "total": str(46 + n)},
        "costDetails": {"total": 0.0001}, "level": "DEFAULT", "metadata": "{}",
    }


def _server(**kw) -> LangfuseServer:
    srv = LangfuseServer(**kw)
    srv.observations = [_generation(n) for n in range(5)] + [
        {"id": "span-1", "traceId": "trace-a", "type": "SPAN", "startTime": T0.isoformat()}]
    srv.traces["trace-a"] = {"id": "trace-a", "name": "ticket-triage", "sessionId": "sess-9",
                             "scores": [{"name": "thumbs", "value": 1, "observationId": None}]}
    return srv


def test_v2_pull_pages_through_cursor_and_then_pulls_only_newer(store: Store) -> None:
    with _server() as srv:
        first = pull(store, srv.url, srv.public_key, srv.secret_key, page_size=2)
        assert (first.api, first.pages, first.read, first.inserted) == ("v2", 3, 5, 5)
        v2 = [q for p, q in srv.requests if p == "/api/public/v2/observations"]
        assert len(v2) == 3 and "cursor" not in v2[0] and all("cursor" in q for q in v2[1:])
        calls = store.query_calls(CallFilter(source="langfuse"), limit=10).items
        assert {c.id for c in calls} == {stable_id("langfuse", f"obs-{n:03d}") for n in range(5)}
        assert {c.task for c in calls} == {"ticket-triage"} and {c.session_id for c in calls} == {"sess-9"}
        assert {c.model for c in calls} == {"gpt-4o-mini"}  # v2's providedModelName
        assert all(c.feedback and c.feedback.score == 1 for c in calls)
        assert store.get_cursor(f"langfuse:{srv.url}") == (T0 + timedelta(minutes=4)).isoformat()

        srv.observations += [_generation(5), _generation(6)]
        srv.requests.clear()
        second = pull(store, srv.url, srv.public_key, srv.secret_key, page_size=2)
        since = [q["fromStartTime"][0] for p, q in srv.requests if p.endswith("/observations")]
        assert since and set(since) == {"2024-07-01T09:04:00Z"}
        assert (second.read, second.inserted) == (3, 2)  # the boundary call is read again, not re-added
        assert store.count_calls() == 7
        third = pull(store, srv.url, srv.public_key, srv.secret_key)
        assert third.inserted == 0 and store.count_calls() == 7


def test_falls_back_to_v1_pages_when_v2_is_absent(store: Store) -> None:
    with _server(v2=False) as srv:
        result = pull(store, srv.url, srv.public_key, srv.secret_key, page_size=2)
        assert (result.api, result.pages, result.read, result.inserted) == ("v1", 3, 5, 5)
        pages = [q["page"][0] for p, q in srv.requests if p == "/api/public/observations"]
        assert pages == ["1", "2", "3"]
        assert store.count_calls(CallFilter(task="ticket-triage")) == 5
        later = pull(store, srv.url, srv.public_key, srv.secret_key, since=T0 + timedelta(minutes=3))
        assert (later.read, later.inserted) == (2, 0)  # --since overrides the stored cursor


def test_wrong_keys_name_the_env_vars_and_write_nothing(sqlite_store: Store) -> None:
    with _server() as srv:
        with pytest.raises(ConfigError, match="LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY"):
            pull(sqlite_store, srv.url, srv.public_key, "sk-wrong")
    assert sqlite_store.count_calls() == 0 and sqlite_store.get_cursor(f"langfuse:{srv.url}") is None


def test_connection_refused_and_timeout_are_clear(sqlite_store: Store) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(UpstreamError, match="cannot reach Langfuse"):
        pull(sqlite_store, f"http://127.0.0.1:{port}", "pk", "sk")
    with _server(delay=0.6) as srv:
        with pytest.raises(UpstreamError, match="did not answer in time"):
            pull(sqlite_store, srv.url, srv.public_key, srv.secret_key, timeout=0.2)


def test_cli_pull_uses_env_keys(tmp_path) -> None:
    db = f"sqlite:///{tmp_path}/f.db"
    with _server() as srv:
        env = {**os.environ, "FLEDGLING_DB_URL": db, "LANGFUSE_PUBLIC_KEY": srv.public_key,
               "LANGFUSE_SECRET_KEY": srv.secret_key, "COLUMNS": "200"}
        ok = subprocess.run([FLEDGLING, "import", "langfuse", "--langfuse-url", srv.url],
                            env=env, capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert ok.returncode == 0, ok.stderr
        assert "langfuse pull (v2 API)" in ok.stdout and "2024-07-01T09:04:00+00:00" in ok.stdout
        env["LANGFUSE_SECRET_KEY"] = "nope"
        bad = subprocess.run([FLEDGLING, "import", "langfuse", "--langfuse-url", srv.url],
                             env=env, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert bad.returncode != 0
    assert bad.stderr.strip().count("\n") == 0 and "LANGFUSE_SECRET_KEY" in bad.stderr
    assert Store(db).count_calls() == 5


def test_a_generation_not_understood_is_skipped_and_named(sqlite_store: Store) -> None:
    with _server() as srv:
        srv.observations[2] = {**srv.observations[2], "input": '{"content": "role"}'}
        result = pull(sqlite_store, srv.url, srv.public_key, srv.secret_key)
        assert (result.read, result.inserted) == (4, 4)
        [skip] = result.skipped
        assert skip.record == "page 1, observation obs-002" and skip.field == "input" and skip.shape == "{content}"
        with pytest.raises(Exception, match="holds no messages"):
            pull(sqlite_store, srv.url, srv.public_key, srv.secret_key, since=T0, strict=True)
