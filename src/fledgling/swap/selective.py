"""Selective serving: the candidate answers what it is sure of, the LLM the rest, and an audit
share of the candidate's answers is also asked of the LLM so agreement keeps being measured.

A rollout from a report (`fledgling rollout set T --mode swapped --from-report`) stores the
threshold the report chose on val and tested on test, with the confidence score it applies to
and the audit share (`swap/rollout.py`). Then, per request the candidate answered validly:

- the answer's score (`swap/confidence.score_of`) under the threshold, or no score at all (the
  threshold was proven on scored answers only), falls back to the LLM: `fallback: low_confidence`;
- otherwise the candidate's answer is served; for an `audit_percent` share of those calls
  (fixed per call id) the LLM is asked the same request off the response path, the two answers
  are compared with the ParityBench score, and the outcome goes into the call's metadata
  (`audit`), the live figures and the live gate's disagreement stream.

Without a stored threshold the task's `[tasks.X.swap] min_confidence` applies, as before, only
when its `fallback_on` names "low_confidence".
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from fledgling.calls import Response, cost_usd
from fledgling.capture.recording.exchange import parse_completion, usage_of
from fledgling.config import SwapSettings
from fledgling.contracts import Contract
from fledgling.evals.confidence import DEFAULT_SCORE
from fledgling.swap.confidence import score_of
from fledgling.swap.enforcer import agree
from fledgling.swap.figures import TaskFigures
from fledgling.swap.live_rollout import TaskRollout
from fledgling.swap.turn import Turn


def floor_of(state: TaskRollout | None, swap: SwapSettings) -> tuple[float | None, str, bool]:
    """(threshold, score name, whether the rollout set it)."""
    if state is not None and state.min_confidence is not None:
        return state.min_confidence, state.confidence_score or DEFAULT_SCORE, True
    return swap.min_confidence, DEFAULT_SCORE, False


def low_confidence(state: TaskRollout | None, swap: SwapSettings, fallback_on: Sequence[str],
                   token_logprobs: Sequence[float] | None,
                   answer_score: float | None) -> tuple[float | None, str | None]:
    """(the answer's score, why it falls back to the LLM or None)."""
    floor, name, from_rollout = floor_of(state, swap)
    if not from_rollout:
        if floor is None or answer_score is None or "low_confidence" not in fallback_on:
            return answer_score, None
        if answer_score < floor:
            return answer_score, f"confidence {answer_score:.3f} under the task's {floor:g}"
        return answer_score, None
    assert floor is not None
    score = score_of(token_logprobs, name, answer_score)
    if score is None:
        return None, f"no confidence score for this answer; the rollout's threshold ({name} >= {floor:.4g}) needs one"
    if score < floor:
        return score, f"{name} {score:.3f} under the rollout's {floor:.4g}"
    return score, None


def prepared(body: dict[str, Any], remote: bool, state: TaskRollout | None) -> dict[str, Any]:
    """A remote candidate's request asks for the token log-probabilities a rollout's threshold
    is checked on (a local model always has them)."""
    if remote and state is not None and state.min_confidence is not None and not body.get("logprobs"):
        return {**body, "logprobs": True}
    return body


def audited(call_id: str, percent: float | None) -> bool:
    """Is this call in the audit share? Fixed per call id, so a replay audits the same calls."""
    if not percent or percent <= 0:
        return False
    bucket = int.from_bytes(hashlib.sha256(b"audit:" + call_id.encode()).digest()[:8], "big") % 10_000
    return bucket < percent * 100


class LlmAnswer(Protocol):
    @property
    def ok(self) -> bool: ...

    answer: dict[str, Any] | None
    error: str | None


async def _never() -> dict[str, Any]:
    await asyncio.Event().wait()  # the audit's own request: no client to leave
    raise AssertionError("unreachable")


async def _discard(message: dict[str, Any]) -> None:
    return None


async def audit(turn: Turn, served: Response, ask: Callable[[Turn], Awaitable[LlmAnswer]],
                contract_of: Callable[[str, dict[str, Any]], Awaitable[Contract]],
                figures: TaskFigures) -> dict[str, Any]:
    """Ask the LLM what the candidate answered, compare; the record for the call's metadata."""
    detached = replace(turn, receive=_never, client_send=_discard)
    t0 = time.perf_counter()
    figures.audited += 1
    outcome = await ask(detached)
    ms = (time.perf_counter() - t0) * 1000
    if not outcome.ok or outcome.answer is None:
        figures.audit_failed += 1
        return {"agree": None, "latency_ms": round(ms, 3), "failure": outcome.error or "no answer"}
    try:
        llm = parse_completion(outcome.answer)[0]
    except ValueError as exc:
        figures.audit_failed += 1
        return {"agree": None, "latency_ms": round(ms, 3), "failure": f"unreadable LLM answer: {exc}"}
    contract = await contract_of(turn.route.task, turn.request)
    agreed = agree(served, llm, contract)
    figures.audit_agreed += agreed
    upstream = turn.route.upstream
    cost = cost_usd(usage_of(outcome.answer.get("usage")), upstream.price_in, upstream.price_out)
    if cost is not None:
        figures.audit_cost_usd += cost
        figures.audit_priced += 1
    return {"agree": agreed, "latency_ms": round(ms, 3), "response": llm.message()}
