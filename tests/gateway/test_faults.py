"""Every injected upstream fault yields a clean OpenAI-style client error and a recorded error call."""

from __future__ import annotations

import httpx
import openai
import pytest

from fledgling.store import CallFilter, Store

from .conftest import free_port

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(("fault", "status", "client_error", "reason"), [
    ("timeout", 504, openai.APIStatusError, "did not answer within 0.6s"),
    ("http500", 500, openai.InternalServerError, "upstream 500: the model is overloaded"),
    ("http429", 429, openai.RateLimitError, "upstream 429: rate limit reached"),
    ("html503", 502, openai.APIStatusError, "answered 503 with a malformed body"),
    ("garbage200", 502, openai.APIStatusError, "answered 200 with a malformed body"),
    ("nochoices200", 502, openai.APIStatusError, "answered 200 with a malformed body"),
])
def test_fault_becomes_clean_error_and_error_call(gateway, fault: str, status: int,
                                                  client_error: type, reason: str) -> None:
    agent = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-test", max_retries=0)
    with pytest.raises(client_error) as exc:
        agent.chat.completions.with_raw_response.create(model=f"fault:{fault}", messages=MESSAGES)
    assert exc.value.status_code == status
    body = exc.value.response.json()
    assert set(body["error"]) >= {"message", "type", "code"}
    if fault in ("http500", "http429"):  # the upstream's own error passes through unchanged
        assert body["error"]["message"] in reason
    else:
        assert reason in body["error"]["message"]
    call_id = exc.value.response.headers["x-fledgling-call-id"]
    gateway.drain()
    call = gateway.store.get_call(call_id)
    assert call.status == "error" and reason in call.error and call.response is None
    assert call.request.messages == MESSAGES


def test_unreachable_upstream(make_gateway, sqlite_store: Store) -> None:
    gw = make_gateway(sqlite_store, upstream_url=f"http://127.0.0.1:{free_port()}/v1")
    agent = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-test", max_retries=0)
    with pytest.raises(openai.APIStatusError) as exc:
        agent.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert exc.value.status_code == 502
    assert exc.value.response.json()["error"]["code"] == "upstream_unreachable"
    gw.drain()
    [call] = sqlite_store.query_calls(CallFilter(status="error")).items
    assert "cannot connect to upstream 'llm'" in call.error


@pytest.mark.parametrize(("fault", "reason"), [("stream-break", "broke the stream"),
                                               ("stream-stall", "stalled mid-stream")])
def test_broken_stream_ends_with_error_event(gateway, fault: str, reason: str) -> None:
    agent = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-test", max_retries=0)
    got = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in agent.chat.completions.create(model=f"fault:{fault}", messages=MESSAGES,
                                                   stream=True):
            got.append(chunk)
    assert reason in exc.value.message
    assert got[0].choices[0].delta.content == "Hel"  # what arrived before the fault was relayed
    gateway.drain()
    [call] = gateway.store.query_calls(CallFilter(status="error")).items
    assert reason in call.error and call.response.content == "Hel"


def test_errors_are_counted_in_stats(gateway) -> None:
    agent = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-test", max_retries=0)
    agent.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.APIStatusError):
        agent.chat.completions.create(model="fault:garbage200", messages=MESSAGES)
    gateway.drain()
    [group] = gateway.store.stats(by=("source",))
    assert (group.calls, group.errors) == (2, 1)
    assert httpx.get(gateway.url + "/health").json()["recorder"]["stored"] == 2
