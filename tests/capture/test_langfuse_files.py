"""Langfuse exports: OpenAI-integration JSON and LangChain-integration JSONL, string-encoded fields."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from fledgling.calls import default_task, stable_id
from fledgling.capture.langfuse import call_from_observation, calls_in_file
from fledgling.capture.records import Tally
from fledgling.errors import InputError


def _read(path: Path) -> tuple[list, Tally]:
    tally = Tally()
    return list(calls_in_file(path, None, tally)), tally


def test_openai_integration_export(fixtures: Path) -> None:
    calls, tally = _read(fixtures / "langfuse_openai.json")
    assert tally.ignored == 1  # the SPAN observation
    by_obs = {c.metadata["langfuse"]["observation_id"]: c for c in calls}
    assert set(by_obs) == {"gen-7c1d2e", "gen-9e4f01", "gen-err-33", "gen-ok-34"}

    tool_turn = by_obs["gen-7c1d2e"]
    assert tool_turn.id == stable_id("langfuse", "gen-7c1d2e")
    assert tool_turn.source == "langfuse" and tool_turn.task == "support-agent"  # trace name
    assert tool_turn.trace_id == "4f8a1c2e-7b9d-4e21-9a55-0c3e2d1b6f70" and tool_turn.session_id == "sess-8812"
    assert tool_turn.created_at == datetime(2024, 5, 28, 9, 14, 2, 201000, tzinfo=UTC)
    assert tool_turn.latency_ms == pytest.approx(863.0)
    assert tool_turn.model == "gpt-4o-2024-05-13" and tool_turn.provider == "openai"  # metadata was JSON text
    assert (tool_turn.usage.input_tokens, tool_turn.usage.output_tokens) == (212, 19)  # strings
    assert tool_turn.cost_usd == pytest.approx(0.001345)
    assert tool_turn.request.temperature == 0.2 and tool_turn.request.seed == 42
    assert tool_turn.request.max_tokens is None  # "Infinity" means no limit
    assert tool_turn.request.tool_choice == "auto"
    assert [t["function"]["name"] for t in tool_turn.request.tools] == ["lookup_order", "issue_refund"]
    assert [m["role"] for m in tool_turn.request.messages] == ["system", "user"]
    assert tool_turn.response.tool_calls[0].name == "lookup_order"
    assert tool_turn.response.tool_calls[0].parsed_arguments() == {"order_id": "A-1043"}
    assert tool_turn.feedback.score == 1 and tool_turn.feedback.comment == "quick and right"

    follow_up = by_obs["gen-9e4f01"]
    assert [m["role"] for m in follow_up.request.messages] == ["system", "user", "assistant", "tool"]
    assert follow_up.request.messages[3]["tool_call_id"] == "call_Xa12"
    assert follow_up.usage.input_tokens == 260 + 128  # cached input tokens count as input
    assert follow_up.response.content.startswith("Good news")

    failed = by_obs["gen-err-33"]
    assert failed.status == "error" and failed.error == "Request timed out." and failed.response is None
    assert failed.task == "ticket-triage"
    assert failed.request.response_format == {"type": "json_object"}
    assert failed.feedback.label == "wrong" and failed.feedback.negative  # score on this observation

    ok = by_obs["gen-ok-34"]
    assert ok.response.content == '{"category": "bug", "priority": "high"}'  # a whole chat.completion as text
    assert ok.response.finish_reason == "stop"
    assert (ok.usage.input_tokens, ok.usage.output_tokens) == (57, 14)  # legacy usage, strings
    assert ok.cost_usd == pytest.approx(1.7e-5)
    assert ok.feedback is None  # the trace's score belongs to the other observation


def test_langchain_integration_export(fixtures: Path) -> None:
    calls, tally = _read(fixtures / "langfuse_langchain.jsonl")
    assert tally.ignored == 1
    a, b, c = calls
    assert a.response.tool_calls[0].name == "route_email"  # additional_kwargs.tool_calls
    assert a.response.tool_calls[0].parsed_arguments() == {"queue": "billing", "urgent": True}
    assert [t["function"]["name"] for t in a.request.tools] == ["route_email"]  # invocation_params
    assert a.request.max_tokens == 256 and a.provider == "openai"
    assert a.task == default_task(a.request.messages) and a.task == b.task  # same system prompt

    assert [m["role"] for m in b.request.messages] == ["system", "user"]  # type human/system
    assert b.response.tool_calls[0].id == "call_lc2"
    assert b.response.tool_calls[0].parsed_arguments() == {"queue": "tech"}  # LangChain args dict
    assert b.response.finish_reason == "tool_calls"
    assert (b.usage.input_tokens, b.usage.output_tokens) == (85, 17)  # promptTokens as strings

    assert c.task == "email-router" and c.session_id == "sess-lc"  # a trace line with observations
    assert [m["role"] for m in c.request.messages] == ["system", "user", "assistant", "tool"]  # lc serialised
    assert c.request.messages[2]["tool_calls"][0]["function"]["name"] == "route_email"
    assert c.request.messages[3]["tool_call_id"] == "call_p"
    assert c.response.content == "Routed to sales." and c.response.finish_reason == "stop"


def test_top_level_list_and_single_trace(tmp_path: Path, fixtures: Path) -> None:
    traces = orjson.loads((fixtures / "langfuse_openai.json").read_bytes())["data"]
    listed = tmp_path / "traces.json"
    listed.write_bytes(orjson.dumps(traces, option=orjson.OPT_INDENT_2))
    single = tmp_path / "trace.json"
    single.write_bytes(orjson.dumps(traces[1], option=orjson.OPT_INDENT_2))
    assert [c.id for c in _read(listed)[0]] == [c.id for c in _read(fixtures / "langfuse_openai.json")[0]]
    assert len(_read(single)[0]) == 2


@pytest.mark.parametrize("change, field", [
    ({"startTime": "not a time"}, "startTime"),
    ({"startTime": None}, "startTime"),
    ({"id": None}, "id"),
    ({"usageDetails": {"input": "lots"}}, "usageDetails.input"),
    ({"usageDetails": "[1, 2]"}, "usageDetails"),
    ({"input": [{"content": "no role"}]}, "input[0].role"),
    ({"output": {"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}}, "output.tool_calls[0].name"),
    ({"costDetails": {"total": "free"}}, "costDetails.total"),
    ({"input": {"messages": [], "tools": [{"type": "function"}]}}, "input.tools[0].name"),
])
def test_bad_observation_names_observation_and_field(tmp_path: Path, fixtures: Path, change: dict, field: str) -> None:
    doc = orjson.loads((fixtures / "langfuse_openai.json").read_bytes())
    doc["data"][1]["observations"][1].update(change)
    path = tmp_path / "export.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    record = "record 2, observation #2" if "id" in change else "record 2, observation gen-ok-34"
    with pytest.raises(InputError) as info:
        list(calls_in_file(path, None, Tally(strict=True)))
    assert info.value.source == str(path)
    assert info.value.record == record
    assert info.value.field == field
    calls, tally = _read(path)  # not strict: the other observations are kept, this one named
    assert len(calls) == 3 and tally.seen == 4
    [skip] = tally.skipped
    assert (skip.source, skip.record, skip.field) == (str(path), record, field)
    one_line = tmp_path / "export-one-line.json"
    one_line.write_bytes(orjson.dumps(doc))
    with pytest.raises(InputError) as info:
        list(calls_in_file(one_line, None, Tally(strict=True)))
    assert info.value.record.startswith("line 1 record 2, observation") and info.value.field == field


def test_observation_mapping_directly() -> None:
    call = call_from_observation({"id": 17, "type": "GENERATION", "startTime": "2024-01-01T00:00:00Z",
                                  "input": "Summarise: hello", "output": "hi",
                                  "metadata": {"task": "summarise"}})
    assert call.task == "summarise" and call.request.messages == [{"role": "user", "content": "Summarise: hello"}]
    assert call.response.content == "hi" and call.latency_ms is None
