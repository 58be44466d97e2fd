"""The ten real traces rebuilt as OTLP (tests/capture/otlp_rebuild.py) import like their Langfuse
export wherever the span attributes carry the content: by file (`fledgling import otel`) and
through the gateway's `POST /v1/traces`, JSON and protobuf alike.

Langfuse moved some content out of the attributes when it stored the spans
(`gen_ai.input.messages`, `ai.prompt.messages`), so for those spans only what stayed is
compared: tools, token counts, finish reasons. OpenInference spans keep everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fledgling.calls import Call
from fledgling.capture import import_files
from fledgling.capture.langfuse import calls_in_file as langfuse_calls
from fledgling.capture.otel import calls_from_otlp_json, calls_from_otlp_protobuf
from fledgling.capture.records import Tally
from fledgling.config import parse_settings
from fledgling.gateway.server import ServerThread, build_app
from fledgling.store import CallFilter, Store
from tests.capture import otlp_rebuild
from tests.capture.conftest import FIXTURES, protobuf_body

REAL = FIXTURES / "langfuse_real"
TRACES = sorted(REAL.glob("*.trace.json"))
FLEDGLING = str(Path(sys.executable).parent / "fledgling")


def _doc(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _attrs(obs: dict[str, Any]) -> dict[str, Any]:
    meta = obs.get("metadata")
    meta = json.loads(meta) if isinstance(meta, str) else meta or {}
    return meta.get("attributes") or {}


def _carries_content(attrs: dict[str, Any]) -> bool:
    return any(k.startswith("llm.input_messages.") for k in attrs)


def _carries_tokens(attrs: dict[str, Any]) -> bool:
    return any(k in attrs for k in ("llm.token_count.prompt", "gen_ai.usage.input_tokens", "ai.usage.promptTokens"))


def _tool_result(content: str) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return content


def _shape(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Roles, tool calls (name, parsed arguments) and tool results (JSON-equal), in order."""
    out = []
    for m in messages:
        calls = tuple((tc["function"]["name"], json.loads(tc["function"]["arguments"]))
                      for tc in m.get("tool_calls", []))
        out.append((m["role"], calls, _tool_result(m["content"]) if m["role"] == "tool" else None))
    return out


def _by_span(calls: list[Call]) -> dict[str, Call]:
    return {c.metadata["otel"]["span_id"]: c for c in calls}


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name.split("-20")[0])
def test_rebuilt_spans_import_like_the_langfuse_export(path: Path) -> None:
    doc = _doc(path)
    from_langfuse = {c.metadata["langfuse"]["observation_id"]: c for c in langfuse_calls(path, None, Tally())}
    from_otel = _by_span(calls_from_otlp_json(otlp_rebuild.payload(doc)))
    for obs in doc["observations"]:
        attrs = _attrs(obs)
        if obs["type"] != "GENERATION" or not attrs:
            assert obs["id"] not in from_otel or obs["type"] == "GENERATION", obs["id"]
            continue
        if attrs.get("ai.operationId") == "ai.generateText":
            assert obs["id"] not in from_otel  # the AI SDK's wrapper span; its doGenerate is the call
            continue
        call = from_otel[obs["id"]]  # every LLM span is a call, whatever convention it speaks
        assert call.trace_id == doc["trace"]["id"]
        if _carries_tokens(attrs):
            assert (call.usage.input_tokens, call.usage.output_tokens) == \
                (int(obs["inputUsage"]), int(obs["outputUsage"])), obs["id"]
        ref = from_langfuse.get(obs["id"])
        if ref is None:
            continue  # Langfuse's own input for it was unreadable (Claude Agent SDK)
        assert [t["function"]["name"] for t in call.request.tools or []] == \
            [t["function"]["name"] for t in ref.request.tools or []], obs["id"]
        if not _carries_content(attrs):
            continue
        want = _shape(ref.request.messages)
        got = _shape(call.request.messages)
        if got[:1] == [("system", (), None)] and want[:1] != got[:1]:
            got = got[1:]  # the span also names the system prompt the export left out
        assert got == want, obs["id"]
        assert [(tc.name, tc.parsed_arguments()) for tc in call.response.tool_calls] == \
            [(tc.name, tc.parsed_arguments()) for tc in ref.response.tool_calls], obs["id"]
        assert call.response.content == ref.response.content, obs["id"]
        if call.response.tool_calls:
            assert call.response.finish_reason == "tool_calls"


def test_openinference_spans_are_llm_calls_not_skipped() -> None:
    """13 of 35 LLM spans were OpenInference ones, skipped as "not LLM calls"."""
    spans = 0
    for path in TRACES:
        doc = _doc(path)
        kinds = {o["id"]: _attrs(o).get("openinference.span.kind") for o in doc["observations"]}
        calls = _by_span(calls_from_otlp_json(otlp_rebuild.payload(doc)))
        llm = {i for i, k in kinds.items() if k == "LLM"}
        assert llm <= set(calls), path.name
        assert not {i for i, k in kinds.items() if k not in (None, "LLM")} & set(calls), path.name
        spans += len(llm)
    assert spans == 7


def test_finish_reasons_are_kept_without_content() -> None:
    doc = _doc(REAL / "csharp-agent-with-gemini-2026-03-09.trace.json")
    calls = _by_span(calls_from_otlp_json(otlp_rebuild.payload(doc)))
    for obs in doc["observations"]:
        if obs["type"] == "GENERATION":
            reasons = json.loads(_attrs(obs)["gen_ai.response.finish_reasons"])
            assert calls[obs["id"]].response.finish_reason == reasons[0]


def test_cli_file_import_and_both_encodings_of_post_v1_traces_agree(tmp_path: Path) -> None:
    payloads = [otlp_rebuild.payload(_doc(p)) for p in TRACES]
    export = tmp_path / "spans.jsonl"
    export.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in payloads))
    db = f"sqlite:///{tmp_path}/cli.db"
    env = {**os.environ, "FLEDGLING_DB_URL": db, "COLUMNS": "250"}
    env.pop("FLEDGLING_CONFIG", None)
    run = subprocess.run([FLEDGLING, "import", "otel", str(export)], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    with Store(db) as cli_store:
        by_file = {c.id: c for c in cli_store.query_calls(CallFilter(source="otel"), limit=1000).items}
    expected = {c.id for p in payloads for c in calls_from_otlp_json(p)}
    assert set(by_file) == expected and len(expected) == 21

    settings = parse_settings({"models": {"llm": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
                               "gateway": {"upstream": "llm", "spool_dir": str(tmp_path / "spool"),
                                           "spool_fsync_ms": 2}})
    with Store(f"sqlite:///{tmp_path}/gw.db") as gw_store:
        app = build_app(settings, gw_store)
        server = ServerThread(app)
        url = server.start()
        try:
            for i, p in enumerate(payloads):
                if i % 2:
                    r = httpx.post(url + "/v1/traces", content=protobuf_body(p),
                                   headers={"content-type": "application/x-protobuf"})
                else:
                    r = httpx.post(url + "/v1/traces", json=p)
                assert r.status_code == 200, r.text
            app.otlp.close()  # the spans without content wait for log events that never come
            assert app.recorder.drain(10)
            by_post = {c.id: c for c in gw_store.query_calls(CallFilter(source="otel"), limit=1000).items}
        finally:
            server.stop()
    assert set(by_post) == set(by_file)
    for cid, call in by_file.items():
        other = by_post[cid]
        assert (other.request, other.response, other.usage, other.model) == \
            (call.request, call.response, call.usage, call.model), cid
    assert calls_from_otlp_protobuf(protobuf_body(payloads[0])) == calls_from_otlp_json(payloads[0])


def test_import_files_counts_what_is_not_an_llm_call(tmp_path: Path, sqlite_store: Store) -> None:
    path = tmp_path / "crewai.json"
    doc = _doc(REAL / "crewai-2025-07-11.trace.json")
    path.write_bytes(orjson.dumps(otlp_rebuild.payload(doc)))
    [res] = import_files(sqlite_store, "otel", [path]).files
    spans = sum(1 for o in doc["observations"] if _attrs(o))
    assert (res.read, res.ignored) == (1, spans - 1)
