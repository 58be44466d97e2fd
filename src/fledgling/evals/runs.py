"""Eval runs: one model on one dataset split, every item's prediction and scores, stored.

Items are the calls behind the lines of a curated split (`curate.registry.call_ids`), read
back from the store unredacted. Each item's reference label is, in order of preference, the
ground truth in `metadata.ground_truth`, the corrected answer in feedback, or the recorded
response as a *silver* label; the run records which, and the report says so.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from fledgling.calls import Call, Response, Usage, cost_usd
from fledgling.contracts import Contract, infer_contract, load_contract
from fledgling.errors import InputError
from fledgling.evals.confidence import all_scores
from fledgling.evals.scoring import METRICS, ItemScore, score_item
from fledgling.evals.stats import latency_summary, mean_interval
from fledgling.models.generation import Generation, ModelBackend
from fledgling.models.spec import ModelSpec
from fledgling.models.specialist import SPECIALIST_PROMPTS
from fledgling.store import Store

LabelSource = Literal["ground_truth", "corrected", "recorded"]


@dataclass
class EvalItem:
    call: Call
    reference: Response
    label_source: LabelSource


@dataclass
class ItemResult:
    call_id: str
    label_source: str
    prediction: Response | None
    error: str | None
    parse_failed: bool
    latency_ms: float
    input_tokens: int
    output_tokens: int
    scores: dict[str, float | None]


@dataclass
class EvalRun:
    id: str
    task: str
    split: str
    dataset_version: int | None
    contract_version: str | None
    model: str
    model_kind: str
    constrained: bool
    lenient: bool
    created_at: datetime
    label_sources: dict[str, int]
    summary: dict[str, Any]
    items: list[ItemResult] = field(default_factory=list)

    @property
    def n_items(self) -> int:
        return len(self.items) if self.items else int(self.summary.get("n", 0))

    @property
    def prompt(self) -> str | None:
        """The prompt format a local model was asked in ("chat", "compact" or "lean"), None for others."""
        return self.summary.get("prompt")

    @property
    def label(self) -> str:
        """How reports name this run: the model, its prompt format when a specialist one, and
        whether decoding was constrained."""
        notes = ([f"{self.prompt} prompt"] if self.prompt in SPECIALIST_PROMPTS else []) + \
            (["constrained"] if self.constrained else [])
        return self.model + (f" ({', '.join(notes)})" if notes else "")


def reference_of(call: Call) -> tuple[Response, LabelSource] | None:
    truth = call.metadata.get("ground_truth") if isinstance(call.metadata, dict) else None
    if isinstance(truth, dict):
        return Response.from_message(truth, "tool_calls" if truth.get("tool_calls") else "stop"), "ground_truth"
    if call.feedback is not None and call.feedback.corrected is not None:
        return call.feedback.corrected, "corrected"
    if call.response is not None:
        return call.response, "recorded"
    return None


def load_items(store: Store, task: str, split: str = "test", version: int | None = None,
               limit: int | None = None) -> tuple[int, str | None, list[EvalItem]]:
    """(dataset version, its contract version, the items) of a curated split."""
    from fledgling.curate.registry import call_ids, latest_version, list_datasets

    version = version or latest_version(store, task)
    if not version:
        raise InputError(f"task '{task}' has no curated dataset; run `fledgling curate --task {task}` first")
    rows = [d for d in list_datasets(store, task) if d["version"] == version]
    if not rows:
        raise InputError(f"task '{task}' has no dataset version {version}; see `fledgling curate list`")
    ids = call_ids(store, task, version, split)
    if not ids:
        raise InputError(f"split '{split}' of {task} v{version} is empty; choose train, val or test")
    items = []
    for call_id in ids[:limit] if limit else ids:
        call = store.get_call(call_id)
        ref = reference_of(call) if call else None
        if call is not None and ref is not None:
            items.append(EvalItem(call, ref[0], ref[1]))
    return version, rows[0].get("contract_version"), items


def task_contract(store: Store, task: str, version: str | None, items: list[EvalItem]) -> Contract:
    """The contract the dataset was curated under, else the newest, else inferred from the items."""
    return (load_contract(store, task, version) if version else None) or load_contract(store, task) \
        or infer_contract((i.call for i in items), task)


async def evaluate(items: list[EvalItem], backend: ModelBackend, contract: Contract, *,
                   lenient: bool = False, chunk: int = 16,
                   progress: Callable[[int], None] | None = None) -> list[ItemResult]:
    """Generate and score every item; `progress(n)` is told after each chunk of n items."""
    results: list[ItemResult] = []
    for start in range(0, len(items), chunk):
        part = items[start:start + chunk]
        gens = await backend.generate([i.call.request for i in part])
        for item, gen in zip(part, gens, strict=True):
            results.append(_result(item, gen, contract, lenient))
        if progress:
            progress(len(part))
    return results


DEFAULT_LATENCY_ITEMS = 8  # items re-run one at a time for the latency figures of a batched local model


async def batch1_latencies(items: list[EvalItem], backend: ModelBackend, n: int) -> list[float]:
    """Time to answer of `n` items spread over the split, each asked alone (batch 1): what a
    caller waits for one request, which the in-batch times of a batched eval are not."""
    if n <= 0 or not items:
        return []
    step = max(1, len(items) // n)
    out = []
    for item in items[::step][:n]:
        gen = (await backend.generate([item.call.request]))[0]
        if gen.error is None:
            out.append(gen.latency_ms)
    return out


def latency_basis(spec: ModelSpec, backend: ModelBackend, batch1: list[float]) -> dict[str, Any]:
    """What a run's latency figures measure: `recorded` (what the calls took when they were made),
    `batch-1` (each item answered alone), `in-batch` (each item's own completion time inside a
    batch of `batch_size`, from the batch's start) or `per-request` (each request's round trip)."""
    batch = int(getattr(backend, "batch_size", 1) or 1)
    if spec.kind == "recorded":
        return {"kind": "recorded"}
    if batch1:
        return {"kind": "batch-1", "n": len(batch1), "batch_size": 1}
    if spec.is_local:
        return {"kind": "batch-1", "batch_size": 1} if batch == 1 else {"kind": "in-batch", "batch_size": batch}
    return {"kind": "per-request"}


def describe_latency(basis: dict[str, Any] | None) -> str:
    """One line saying what the latency figures measure, for reports."""
    kind = (basis or {}).get("kind")
    if kind == "recorded":
        return "as recorded when the calls were made"
    if kind == "batch-1":
        n = basis.get("n") if basis else None
        return "each item answered alone (batch 1)" + (f", {n} items re-run for the figures" if n else "")
    if kind == "in-batch":
        return f"each item's own completion time inside a batch of {basis.get('batch_size')} (not batch 1)" \
            if basis else ""
    if kind == "per-request":
        return "each request's own round trip"
    return "basis not recorded (a run from before the basis was kept)"


def _result(item: EvalItem, gen: Generation, contract: Contract, lenient: bool) -> ItemResult:
    score: ItemScore = score_item(gen.response, item.reference, contract, lenient=lenient)
    return ItemResult(item.call.id, item.label_source, gen.response, gen.error, gen.parse_failed,
                      gen.latency_ms, gen.input_tokens, gen.output_tokens,
                      {**score.as_dict(), "success": score.success, **all_scores(gen.token_logprobs)})


def summarise(results: list[ItemResult], spec: ModelSpec, recorded_cost: float | None = None, *,
              basis: dict[str, Any] | None = None, batch1: list[float] | None = None,
              device: str | None = None) -> dict[str, Any]:
    """Means with 95% intervals per metric, per-tool success, latency, tokens and cost. With
    `batch1` (batch-1 times of some items) the latency figures are those, and the items' in-batch
    times stay beside them as `latency_in_batch_ms`."""
    metrics = {}
    for name in (*METRICS, "success"):
        values = [v for r in results if (v := r.scores.get(name)) is not None]
        if values:
            est = mean_interval(values)
            metrics[name] = {"mean": est.mean, "low": max(0.0, est.low), "high": min(1.0, est.high),
                             "n": est.n}  # every per-item score lies in [0, 1]
    latencies = [r.latency_ms for r in results if r.error is None]
    timing: dict[str, Any] = {"latency_ms": latency_summary(latencies)}
    if batch1:
        timing = {"latency_ms": latency_summary(batch1), "latency_samples_ms": sorted(batch1),
                  "latency_in_batch_ms": latency_summary(latencies)}
    tin = sum(r.input_tokens for r in results)
    tout = sum(r.output_tokens for r in results)
    n = len(results)
    serving_ms = timing["latency_ms"].get("mean")
    per_call, cost_basis = call_cost(spec, device, serving_ms, (basis or {}).get("kind"))
    if spec.kind == "recorded":
        cost = recorded_cost
        cost_basis = {"kind": "recorded"} if cost is not None else \
            {"kind": "unpriced", "reason": "the recorded calls carry no cost"}
    elif per_call is not None:
        cost = per_call * n
    else:
        cost = cost_usd_of(tin, tout, spec)
        if cost is not None:
            cost_basis = {"kind": "tokens", "usd_per_mtok_in": spec.settings.usd_per_mtok_in,
                          "usd_per_mtok_out": spec.settings.usd_per_mtok_out}
    return {
        "n": n, "metrics": metrics,
        **timing, "latency_basis": basis or {"kind": "recorded" if spec.kind == "recorded" else "per-request"},
        "errors": sum(1 for r in results if r.error), "parse_failures": sum(1 for r in results if r.parse_failed),
        "input_tokens": tin, "output_tokens": tout,
        "cost_per_1k_usd": cost * 1000 / n if cost is not None and n else None,
        "cost_basis": cost_basis,
    }


def call_cost(spec: ModelSpec, device: str | None, serving_ms: float | None,
              latency_kind: str | None) -> tuple[float | None, dict[str, Any]]:
    """(USD per call, how it was priced) of a local model: its machine's hourly price
    (`usd_per_cpu_hour` / `usd_per_gpu_hour`) times its mean measured serving time, an estimate
    that assumes the machine serves one call at a time. (None, unpriced and why) otherwise."""
    if not spec.is_local:
        return None, {"kind": "unpriced", "reason": f"no token price for '{spec.name}'"}
    gpu = device is not None and device != "cpu"
    key = "usd_per_gpu_hour" if gpu else "usd_per_cpu_hour"
    price = getattr(spec.settings, key)
    if price is None:
        return None, {"kind": "unpriced", "reason": f"no {key} for '{spec.name}' in fledgling.toml"}
    if serving_ms is None:
        return None, {"kind": "unpriced", "reason": "no serving time was measured"}
    return price * serving_ms / 3_600_000, {
        "kind": "compute", "estimate": True, "device": "gpu" if gpu else "cpu", "usd_per_hour": price,
        "serving_ms": serving_ms, "latency_basis": latency_kind}


def describe_cost(basis: dict[str, Any] | None) -> str:
    """One line saying how a run's cost was priced, for reports."""
    kind = (basis or {}).get("kind")
    if kind == "compute" and basis:
        return (f"estimate: ${basis['usd_per_hour']:g} per {basis['device'].upper()}-hour x "
                f"{basis['serving_ms']:,.0f} ms measured serving time a call ({basis.get('latency_basis')})")
    if kind == "tokens" and basis:
        return (f"list price: ${basis.get('usd_per_mtok_in') or 0:g} / ${basis.get('usd_per_mtok_out') or 0:g} "
                "per million input / output tokens")
    if kind == "recorded":
        return "as recorded when the calls were made"
    if kind == "unpriced" and basis:
        return f"unpriced: {basis.get('reason')}"
    return "unpriced"


def cost_usd_of(input_tokens: int, output_tokens: int, spec: ModelSpec) -> float | None:
    ms = spec.settings
    return cost_usd(Usage(input_tokens=input_tokens, output_tokens=output_tokens),
                    ms.usd_per_mtok_in, ms.usd_per_mtok_out)


def run_eval(store: Store, task: str, spec: ModelSpec, backend: ModelBackend, items: list[EvalItem],
             contract: Contract, *, split: str, dataset_version: int | None, constrained: bool,
             lenient: bool = False, progress: Callable[[int], None] | None = None,
             chunk: int = 16, latency_items: int | None = None) -> EvalRun:
    """Evaluate and store the run (all items in one transaction: a run is there whole or not at all).

    A local model answering in batches also answers `latency_items` items alone (default
    `DEFAULT_LATENCY_ITEMS`; 0: none, and its figures are in-batch times, said so)."""
    results = asyncio.run(evaluate(items, backend, contract, lenient=lenient, progress=progress, chunk=chunk))
    batched = spec.is_local and int(getattr(backend, "batch_size", 1) or 1) > 1
    n_solo = (DEFAULT_LATENCY_ITEMS if latency_items is None else latency_items) if batched else 0
    batch1 = asyncio.run(batch1_latencies(items, backend, n_solo))
    summary = summarise(results, spec, _recorded_cost(items), basis=latency_basis(spec, backend, batch1),
                        batch1=batch1, device=getattr(backend, "device", None))
    if spec.is_local:
        summary["prompt"] = getattr(backend, "prompt", None)
    run = EvalRun(
        id=f"run_{uuid.uuid4().hex[:16]}", task=task, split=split, dataset_version=dataset_version,
        contract_version=contract.version, model=spec.name, model_kind=spec.kind,
        constrained=constrained and spec.is_local, lenient=lenient, created_at=datetime.now(UTC),
        label_sources=dict(Counter(r.label_source for r in results)),
        summary=summary, items=results)
    save_run(store, run)
    return run


def evaluate_model(store: Store, task: str, spec: ModelSpec, *, split: str = "test",
                   dataset_version: int | None = None, limit: int | None = None, constrained: bool = False,
                   prompt: str | None = None, lenient: bool = False, batch_size: int = 16,
                   max_new_tokens: int = 256, backend: ModelBackend | None = None,
                   on_items: Callable[[int], None] | None = None,
                   progress: Callable[[int], None] | None = None, latency_items: int | None = None) -> EvalRun:
    """Evaluate one model on (the first `limit` items of) a task's curated split and store the run.

    The whole step in one call, for the CLI and for pipelines (the demo, after training). A
    local `backend` already loaded may be passed to skip loading it again; it is used as given
    (its prompt format and constraint setting). `on_items(n)` is told how many items there are
    before the work starts; `progress(n)` after each batch; `latency_items` as in `run_eval`.
    """
    version, contract_version, items = load_items(store, task, split, dataset_version, limit)
    contract = task_contract(store, task, contract_version, items)
    if on_items:
        on_items(len(items))
    owned = backend is None
    if backend is None:
        from fledgling.models.spec import open_backend

        backend = open_backend(spec, constrained=constrained, recorded_calls=(i.call for i in items),
                               batch_size=batch_size, max_new_tokens=max_new_tokens, prompt=prompt,
                               contract=contract)
    try:
        return run_eval(store, task, spec, backend, items, contract, split=split, dataset_version=version,
                        constrained=bool(getattr(backend, "constrained", constrained)), lenient=lenient,
                        progress=progress, chunk=getattr(backend, "batch_size", 16),
                        latency_items=latency_items)
    finally:
        if owned:
            asyncio.run(backend.aclose())


def _recorded_cost(items: list[EvalItem]) -> float | None:
    """What the reference calls cost when they were made (their recorded cost_usd)."""
    costs = [i.call.cost_usd for i in items if i.call.cost_usd is not None]
    return sum(costs) if costs else None


def save_run(store: Store, run: EvalRun) -> None:
    store.eval_runs.save(
        {"id": run.id, "task": run.task, "split": run.split, "dataset_version": run.dataset_version,
         "contract_version": run.contract_version, "model": run.model, "model_kind": run.model_kind,
         "constrained": run.constrained, "lenient": run.lenient, "created_at": run.created_at,
         "label_sources": run.label_sources, "summary": run.summary},
        [{"call_id": r.call_id, "label_source": r.label_source,
          "prediction": r.prediction.model_dump(mode="json", exclude_none=True) if r.prediction else None,
          "error": r.error, "parse_failed": r.parse_failed, "latency_ms": r.latency_ms,
          "input_tokens": r.input_tokens, "output_tokens": r.output_tokens, "scores": r.scores}
         for r in run.items])


def list_runs(store: Store, task: str, split: str | None = None) -> list[EvalRun]:
    """Runs of a task, newest first, without their items."""
    return [EvalRun(id=r["id"], task=r["task"], split=r["split"], dataset_version=r["dataset_version"],
                    contract_version=r["contract_version"], model=r["model"], model_kind=r["model_kind"],
                    constrained=r["constrained"], lenient=r["lenient"], created_at=r["created_at"],
                    label_sources=r["label_sources"], summary=r["summary"])
            for r in store.eval_runs.find(task, split)]


def load_run_items(store: Store, run: EvalRun) -> EvalRun:
    run.items = [ItemResult(r["call_id"], r["label_source"],
                            Response.model_validate(r["prediction"]) if r["prediction"] else None,
                            r["error"], r["parse_failed"], r["latency_ms"], r["input_tokens"],
                            r["output_tokens"], r["scores"]) for r in store.eval_runs.items(run.id)]
    return run
