"""POST /v1/responses through the gateway, driven by the real `openai` client against the
three-API stand-in: forwarded unchanged, answered unchanged, recorded in the canonical shape."""

from __future__ import annotations

import httpx
import orjson
import pytest
from openai import BadRequestError, InternalServerError, OpenAI

from fledgling.gateway.server import ServerThread, build_app
from tests.gateway.apis import PRICE_IN, PRICE_OUT, WEATHER, Setup, apis, settings_for  # noqa: F401

TOOLS = [{"type": "function", "name": "get_weather", "description": "The weather now in a city",
          "parameters": WEATHER, "strict": True}]
INSTRUCTIONS = "You are a weather agent. Use the tools."


def client(setup: Setup, **headers: str) -> OpenAI:
    return OpenAI(base_url=setup.gateway_url + "/v1", api_key="sk-test", max_retries=0,
                  default_headers={"X-Fledgling-Task": "weather", **headers})


def two_steps(oa: OpenAI, *, stream: bool) -> tuple[str, list[str]]:
    """The model calls the tool, the tool's result goes back (chained by previous_response_id),
    the model answers. Returns the final text and both response ids."""
    def create(**kw):
        if not stream:
            return oa.responses.create(model="gpt-test", instructions=INSTRUCTIONS, tools=TOOLS, **kw)
        with oa.responses.stream(model="gpt-test", instructions=INSTRUCTIONS, tools=TOOLS, **kw) as s:
            for _ in s:
                pass
            return s.get_final_response()

    first = create(input="What is the weather in Oslo?")
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and orjson.loads(call.arguments) == {"city": "Oslo"}
    second = create(previous_response_id=first.id,
                    input=[{"type": "function_call_output", "call_id": call.call_id, "output": "4 C and windy"}])
    return second.output_text, [first.id, second.id]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_two_step_tool_exchange_is_relayed_and_recorded(apis: Setup, stream: bool):  # noqa: F811
    text, ids = two_steps(client(apis), stream=stream)
    sent = apis.upstream.exchanges("responses")
    assert len(sent) == 2 and "4 C and windy" in text
    assert [e.stream for e in sent] == [stream, stream]
    assert sent[1].body["previous_response_id"] == ids[0]  # forwarded as it came

    first, second = apis.calls(api="responses")
    for call, upstream in zip((first, second), sent, strict=True):
        assert call.task == "weather" and call.status == "ok" and call.source == "gateway"
        assert call.metadata["wire_request"]["tools"] == TOOLS  # the original body, for replay
        assert call.metadata["stream"] is stream
        assert (call.usage.input_tokens, call.usage.output_tokens) == (upstream.usage["input_tokens"],
                                                                       upstream.usage["output_tokens"])
        expected_cost = (upstream.usage["input_tokens"] * PRICE_IN + upstream.usage["output_tokens"] * PRICE_OUT) / 1e6
        assert call.cost_usd == pytest.approx(expected_cost)
        assert call.request.tools == [{"type": "function", "function": {
            "name": "get_weather", "description": "The weather now in a city", "parameters": WEATHER,
            "strict": True}}]
    assert first.request.messages == [{"role": "system", "content": INSTRUCTIONS},
                                      {"role": "user", "content": "What is the weather in Oslo?"}]
    [tc] = first.response.tool_calls
    assert (tc.name, orjson.loads(tc.arguments)) == ("get_weather", {"city": "Oslo"})
    assert first.response.finish_reason == "tool_calls"
    # the second request holds only the tool output: the conversation lives upstream (store)
    assert second.request.messages == [{"role": "system", "content": INSTRUCTIONS},
                                       {"role": "tool", "tool_call_id": tc.id, "content": "4 C and windy"}]
    assert second.response.content == text and not second.response.tool_calls
    assert first.session_id is not None and second.session_id == first.session_id


def test_the_upstream_answer_reaches_the_client_byte_for_byte(apis: Setup):  # noqa: F811
    body = {"model": "gpt-test", "input": "Hello there", "store": False}
    got = httpx.post(apis.gateway_url + "/v1/responses", json=body, headers={"X-Fledgling-Task": "weather"})
    direct = httpx.post(apis.upstream_url + "/v1/responses", json=body)
    assert got.status_code == 200 and got.headers["x-fledgling-call-id"]
    assert got.content == direct.content  # the stand-in answers a request the same way twice
    [call] = apis.calls(api="responses")
    assert call.response.content == got.json()["output"][0]["content"][0]["text"]


def test_text_format_json_schema_is_the_response_format(apis: Setup):  # noqa: F811
    out = client(apis).responses.create(model="gpt-test", input="Give me Oslo", text={"format": {
        "type": "json_schema", "name": "weather", "schema": WEATHER, "strict": True}})
    assert orjson.loads(out.output_text)["city"]
    [call] = apis.calls(api="responses")
    assert call.request.response_format == {"type": "json_schema", "json_schema": {
        "name": "weather", "schema": WEATHER, "strict": True}}


def test_an_upstream_error_is_relayed_and_recorded_as_an_error_call(apis: Setup):  # noqa: F811
    with pytest.raises(BadRequestError, match="not found"):
        client(apis).responses.create(model="gpt-test", input="hi", previous_response_id="resp_unknown")
    [call] = apis.calls(api="responses")
    assert call.status == "error" and "400" in call.error and "not found" in call.error
    assert call.usage.missing and call.cost_usd is None


class Garbage:
    """An upstream that answers 200 with something that is not a Responses object."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"choices": []}'})


def test_a_garbage_answer_is_a_502_in_the_openai_shape_and_recorded(sqlite_store, tmp_path):
    with ServerThread(Garbage()) as upstream_url:
        app = build_app(settings_for(upstream_url, tmp_path), sqlite_store)
        with ServerThread(app) as url:
            oa = OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
            with pytest.raises(InternalServerError) as err:
                oa.responses.create(model="m", input="hi")
            assert err.value.status_code == 502 and "malformed" in str(err.value)
            assert app.recorder.drain(10)
    [call] = list(sqlite_store.iter_calls())
    assert call.status == "error" and call.metadata["api"] == "responses" and "malformed" in call.error
