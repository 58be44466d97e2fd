"""`fledgling rollout calibrate`: the confidence threshold at which a task's candidate reaches a
target accuracy, found by running it over a curated split exactly as the gateway would; and, on
the same answers, the threshold of each confidence score at which the covered answers are
non-inferior to the LLM's recorded answers on the same items (`evals/selective.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fledgling.calls import Request
from fledgling.config import Settings, SwapSettings
from fledgling.errors import InputError
from fledgling.evals.confidence import DEFAULT_SCORE, PREFIX, all_scores
from fledgling.evals.gates import COVERAGE, selection_rule
from fledgling.evals.runs import load_items, task_contract
from fledgling.evals.selective import CoveragePoint, SelectiveItem, choose_threshold
from fledgling.store import Store
from fledgling.swap import rollout
from fledgling.swap.candidate import Answer, candidate_spec, open_candidate
from fledgling.swap.confidence import Calibration, calibrate, local_confidence
from fledgling.swap.enforcer import Enforcer, agree
from fledgling.transport.upstream import UpstreamPool


@dataclass(frozen=True)
class TaskCalibration:
    task: str
    candidate: str
    split: str
    calibration: Calibration
    scored: int  # valid answers with a score
    unscored: int  # answers without a score (a server that returns no logprobs)
    failed: int  # errors and contract violations: the enforcer falls back on them before any score
    parity: dict[str, CoveragePoint | None] = field(default_factory=dict)  # per score: largest coverage
    delta: float = 0.05  # the margin of `parity`

    @property
    def best_score(self) -> str | None:
        """The score giving the most coverage at parity (the mean log-probability on a tie)."""
        ok = [(p.coverage, name == DEFAULT_SCORE, name) for name, p in self.parity.items() if p is not None]
        return max(ok)[2] if ok else None


def calibrate_task(store: Store, settings: Settings, task: str, target_accuracy: float, *, split: str = "val",
                   limit: int | None = None, progress: Callable[[int], None] | None = None,
                   delta: float | None = None) -> TaskCalibration:
    """Run the task's candidate over a curated split as the gateway would (same preparation,
    same grammar) and calibrate the threshold on its answers' agreement with the references."""
    name = rollout.candidate_of(store, settings, task)
    if not name:
        raise InputError(f"task '{task}' has no candidate: `fledgling models select MODEL --task {task}` "
                         f"or set [tasks.{task}] candidate")
    version, contract_version, items = load_items(store, task, split, limit=limit)
    contract = task_contract(store, task, contract_version, items)
    declared = settings.tasks[task].swap if task in settings.tasks else SwapSettings()
    swap = declared.model_copy(update={"min_confidence": -1e9})  # asks a server for its logprobs
    pool = UpstreamPool()
    candidate = open_candidate(candidate_spec(store, settings, name), swap, pool=pool, batching=False)
    bodies = [candidate.prepare(i.call.request.model_dump(mode="json", exclude_none=True)) for i in items]

    async def run() -> list[Answer]:
        await pool.start()
        out: list[Answer] = []
        try:
            step = swap.batch_size
            for start in range(0, len(bodies), step):
                part = bodies[start:start + step]
                if candidate.backend is not None:
                    gens = await candidate.backend.generate([Request.model_validate(b) for b in part])
                    out.extend(Answer(g, confidence=local_confidence(g.token_logprobs)) for g in gens)
                else:
                    out.extend(await asyncio.gather(*(candidate.generate(b) for b in part)))
                if progress is not None:
                    progress(len(part))
        finally:
            await candidate.aclose()
            await pool.close()
        return out

    answers = asyncio.run(run())
    scored: list[tuple[float, bool]] = []
    rows: list[tuple[dict[str, float], bool, bool, bool]] = []
    unscored = failed = 0
    for item, body, answer in zip(items, bodies, answers, strict=True):
        response = answer.generation.response
        llm_ok = item.call.response is not None and agree(item.call.response, item.reference, contract)
        if response is None or Enforcer.check(response, contract, body):
            failed += 1
            rows.append(({}, False, llm_ok, False))
            continue
        ok = agree(response, item.reference, contract)
        scores = {k.removeprefix(PREFIX): v for k, v in all_scores(answer.generation.token_logprobs).items()}
        if answer.confidence is not None:
            scores.setdefault(DEFAULT_SCORE, answer.confidence)  # a remote server's mean log-probability
        rows.append((scores, ok, llm_ok, True))
        if answer.confidence is None:
            unscored += 1
        else:
            scored.append((answer.confidence, ok))
    metric_delta = delta if delta is not None else selection_rule(
        {k: g for k, g in (settings.tasks[task].gates if task in settings.tasks else {}).items()
         if k != COVERAGE}, contract.kind if contract.kind != "text" else "structured")[1]
    return TaskCalibration(task, name, f"{split} v{version}", calibrate(scored, target_accuracy),
                           len(scored), unscored, failed, calibrate_parity(rows, metric_delta), metric_delta)


def calibrate_parity(rows: Sequence[tuple[dict[str, float], bool, bool, bool]], delta: float,
                     min_coverage: float = 0.0) -> dict[str, CoveragePoint | None]:
    """Per confidence score, the largest coverage whose covered answers are non-inferior to the
    LLM's at delta. `rows`: (scores by name, candidate right, LLM right, answer valid) per item."""
    names = sorted({n for scores, *_ in rows for n in scores})
    return {name: choose_threshold([SelectiveItem(scores.get(name), ok, llm_ok, valid)
                                    for scores, ok, llm_ok, valid in rows], delta, min_coverage)
            for name in names}
