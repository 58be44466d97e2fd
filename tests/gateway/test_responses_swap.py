"""Swap modes on the Responses and Messages APIs: the candidate (a loopback OpenAI-compatible
server) answers in the canonical shape and the gateway renders its answer in the caller's API,
JSON and stream; an invalid candidate answer falls back to the same API's upstream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx
import orjson
import pytest
from openai import OpenAI

from fledgling.gateway.app import GatewayApp
from fledgling.gateway.server import ServerThread, build_app
from fledgling.store import Store
from tests.gateway.apis import WEATHER, settings_for
from tests.standin_apis import RunningStandIn, StandInAPIs

ADMIN_KEY = "admin-secret"
TOOLS = [{"type": "function", "name": "get_weather", "description": "The weather now in a city",
          "parameters": WEATHER, "strict": True}]
CLAUDE_TOOLS = [{"name": "get_weather", "description": "The weather now in a city", "input_schema": WEATHER}]


@dataclass
class Swap:
    url: str
    app: GatewayApp
    store: Store
    llm: StandInAPIs
    candidate: StandInAPIs

    def set_mode(self, task: str, mode: str, percent: float = 0) -> None:
        r = httpx.post(f"{self.url}/admin/rollout/{task}", json={"mode": mode, "percent": percent, "reason": "t"},
                       headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code == 200, r.text

    def calls(self):
        assert self.app.recorder.drain(20)
        assert _wait(self.app.swap.idle)
        assert self.app.recorder.drain(20)
        return sorted(self.store.iter_calls(), key=lambda c: c.created_at)

    def openai(self) -> OpenAI:
        return OpenAI(base_url=self.url + "/v1", api_key="k", max_retries=0,
                      default_headers={"X-Fledgling-Task": "weather"})

    def claude(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key="k", max_retries=0,
                                   default_headers={"X-Fledgling-Task": "claude-weather"})


def _wait(predicate, timeout: float = 10.0) -> bool:
    import time
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def swap(sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Swap]:
    monkeypatch.setenv("FLEDGLING_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant")
    monkeypatch.delenv("FLEDGLING_GATEWAY_KEYS", raising=False)
    llm, cand = RunningStandIn(), RunningStandIn(voice="[slm] ", model="slm")
    with llm as llm_app, cand as cand_app:
        swap_cfg = {"budget_ms": 5000, "retries": 0}
        settings = settings_for(llm.url, tmp_path, models={"cand": {"kind": "openai", "base_url": cand.url + "/v1",
                                                                    "model": "slm"}}, tasks={
            "weather": {"upstream": "llm", "candidate": "cand", "swap": swap_cfg},
            "claude-weather": {"upstream": "claude", "candidate": "cand", "swap": swap_cfg}})
        app = build_app(settings, sqlite_store, keys=frozenset())
        with ServerThread(app) as url:
            yield Swap(url, app, sqlite_store, llm_app, cand_app)


def responses_ask(oa: OpenAI, *, stream: bool, text: str = "What is the weather in Oslo?"):
    kw = {"model": "gpt-test", "instructions": "You are a weather agent.", "tools": TOOLS, "input": text}
    if not stream:
        raw = oa.responses.with_raw_response.create(**kw)
        return raw.parse(), raw.headers
    raw = oa.responses.with_raw_response.create(stream=True, **kw)
    events = list(raw.parse())
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    return events[-1].response, raw.headers


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_swapped_responses_are_the_candidates_in_the_responses_shape(swap: Swap, stream: bool):
    swap.set_mode("weather", "swapped")
    out, headers = responses_ask(swap.openai(), stream=stream)
    assert headers["x-fledgling-served-by"] == "candidate"
    [fc] = [item for item in out.output if item.type == "function_call"]
    assert fc.name == "get_weather" and orjson.loads(fc.arguments) == {"city": "Oslo"}
    assert swap.llm.exchanges() == [] and len(swap.candidate.exchanges("chat")) == 1
    [call] = swap.calls()
    assert call.metadata["api"] == "responses" and call.metadata["route"]["served_by"] == "candidate"
    [tc] = call.response.tool_calls
    assert tc.id == fc.call_id and orjson.loads(tc.arguments) == {"city": "Oslo"}
    assert call.usage.output_tokens == swap.candidate.exchanges("chat")[0].usage["output_tokens"]

    # the tool's result goes back with the whole conversation; the candidate answers in text
    second = swap.openai().responses.create(
        model="gpt-test", instructions="You are a weather agent.", tools=TOOLS, stream=False,
        input=[{"role": "user", "content": "What is the weather in Oslo?"},
               {"type": "function_call", "call_id": fc.call_id, "name": fc.name, "arguments": fc.arguments},
               {"type": "function_call_output", "call_id": fc.call_id, "output": "4 C"}])
    assert second.output_text.startswith("[slm] ") and "4 C" in second.output_text


def test_shadow_responses_are_the_llms_and_the_candidate_is_compared(swap: Swap):
    swap.set_mode("weather", "shadow")
    out, headers = responses_ask(swap.openai(), stream=False)
    assert "x-fledgling-served-by" not in headers or headers["x-fledgling-served-by"] == "llm"
    assert [e.api for e in swap.llm.exchanges()] == ["responses"]
    [call] = swap.calls()
    assert call.metadata["route"]["served_by"] == "llm"
    assert call.metadata["shadow"]["agree"] is True  # both called get_weather {"city": "Oslo"}
    assert call.response.tool_calls[0].name == "get_weather"


def test_a_candidate_that_breaks_the_contract_falls_back_to_the_responses_upstream(swap: Swap):
    swap.set_mode("weather", "swapped")
    # a tool call is required, but after a tool result the candidate answers in text
    out = swap.openai().responses.create(model="gpt-test", tools=TOOLS, tool_choice="required", input=[
        {"role": "user", "content": "Weather in Oslo?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "4 C"}])
    assert not out.output_text.startswith("[slm]")  # the LLM's answer, from its /responses
    assert [e.api for e in swap.llm.exchanges()] == ["responses"]
    [call] = swap.calls()
    assert call.metadata["route"]["fallback"] == "contract" and call.metadata["route"]["served_by"] == "llm"
    assert call.metadata["candidate"]["failure"] == "contract"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_swapped_messages_are_the_candidates_in_the_anthropic_shape(swap: Swap, stream: bool):
    swap.set_mode("claude-weather", "swapped")
    kw = {"model": "claude-test", "max_tokens": 200, "system": "You are a weather agent.", "tools": CLAUDE_TOOLS,
          "messages": [{"role": "user", "content": "What is the weather in Oslo?"}]}
    if stream:
        with swap.claude().messages.stream(**kw) as s:
            for _ in s:
                pass
            msg = s.get_final_message()
    else:
        msg = swap.claude().messages.create(**kw)
    [use] = [b for b in msg.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Oslo"} and msg.stop_reason == "tool_use"
    assert swap.llm.exchanges() == []
    [call] = swap.calls()
    assert call.metadata["api"] == "messages" and call.metadata["route"]["served_by"] == "candidate"
    assert call.response.tool_calls[0].id == use.id


def test_canary_messages_go_to_the_anthropic_upstream_or_the_candidate_by_their_share(swap: Swap):
    swap.set_mode("claude-weather", "canary", percent=50)
    for i in range(6):
        swap.claude().messages.create(model="claude-test", max_tokens=200,
                                      messages=[{"role": "user", "content": f"Hello there, number {i}"}])
    calls = swap.calls()
    inside = [c for c in calls if c.metadata["route"]["canary"]]
    outside = [c for c in calls if not c.metadata["route"]["canary"]]
    assert inside and outside  # the requests are fixed, so their buckets are
    assert {c.metadata["route"]["served_by"] for c in inside} <= {"candidate"}
    assert {c.metadata["route"]["served_by"] for c in outside} <= {"llm"}
    assert len(swap.llm.exchanges("messages")) == len(outside)  # the LLM's share asked its /messages
    assert all(e.headers["x-api-key"] == "sk-ant" for e in swap.llm.exchanges())
    assert all(c.response.content.startswith("[slm] ") for c in inside)
    assert all(not c.response.content.startswith("[slm] ") for c in outside)
    assert all("shadow" in c.metadata for c in outside)  # the candidate ran beside the LLM


def test_a_chained_shadow_request_reaches_the_candidate_with_its_whole_conversation(swap: Swap):
    swap.set_mode("weather", "shadow")
    first, _ = responses_ask(swap.openai(), stream=False)
    [fc] = [item for item in first.output if item.type == "function_call"]
    second = swap.openai().responses.create(model="gpt-test", tools=TOOLS, previous_response_id=first.id, input=[
        {"type": "function_call_output", "call_id": fc.call_id, "output": "4 C"}])
    assert "4 C" in second.output_text
    assert swap.llm.exchanges()[1].body["previous_response_id"] == first.id  # the LLM holds it: unchanged
    a, b = swap.calls()
    assert b.session_id == a.session_id
    assert b.metadata["conversation_held"] == {"previous_response_id": first.id, "messages": 2,
                                               "upstream_knows": True}
    seen = [m["role"] for m in swap.candidate.exchanges()[1].body["messages"]]
    assert seen == ["user", "assistant", "tool"]  # the candidate saw the whole conversation
    assert b.metadata["shadow"]["agree"] is not None


def test_a_chain_the_candidate_started_goes_upstream_whole_when_it_falls_back(swap: Swap):
    swap.set_mode("weather", "swapped")
    first, headers = responses_ask(swap.openai(), stream=False)
    assert headers["x-fledgling-served-by"] == "candidate"
    [fc] = [item for item in first.output if item.type == "function_call"]
    # the candidate answers a tool result in text, which a required tool call forbids: fallback
    second = swap.openai().responses.create(model="gpt-test", tools=TOOLS, tool_choice="required",
                                            previous_response_id=first.id,
                                            input=[{"type": "function_call_output", "call_id": fc.call_id,
                                                    "output": "4 C"}])
    assert second.output_text and not second.output_text.startswith("[slm]")
    [sent] = swap.llm.exchanges("responses")
    assert "previous_response_id" not in sent.body  # an id the LLM never saw is not sent to it
    assert [item.get("type", "message") for item in sent.body["input"]] == [
        "message", "function_call", "function_call_output"]
    _, b = swap.calls()
    assert b.metadata["route"]["fallback"] == "contract" and b.metadata["route"]["served_by"] == "llm"
    assert b.metadata["conversation_held"]["upstream_knows"] is False


def test_a_chained_request_whose_conversation_is_not_held_stays_upstream(swap: Swap):
    first, _ = responses_ask(swap.openai(), stream=False)  # record mode: nothing held
    swap.set_mode("weather", "shadow")
    swap.openai().responses.create(model="gpt-test", previous_response_id=first.id, input="And tomorrow?")
    a, b = swap.calls()
    assert "previous_response_id" in b.metadata["swap_skipped"] and "shadow" not in b.metadata
    assert len(swap.candidate.exchanges()) == 0


def test_a_streamed_shadow_response_is_reassembled_and_compared(swap: Swap):
    swap.set_mode("weather", "shadow")
    out, _ = responses_ask(swap.openai(), stream=True)
    assert [item.type for item in out.output] == ["function_call"]
    [call] = swap.calls()
    assert call.metadata["stream"] is True and call.response.tool_calls[0].name == "get_weather"
    assert call.metadata["shadow"]["agree"] is True
