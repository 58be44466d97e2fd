"""Re-running a recorded call: does the model give the same answer today?

A candidate decodes greedily with a fixed seed, and each call records the model, the adapter's
content hash, the decoding settings and the seed, so the answer is a function of the request:
re-running it must give the same answer. A different adapter hash means the weights changed
since (said in the result). A call served by the LLM is re-sent to the task's upstream (hosted
models are not bound to be deterministic, even with a seed); a call made through the Responses
or Messages API is re-sent as it came (`metadata["wire_request"]`) to that API of the upstream.
`fledgling replay CALL_ID` prints the result.

A local answer that was decoded in a batch is replayed in that batch: its recorded peers' requests
are decoded together again, in the same order, with the same thread count, so each row gets the
same padding and the same arithmetic as live (batched greedy decoding is deterministic, but a
row decoded alone can differ on a near-tied token). When a peer is missing from the store, the
call is decoded alone and the result says so (`batch_replayed` is then False).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from fledgling.calls import Call, Request, Response
from fledgling.capture.apis import PATHS, Api, api_of, is_answer, parse_answer
from fledgling.config import Settings, SwapSettings, TaskSettings
from fledgling.errors import InputError
from fledgling.models.generation import Generation
from fledgling.store import Store
from fledgling.swap.candidate import Candidate, candidate_spec, open_candidate
from fledgling.swap.router import Router
from fledgling.transport.upstream import ANTHROPIC_VERSION, Upstream, UpstreamPool


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
    batch_size: int = 1  # how many answers were decoded together live
    batch_replayed: bool = False  # whether the replay decoded that same batch

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
    task = settings.tasks.get(call.task) or TaskSettings()
    batch = rec.get("batch") or {}
    peers = _batch_peers(store, call, batch) if batch.get("size", 1) > 1 else None
    cap = max(int((r.get("decoding") or {}).get("max_tokens") or task.swap.max_tokens)
              for _, r in peers or [(call, rec)])
    swap = SwapSettings(**{**task.swap.model_dump(), "batch_size": max(len(peers or ()), 1), "max_tokens": cap})
    pool = UpstreamPool()
    decoding = rec.get("decoding") or {}
    engine = decoding.get("engine", "transformers") if spec.is_local else None  # older records: transformers
    candidate = open_candidate(spec, swap, pool=pool, batching=False, engine=engine)
    if candidate.backend is not None and decoding.get("prompt"):  # prompted as live, same grammar
        candidate.backend = candidate.backend.variant(  # type: ignore[attr-defined]
            prompt=decoding["prompt"], task=decoding.get("task"), allow_text=decoding.get("allow_text"))
    if candidate.backend is not None and batch.get("threads"):
        candidate.backend.threads = batch["threads"]  # type: ignore[attr-defined]
    prepared = [_prepared(candidate, c, r) for c, r in (peers or [(call, rec)])]
    position = batch.get("position", 0) if peers else 0

    async def run() -> Generation:
        await pool.start()
        try:
            if candidate.backend is not None:  # local: the whole batch in one decode
                requests = [Request.model_validate(p) for p in prepared]
                return (await candidate.backend.generate(requests))[position]
            return (await candidate.generate(prepared[0])).generation
        finally:
            await candidate.aclose()
            await pool.close()

    gen = asyncio.run(run())
    return Rerun(call.id, target, spec.name, recorded, gen.response, gen.error,
                 rec.get("adapter_sha256"), candidate.fingerprint["adapter_sha256"], rec.get("seed"),
                 batch_size=batch.get("size", 1), batch_replayed=peers is not None)


def _prepared(candidate: Candidate, call: Call, rec: dict[str, Any]) -> dict[str, Any]:
    """The body the candidate decoded for `call`, from the call's own recorded decoding."""
    decoding = rec.get("decoding") or {}
    candidate.swap = candidate.swap.model_copy(update={
        "seed": rec.get("seed", 0), "max_tokens": decoding.get("max_tokens", candidate.swap.max_tokens),
        "guided": decoding.get("guided")})
    body = call.request.model_dump(mode="json", exclude_none=True)
    if rec.get("declaration"):  # the tools as the candidate read them, in their key order
        body.update(orjson.loads(rec["declaration"]))
    return candidate.prepare(body)


def _batch_peers(store: Store, call: Call, batch: dict[str, Any]) -> list[tuple[Call, dict[str, Any]]] | None:
    """The calls decoded in `batch`, in order, each with its candidate record; None if one is gone."""
    out = []
    for peer_id in batch.get("peers") or []:
        peer = call if peer_id == call.id else store.get_call(peer_id) if peer_id else None
        if peer is None:
            return None
        rec = next((r for key in ("candidate", "shadow") if isinstance(r := peer.metadata.get(key), dict)
                    and (r.get("batch") or {}).get("id") == batch.get("id")), None)
        if rec is None:
            return None
        out.append((peer, rec))
    return out if len(out) == batch.get("size") else None


def _rerun_llm(settings: Settings, call: Call) -> Rerun:
    from fledgling.models.openai_compatible import OpenAICompatibleBackend

    route = Router(settings).route(call.task)
    if route is None:
        raise InputError(f"task '{call.task}' has no upstream in fledgling.toml to re-send the call to")
    up = route.upstream
    api = api_of(call.metadata.get("api"))
    if api != "chat" and isinstance(call.metadata.get("wire_request"), dict):
        return _rerun_wire(call, up, api, call.metadata["wire_request"])
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


def _rerun_wire(call: Call, up: Upstream, api: Api, wire: dict[str, Any]) -> Rerun:
    """Re-send a Responses or Messages call as its caller sent it (not streamed) and read the
    answer with the same converter that recorded it."""
    body = {k: v for k, v in wire.items() if k not in ("stream", "stream_options")}
    if up.model is not None:
        body["model"] = up.model
    headers = {"content-type": "application/json"}
    key = up.api_key()
    if up.kind == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if key:
            headers["x-api-key"] = key
    elif key:
        headers["authorization"] = f"Bearer {key}"
    try:
        resp = httpx.post(up.base_url + PATHS[api], content=orjson.dumps(body), headers=headers,
                          timeout=up.timeout_s)
        answer = resp.json()
        if resp.status_code != 200 or not is_answer(api, answer):
            return Rerun(call.id, "llm", up.name, call.response, None,
                         f"upstream answered {resp.status_code}: {resp.text[:300]}")
        now = parse_answer(api, answer)[0]
    except (httpx.HTTPError, ValueError) as exc:
        return Rerun(call.id, "llm", up.name, call.response, None, f"{type(exc).__name__}: {exc}"[:300])
    return Rerun(call.id, "llm", up.name, call.response, now, None, seed=call.request.seed)
