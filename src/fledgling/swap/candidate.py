"""Serving the candidate (the SLM) inside the gateway: which model, how it decodes, and how to
reach it.

A candidate is a `[models.NAME]` entry of fledgling.toml or a model catalog entry (a trained
adapter registers itself there). Local ones (`hf` with its adapter, `gguf`) load once, in a
thread, decode with the grammar of the request's contract (constrained decoding: valid by
construction) and are shared across concurrent requests by a `BatchQueue`. Remote ones are any
OpenAI-compatible server, reached through the gateway's own pooled aiohttp client (the one the
LLM calls use: a loopback round trip costs a third of httpx's); with `guided` set, a structured
request also carries the server's guided-JSON parameter (vLLM `guided_json`, llama.cpp
`json_schema`). The agent's body goes to a remote candidate as a dict, serialised once; only a
local model needs it as a `Request`.

Every candidate decodes greedily with a fixed seed (temperature 0), so its answer is a function
of the request: `fingerprint` (model, adapter hash, decoding settings, seed) goes into each
call's record, and `fledgling replay CALL_ID` can reproduce the answer. A local answer decoded
in a batch also records the batch (its peers, in order, and the decoding threads): replay
decodes the same batch again, so the arithmetic is the same as live (see `batching.py`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from fledgling.calls import Request
from fledgling.capture.recording.exchange import parse_completion
from fledgling.config import Settings, SwapSettings
from fledgling.errors import ConfigError
from fledgling.models.generation import Generation, ModelBackend
from fledgling.models.prompting import output_schema
from fledgling.models.spec import ModelSpec, open_backend
from fledgling.store import Store
from fledgling.swap.batching import BatchQueue
from fledgling.swap.confidence import local_confidence, remote_confidence
from fledgling.swap.router import Upstream
from fledgling.transport.upstream import UpstreamFault, UpstreamPool

log = logging.getLogger("fledgling.gateway")
RETRY_LOAD_S = 30.0
_DROPPED = ("stream", "stream_options", "n", "logprobs", "top_logprobs", "temperature", "top_p",
            "max_completion_tokens")


def adapter_sha256(path: str | Path | None) -> str | None:
    """A content hash of an adapter directory (or file): which weights answered, exactly."""
    if not path:
        return None
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p] if p.is_file() else []
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def candidate_spec(store: Store, settings: Settings, name: str) -> ModelSpec:
    """A `[models.NAME]` entry, else the catalog entry of that name."""
    if name in settings.models:
        return ModelSpec(name, settings.models[name])
    from fledgling.models import catalog

    return ModelSpec(name, catalog.get_model(store, name).settings())


@dataclass
class Answer:
    """One candidate answer and how it was made: `batch` for a local answer decoded with others
    (`batching.Batch.record`), `confidence` when the model reports one (`confidence.py`)."""

    generation: Generation
    batch: dict[str, Any] | None = None
    confidence: float | None = None


class Candidate:
    def __init__(self, spec: ModelSpec, swap: SwapSettings, *, backend: ModelBackend | None = None,
                 queue: BatchQueue | None = None, pool: UpstreamPool | None = None):
        self.spec = spec
        self.name = spec.name
        self.backend = backend
        self.queue = queue
        self.pool = pool
        self.swap = swap
        ms = spec.settings
        self.upstream = None if spec.is_local else Upstream(
            name=spec.name, base_url=(ms.base_url or "").rstrip("/"), api_key_env=ms.api_key_env,
            api_version=ms.api_version, model=ms.model, timeout_s=min(ms.timeout_s, swap.budget_ms / 1000))
        self.price_in, self.price_out = ms.usd_per_mtok_in, ms.usd_per_mtok_out
        self.fingerprint: dict[str, Any] = {
            "model": spec.name, "kind": ms.kind, "base": ms.base or ms.path or ms.base_url,
            "served_model": ms.model, "adapter": ms.adapter, "adapter_sha256": adapter_sha256(ms.adapter),
            "decoding": {"greedy": True, "temperature": 0, "max_tokens": swap.max_tokens,
                         "constrained": spec.is_local, "guided": None if spec.is_local else swap.guided},
            "seed": swap.seed}
        if spec.is_local:  # how the prompt was written and what the grammar allowed
            self.fingerprint["decoding"].update(prompt=getattr(backend, "prompt", None),
                                                task=getattr(backend, "task", None),
                                                allow_text=getattr(backend, "allow_text", None),
                                                engine=getattr(backend, "engine_name", "transformers"),
                                                jump_forward=getattr(backend, "jump_forward", None),
                                                copy_rules=getattr(backend, "copy_rules", None) or None,
                                                call_rules=list(getattr(backend, "call_rules", ())) or None,
                                                weights=getattr(backend, "weights_type", None))

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        """The agent's request body as the candidate gets it: greedy, seeded, capped."""
        out = {k: v for k, v in body.items() if k not in _DROPPED}
        asked = body.get("max_completion_tokens") or body.get("max_tokens")
        out["max_tokens"] = min(int(asked), self.swap.max_tokens) if isinstance(asked, int) else self.swap.max_tokens
        out["temperature"] = 0
        out["seed"] = self.swap.seed
        out["model"] = self.spec.settings.model or self.name
        if self.upstream is not None and self.swap.min_confidence is not None:
            out["logprobs"] = True  # scored when the server returns them (confidence.py)
        if self.upstream is not None and self.swap.guided:
            rf = out.get("response_format")
            schema = output_schema(Request.model_construct(messages=[], response_format=rf)) \
                if isinstance(rf, dict) else None
            if schema is not None:
                out["guided_json" if self.swap.guided == "vllm" else "json_schema"] = schema
        return out

    async def generate(self, prepared: dict[str, Any], *, tag: str | None = None, background: bool = False) -> Answer:
        """The answer to a prepared body. `tag` (the call id) names it among its batch peers;
        `background` (a shadow run) lets served requests go first."""
        if self.upstream is not None:
            return await self._remote(prepared)
        request = Request.model_validate(prepared)
        if self.queue is not None:
            generation, batch = await self.queue.generate_one(request, tag, background=background)
            return Answer(generation, batch, local_confidence(generation.token_logprobs))
        assert self.backend is not None
        generation = (await self.backend.generate([request]))[0]
        return Answer(generation, confidence=local_confidence(generation.token_logprobs))

    async def _remote(self, body: dict[str, Any]) -> Answer:
        """One call to the candidate server through the pooled client; failures become `error`."""
        assert self.upstream is not None and self.pool is not None
        started = time.perf_counter()
        try:
            resp = await self.pool.send(self.upstream, "/chat/completions", orjson.dumps(body), {}, None)
            status = resp.status
            raw = await self.pool.read(self.upstream, resp)
        except UpstreamFault as fault:
            return Answer(Generation(None, (time.perf_counter() - started) * 1000, error=fault.message))
        ms = (time.perf_counter() - started) * 1000
        if status >= 400:
            return Answer(Generation(None, ms, error=f"HTTP {status}: {raw[:200].decode('utf-8', 'replace')}"))
        try:
            data = orjson.loads(raw)
            response, usage, _ = parse_completion(data)
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
            return Answer(Generation(None, ms, error=f"malformed response body ({type(exc).__name__})"))
        return Answer(Generation(response, ms, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens),
                      confidence=remote_confidence(data["choices"][0].get("logprobs")))

    async def aclose(self) -> None:
        if self.queue is not None:
            await self.queue.aclose()
        elif self.backend is not None:
            await self.backend.aclose()


def open_candidate(spec: ModelSpec, swap: SwapSettings, *, pool: UpstreamPool | None = None,
                   batching: bool = True, contract: Any = None, prompt: str | None = None,
                   engine: str | None = None) -> Candidate:
    """Build (and for a local model, load: seconds) the candidate. Blocking: call off the loop.
    A remote candidate is called through `pool` (started by its owner). A local one is prompted
    in `prompt` (default: what its manifest says it was trained on) for the task of `contract`,
    whose no-call answers, if it has seen any, let the grammar answer in text too; it runs on
    `engine` (default: the model's `engine` setting, see `models.spec.choose_engine`; the engine
    that answered is in the fingerprint, so replay runs the same one)."""
    if spec.kind == "openai":
        if pool is None:
            raise ConfigError(f"candidate '{spec.name}' is a server; it needs the gateway's upstream pool")
        return Candidate(spec, swap, pool=pool)
    if not spec.is_local:
        raise ConfigError(f"candidate '{spec.name}' is kind '{spec.kind}'; a candidate is served "
                          "from an openai, hf or gguf model")
    backend = open_backend(spec, constrained=True, batch_size=swap.batch_size,
                           max_new_tokens=swap.max_tokens, contract=contract, prompt=prompt, engine=engine)
    queue = BatchQueue(backend, max_batch=swap.batch_size, max_wait_ms=swap.batch_wait_ms) if batching else None
    return Candidate(spec, swap, backend=backend, queue=queue)


class CandidatePool:
    """Candidates by name, opened on first use in a thread; `get` never blocks the loop."""

    def __init__(self, store: Store, settings: Settings, pool: UpstreamPool):
        self.store = store
        self.settings = settings
        self.pool = pool
        self._ready: dict[str, Candidate] = {}
        self._loading: dict[str, asyncio.Task[None]] = {}
        self._failed: dict[str, tuple[float, str]] = {}

    def get(self, name: str, swap: SwapSettings, task: str | None = None) -> Candidate | str:
        """The candidate, or why there is none yet ("loading", or the load error). A local
        candidate is loaded for the contract of `task` (the first task that asks for it)."""
        if name in self._ready:
            return self._ready[name]
        failed = self._failed.get(name)
        if failed and time.monotonic() - failed[0] < RETRY_LOAD_S:
            return failed[1]
        if name not in self._loading:
            self._loading[name] = asyncio.get_running_loop().create_task(self._load(name, swap, task))
        return "loading"

    async def ensure(self, name: str, swap: SwapSettings, task: str | None = None) -> Candidate | str:
        """Load now and wait (startup, the demo): the candidate or the load error."""
        got = self.get(name, swap, task)
        if got == "loading":
            await self._loading[name]
            got = self.get(name, swap, task)
        return got

    async def _load(self, name: str, swap: SwapSettings, task: str | None) -> None:
        try:
            spec = await asyncio.to_thread(candidate_spec, self.store, self.settings, name)
            contract = None
            if spec.is_local and task:
                from fledgling.contracts import load_contract

                contract = await asyncio.to_thread(load_contract, self.store, task)
            self._ready[name] = await asyncio.to_thread(open_candidate, spec, swap, pool=self.pool,
                                                        contract=contract)
            self._failed.pop(name, None)
            log.info("candidate '%s' ready", name)
        except Exception as exc:  # a bad candidate must not take the gateway down: the LLM answers
            reason = f"candidate '{name}' cannot be loaded: {str(exc).splitlines()[0][:200]}"
            log.warning(reason)
            self._failed[name] = (time.monotonic(), reason)
        finally:
            self._loading.pop(name, None)

    def put(self, name: str, candidate: Candidate) -> None:
        """Serve a candidate opened elsewhere (the demo opens its own, with its prompt)."""
        self._ready[name] = candidate
        self._failed.pop(name, None)

    def names(self) -> list[str]:
        return list(self._ready)

    async def aclose(self) -> None:
        for task in list(self._loading.values()):
            task.cancel()
        for c in self._ready.values():
            await c.aclose()
        self._ready.clear()
