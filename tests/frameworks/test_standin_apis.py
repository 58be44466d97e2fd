"""The stand-in upstream itself, driven by the real SDKs with no gateway in between: if a client
library cannot parse what it sends, every framework test through the gateway would mislead."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import orjson
import pytest
from pydantic import BaseModel

from tests.standin_apis import RunningStandIn, StandInAPIs, value_for

pytestmark = pytest.mark.frameworks

PARAMS = {"type": "object", "properties": {"order_id": {"type": "string"}},
          "required": ["order_id"], "additionalProperties": False}
CHAT_TOOLS = [{"type": "function", "function": {"name": "lookup_order", "description": "Find an order",
                                                "parameters": PARAMS, "strict": True}}]
RESP_TOOLS = [{"type": "function", "name": "lookup_order", "description": "Find an order",
               "parameters": PARAMS, "strict": True}]
MSG_TOOLS = [{"name": "lookup_order", "description": "Find an order", "input_schema": PARAMS}]
ASK = "Where is order A1234?"


class Weather(BaseModel):
    city: str
    days: int


@pytest.fixture(scope="module")
def standin() -> Iterator[StandInAPIs]:
    with RunningStandIn() as s:
        yield s


@pytest.fixture
def oai(standin: StandInAPIs) -> openai.OpenAI:
    standin.clear()
    return openai.OpenAI(base_url=standin.url + "/v1", api_key="sk-test", max_retries=0)


def test_values_follow_the_schema_and_the_text() -> None:
    schema = {"type": "object", "properties": {
        "order_id": {"type": "string"}, "qty": {"type": "integer"}, "price": {"type": "number"},
        "when": {"enum": ["today", "tomorrow"]}, "tags": {"type": "array", "items": {"$ref": "#/$defs/T"}},
        "note": {"anyOf": [{"type": "null"}, {"type": "string"}]}},
        "$defs": {"T": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}}
    got = value_for(schema, "Send 3 of B77 tomorrow at 9.5 each", schema)
    assert got == {"order_id": "B77", "qty": 3, "price": 3.0, "when": "tomorrow",
                   "tags": [{"ok": True}], "note": "B77"}


def test_chat_two_steps_and_stream_usage_only_when_asked(oai: openai.OpenAI, standin: StandInAPIs) -> None:
    messages: list[dict] = [{"role": "user", "content": ASK}]
    first = oai.chat.completions.create(model="m", messages=messages, tools=CHAT_TOOLS)
    call = first.choices[0].message.tool_calls[0]
    assert (call.function.name, orjson.loads(call.function.arguments)) == ("lookup_order", {"order_id": "A1234"})
    assert first.choices[0].finish_reason == "tool_calls" and first.usage is not None
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "shipped on Monday"}]
    chunks = list(oai.chat.completions.create(model="m", messages=messages, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Here is what I found: shipped on Monday"
    assert all(getattr(c, "usage", None) is None for c in chunks)
    chunks = list(oai.chat.completions.create(model="m", messages=messages, stream=True,
                                              stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == standin.exchanges("chat")[-1].usage["input_tokens"]


def test_chat_structured_output(oai: openai.OpenAI) -> None:
    parsed = oai.chat.completions.parse(model="m", response_format=Weather,
                                        messages=[{"role": "user", "content": "weather in Paris for 3 days"}])
    assert parsed.choices[0].message.parsed == Weather(city="Paris", days=3)


def test_responses_two_steps_streamed_and_chained(oai: openai.OpenAI, standin: StandInAPIs) -> None:
    first = oai.responses.create(model="m", input=ASK, tools=RESP_TOOLS)
    call = first.output[0]
    assert call.type == "function_call" and orjson.loads(call.arguments) == {"order_id": "A1234"}
    assert first.usage is not None and first.usage.input_tokens == standin.exchanges()[-1].usage["input_tokens"]
    kinds: list[str] = []
    with oai.responses.stream(model="m", tools=RESP_TOOLS, input=[
            {"role": "user", "content": ASK}, call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "shipped"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == "Here is what I found: shipped"
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    chained = oai.responses.create(model="m", previous_response_id=first.id, tools=RESP_TOOLS,
                                   input=[{"type": "function_call_output", "call_id": call.call_id,
                                           "output": "in transit"}])
    assert chained.output_text == "Here is what I found: in transit"
    referenced = oai.responses.create(model="m", tools=RESP_TOOLS, input=[
        {"role": "user", "content": ASK}, {"type": "item_reference", "id": call.id},
        {"type": "function_call_output", "call_id": call.call_id, "output": "lost"}])
    assert referenced.output_text == "Here is what I found: lost"
    streamed_call = [e for e in oai.responses.create(model="m", input=ASK, tools=RESP_TOOLS,
                                                     stream=True)]
    assert "response.function_call_arguments.delta" in [e.type for e in streamed_call]
    assert streamed_call[-1].response.output[0].arguments == '{"order_id":"A1234"}'


def test_responses_unknown_previous_response_is_a_400(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="not found"):
        oai.responses.create(model="m", input="hi", previous_response_id="resp_nope")


def test_responses_structured_output(oai: openai.OpenAI) -> None:
    parsed = oai.responses.parse(model="m", input="weather in Paris for 3 days", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Paris", days=3)


def test_messages_two_steps_streamed(standin: StandInAPIs) -> None:
    client = anthropic.Anthropic(base_url=standin.url, api_key="sk-ant-test", max_retries=0)
    first = client.messages.create(model="claude-x", max_tokens=200, tools=MSG_TOOLS,
                                   messages=[{"role": "user", "content": ASK}])
    use = first.content[0]
    assert use.type == "tool_use" and use.input == {"order_id": "A1234"} and first.stop_reason == "tool_use"
    history = [{"role": "user", "content": ASK}, {"role": "assistant", "content": first.content},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                             "content": "shipped"}]}]
    with client.messages.stream(model="claude-x", max_tokens=200, tools=MSG_TOOLS,
                                messages=history) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Here is what I found: shipped" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == standin.exchanges("messages")[-1].usage["output_tokens"]
    with client.messages.stream(model="claude-x", max_tokens=200, tools=MSG_TOOLS,
                                messages=[{"role": "user", "content": ASK}]) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[0].input == {"order_id": "A1234"}


def test_messages_needs_a_key(standin: StandInAPIs) -> None:
    answer = httpx.post(standin.url + "/v1/messages", json={
        "model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 401 and answer.json()["error"]["type"] == "authentication_error"
