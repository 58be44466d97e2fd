"""`strict` through the gateway in swapped mode: the candidate leaves out an optional argument,
which a strict tool does not allow (OpenAI's strict mode makes every property required), so the
enforcer refuses that answer and the LLM answers instead; without `strict` the candidate's
answer stands."""

from __future__ import annotations

import openai
import orjson
import pytest

from tests.frameworks.conftest import ASK, Matrix

pytestmark = pytest.mark.frameworks

PARAMS = {"type": "object", "properties": {"order_id": {"type": "string"}, "channel": {"type": "string"}},
          "required": ["order_id"]}


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
def test_candidate_answer_breaking_strict_falls_back_to_the_llm(matrix: Matrix, strict: bool) -> None:
    task = ("py-strict" if strict else "py-lenient") + "-swapped"
    tools = [{"type": "function", "function": {"name": "lookup_order", "parameters": PARAMS, "strict": strict}}]
    matrix.begin()
    matrix.slm.required_only = True
    try:
        client = openai.OpenAI(base_url=matrix.base(task) + "/v1", api_key="sk-agent", max_retries=0, timeout=30)
        message = client.chat.completions.create(model="gpt-4o", tools=tools,
                                                 messages=[{"role": "user", "content": ASK}]).choices[0].message
    finally:
        matrix.slm.required_only = False
    (call,) = message.tool_calls or []
    args = orjson.loads(call.function.arguments)
    assert len(matrix.slm.exchanges()) == 1  # the candidate was asked first
    (stored,) = matrix.calls(task)
    route = stored.metadata.get("route") or {}
    if strict:
        assert args == {"order_id": "A1234", "channel": "A1234"}  # the LLM's complete arguments
        assert len(matrix.llm.exchanges()) == 1
        assert route.get("served_by") != "candidate", route
        assert "contract" in str(route.get("fallback")), route
    else:
        assert args == {"order_id": "A1234"}  # the candidate's, valid for a lenient schema
        assert matrix.llm.exchanges() == []
        assert route.get("served_by") == "candidate", route
