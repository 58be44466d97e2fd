"""The `openai` Python client, chat completions and Responses, hand-written tool loop."""

from __future__ import annotations

import json

import openai
import pytest

from tests.frameworks.conftest import (
    ASK,
    FINAL,
    INSTRUCTIONS,
    SLM_FINAL,
    Matrix,
    check_contract,
    check_tool_run,
    lookup_order,
)

pytestmark = pytest.mark.frameworks

PARAMS = {"type": "object", "properties": {"order_id": {"type": "string", "description": "e.g. A1234"}},
          "required": ["order_id"], "additionalProperties": False}
CHAT_TOOLS = [{"type": "function", "function": {"name": "lookup_order", "description": "Find an order's status",
                                                "parameters": PARAMS, "strict": True}}]
RESPONSES_TOOLS = [{"type": "function", "name": "lookup_order", "description": "Find an order's status",
                    "parameters": PARAMS, "strict": True}]


def chat_agent(client: openai.OpenAI, stream: bool) -> str:
    messages: list = [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": ASK}]
    while True:
        if stream:
            text, calls = "", {}
            for chunk in client.chat.completions.create(model="gpt-4o", messages=messages, tools=CHAT_TOOLS,
                                                        stream=True):
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                text += delta.content or ""
                for tc in delta.tool_calls or []:
                    slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] += tc.id or ""
                    slot["name"] += (tc.function.name or "") if tc.function else ""
                    slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
            tool_calls = [{"id": c["id"], "type": "function",
                           "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls.values()]
        else:
            message = client.chat.completions.create(model="gpt-4o", messages=messages, tools=CHAT_TOOLS
                                                     ).choices[0].message
            text = message.content or ""
            tool_calls = [tc.model_dump() for tc in message.tool_calls or []]
        if not tool_calls:
            return text
        messages.append({"role": "assistant", "content": text or None, "tool_calls": tool_calls})
        for tc in tool_calls:
            result = lookup_order(**json.loads(tc["function"]["arguments"]))
            messages.append({"role": "tool", "tool_call_id": tc["id"], "content": result})


def responses_agent(client: openai.OpenAI, stream: bool) -> str:
    items: list = [{"role": "user", "content": ASK}]
    while True:
        if stream:
            with client.responses.stream(model="gpt-4o", instructions=INSTRUCTIONS, input=items,
                                         tools=RESPONSES_TOOLS) as events:
                for _ in events:
                    pass
                response = events.get_final_response()
        else:
            response = client.responses.create(model="gpt-4o", instructions=INSTRUCTIONS, input=items,
                                               tools=RESPONSES_TOOLS)
        calls = [item for item in response.output if item.type == "function_call"]
        if not calls:
            return response.output_text
        for call in calls:
            items.append(call.model_dump(exclude_none=True))
            items.append({"type": "function_call_output", "call_id": call.call_id,
                          "output": lookup_order(**json.loads(call.arguments))})


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_openai_python(matrix: Matrix, api: str, stream: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    run = f"py-openai-{api}" + ("-stream" if stream else "")
    agent = chat_agent if api == "chat" else responses_agent
    declared = None
    for swapped in (False, True):
        task = run + ("-swapped" if swapped else "")
        matrix.begin()
        client = openai.OpenAI(base_url=matrix.base(task) + "/v1", api_key="sk-agent", max_retries=0, timeout=30)
        answer = agent(client, stream)
        assert answer == (SLM_FINAL if swapped else FINAL)
        declared = check_tool_run(matrix, task, api=api, swapped=swapped, final=answer, stream=stream,
                                  declared=declared)
        check_contract(task, matrix.db_url, declared, monkeypatch)
