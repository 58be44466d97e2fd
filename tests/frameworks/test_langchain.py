"""LangChain's `ChatOpenAI`: default (chat completions), `use_responses_api=True`, `.stream()`,
and `with_structured_output`."""

from __future__ import annotations

import orjson
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from tests.frameworks import conftest
from tests.frameworks.conftest import (
    ASK,
    FINAL,
    INSTRUCTIONS,
    SLM_FINAL,
    Matrix,
    check_contract,
    check_tool_run,
    normalised,
    same_json,
)

pytestmark = pytest.mark.frameworks


@tool
def lookup_order(order_id: str) -> str:
    """Find an order's status.

    Args:
        order_id: The order's id, e.g. A1234.
    """
    return conftest.lookup_order(order_id)


def model(base_url: str, responses: bool) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o", base_url=base_url, api_key="sk-agent", max_retries=0,  # type: ignore[arg-type]
                      timeout=30, use_responses_api=responses)


def text_of(message: BaseMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(p.get("text", "") for p in message.content if isinstance(p, dict))


def run_agent(llm: ChatOpenAI, stream: bool) -> str:
    bound = llm.bind_tools([lookup_order])
    messages: list[BaseMessage] = [SystemMessage(INSTRUCTIONS), HumanMessage(ASK)]
    while True:
        if stream:
            total: AIMessageChunk | None = None
            for chunk in bound.stream(messages):
                total = chunk if total is None else total + chunk
            assert total is not None
            reply: AIMessage = total
        else:
            reply = bound.invoke(messages)  # type: ignore[assignment]
        if not reply.tool_calls:
            return text_of(reply)
        messages.append(reply)
        for tc in reply.tool_calls:
            messages.append(ToolMessage(lookup_order.invoke(tc["args"]), tool_call_id=tc["id"]))


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_langchain_tool_loop(matrix: Matrix, api: str, stream: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    run = f"py-langchain-{api}" + ("-stream" if stream else "")
    declared = None
    for swapped in (False, True):
        task = run + ("-swapped" if swapped else "")
        matrix.begin()
        answer = run_agent(model(matrix.base(task) + "/v1", api == "responses"), stream)
        assert answer == (SLM_FINAL if swapped else FINAL)
        declared = check_tool_run(matrix, task, api=api, swapped=swapped, final=answer, stream=stream,
                                  declared=declared)
        check_contract(task, matrix.db_url, declared, monkeypatch)


class Delivery(BaseModel):
    """When an order arrives."""

    order_id: str = Field(description="The order's id")
    days: int = Field(description="Days until it arrives")
    express: bool


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_langchain_structured_output(matrix: Matrix, api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    question = "When does order A1234 arrive, in 3 days?"
    expected = Delivery(order_id="A1234", days=3, express=True)
    run = "py-langchain-structured" + ("-responses" if api == "responses" else "")
    declared: dict | None = None
    for swapped in (False, True):
        task = run + ("-swapped" if swapped else "")
        matrix.begin()
        structured = model(matrix.base(task) + "/v1", api == "responses").with_structured_output(Delivery)
        assert structured.invoke([HumanMessage(question)]) == expected
        (call,) = matrix.calls(task)
        (served,) = matrix.served(swapped).exchanges()
        assert call.metadata.get("api", "chat") == api
        assert normalised(call.request.messages) == [("user", question, ())]
        assert call.response is not None and orjson.loads(call.response.content or "") == expected.model_dump()
        assert (call.usage.input_tokens, call.usage.output_tokens) == \
            (served.usage["input_tokens"], served.usage["output_tokens"])
        if not swapped:  # the format exactly as the client sent it: chat's json_schema, Responses' text.format
            wire = served.body["response_format"]["json_schema"] if api == "chat" else served.body["text"]["format"]
            declared = {"schema": wire["schema"], "strict": wire.get("strict")}
        assert declared is not None
        stored = (call.request.response_format or {}).get("json_schema") or {}
        assert same_json(stored.get("schema"), declared["schema"]) and stored.get("strict") == declared["strict"]
        check_contract(task, matrix.db_url, [], monkeypatch, output_schema=declared["schema"],
                       output_strict=declared["strict"])
