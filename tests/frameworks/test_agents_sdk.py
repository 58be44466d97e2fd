"""The OpenAI Agents SDK: its default model (Responses) and `OpenAIChatCompletionsModel`,
`Runner.run` and `Runner.run_streamed`."""

from __future__ import annotations

import asyncio

import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    RunConfig,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from agents.models.openai_provider import OpenAIProvider
from openai import AsyncOpenAI

from tests.frameworks import conftest
from tests.frameworks.conftest import (
    FINAL,
    INSTRUCTIONS,
    SLM_FINAL,
    Matrix,
    check_contract,
    check_tool_run,
    expected_conversation,
    normalised,
)

pytestmark = pytest.mark.frameworks

set_tracing_disabled(True)  # its traces would go to api.openai.com


@function_tool
def lookup_order(order_id: str) -> str:
    """Find an order's status.

    Args:
        order_id: The order's id, e.g. A1234.
    """
    return conftest.lookup_order(order_id)


async def run_agent(base_url: str, model: str, stream: bool) -> str:
    client = AsyncOpenAI(base_url=base_url, api_key="sk-agent", max_retries=0, timeout=30)
    if model == "default":  # what a user gets by only pointing the SDK at another base URL
        agent = Agent(name="support", instructions=INSTRUCTIONS, tools=[lookup_order])
        config = RunConfig(model_provider=OpenAIProvider(openai_client=client))
    else:
        agent = Agent(name="support", instructions=INSTRUCTIONS, tools=[lookup_order],
                      model=OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client))
        config = RunConfig()
    if not stream:
        return str((await Runner.run(agent, conftest.ASK, run_config=config)).final_output)
    result = Runner.run_streamed(agent, conftest.ASK, run_config=config)
    async for _ in result.stream_events():
        pass
    return str(result.final_output)


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
@pytest.mark.parametrize("model", ["default", "chat"])
def test_agents_sdk(matrix: Matrix, model: str, stream: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    run = f"py-agents-{model}" + ("-stream" if stream else "")
    api = "responses" if model == "default" else "chat"  # the default model speaks Responses
    declared = None
    for swapped in (False, True):
        task = run + ("-swapped" if swapped else "")
        matrix.begin()
        answer = asyncio.run(run_agent(matrix.base(task) + "/v1", model, stream))
        assert answer == (SLM_FINAL if swapped else FINAL)
        declared = check_tool_run(matrix, task, api=api, swapped=swapped, final=answer, stream=stream,
                                  declared=declared)
        assert declared[0]["strict"] is True  # the SDK declares its function tools strict
        check_contract(task, matrix.db_url, declared, monkeypatch)


def chained(base_url: str) -> str:
    client = AsyncOpenAI(base_url=base_url, api_key="sk-agent", max_retries=0, timeout=30)
    agent = Agent(name="support", instructions=INSTRUCTIONS, tools=[lookup_order])
    config = RunConfig(model_provider=OpenAIProvider(openai_client=client))
    return str(asyncio.run(Runner.run(agent, conftest.ASK, run_config=config,
                                      auto_previous_response_id=True)).final_output)


def test_agents_sdk_chained_by_previous_response_id(matrix: Matrix) -> None:
    """The conversation held upstream: the second request carries only the tool's output and
    `previous_response_id`; the gateway records what it sees and links both calls in one session."""
    task = "py-agents-chained"
    matrix.begin()
    assert chained(matrix.base(task) + "/v1") == FINAL
    first, second = matrix.calls(task)
    served = matrix.llm.exchanges()
    assert "previous_response_id" not in served[0].body
    assert served[1].body["previous_response_id"] in matrix.llm.response_ids()
    assert first.session_id is not None and first.session_id == second.session_id
    assert normalised(second.request.messages) == [("system", INSTRUCTIONS, ()), ("tool", conftest.STATUS, ())]
    assert second.metadata["wire_request"]["previous_response_id"] == served[1].body["previous_response_id"]
    assert second.response is not None and second.response.content == FINAL


def test_agents_sdk_chained_in_swapped_mode(matrix: Matrix) -> None:
    """Swapped, the candidate answers both turns: the gateway holds the conversation the
    candidate's response id names, so the follow-up reaches the candidate whole."""
    task = "py-agents-chained-swapped"
    matrix.begin()
    assert chained(matrix.base(task) + "/v1") == SLM_FINAL
    assert matrix.llm.exchanges() == []
    first, second = matrix.calls(task)
    assert first.session_id is not None and first.session_id == second.session_id
    assert normalised(second.request.messages) == expected_conversation(2)
    assert [c.metadata["route"]["served_by"] for c in (first, second)] == ["candidate", "candidate"]
    assert [(c.usage.input_tokens, c.usage.output_tokens) for c in (first, second)] == \
        [(e.usage["input_tokens"], e.usage["output_tokens"]) for e in matrix.slm.exchanges()]
