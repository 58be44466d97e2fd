"""Serving the candidate (the SLM) inside the gateway: which model, how it decodes, and how to
reach it.

A candidate is a `[models.NAME]` entry of fledgling.toml or a model catalog entry (a trained
adapter registers itself there). Local ones (`hf` with its adapter, `gguf`) load once, in a
thread, decode with the grammar of the request's contract (constrained decoding: valid by
construction) and are shared across concurrent requests by a `BatchQueue`. Remote ones are any
OpenAI-compatible server; with `guided` set, a structured request also carries the server's
guided-JSON parameter (vLLM `guided_json`, llama.cpp `json_schema`).

Every candidate decodes greedily with a fixed seed (temperature 0), so its answer is a function
of the request: `fingerprint` (model, adapter hash, decoding settings, seed) goes into each
call's record, and `fledgling replay CALL_ID` can reproduce the answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

from fledgling.calls import Request
from fledgling.config import Settings, SwapSettings
from fledgling.errors import ConfigError
from fledgling.gateway.batching import BatchQueue
from fledgling.models.generation import Backend, Generation
from fledgling.models.prompting import output_schema
from fledgling.models.spec import ModelSpec, open_backend
from fledgling.store import Store

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


class Candidate:
    def __init__(self, spec: ModelSpec, backend: Backend, swap: SwapSettings, *,
                 queue: BatchQueue | None = None):
        self.spec = spec
        self.name = spec.name
        self.backend = backend
        self.queue = queue
        self.swap = swap
        ms = spec.settings
        self.price_in, self.price_out = ms.usd_per_mtok_in, ms.usd_per_mtok_out
        self.fingerprint: dict[str, Any] = {
            "model": spec.name, "kind": ms.kind, "base": ms.base or ms.path or ms.base_url,
            "served_model": ms.model, "adapter": ms.adapter, "adapter_sha256": adapter_sha256(ms.adapter),
            "decoding": {"greedy": True, "temperature": 0, "max_tokens": swap.max_tokens,
                         "constrained": spec.is_local, "guided": None if spec.is_local else swap.guided},
            "seed": swap.seed}

    def prepare(self, body: dict[str, Any]) -> Request:
        """The agent's request as the candidate gets it: greedy, seeded, capped."""
        out = {k: v for k, v in body.items() if k not in _DROPPED}
        asked = body.get("max_completion_tokens") or body.get("max_tokens")
        out["max_tokens"] = min(int(asked), self.swap.max_tokens) if isinstance(asked, int) else self.swap.max_tokens
        out["temperature"] = 0
        out["seed"] = self.swap.seed
        out["model"] = self.spec.settings.model or self.name
        request = Request.model_validate(out)
        if not self.spec.is_local and self.swap.guided:
            schema = output_schema(request)
            if schema is not None:
                key = "guided_json" if self.swap.guided == "vllm" else "json_schema"
                request = Request.model_validate({**out, key: schema})
        return request

    async def generate(self, request: Request) -> Generation:
        if self.queue is not None:
            return await self.queue.generate_one(request)
        return (await self.backend.generate([request]))[0]

    async def aclose(self) -> None:
        if self.queue is not None:
            await self.queue.aclose()
        else:
            await self.backend.aclose()


def open_candidate(spec: ModelSpec, swap: SwapSettings, *, batching: bool = True) -> Candidate:
    """Build (and for a local model, load: seconds) the candidate. Blocking: call off the loop."""
    if spec.kind == "openai":
        from fledgling.models.openai_compatible import OpenAICompatibleBackend

        ms = spec.settings
        backend: Backend = OpenAICompatibleBackend(
            spec.name, ms.base_url or "", model=ms.model, api_key=ms.api_key(),
            timeout_s=min(ms.timeout_s, swap.budget_ms / 1000), concurrency=256, retries=0)
        return Candidate(spec, backend, swap)
    if not spec.is_local:
        raise ConfigError(f"candidate '{spec.name}' is kind '{spec.kind}'; a candidate is served "
                          "from an openai, hf or gguf model")
    backend = open_backend(spec, constrained=True, batch_size=swap.batch_size,
                           max_new_tokens=swap.max_tokens)
    queue = BatchQueue(backend, max_batch=swap.batch_size, max_wait_ms=swap.batch_wait_ms) if batching else None
    return Candidate(spec, backend, swap, queue=queue)


class CandidatePool:
    """Candidates by name, opened on first use in a thread; `get` never blocks the loop."""

    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.settings = settings
        self._ready: dict[str, Candidate] = {}
        self._loading: dict[str, asyncio.Task[None]] = {}
        self._failed: dict[str, tuple[float, str]] = {}

    def get(self, name: str, swap: SwapSettings) -> Candidate | str:
        """The candidate, or why there is none yet ("loading", or the load error)."""
        if name in self._ready:
            return self._ready[name]
        failed = self._failed.get(name)
        if failed and time.monotonic() - failed[0] < RETRY_LOAD_S:
            return failed[1]
        if name not in self._loading:
            self._loading[name] = asyncio.get_running_loop().create_task(self._load(name, swap))
        return "loading"

    async def ensure(self, name: str, swap: SwapSettings) -> Candidate | str:
        """Load now and wait (startup, the demo): the candidate or the load error."""
        got = self.get(name, swap)
        if got == "loading":
            await self._loading[name]
            got = self.get(name, swap)
        return got

    async def _load(self, name: str, swap: SwapSettings) -> None:
        try:
            spec = await asyncio.to_thread(candidate_spec, self.store, self.settings, name)
            self._ready[name] = await asyncio.to_thread(open_candidate, spec, swap)
            self._failed.pop(name, None)
            log.info("candidate '%s' ready", name)
        except Exception as exc:  # a bad candidate must not take the gateway down: the LLM answers
            reason = f"candidate '{name}' cannot be loaded: {str(exc).splitlines()[0][:200]}"
            log.warning(reason)
            self._failed[name] = (time.monotonic(), reason)
        finally:
            self._loading.pop(name, None)

    def names(self) -> list[str]:
        return list(self._ready)

    async def aclose(self) -> None:
        for task in list(self._loading.values()):
            task.cancel()
        for c in self._ready.values():
            await c.aclose()
        self._ready.clear()
