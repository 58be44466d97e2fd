"""pydantic-ai: `Agent('openai:…')` (its Responses model, configured by OPENAI_BASE_URL as a
user would) and `OpenAIChatModel`, `run_sync` and `run_stream`."""

from __future__ import annotations

import asyncio

import pytest
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.frameworks import conftest
from tests.frameworks.conftest import FINAL, INSTRUCTIONS, SLM_FINAL, Matrix, check_contract, check_tool_run

pytestmark = pytest.mark.frameworks


def build(base_url: str, model: str, monkeypatch: pytest.MonkeyPatch) -> Agent:
    if model == "openai":
        monkeypatch.setenv("OPENAI_BASE_URL", base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-agent")
        agent: Agent = Agent("openai:gpt-4o", instructions=INSTRUCTIONS)
    else:
        agent = Agent(OpenAIChatModel("gpt-4o", provider=OpenAIProvider(base_url=base_url, api_key="sk-agent")),
                      instructions=INSTRUCTIONS)

    @agent.tool_plain
    def lookup_order(order_id: str) -> str:
        """Find an order's status.

        Args:
            order_id: The order's id, e.g. A1234.
        """
        return conftest.lookup_order(order_id)

    return agent


async def streamed(agent: Agent) -> str:
    async with agent.run_stream(conftest.ASK) as result:
        return str(await result.get_output())


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
@pytest.mark.parametrize("model", ["openai", "chat"])
def test_pydantic_ai(matrix: Matrix, model: str, stream: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    run = f"py-pydantic-ai-{model}" + ("-stream" if stream else "")
    api = "responses" if model == "openai" else "chat"  # the default model speaks Responses
    declared = None
    for swapped in (False, True):
        task = run + ("-swapped" if swapped else "")
        matrix.begin()
        agent = build(matrix.base(task) + "/v1", model, monkeypatch)
        answer = asyncio.run(streamed(agent)) if stream else str(agent.run_sync(conftest.ASK).output)
        assert answer == (SLM_FINAL if swapped else FINAL)
        declared = check_tool_run(matrix, task, api=api, swapped=swapped, final=answer, stream=stream,
                                  declared=declared)
        check_contract(task, matrix.db_url, declared, monkeypatch)
