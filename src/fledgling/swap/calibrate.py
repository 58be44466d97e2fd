"""`fledgling rollout calibrate`: the confidence threshold at which a task's candidate reaches a
target accuracy, found by running it over a curated split exactly as the gateway would."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from fledgling.calls import Request
from fledgling.config import Settings, SwapSettings
from fledgling.errors import InputError
from fledgling.evals.runs import load_items, task_contract
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


def calibrate_task(store: Store, settings: Settings, task: str, target_accuracy: float, *, split: str = "val",
                   limit: int | None = None, progress: Callable[[int], None] | None = None) -> TaskCalibration:
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
    unscored = failed = 0
    for item, body, answer in zip(items, bodies, answers, strict=True):
        response = answer.generation.response
        if response is None or Enforcer.check(response, contract, body):
            failed += 1
        elif answer.confidence is None:
            unscored += 1
        else:
            scored.append((answer.confidence, agree(response, item.reference, contract)))
    return TaskCalibration(task, name, f"{split} v{version}", calibrate(scored, target_accuracy),
                           len(scored), unscored, failed)
