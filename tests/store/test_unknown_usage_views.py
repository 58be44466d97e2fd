"""Unknown usage reads as unknown everywhere, not 0: the store keeps NULL, and every JSON view of a
call (`fledgling traces show/list --json`, the openai-jsonl export, the dashboard's call page and
API, the spool's dump) writes null tokens and a null cost; every reader of those dumps accepts null."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from fledgling.calls import Call, Request, Response, Usage
from fledgling.capture.openai_jsonl import call_from_record, dump_call, read_calls
from fledgling.config import Settings
from fledgling.store import Store
from fledgling.ui import create_app
from tests.ui.conftest import Served

FLEDGLING = str(Path(sys.executable).parent / "fledgling")


def a_call(call_id: str, usage: Usage, cost: float | None, response: bool = True) -> Call:
    return Call(id=call_id, task="weather", source="gateway", model="gpt-test",
                created_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
                request=Request(messages=[{"role": "user", "content": "Weather in Oslo?"}]),
                response=Response(content="Cold.", finish_reason="stop") if response else None,
                usage=usage, cost_usd=cost, status="ok" if response else "error",
                error=None if response else "upstream 502")


def fledgling(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEDGLING_DB_URL": db}
    env.pop("FLEDGLING_CONFIG", None)
    return subprocess.run([FLEDGLING, *args], env=env, capture_output=True, text=True, timeout=120)


def test_traces_show_and_list_print_null_for_unknown_usage(store_url: str) -> None:
    with Store(store_url) as s:
        s.insert_calls([a_call("call_unknown", Usage(missing=True), None),
                        a_call("call_known", Usage(input_tokens=0, output_tokens=7), 0.0)])
    shown = fledgling(store_url, "traces", "show", "call_unknown", "--json")
    assert shown.returncode == 0, shown.stderr
    got = json.loads(shown.stdout)
    assert got["usage"] == {"input_tokens": None, "output_tokens": None}
    assert "cost_usd" in got and got["cost_usd"] is None
    known = json.loads(fledgling(store_url, "traces", "show", "call_known", "--json").stdout)
    assert known["usage"] == {"input_tokens": 0, "output_tokens": 7} and known["cost_usd"] == 0.0  # a real 0 stays 0
    listed = json.loads(fledgling(store_url, "traces", "list", "--json").stdout)
    by_id = {c["id"]: c for c in listed["calls"]}
    assert by_id["call_unknown"]["usage"]["input_tokens"] is None and by_id["call_unknown"]["cost_usd"] is None
    assert by_id["call_known"]["usage"]["output_tokens"] == 7
    # the dump reads back as unknown usage, not as 0
    assert Call.model_validate(got).usage.missing
    assert not Call.model_validate(known).usage.missing


def test_the_openai_jsonl_export_writes_null_and_reads_it_back(tmp_path: Path) -> None:
    unknown = a_call("call_u", Usage(missing=True), None)
    failed = a_call("call_f", Usage(missing=True), None, response=False)
    known = a_call("call_k", Usage(input_tokens=12, output_tokens=3), 0.001)
    lines = [dump_call(c) for c in (unknown, failed, known)]
    assert lines[0]["response"]["usage"] is None and lines[0]["cost_usd"] is None
    assert lines[1]["usage"] == {"input_tokens": None, "output_tokens": None} and lines[1]["cost_usd"] is None
    assert lines[2]["response"]["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    back = {c.id: c for c in read_calls(path)}
    assert back["call_u"].usage.missing and back["call_u"].cost_usd is None
    assert back["call_f"].usage.missing
    assert (back["call_k"].usage.missing, back["call_k"].usage.input_tokens, back["call_k"].usage.output_tokens) \
        == (False, 12, 3)
    # null counts written by another tool read as unknown too
    rec = {"request": {"messages": [{"role": "user", "content": "hi"}]},
           "response": {"choices": [{"message": {"role": "assistant", "content": "yo"}}],
                        "usage": {"prompt_tokens": None, "completion_tokens": None}}}
    assert call_from_record(rec).usage.missing


def test_the_spooled_dump_keeps_unknown_usage() -> None:
    call = a_call("call_s", Usage(missing=True), None)
    again = Call.model_validate_json(call.model_dump_json())
    assert again.usage.missing and again.cost_usd is None


def test_the_dashboard_says_unknown(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path}/ui.db")
    s.insert_calls([a_call("call_unknown", Usage(missing=True), None),
                    a_call("call_known", Usage(input_tokens=1234, output_tokens=7), 0.0)])
    served = Served(create_app(Settings(), s, token=""))
    try:
        page = httpx.get(served.url + "/traces/call_unknown").text
        tokens = page.split("tokens in / out</dt><dd>", 1)[1].split("</dd>", 1)[0]
        assert tokens.startswith("unknown") and "0 / 0" not in tokens
        known = httpx.get(served.url + "/traces/call_known").text
        assert "1,234 / 7" in known
        api = httpx.get(served.url + "/api/calls/call_unknown").json()
        assert api["usage"] == {"input_tokens": None, "output_tokens": None} and api["cost_usd"] is None
    finally:
        served.stop()
        s.close()


@pytest.mark.parametrize("raw", [{"input_tokens": None, "output_tokens": None},
                                 {"input_tokens": None, "output_tokens": 4}])
def test_a_null_count_is_unknown_usage(raw: dict) -> None:
    assert Usage.model_validate(raw).missing
