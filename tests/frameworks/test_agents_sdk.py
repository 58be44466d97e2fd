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
from tests.frameworks.conftest import FINAL, INSTRUCTIONS, SLM_FINAL, Matrix, check_contract, check_tool_run

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
