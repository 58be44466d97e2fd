"""The framework matrix: real agent frameworks through the gateway, against the stand-in upstream.

One gateway (in-process uvicorn, as the gateway tests run it) per test session, in front of two
stand-ins (tests/standin_apis.py): the reference LLM, which speaks chat completions, Responses and
Messages, and a candidate (a second instance, OpenAI-compatible) whose text answers start with
"[slm] ". Each run gets its own task, chosen by the base URL the client is given
(`/t/<task>/v1`): `<run>` in `record` mode, `<run>-swapped` in `swapped` mode.

Every agent does the same job: asked "Where is order A1234?", it calls `lookup_order` with
`{"order_id": "A1234"}`, the test's tool answers with a fixed status, and the agent's final
answer quotes it. What was stored is checked against what the scenario says and what the
serving stand-in logged (its usage, the tools on the wire), never against the gateway's own
parsing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from fledgling.calls import Call
from fledgling.cli import app as cli_app
from fledgling.config import parse_settings
from fledgling.gateway.app import GatewayApp
from fledgling.gateway.server import ServerThread, build_app
from fledgling.store import CallFilter, Store
from tests.standin_apis import Exchange, RunningStandIn, StandInAPIs

ASK = "Where is order A1234?"
ARGS = {"order_id": "A1234"}
STATUS = "shipped on Monday, arrives Wednesday"
FINAL = f"Here is what I found: {STATUS}"
SLM_FINAL = f"[slm] {FINAL}"
INSTRUCTIONS = "You are the support agent of an online shop. Use the tools."
PRICE = {"llm": (2.5, 10.0), "claude": (3.0, 15.0), "slm": (0.1, 0.4)}  # USD per million tokens in, out
ANTHROPIC_KEY_ENV = "FLEDGLING_TEST_ANTHROPIC_KEY"

# Every run of the matrix; each is a task in record mode and `<run>-swapped` in swapped mode.
RUNS = [
    "py-openai-chat", "py-openai-chat-stream", "py-openai-responses", "py-openai-responses-stream",
    "py-agents-default", "py-agents-default-stream", "py-agents-chat", "py-agents-chat-stream",
    "py-langchain-chat", "py-langchain-chat-stream", "py-langchain-responses",
    "py-langchain-responses-stream", "py-langchain-structured", "py-langchain-structured-responses",
    "py-pydantic-ai-openai", "py-pydantic-ai-openai-stream", "py-pydantic-ai-chat",
    "py-pydantic-ai-chat-stream",
    "py-anthropic", "py-anthropic-stream", "py-strict", "py-lenient", "py-agents-chained",
    "node-openai-chat", "node-openai-chat-stream", "node-openai-responses", "node-openai-responses-stream",
    "node-mastra-default", "node-mastra-default-stream", "node-mastra-chat", "node-mastra-chat-stream",
    "node-mastra-router", "node-mastra-router-stream",
    "node-aisdk-default", "node-aisdk-default-stream", "node-aisdk-chat", "node-aisdk-chat-stream",
]


def upstream_of(run: str) -> str:
    return "claude" if "anthropic" in run else "llm"


def lookup_order(order_id: str) -> str:
    """The agents' tool: the status of an order (fixed, so the final answer is known)."""
    assert order_id == ARGS["order_id"], order_id
    return STATUS


@dataclass
class Matrix:
    gateway: str
    app: GatewayApp
    store: Store
    db_url: str
    llm: StandInAPIs
    slm: StandInAPIs

    def base(self, task: str) -> str:
        """The root a client is given for `task` (OpenAI clients add /v1; Anthropic's SDK adds
        /v1/messages itself)."""
        assert task.removesuffix("-swapped") in RUNS, f"{task} is not in conftest.RUNS"
        return f"{self.gateway}/t/{task}"

    def begin(self) -> None:
        self.llm.clear()
        self.slm.clear()

    def calls(self, task: str) -> list[Call]:
        assert self.app.recorder.drain(20), self.app.recorder.stats()
        return sorted(self.store.iter_calls(CallFilter(task=task)), key=lambda c: c.created_at)

    def served(self, swapped: bool) -> StandInAPIs:
        return self.slm if swapped else self.llm


@pytest.fixture(scope="session")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    work = tmp_path_factory.mktemp("frameworks")
    previous = os.environ.get(ANTHROPIC_KEY_ENV)
    os.environ[ANTHROPIC_KEY_ENV] = "sk-ant-upstream-key"
    with RunningStandIn(model="stand-in-llm") as llm, RunningStandIn(voice="[slm] ", model="slm") as slm:
        tasks: dict[str, Any] = {}
        for run in RUNS:
            tasks[run] = {"upstream": upstream_of(run), "match": {"path": f"/t/{run}/"}}
            # a generous budget: on a loaded machine a late candidate would hand the turn to the LLM
            tasks[run + "-swapped"] = {"upstream": upstream_of(run), "candidate": "slm", "mode": "swapped",
                                       "match": {"path": f"/t/{run}-swapped/"}, "swap": {"budget_ms": 30000}}
        settings = parse_settings({
            "models": {
                "llm": {"kind": "openai", "base_url": llm.url + "/v1", "usd_per_mtok_in": PRICE["llm"][0],
                        "usd_per_mtok_out": PRICE["llm"][1], "timeout_s": 20},
                "claude": {"kind": "anthropic", "base_url": llm.url + "/v1", "api_key_env": ANTHROPIC_KEY_ENV,
                           "usd_per_mtok_in": PRICE["claude"][0], "usd_per_mtok_out": PRICE["claude"][1],
                           "timeout_s": 20},
                "slm": {"kind": "openai", "base_url": slm.url + "/v1", "model": "slm",
                        "usd_per_mtok_in": PRICE["slm"][0], "usd_per_mtok_out": PRICE["slm"][1]},
            },
            "tasks": tasks,
            "gateway": {"upstream": "llm", "spool_dir": str(work / "spool"), "spool_fsync_ms": 2},
        })
        db_url = f"sqlite:///{work}/fledgling.db"
        store = Store(db_url)
        app = build_app(settings, store, keys=frozenset())
        server = ServerThread(app)
        try:
            yield Matrix(server.start(), app, store, db_url, llm, slm)
        finally:
            server.stop()
            store.close()
            if previous is None:
                os.environ.pop(ANTHROPIC_KEY_ENV, None)
            else:
                os.environ[ANTHROPIC_KEY_ENV] = previous


# --- what the stored calls must show ------------------------------------------------------


def normalised(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Messages as (role, text or None, ((tool name, parsed arguments), ...)), empty text as None."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        calls = tuple((tc["function"]["name"], orjson.loads(tc["function"]["arguments"] or "{}"))
                      for tc in m.get("tool_calls") or [])
        out.append((m["role"], content or None, calls))
    return out


def expected_conversation(step: int, system: str | None = INSTRUCTIONS, final: str | None = None) -> list[tuple]:
    """The scenario's messages as the model sees them at `step` (1: the question; 2: with the
    tool's result), and (final given) with the answer appended."""
    msgs: list[tuple] = [("system", system, ())] if system else []
    msgs.append(("user", ASK, ()))
    if step >= 2:
        msgs += [("assistant", None, (("lookup_order", ARGS),)), ("tool", STATUS, ())]
    return msgs


def wire_tools(exchange: Exchange) -> list[dict[str, Any]]:
    """The tools exactly as the client sent them, as (name, parameters, strict) dicts."""
    out = []
    for t in exchange.body.get("tools") or []:
        if exchange.api == "chat":
            fn = t["function"]
            out.append({"name": fn["name"], "parameters": fn.get("parameters"), "strict": fn.get("strict")})
        elif exchange.api == "responses":
            out.append({"name": t["name"], "parameters": t.get("parameters"), "strict": t.get("strict")})
        else:
            out.append({"name": t["name"], "parameters": t.get("input_schema"), "strict": t.get("strict")})
    return out


def stored_tools(call: Call) -> list[dict[str, Any]]:
    out = []
    for t in call.request.tools or []:
        fn = t.get("function", t)
        out.append({"name": fn["name"], "parameters": fn.get("parameters"),
                    "strict": fn.get("strict", t.get("strict"))})
    return out


def same_json(a: Any, b: Any) -> bool:
    """Equal, keys in the same order too (what "byte-identical" means once parsed)."""
    return json.dumps(a) == json.dumps(b)


def check_tool_run(m: Matrix, task: str, *, api: str, swapped: bool, final: str, stream: bool,
                   system: str | None = INSTRUCTIONS, declared: list[dict[str, Any]] | None = None,
                   ) -> list[dict[str, Any]]:
    """The two-step exchange as stored: two calls in the client's API (`api`: chat, responses,
    messages), every message in order, the tools, the tool call and its arguments, tokens and
    cost as the serving stand-in reported them, the streamed answers reassembled. Returns the
    tools the client declared (from the LLM's wire log, or `declared` from the record run when
    swapped)."""
    calls = m.calls(task)
    served = m.served(swapped).exchanges()
    assert len(calls) == 2 == len(served), (len(calls), [(e.api, e.path) for e in served])
    assert [c.metadata.get("api", "chat") for c in calls] == [api, api]
    if swapped:
        assert m.llm.exchanges() == [], "swapped mode must not ask the LLM"
        assert [e.api for e in served] == ["chat", "chat"]  # the candidate is OpenAI-compatible
    else:
        assert [e.api for e in served] == [api, api]
    first, second = calls
    assert normalised(first.request.messages) == expected_conversation(1, system)
    assert normalised(second.request.messages) == expected_conversation(2, system)
    issued = first.response.tool_calls if first.response else []
    assert [(tc.name, orjson.loads(tc.arguments)) for tc in issued] == [("lookup_order", ARGS)]
    assistant = second.request.messages[-2]
    tool_msg = second.request.messages[-1]
    assert assistant["tool_calls"][0]["id"] == issued[0].id == tool_msg["tool_call_id"]
    assert second.response is not None and second.response.content == final
    assert not second.response.tool_calls
    price_in, price_out = PRICE["slm" if swapped else upstream_of(task.removesuffix("-swapped"))]
    for call, ex in zip(calls, served, strict=True):
        assert call.status == "ok", call.error
        assert (call.usage.input_tokens, call.usage.output_tokens) == \
            (ex.usage["input_tokens"], ex.usage["output_tokens"])
        expected_cost = (ex.usage["input_tokens"] * price_in + ex.usage["output_tokens"] * price_out) / 1e6
        assert call.cost_usd == pytest.approx(expected_cost, rel=1e-9)
        assert call.metadata.get("stream", False) is stream
    if not swapped:
        declared = wire_tools(served[0])
    assert declared, "the client declared no tools"
    for call in calls:
        tools = stored_tools(call)
        assert [t["name"] for t in tools] == [t["name"] for t in declared]
        for got, want in zip(tools, declared, strict=True):
            assert same_json(got["parameters"], want["parameters"]), (got, want)
            assert got["strict"] == want["strict"]
    return declared


def check_contract(task: str, db_url: str, declared: list[dict[str, Any]],
                   monkeypatch: pytest.MonkeyPatch, output_schema: dict[str, Any] | None = None,
                   output_strict: bool | None = None) -> None:
    """`fledgling contracts infer` gives back the schemas the client declared, `strict` too."""
    monkeypatch.setenv("FLEDGLING_DB_URL", db_url)
    runner = CliRunner()
    res = runner.invoke(cli_app, ["contracts", "infer", "--task", task])
    assert res.exit_code == 0, res.output
    shown = runner.invoke(cli_app, ["contracts", "show", "--task", task, "--json"])
    assert shown.exit_code == 0, shown.output
    contract = json.loads(shown.output)
    got = {t["name"]: t for t in contract["tools"]}
    assert sorted(got) == sorted(t["name"] for t in declared)
    for want in declared:
        assert same_json(got[want["name"]]["parameters"], want["parameters"]), (got[want["name"]], want)
        assert got[want["name"]].get("strict") == want["strict"]
    if output_schema is not None:
        assert same_json(contract["output_schema"], output_schema)
        assert contract.get("output_strict") == output_strict

