"""Re-running a recorded call: does the model give the same answer today?

A candidate decodes greedily with a fixed seed, and each call records the model, the adapter's
content hash, the decoding settings and the seed, so the answer is a function of the request:
re-running it must give the same answer. A different adapter hash means the weights changed
since (said in the result). A call served by the LLM is re-sent to the task's upstream (hosted
models are not bound to be deterministic, even with a seed). `fledgling replay CALL_ID` prints
the result.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fledgling.calls import Call, Request, Response
from fledgling.config import Settings, SwapSettings, TaskSettings
from fledgling.errors import InputError
from fledgling.gateway.candidate import candidate_spec, open_candidate
from fledgling.gateway.router import Router
from fledgling.store import Store


@dataclass
class Rerun:
    call_id: str
    target: str  # "candidate" (it served the call), "shadow" (it ran beside the LLM) or "llm"
    model: str
    recorded: Response | None
    now: Response | None
    error: str | None = None
    adapter_recorded: str | None = None
    adapter_now: str | None = None
    seed: int | None = None

    @property
    def identical(self) -> bool:
        return self.error is None and answer_key(self.recorded) == answer_key(self.now)


def answer_key(r: Response | None) -> Any:
    """What "the same answer" means: the same text and the same tool calls (name and
    arguments, exactly as written), in order. Tool-call ids do not count."""
    if r is None:
        return None
    return (r.content, [(tc.name, tc.arguments) for tc in r.tool_calls])


def rerun_call(store: Store, settings: Settings, call_id: str) -> Rerun:
    call = store.get_call(call_id)
    if call is None:
        raise InputError(f"no call '{call_id}' in the store; see `fledgling traces list`")
    route = call.metadata.get("route") or {}
    shadow = call.metadata.get("shadow") or {}
    if route.get("served_by") == "candidate":
        return _rerun_candidate(store, settings, call, "candidate", call.metadata["candidate"], call.response)
    if shadow.get("response"):
        recorded = Response.from_message(shadow["response"], shadow.get("finish_reason"))
        return _rerun_candidate(store, settings, call, "shadow", shadow, recorded)
    return _rerun_llm(settings, call)


def _rerun_candidate(store: Store, settings: Settings, call: Call, target: str, rec: dict[str, Any],
                     recorded: Response | None) -> Rerun:
    spec = candidate_spec(store, settings, rec["model"])
    decoding = rec.get("decoding") or {}
    task = settings.tasks.get(call.task) or TaskSettings()
    swap = SwapSettings(**{**task.swap.model_dump(), "seed": rec.get("seed", 0),
                           "max_tokens": decoding.get("max_tokens", task.swap.max_tokens),
                           "guided": decoding.get("guided"), "batch_size": 1})
    candidate = open_candidate(spec, swap, batching=False)
    request = candidate.prepare(call.request.model_dump(mode="json", exclude_none=True))

    async def run() -> Any:
        try:
            return await candidate.generate(request)
        finally:
            await candidate.aclose()

    gen = asyncio.run(run())
    return Rerun(call.id, target, spec.name, recorded, gen.response, gen.error,
                 rec.get("adapter_sha256"), candidate.fingerprint["adapter_sha256"], rec.get("seed"))


def _rerun_llm(settings: Settings, call: Call) -> Rerun:
    from fledgling.models.openai_compatible import OpenAICompatibleBackend

    route = Router(settings).route(call.task)
    if route is None:
        raise InputError(f"task '{call.task}' has no upstream in fledgling.toml to re-send the call to")
    up = route.upstream
    backend = OpenAICompatibleBackend(up.name, up.base_url, model=up.model, api_key=up.api_key(),
                                      timeout_s=up.timeout_s, retries=0)
    body = call.request.model_dump(mode="json", exclude_none=True)
    body.setdefault("model", call.model or up.model or "default")

    async def run() -> Any:
        try:
            return (await backend.generate([Request.model_validate(body)]))[0]
        finally:
            await backend.aclose()

    gen = asyncio.run(run())
    return Rerun(call.id, "llm", up.name, call.response, gen.response, gen.error,
                 seed=call.request.seed)
