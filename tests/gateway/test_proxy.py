"""Answers pass through unchanged (streaming and not) and every call is recorded right."""

from __future__ import annotations

import httpx
import openai
import pytest

from fledgling.calls import cost_usd
from fledgling.store import CallFilter, Store

from .conftest import SYSTEM, TOOLS

MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is A1234?"}]


def test_tool_call_passes_through_unchanged_and_is_recorded(make_gateway, upstream, store: Store) -> None:
    gw = make_gateway(store)
    direct = openai.OpenAI(base_url=upstream[1], api_key="sk-test", max_retries=0)
    agent = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-test", max_retries=0)
    kwargs = dict(model="gpt-4o", messages=MESSAGES, tools=TOOLS, temperature=0, seed=7,
                  extra_headers={"X-Fledgling-Task": "support-agent",
                                 "X-Fledgling-Session": "sess-1", "X-Fledgling-Trace": "trace-1"})
    expected = direct.chat.completions.create(**kwargs)
    raw = agent.chat.completions.with_raw_response.create(**kwargs)
    got = raw.parse()
    assert got.model_dump() == expected.model_dump()
    assert got.choices[0].message.tool_calls[0].function.name == "lookup_order"

    gw.drain()
    call = store.get_call(raw.headers["x-fledgling-call-id"])
    assert call is not None
    assert (call.task, call.session_id, call.trace_id, call.source) == (
        "support-agent", "sess-1", "trace-1", "gateway")
    assert call.status == "ok" and call.error is None
    assert call.request.messages == MESSAGES and call.request.tools == TOOLS
    assert call.request.seed == 7 and call.model == "gpt-4o"
    assert [(t.name, t.parsed_arguments()) for t in call.response.tool_calls] == [
        ("lookup_order", {"order_id": "A1234"})]
    assert call.response.finish_reason == "tool_calls"
    assert (call.usage.input_tokens, call.usage.output_tokens) == (
        expected.usage.prompt_tokens, expected.usage.completion_tokens)
    assert call.cost_usd == pytest.approx(cost_usd(call.usage, 2.5, 10.0))
    assert call.latency_ms is not None and call.latency_ms > 0
    assert store.tool_counts("support-agent") == {"lookup_order": 1}


@pytest.mark.parametrize("with_tools", [True, False], ids=["tool-call", "text"])
def test_stream_passes_through_unchanged_and_is_reassembled(gateway, upstream, with_tools: bool) -> None:
    direct = openai.OpenAI(base_url=upstream[1], api_key="sk-test", max_retries=0)
    agent = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-test", max_retries=0)
    kwargs = dict(model="gpt-4o", messages=MESSAGES, stream=True,
                  stream_options={"include_usage": True},
                  extra_headers={"X-Fledgling-Task": "support-agent"},
                  **({"tools": TOOLS} if with_tools else {}))
    expected = [c.model_dump() for c in direct.chat.completions.create(**kwargs)]
    got = [c.model_dump() for c in agent.chat.completions.create(**kwargs)]
    assert got == expected and len(got) > 3

    gateway.drain()
    [call] = gateway.store.query_calls(CallFilter(task="support-agent")).items
    assert call.metadata["stream"] is True and call.status == "ok"
    assert call.usage.output_tokens == expected[-1]["usage"]["completion_tokens"]
    if with_tools:
        assert [(t.id, t.name, t.arguments) for t in call.response.tool_calls] == [
            ("call_abc", "lookup_order", '{"order_id": "A1234"}')]
        assert call.response.finish_reason == "tool_calls"
    else:
        assert call.response.content == "You said: Where is A1234?. Anything else I can do?"
        assert call.response.finish_reason == "stop"


def test_task_resolution_header_rules_and_default(gateway) -> None:
    base = gateway.url
    cases = [
        ({"model": "gpt-4o", "headers": {"X-Fledgling-Task": "custom"}}, "/v1", "custom"),
        ({"model": "triage-v2"}, "/v1", "triage"),
        ({"model": "gpt-4o"}, "/agents/billing/v1", "billing"),
        ({"model": "gpt-4o", "system": "You are the refund desk."}, "/v1", "refunds"),
    ]
    ids = {}
    for spec, prefix, task in cases:
        agent = openai.OpenAI(base_url=base + prefix, api_key="sk-test", max_retries=0)
        msgs = [{"role": "system", "content": spec.get("system", SYSTEM)},
                {"role": "user", "content": "hello"}]
        raw = agent.chat.completions.with_raw_response.create(
            model=spec["model"], messages=msgs, extra_headers=spec.get("headers", {}))
        ids[raw.headers["x-fledgling-call-id"]] = task
    agent = openai.OpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0)
    raw = agent.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    from fledgling.calls import default_task

    ids[raw.headers["x-fledgling-call-id"]] = default_task(MESSAGES)
    gateway.drain()
    assert {cid: gateway.store.get_call(cid).task for cid in ids} == ids


def test_w3c_traceparent_becomes_the_trace_id(gateway) -> None:
    agent = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-test", max_retries=0)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    raw = agent.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES,
        extra_headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
    gateway.drain()
    assert gateway.store.get_call(raw.headers["x-fledgling-call-id"]).trace_id == trace


def test_models_and_health(gateway) -> None:
    agent = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-test", max_retries=0)
    assert [m.id for m in agent.models.list()] == ["stand-in-llm"]
    health = httpx.get(gateway.url + "/health").json()
    assert health["status"] == "ok" and "acknowledged" in health["recorder"]
    r = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert r.headers.get_list("content-type") == ["application/json"]
    r = httpx.post(gateway.url + "/v1/embeddings", json={"input": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
