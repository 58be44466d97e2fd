"""The gateway matches an API's path exactly: Anthropic Messages is `<prefix>/v1/messages` (or a
bare `/messages`), so OpenAI's own paths that end in `/messages` (Assistants' threads, stored chat
completions) are refused like any path not served (404 naming the APIs served, logged, counted),
never forwarded to an upstream as a Messages request nor recorded."""

from __future__ import annotations

import logging

import httpx
import pytest
from anthropic import Anthropic

from tests.gateway.apis import Setup, apis  # noqa: F401

NOT_MESSAGES = [("POST", "/v1/threads/thread_abc/messages"),
                ("GET", "/v1/threads/thread_abc/messages"),
                ("GET", "/v1/threads/thread_abc/messages/msg_1"),
                ("GET", "/v1/chat/completions/chatcmpl_1/messages")]


def test_openai_paths_ending_in_messages_are_refused_not_taken_for_anthropic(
        apis: Setup, caplog: pytest.LogCaptureFixture):  # noqa: F811
    body = {"role": "user", "content": "hello", "model": "claude-test", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hello"}]}
    with caplog.at_level(logging.WARNING, logger="fledgling.gateway"):
        answers = [httpx.request(method, apis.gateway_url + path, json=body if method == "POST" else None,
                                 headers={"X-Fledgling-Task": "claude-weather"})
                   for method, path in NOT_MESSAGES]
    for (method, path), r in zip(NOT_MESSAGES, answers, strict=True):
        assert r.status_code == 404, (method, path, r.text)
        error = r.json()["error"]
        assert error["code"] == "not_found" and f"{method} {path} is not served" in error["message"]
        assert "/messages" in error["message"]  # names what is served
        assert "type" not in r.json()  # the OpenAI error shape: these are OpenAI paths
    assert apis.upstream.exchanges() == []  # nothing reached an upstream
    assert apis.calls() == []  # nothing recorded
    refused = httpx.get(apis.gateway_url + "/health").json()["refused"]
    assert refused == {f"404 {method} {path}": 1 for method, path in NOT_MESSAGES}
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "fledgling.gateway"]
    for method, path in NOT_MESSAGES:
        assert any(line.startswith(f"refused {method} {path}: 404 not_found") for line in logged)


def test_messages_under_a_prefix_still_reach_the_anthropic_upstream(apis: Setup):  # noqa: F811
    client = Anthropic(base_url=apis.gateway_url + "/t/claude-weather", api_key="k", max_retries=0,
                       default_headers={"X-Fledgling-Task": "claude-weather"})
    answer = client.messages.create(model="claude-test", max_tokens=64,
                                    messages=[{"role": "user", "content": "Say hello"}])
    assert answer.content and answer.content[0].type == "text"
    [sent] = apis.upstream.exchanges("messages")
    assert sent.path == "/v1/messages"
    [call] = apis.calls()
    assert call.task == "claude-weather" and call.metadata["path"] == "/t/claude-weather/v1/messages"
    assert call.response is not None and call.response.content == answer.content[0].text
