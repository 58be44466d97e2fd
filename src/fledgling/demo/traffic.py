"""Synthetic agent traffic: the demo's `Call`s, deterministic by seed.

Conversations of the `support-agent` task and tickets of the `ticket-triage` task interleave over
the 14 days before a fixed end time. Each call carries the right answer in
`metadata.ground_truth` and the hosted model's answer (about 4% of them wrong, see `mistakes`) as
its response, with latency, tokens and cost as a real call to that model would have.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fledgling.calls import Call, Feedback, Request, Response, Usage, cost_usd, stable_id
from fledgling.demo import mistakes, pricing, support, triage
from fledgling.demo.scripted_call import ScriptedCall, compact

SOURCE = "demo"
TASKS = (support.TASK, triage.TASK)
SPAN = timedelta(days=14)
SUPPORT_SESSION_SHARE = 0.3  # of conversations; support sessions are longer, ~70% of calls
_EPOCH = datetime(2026, 11, 1, tzinfo=UTC)

_TOOLS_CHARS = len(compact(support.TOOLS))
_FORMAT_CHARS = len(compact(triage.RESPONSE_FORMAT))
_FEEDBACK_COMMENTS_BAD = ("wrong order", "that's not what I asked", "it cancelled the wrong thing",
                          "useless", "the refund amount is wrong", "priority should be higher",
                          "wrong category")
_FEEDBACK_COMMENTS_GOOD = ("thanks!", "quick and helpful", None, None)


def end_time(seed: int) -> datetime:
    """The fixed moment the demo traffic ends: depends on the seed only, never on the clock."""
    return _EPOCH + timedelta(minutes=(seed * 7919) % (14 * 24 * 60))


def generate_calls(seed: int = 0, n: int = 2000) -> Iterator[Call]:
    """`n` calls of realistic agent traffic; the same seed always yields the same calls."""
    rng = random.Random(seed)
    end = end_time(seed)
    start = end - SPAN
    emitted = 0
    conversation = 0
    while emitted < n:
        conversation += 1
        scenario: support.SupportSession | triage.TriageTicket
        if rng.random() < SUPPORT_SESSION_SHARE:
            task, scenario = support.TASK, support.SupportSession(rng)
        else:
            task, scenario = triage.TASK, triage.TriageTicket(rng)
        session = stable_id("demo-session", seed, n, conversation).replace("call_", "sess_")[:29]
        at = start + SPAN * (emitted / n) + timedelta(seconds=rng.uniform(0, 300))
        turn = 0
        for ex in scenario.exchanges():
            if ex.turn != turn:
                at += timedelta(seconds=rng.lognormvariate(math.log(20), 0.6))
                turn = ex.turn
            trace = f"trace_{session[5:21]}_{ex.turn}"
            while True:
                ans = mistakes.answer(rng, ex)
                call = _call(rng, seed, n, emitted, task, session, trace, at, ex, ans)
                yield call
                emitted += 1
                if emitted >= n:
                    return
                at += timedelta(milliseconds=call.latency_ms or 0) + timedelta(
                    milliseconds=rng.uniform(40, 900))
                if ans.mistake != "api_error":
                    break  # an upstream error is retried with the same request
            if ans.mistake is not None:
                break  # a wrong answer derails the rest of the conversation


def _call(rng: random.Random, seed: int, n: int, index: int, task: str, session: str, trace: str,
          at: datetime, ex: ScriptedCall, ans: mistakes.Answer) -> Call:
    in_price, out_price = pricing.PRICES[pricing.MODEL]
    request = _request(task, ex)
    usage = Usage(input_tokens=_input_tokens(task, ex.messages),
                  output_tokens=_output_tokens(ans.message) if ans.message else 0)
    response = Response.from_message(ans.message, ans.finish_reason) if ans.message else None
    metadata: dict[str, Any] = {"synthetic": True, "generator": "fledgling-demo", "seed": seed,
                                "intent": ex.intent, "ground_truth": ex.ground_truth,
                                "llm_error": ans.mistake, **ex.extra}
    return Call(
        id=stable_id("fledgling-demo", seed, n, index), task=task, trace_id=trace, session_id=session,
        source=SOURCE, created_at=at, provider=pricing.PROVIDER, model=pricing.MODEL,
        request=request, response=response, usage=usage,
        latency_ms=_latency(rng, usage, ans), cost_usd=_rounded(cost_usd(usage, in_price, out_price)),
        status="error" if ans.message is None else "ok", error=ans.error,
        feedback=_feedback(rng, ex, ans), metadata=metadata,
    )


def _rounded(usd: float | None) -> float | None:
    return round(usd, 8) if usd is not None else None


def _request(task: str, ex: ScriptedCall) -> Request:
    if task == support.TASK:
        # parallel_tool_calls is one of the request's extra (passed-through) fields
        return Request.model_validate({"messages": ex.messages, "tools": support.TOOLS, "tool_choice": "auto",
                                       "temperature": 0.2, "parallel_tool_calls": True})
    return Request(messages=ex.messages, response_format=triage.RESPONSE_FORMAT, temperature=0.0,
                   max_tokens=400, seed=7)


def _chars(message: dict[str, Any]) -> int:
    n = len(message.get("content") or "")
    for tc in message.get("tool_calls") or []:
        n += len(tc["function"]["name"]) + len(tc["function"]["arguments"]) + 12
    return n


def _input_tokens(task: str, messages: list[dict[str, Any]]) -> int:
    """About 4 characters a token, plus the per-message framing chat models add."""
    chars = sum(_chars(m) for m in messages) + (_TOOLS_CHARS if task == support.TASK else _FORMAT_CHARS)
    return math.ceil(chars / 4) + 4 * len(messages) + 3


def _output_tokens(message: dict[str, Any]) -> int:
    return max(1, math.ceil(_chars(message) / 4))


def _latency(rng: random.Random, usage: Usage, ans: mistakes.Answer) -> float:
    """Log-normal time to first token plus a per-token decode time, in milliseconds."""
    if ans.message is None:
        if ans.error and "timed out" in ans.error:
            return round(rng.uniform(30_000, 60_000), 1)
        return round(rng.lognormvariate(math.log(250), 0.8), 1)
    ttft = rng.lognormvariate(math.log(380 + usage.input_tokens * 0.04), 0.35)
    per_token = rng.lognormvariate(math.log(14), 0.2)
    return round(ttft + usage.output_tokens * per_token, 1)


def _feedback(rng: random.Random, ex: ScriptedCall, ans: mistakes.Answer) -> Feedback | None:
    """A few users rate answers; wrong answers draw more (and mostly negative) ratings."""
    wrong = ans.mistake is not None and ans.message is not None
    if ans.message is None or rng.random() >= (0.3 if wrong else 0.02):
        return None
    if rng.random() < (0.8 if wrong else 0.1):
        corrected = (Response.from_message(ex.ground_truth, "tool_calls" if ex.ground_truth.get("tool_calls")
                                           else "stop") if wrong and rng.random() < 0.7 else None)
        return Feedback(score=0.0, label="bad", comment=rng.choice(_FEEDBACK_COMMENTS_BAD), corrected=corrected)
    return Feedback(score=1.0, label="good", comment=rng.choice(_FEEDBACK_COMMENTS_GOOD))
