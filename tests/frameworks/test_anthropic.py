"""The `anthropic` client: Messages with tools (`messages.create`), and `messages.stream`."""

from __future__ import annotations

import anthropic
import pytest

from tests.frameworks.conftest import (
    ANTHROPIC_KEY_ENV,
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

TOOLS = [{"name": "lookup_order", "description": "Find an order's status",
          "input_schema": {"type": "object", "properties": {"order_id": {"type": "string"}},
                           "required": ["order_id"]}}]


def run_agent(client: anthropic.Anthropic, stream: bool) -> str:
    messages: list = [{"role": "user", "content": ASK}]
    while True:
        if stream:
            with client.messages.stream(model="claude-stand-in", max_tokens=512, system=INSTRUCTIONS,
                                        tools=TOOLS, messages=messages) as events:
                reply = events.get_final_message()
        else:
            reply = client.messages.create(model="claude-stand-in", max_tokens=512, system=INSTRUCTIONS,
                                           tools=TOOLS, messages=messages)
        uses = [b for b in reply.content if b.type == "tool_use"]
        if not uses:
            return "".join(b.text for b in reply.content if b.type == "text")
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": u.id, "content": lookup_order(**u.input)} for u in uses]})


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_anthropic(matrix: Matrix, stream: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    run = "py-anthropic" + ("-stream" if stream else "")
    declared = None
    for swapped in (False, True):
        task = run + ("-swapped" if swapped else "")
        matrix.begin()
        client = anthropic.Anthropic(base_url=matrix.base(task), api_key="sk-ant-agent", max_retries=0, timeout=30)
        answer = run_agent(client, stream)
        assert answer == (SLM_FINAL if swapped else FINAL)
        declared = check_tool_run(matrix, task, api="messages", swapped=swapped, final=answer, stream=stream,
                                  declared=declared)
        check_contract(task, matrix.db_url, declared, monkeypatch)
        if not swapped:  # the gateway sent the upstream key it was configured with, not the agent's
            keys = {e.headers.get("x-api-key") for e in matrix.llm.exchanges()}
            assert keys == {"sk-ant-upstream-key"}, (keys, ANTHROPIC_KEY_ENV)
