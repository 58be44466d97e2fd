"""The schema enforcer: no candidate answer reaches the client unless it keeps the task's contract.

The contract is the task's newest stored one (`fledgling contracts infer`); a task without one
is held to what the request itself declares (its tools and their JSON Schemas, or its
`response_format` schema). Checking uses `fledgling.contracts.validate`, with the request's
`tool_choice` and `parallel_tool_calls`, so a forced or forbidden tool call is enforced too.

Cheap per answer: a contract's JSON Schema validators are compiled once per contract version
(a reloaded stored contract of the same version keeps the compiled one), and a declared
contract is built once per declaration, keyed by the raw tools and response_format.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

import orjson

from fledgling.calls import Request, Response
from fledgling.contracts import (
    Contract,
    ToolSpec,
    Violation,
    contract_version,
    load_contract,
    response_format_strict,
    validate,
)
from fledgling.errors import ContractError
from fledgling.evals.scoring import score_item
from fledgling.models.prompting import function_specs, output_schema
from fledgling.store import Store

log = logging.getLogger("fledgling.gateway")
CONTRACT_TTL_S = 30.0
DECLARED_MAX = 256


def request_contract(task: str, request: Request) -> Contract:
    """The contract a request declares by itself, its tools' and response format's `strict`
    flags included (a strict schema admits no extra property and needs every declared one)."""
    strict: dict[str, bool] = {}
    for raw in request.tools or []:
        inner = raw.get("function")
        fn: dict[str, Any] = inner if isinstance(inner, dict) else raw
        flag = fn.get("strict", raw.get("strict"))
        if fn.get("name") and isinstance(flag, bool):
            strict[fn["name"]] = flag
    tools = [ToolSpec(name=t["name"], description=t["description"] or None, parameters=t["parameters"],
                      strict=strict.get(t["name"]))
             for t in function_specs(request)]
    schema = output_schema(request)
    schema_strict = response_format_strict(request.response_format) if schema is not None else None
    kind: Literal["toolcall", "structured", "text"] = (
        "toolcall" if tools else "structured" if schema is not None else "text")
    return Contract(task=task, version=contract_version(kind, tools, schema, schema_strict), kind=kind,
                    tools=tools, output_schema=schema, output_strict=schema_strict, stats={})


class Enforcer:
    def __init__(self, store: Store):
        self.store = store
        self._stored: dict[str, tuple[float, Contract | None]] = {}
        self._declared: dict[bytes, Contract] = {}

    async def contract(self, task: str, body: dict[str, Any]) -> Contract:
        """The contract an answer to `body` (the agent's request) must keep."""
        cached = self._stored.get(task)
        if cached is None or time.monotonic() - cached[0] > CONTRACT_TTL_S:
            try:
                found = await asyncio.to_thread(load_contract, self.store, task)
            except Exception as exc:  # the request's own declaration still protects the client
                log.warning("contract of '%s' not loaded (%s)", task, str(exc).splitlines()[0])
                found = cached[1] if cached else None
            if found is not None and cached is not None and cached[1] is not None \
                    and cached[1].version == found.version:
                found = cached[1]  # same version: keep its compiled validators
            cached = self._stored[task] = (time.monotonic(), found)
        if cached[1] is not None:
            return cached[1]
        tools, rf = body.get("tools"), body.get("response_format")
        key = orjson.dumps([task, tools, rf], option=orjson.OPT_SORT_KEYS)
        found = self._declared.get(key)
        if found is None:  # built once per declaration: its validators are compiled once
            if len(self._declared) >= DECLARED_MAX:
                self._declared.clear()
            request = Request.model_validate({"messages": [], "tools": tools, "response_format": rf})
            found = self._declared[key] = request_contract(task, request)
        return found

    @staticmethod
    def check(response: Response, contract: Contract, body: dict[str, Any]) -> list[Violation]:
        """Every violation ([] = the answer may go to the client)."""
        parallel = body.get("parallel_tool_calls")
        if not (response.content or response.tool_calls):
            return [Violation(code="empty", path="", message="the answer is empty")]
        try:
            return validate(response, contract, tool_choice=body.get("tool_choice"),
                            parallel_tool_calls=parallel if isinstance(parallel, bool) else None)
        except ContractError as exc:
            return [Violation(code="schema", path="", message=str(exc))]


def agree(candidate: Response, reference: Response, contract: Contract) -> bool:
    """Would the candidate's answer count as the LLM's? The ParityBench item score, exact."""
    return score_item(candidate, reference, contract).success == 1.0
