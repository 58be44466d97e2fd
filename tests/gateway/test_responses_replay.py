"""`fledgling replay` of a call made through the Responses or Messages API: re-sent as its caller
sent it to that API of the upstream, read back with the converter that recorded it."""

from __future__ import annotations

import anthropic
from openai import OpenAI

from fledgling.swap.replay import rerun_call
from tests.gateway.apis import WEATHER, Setup, apis  # noqa: F401


def test_a_responses_call_and_a_messages_call_replay_to_the_same_answer(apis: Setup):  # noqa: F811
    oa = OpenAI(base_url=apis.gateway_url + "/v1", api_key="k", max_retries=0,
                default_headers={"X-Fledgling-Task": "weather"})
    oa.responses.create(model="gpt-test", input="Weather in Oslo?", store=False, tools=[
        {"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": True}])
    cl = anthropic.Anthropic(base_url=apis.gateway_url, api_key="k", max_retries=0,
                             default_headers={"X-Fledgling-Task": "claude-weather"})
    cl.messages.create(model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "Hello there"}])
    responses_call, messages_call = apis.calls()
    before = len(apis.upstream.exchanges())
    for call, api in ((responses_call, "responses"), (messages_call, "messages")):
        rerun = rerun_call(apis.store, apis.app.settings, call.id)
        assert rerun.error is None and rerun.target == "llm"
        assert rerun.identical, (rerun.recorded, rerun.now)
        assert apis.upstream.exchanges()[-1].api == api  # re-sent to the same API
    replayed = apis.upstream.exchanges()[before:]
    assert [e.stream for e in replayed] == [False, False]
    assert replayed[1].headers["x-api-key"] == "sk-ant-test-key"
