"""POST /v1/messages through the gateway, driven by the real `anthropic` client against the
three-API stand-in: an upstream of kind `anthropic` gets its key as x-api-key and the caller's
anthropic-version; the call is recorded in the canonical shape, usage with the cache tokens."""

from __future__ import annotations

import anthropic
import httpx
import orjson
import pytest

from fledgling.gateway.server import ServerThread, build_app
from tests.gateway.apis import PRICE_IN, PRICE_OUT, WEATHER, Setup, apis, settings_for  # noqa: F401

SYSTEM = "You are a weather agent. Use the tools."
VERSION = "2023-06-01"  # the caller's choice, passed on as it is
TOOLS = [{"name": "get_weather", "description": "The weather now in a city", "input_schema": WEATHER}]


def client(setup: Setup, task: str = "claude-weather") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=setup.gateway_url, api_key="sk-caller", max_retries=0,
                               default_headers={"X-Fledgling-Task": task, "anthropic-version": VERSION})


def ask(cl: anthropic.Anthropic, messages: list, *, stream: bool) -> anthropic.types.Message:
    kw = {"model": "claude-test", "max_tokens": 300, "system": SYSTEM, "tools": TOOLS, "messages": messages}
    if not stream:
        return cl.messages.create(**kw)
    with cl.messages.stream(**kw) as s:
        for _ in s:
            pass
        return s.get_final_message()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_two_step_tool_exchange_is_relayed_and_recorded(apis: Setup, stream: bool):  # noqa: F811
    cl = client(apis)
    history: list = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = ask(cl, history, stream=stream)
    [use] = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Oslo"} and first.stop_reason == "tool_use"
    history += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "4 C"}]}]
    second = ask(cl, history, stream=stream)
    assert "4 C" in second.content[0].text

    sent = apis.upstream.exchanges("messages")
    assert len(sent) == 2 and [e.stream for e in sent] == [stream, stream]
    for e in sent:
        assert e.headers["x-api-key"] == "sk-ant-test-key"  # the configured key, not the caller's
        assert e.headers["anthropic-version"] == VERSION
        assert "authorization" not in e.headers
    a, b = apis.calls(api="messages")
    for call, upstream in zip((a, b), sent, strict=True):
        assert call.task == "claude-weather" and call.status == "ok" and call.provider == "anthropic"
        assert call.metadata["wire_request"]["tools"] == TOOLS
        assert (call.usage.input_tokens, call.usage.output_tokens) == (upstream.usage["input_tokens"],
                                                                       upstream.usage["output_tokens"])
        assert call.metadata["usage_detail"]["cache_read_input_tokens"] == 0
        assert call.cost_usd == pytest.approx((upstream.usage["input_tokens"] * PRICE_IN
                                               + upstream.usage["output_tokens"] * PRICE_OUT) / 1e6)
        assert call.request.tools == [{"type": "function", "function": {
            "name": "get_weather", "parameters": WEATHER, "description": "The weather now in a city"}}]
    assert a.request.messages == [{"role": "system", "content": SYSTEM},
                                  {"role": "user", "content": "What is the weather in Oslo?"}]
    [tc] = a.response.tool_calls
    assert (tc.id, tc.name, orjson.loads(tc.arguments)) == (use.id, "get_weather", {"city": "Oslo"})
    assert b.request.messages[2]["tool_calls"][0]["id"] == use.id
    assert b.request.messages[3] == {"role": "tool", "tool_call_id": use.id, "content": "4 C"}
    assert b.response.content == second.content[0].text and b.response.finish_reason == "stop"


def test_refusals_answer_in_the_anthropic_shape(apis: Setup):  # noqa: F811
    r = httpx.post(apis.gateway_url + "/v1/messages", content=b"{not json", headers={"x-api-key": "k"})
    assert r.status_code == 400
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in r.json()["error"]["message"]


class Overloaded:
    """An Anthropic upstream that is overloaded (529 with its error shape)."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 529, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body",
                    "body": b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'})


def test_an_upstream_error_is_relayed_and_recorded(sqlite_store, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "k")
    with ServerThread(Overloaded()) as upstream_url:
        app = build_app(settings_for(upstream_url, tmp_path), sqlite_store)
        with ServerThread(app) as url:
            cl = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0,
                                     default_headers={"X-Fledgling-Task": "claude-weather"})
            with pytest.raises(anthropic.APIStatusError) as err:
                cl.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
            assert err.value.status_code == 529 and err.value.body["error"]["type"] == "overloaded_error"
            assert app.recorder.drain(10)
    [call] = list(sqlite_store.iter_calls())
    assert call.status == "error" and call.error == "upstream 529: Overloaded" and call.usage.missing


def test_without_a_configured_key_the_callers_key_goes_upstream_as_x_api_key(sqlite_store, tmp_path):
    from tests.standin_apis import RunningStandIn
    stand_in = RunningStandIn()
    with stand_in as upstream:
        settings = settings_for(stand_in.url, tmp_path, models={
            "claude": {"kind": "anthropic", "base_url": stand_in.url + "/v1"}})
        app = build_app(settings, sqlite_store, keys=frozenset())
        with ServerThread(app) as url:
            cl = anthropic.Anthropic(base_url=url, api_key="sk-callers-own", max_retries=0,
                                     default_headers={"X-Fledgling-Task": "claude-weather"})
            cl.messages.create(model="c", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
            assert app.recorder.drain(10)
        [sent] = upstream.exchanges("messages")
    assert sent.headers["x-api-key"] == "sk-callers-own" and "authorization" not in sent.headers


def test_with_gateway_keys_the_anthropic_clients_x_api_key_is_the_gateway_key(sqlite_store, tmp_path, monkeypatch):
    from tests.standin_apis import RunningStandIn
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-upstream")
    stand_in = RunningStandIn()
    with stand_in as upstream:
        app = build_app(settings_for(stand_in.url, tmp_path), sqlite_store, keys=frozenset({"gw-key"}))
        with ServerThread(app) as url:
            def client(key: str) -> anthropic.Anthropic:
                return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0,
                                           default_headers={"X-Fledgling-Task": "claude-weather"})
            with pytest.raises(anthropic.AuthenticationError) as err:
                client("wrong").messages.create(model="c", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
            assert err.value.body["error"]["type"] == "authentication_error"
            client("gw-key").messages.create(model="c", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
            assert app.recorder.drain(10)
        [sent] = upstream.exchanges("messages")
    assert sent.headers["x-api-key"] == "sk-ant-upstream"  # the gateway's key never goes upstream


def test_a_path_prefix_or_the_model_name_routes_messages_to_the_anthropic_upstream(sqlite_store, tmp_path,
                                                                                   monkeypatch):
    from tests.standin_apis import RunningStandIn
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant")
    stand_in = RunningStandIn()
    with stand_in as upstream:
        settings = settings_for(stand_in.url, tmp_path, tasks={
            "by-path": {"upstream": "claude", "match": {"path": "/anthropic/"}},
            "by-model": {"upstream": "claude", "match": {"model": "claude-*"}}})
        app = build_app(settings, sqlite_store, keys=frozenset())
        with ServerThread(app) as url:
            for base, model in ((url + "/anthropic", "some-model"), (url, "claude-test")):
                anthropic.Anthropic(base_url=base, api_key="k", max_retries=0).messages.create(
                    model=model, max_tokens=20, messages=[{"role": "user", "content": "hi"}])
            assert app.recorder.drain(10)
        sent = upstream.exchanges("messages")
    assert [e.path for e in sent] == ["/v1/messages", "/v1/messages"]
    assert all(e.headers["x-api-key"] == "sk-ant" for e in sent)
    assert sorted(c.task for c in sqlite_store.iter_calls()) == ["by-model", "by-path"]
