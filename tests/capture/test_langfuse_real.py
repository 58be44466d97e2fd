"""Ten real framework traces from Langfuse Cloud (fixtures/langfuse_real/), imported whole.

For every GENERATION: one call, its messages in order, its tools, every tool call's name and
arguments, and tokens and cost equal to Langfuse's own figures (`inputUsage`, `outputUsage`,
`totalCost`); the task from the trace name, the session, the scores as feedback. The expected
messages and tool calls below were read off the files (and Langfuse's ChatML reading beside
each); the figures are read from the files by the test itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fledgling.capture import import_files
from fledgling.capture.langfuse import calls_in_file
from fledgling.capture.records import Tally
from fledgling.store import CallFilter, Store
from tests.capture.conftest import FIXTURES

REAL = FIXTURES / "langfuse_real"
TRACES = sorted(REAL.glob("*.trace.json"))

_SEARCH = ("duckduckgo_search", {"query": "currently trending on Twitter"})
_JOKE_TOOLS = ["get_pun_suggestion", "get_dad_joke_suggestion", "get_one_liner_suggestion",
               "get_car_joke_suggestion", "get_tree_joke_suggestion"]
_THREE = [("get_pun_suggestion", {"topic": "programming"}), ("get_dad_joke_suggestion", {"topic": "programming"}),
          ("get_one_liner_suggestion", {"topic": "programming"})]
_REPORT = ("get_custom_report", {"dimensions": ["Campaign"],
                                 "filters": {"dateRange": {"from_date": "2025-10-01", "to_date": "2025-12-31"}},
                                 "timeDimension": "Month",
                                 "metrics": ["Cost", "Displays", "Clicks", "Ctr", "Sales", "Cvr"]})
_CRITEO = ["get_adset_infos", "get_custom_report", "final_result"]

# observation id -> (roles of the request's messages, tool calls in those messages,
#                    tool names offered, tool calls answered (None: from the file's output))
EXPECTED: dict[str, tuple[list[str], list[tuple[str, Any]], list[str], list[tuple[str, Any]] | None]] = {
    # Agno: messages as Python-repr strings; two of the four are OpenAI-SDK spans with a text transcript
    "b38a82eaa62b551e": (["system", "user", "assistant", "tool"], [_SEARCH],
                         ["duckduckgo_search", "duckduckgo_news"], []),
    "ca136de468e156c9": (["system", "user"], [], ["duckduckgo_search", "duckduckgo_news"], [_SEARCH]),
    "fc7f61b57ecebbaf": (["user"], [], [], []),
    "1f883bb9668167c0": (["user"], [], [], []),
    # Claude Agent SDK: the one turn whose input is a message (the others are skipped, see below)
    "e9aac170e5d48125": (["user"], [], [], []),
    "231c43964b7e7e63": (["system", "user"], [], [], []),  # CrewAI
    # .NET on Gemini: parts-based messages, system instructions in the span's attributes
    "50d470aa18418652": (["system", "user", "assistant", "tool"], [_REPORT], _CRITEO, []),
    "c651c1dac855f97e": (["system", "user"], [], _CRITEO, [_REPORT]),
    "cb394d8e10fdda0f": (["system", "user", "assistant", "tool", "assistant"], [_REPORT], ["final_result"], None),
    # Google ADK: Gemini contents/config; the function response is a tool message
    "bded677884f031ce": (["system", "user", "assistant", "tool"], [("say_hello", {})], ["say_hello"], []),
    "f6e4c65297e40c96": (["system", "user"], [], ["say_hello"], [("say_hello", {})]),
    # LangGraph: the tool definition appended as a `role: tool` item is a tool, not a message
    "4f6535aaebcda355": (["user", "user"], [], ["Web-Search"], [("Web-Search", {"query": "example"})]),
    "5ba09605e0929d78": (["user", "user", "assistant", "tool"], [("Web-Search", {"query": "example"})],
                         ["Web-Search"], []),
    # Microsoft Agent Framework: a tool-result-only message gives no empty user message
    "2406e8343fd49c0e": (["user"], [], ["get_weather"], [("get_weather", {"location": "Tokyo, Japan"})]),
    "b0913e7cd82d72b8": (["tool"], [], ["get_weather"], []),
    # OpenAI Agents SDK: Responses-API function_call / function_call_output items
    "90d94774e8e3724d": (["user", "assistant", "tool"], [("get_weather", {"city": "Tokyo"})], ["get_weather"], []),
    "98870087af69bf06": (["user"], [], ["get_weather"], [("get_weather", {"city": "Tokyo"})]),
    # pydantic-ai 1.x: three parallel tools
    "00d2804abb764b1b": (["system", "user", "assistant", "tool", "tool", "tool"], _THREE, _JOKE_TOOLS, []),
    "eb0cc14cf7943ad5": (["system", "user"], [], ["final_result"], None),
    "8976b072313c51f2": (["system", "user", "assistant", "tool", "tool", "tool", "assistant", "user"], _THREE,
                         _JOKE_TOOLS, []),
    "be64c23f44dd98be": (["system", "user"], [], _JOKE_TOOLS, _THREE),
    # Vercel AI SDK: {toolCallId, toolName, input} outputs, inputSchema tools on the inner call
    "1dc6768109615657": (["user"], [], [], [("getWeather", {"location": "San Francisco"})]),
    "91a17a2274bfd23f": (["user"], [], ["getWeather"], [("getWeather", {"location": "San Francisco"})]),
}
# The Claude Agent SDK logged these turns' input as {"content": "role"}: no messages to read.
NOT_UNDERSTOOD = {"371496f71d82baed", "f8e8f040dc94e67e", "2cc13e77781787fd"}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _generations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in doc["observations"] if o["type"] == "GENERATION"]


def _parts_calls(output: str | list[Any]) -> list[tuple[str, Any]]:
    """Tool calls of a parts-based output, read straight from the file."""
    found = json.loads(output) if isinstance(output, str) else output
    return [(p["name"], p["arguments"]) for m in found for p in m["parts"] if p["type"] == "tool_call"]


def test_the_fixtures_are_the_ten_traces_with_their_chatml() -> None:
    assert len(TRACES) == 10
    assert all(p.with_name(p.name.replace(".trace.", ".chatml.")).exists() for p in TRACES)
    ids = {o["id"] for p in TRACES for o in _generations(_load(p))}
    assert ids == set(EXPECTED) | NOT_UNDERSTOOD


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name.split("-20")[0])
def test_every_generation_becomes_one_call(path: Path) -> None:
    doc = _load(path)
    trace = doc["trace"]
    tally = Tally()
    calls = {c.metadata["langfuse"]["observation_id"]: c for c in calls_in_file(path, None, tally)}
    generations = _generations(doc)
    assert tally.seen == len(generations)
    assert tally.ignored == len(doc["observations"]) - len(generations)
    assert {s.record.split("observation ")[1] for s in tally.skipped} == \
        {o["id"] for o in generations} & NOT_UNDERSTOOD
    assert all(s.field == "input" and s.shape == "{content}" for s in tally.skipped)
    for obs in generations:
        if obs["id"] in NOT_UNDERSTOOD:
            continue
        call = calls[obs["id"]]
        roles, input_calls, tool_names, answer = EXPECTED[obs["id"]]
        assert [m["role"] for m in call.request.messages] == roles, obs["id"]
        assert all(m.get("content") not in ("", None) or m.get("tool_calls") for m in call.request.messages
                   if m["role"] == "user"), obs["id"]
        seen_calls = [(tc["function"]["name"], json.loads(tc["function"]["arguments"]))
                      for m in call.request.messages for tc in m.get("tool_calls", [])]
        assert seen_calls == input_calls, obs["id"]
        results = [m for m in call.request.messages if m["role"] == "tool"]
        assert all(isinstance(m["content"], str) and m["content"] for m in results), obs["id"]
        assert [t["function"]["name"] for t in call.request.tools or []] == tool_names, obs["id"]
        if answer is None:
            answer = _parts_calls(obs["output"])
        got = [(tc.name, tc.parsed_arguments()) for tc in call.response.tool_calls] if call.response else []
        assert got == answer, obs["id"]
        if answer:  # None where the source gave no reason
            assert call.response.finish_reason in ("tool_calls", None), obs["id"]
        # Langfuse's own figures
        assert call.usage.input_tokens == int(obs["inputUsage"]), obs["id"]
        assert call.usage.output_tokens == int(obs["outputUsage"]), obs["id"]
        assert call.cost_usd == pytest.approx(float(obs["totalCost"]), rel=1e-9), obs["id"]
        # trace-level fields
        assert call.task == trace["name"]
        assert call.session_id == trace["sessionId"]
        assert call.trace_id == trace["id"]
        if trace["scores"]:
            kept = call.feedback.model_extra["scores"]
            assert [(s["name"], s["value"]) for s in kept] == [(s["name"], s["value"]) for s in trace["scores"]]
            assert call.feedback.score == trace["scores"][0]["value"]
        else:
            assert call.feedback is None
        lf = call.metadata["langfuse"]
        assert lf.get("user_id") == trace["userId"] and lf.get("tags") == (trace["tags"] or None)


def test_tool_results_keep_their_call_ids() -> None:
    calls = {c.metadata["langfuse"]["observation_id"]: c
             for p in TRACES for c in calls_in_file(p, None, Tally())}
    agents = calls["90d94774e8e3724d"].request.messages
    assert agents[1]["tool_calls"][0]["id"] == agents[2]["tool_call_id"] == "call_Kud0j0DxWSmLzv9W5m6qVqXn"
    assert agents[2]["content"] == "The weather in Tokyo is sunny."
    agno = calls["b38a82eaa62b551e"].request.messages
    assert agno[3]["tool_call_id"] == "call_VybxG748CQId8Xxo6wb2pWy1"
    assert agno[3]["content"].startswith('[\n  {\n    "title": "Twitter.')  # JSON text stays text
    jokes = calls["00d2804abb764b1b"].request.messages
    assert [m["tool_call_id"] for m in jokes[3:]] == [tc["id"] for tc in jokes[2]["tool_calls"]]
    adk = calls["bded677884f031ce"].request.messages
    assert adk[3]["name"] == "say_hello" and json.loads(adk[3]["content"]) == {"greeting": "Hello Langfuse 👋"}
    gemini = calls["bded677884f031ce"]
    assert gemini.response.content == "Hello Langfuse 👋!\n" and gemini.response.finish_reason == "stop"


def test_usage_sub_counts_are_parts_not_additions() -> None:
    """CrewAI's `prompt_details.*` / `completion_details.*` and LangGraph's `input_cache_read`
    are inside Langfuse's totals, never added on top."""
    crew = next(calls_in_file(REAL / "crewai-2025-07-11.trace.json", None, Tally()))
    assert (crew.usage.input_tokens, crew.usage.output_tokens) == (190, 164)


def test_import_is_partial_and_idempotent(sqlite_store: Store) -> None:
    first = import_files(sqlite_store, "langfuse", TRACES)
    expected = sum(len(_generations(_load(p))) for p in TRACES) - len(NOT_UNDERSTOOD)
    assert first.inserted == expected == len(EXPECTED)
    assert sum(len(f.warnings) for f in first.files) == len(NOT_UNDERSTOOD)
    assert sum(f.tool_calls for f in first.files) == sum(
        len(e[3]) if e[3] is not None else 1 for e in EXPECTED.values())
    again = import_files(sqlite_store, "langfuse", TRACES)
    assert again.inserted == 0 and again.read == expected
    assert sqlite_store.count_calls(CallFilter(source="langfuse")) == expected
    with pytest.raises(Exception, match="holds no messages"):
        import_files(sqlite_store, "langfuse", [REAL / "claude-agent-2025-12-22.trace.json"], strict=True)
