"""Routing modes: how a turn is served in each of the task's rollout modes.

    record    the LLM answers (relayed as it comes, `relay.py`); the call is recorded.
    shadow    the LLM answers (relayed as in record mode); the candidate answers the same request
              beside it, off the response path, and both answers are recorded and compared.
    canary    a sticky share (`canary.py`) goes to the candidate, the rest to the LLM with the
              candidate in shadow beside it (so agreement is measured on live traffic).
    swapped   the candidate answers everything.

Fallback, both ways: a candidate that errors, runs out of its time budget, breaks the contract
(`enforcer.py`) or sits behind an open circuit is replaced by the LLM; in canary and swapped
mode an LLM that fails (after its retries) is replaced by a valid candidate answer. Each
fallback's reason goes into the call's metadata (`route.fallback`) and the live figures. An
invalid candidate answer never reaches the client. Every outcome feeds the live gate, whose
alarm moves the task back to shadow (`rollout.rollback`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from fledgling.calls import Response, Usage, cost_usd
from fledgling.capture.recording.exchange import Exchange, usage_of
from fledgling.capture.recording.recorder import Recorder
from fledgling.config import Settings, TaskSettings
from fledgling.contracts import Violation
from fledgling.errors import ConfigError
from fledgling.swap import apis, rollout, selective
from fledgling.swap.breaker import Breakers
from fledgling.swap.canary import in_canary, sticky_key
from fledgling.swap.candidate import Candidate, CandidatePool
from fledgling.swap.enforcer import Enforcer, agree
from fledgling.swap.figures import Figures
from fledgling.swap.live_gate import LiveGates
from fledgling.swap.live_rollout import LiveRollout, TaskRollout
from fledgling.swap.relay import CLIENT_CLOSED, ClientLeft, Relay
from fledgling.swap.router import Route
from fledgling.swap.turn import Turn
from fledgling.transport.asgi import send_bytes, send_error
from fledgling.transport.upstream import UpstreamFault, UpstreamPool

log = logging.getLogger("fledgling.gateway")
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
BACKOFF_S = 0.02
SHADOW_LIMIT = 64  # shadow runs in flight; beyond this they are skipped, never queued
# Which `fallback_on` entry covers each candidate failure.
COVERED_BY = {"error": "error", "unavailable": "error", "circuit_open": "error", "timeout": "timeout",
              "contract": "contract", "low_confidence": "low_confidence"}


@dataclass
class Attempt:
    """One try of the candidate: its answer, or why there is none that may be served."""

    failure: str | None = None  # error | timeout | contract | low_confidence | circuit_open | unavailable
    detail: str | None = None
    response: Response | None = None
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    violations: list[Violation] = field(default_factory=list)
    candidate: Candidate | None = None
    batch: dict[str, Any] | None = None
    confidence: float | None = None

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.candidate.fingerprint) if self.candidate else {}
        out["latency_ms"] = round(self.latency_ms, 3)
        if self.batch is not None:
            out["batch"] = self.batch
        if self.confidence is not None:
            out["confidence"] = round(self.confidence, 4)
        if self.failure:
            out["failure"], out["detail"] = self.failure, self.detail
        if self.violations:
            out["violations"] = [v.model_dump() for v in self.violations[:5]]
        if self.response is not None:
            out["response"] = self.response.message()
            out["finish_reason"] = self.response.finish_reason
        return out


@dataclass
class LlmOutcome:
    status: int
    raw: bytes = b""
    answer: dict[str, Any] | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    error: str | None = None
    code: str = "upstream_error"
    retriable: bool = False

    @property
    def ok(self) -> bool:
        return self.answer is not None and self.error is None


class SwapRouter:
    def __init__(self, settings: Settings, pool: UpstreamPool, recorder: Recorder, live: LiveRollout):
        for name, task in settings.tasks.items():
            if "low_confidence" in task.fallback_on and task.swap.min_confidence is None:
                raise ConfigError(f"tasks.{name}.fallback_on has 'low_confidence' but no threshold: run "
                                  f"`fledgling rollout calibrate --task {name}` and set "
                                  f"[tasks.{name}.swap] min_confidence to what it prints")
        self.settings = settings
        self.pool = pool
        self.relay = Relay(pool)
        self.recorder = recorder
        self.store = recorder.store
        self.live = live
        self.candidates = CandidatePool(self.store, settings, pool)
        self.enforcer = Enforcer(self.store)
        self.breakers = Breakers()
        self.gates = LiveGates()
        self.figures = Figures()
        self._shadows: set[asyncio.Task[None]] = set()
        self._rolled_back: dict[str, float | None] = {}  # task -> the rollout state it ended
        self._reorders_keys = self.store.dialect == "postgresql"
        live.on_change.append(self._preload)

    def _preload(self, changed: list[TaskRollout]) -> None:
        """Start loading a candidate as soon as its task leaves record mode."""
        for t in changed:
            if t.mode != "record" and t.candidate:
                self.candidates.get(t.candidate, self.task_settings(t.task).swap, t.task)

    async def ready(self, task: str) -> str | None:
        """Wait until the task's candidate is loaded; the load error, if any."""
        t = next((t for t in self.live.tasks() if t.task == task), None)
        if t is None or t.mode == "record" or not t.candidate:
            return None
        got = await self.candidates.ensure(t.candidate, self.task_settings(task).swap, task)
        return got if isinstance(got, str) else None

    def task_settings(self, task: str) -> TaskSettings:
        return self.settings.tasks.get(task) or TaskSettings()

    # -- entry ----------------------------------------------------------------------------------

    async def serve(self, turn: Turn) -> None:
        """Answer the client and record the call (now, or once its shadow run is done); the
        client gets the last byte of its answer once the call is on its way to the store."""
        try:
            if turn.route.mode == "record":
                try:
                    await self.relay.forward(turn)
                finally:
                    if turn.exchange.latency_ms is None:
                        turn.exchange.latency_ms = turn.elapsed_ms()
                    self.recorder.record(turn.exchange)
            else:
                await self._swap(turn)
        finally:
            await turn.close()

    async def _swap(self, turn: Turn) -> None:
        route, request, ex = turn.route, turn.request, turn.exchange
        figures = self.figures.of(route.task)
        figures.requests += 1
        to_candidate = route.mode == "swapped" or (
            route.mode == "canary" and in_canary(sticky_key(ex.session_id, request), route.canary_percent))
        ex.metadata["route"] = {"mode": route.mode, "candidate_model": route.candidate,
                                "served_by": None, "fallback": None}
        if route.mode == "canary":
            ex.metadata["route"]["canary"] = to_candidate
        shadow_of: Response | None = None
        audit_of: Response | None = None
        try:
            if to_candidate:
                audit_of = await self._candidate_first(turn)
            elif route.mode == "shadow" or turn.streaming:
                await self.relay.forward(turn)
                ex.metadata["route"]["served_by"] = "llm"
                shadow_of = apis.recorded_answer(turn.api, ex)
            else:
                shadow_of = await self._llm_first(turn)
        finally:
            if ex.latency_ms is None:
                ex.latency_ms = turn.elapsed_ms()
            self._account(route, ex)
            if audit_of is not None and self._spawn_audit(turn, audit_of):
                pass  # the audit records the call
            elif shadow_of is None or not self._spawn_shadow(route, request, ex, shadow_of):
                self.recorder.record(ex)

    # -- candidate first (canary share, swapped) ------------------------------------------------

    async def _candidate_first(self, turn: Turn) -> Response | None:
        """The candidate answers (else the LLM); its served answer when the call is audited."""
        route, request, ex = turn.route, turn.request, turn.exchange
        cfg = self.task_settings(route.task)
        attempt = await self.attempt(route, request, ex.id)
        ex.metadata["candidate"] = self._record(attempt, request)
        await self._observe(route, failed=attempt.failure not in (None, "low_confidence"),  # routing, not failing
                            latency_ms=attempt.latency_ms if attempt.failure is None else None)
        if attempt.failure is None:
            await self._serve_candidate(turn, attempt)
            state = self.live.get(route.task)
            if turn.api == "chat" and selective.audited(ex.id, state.audit_percent if state else None):
                return attempt.response
            return None
        ex.metadata["route"]["fallback"] = attempt.failure
        ex.metadata["route"]["fallback_detail"] = attempt.detail
        if COVERED_BY[attempt.failure] not in cfg.fallback_on and attempt.failure != "low_confidence":
            ex.error = f"candidate failed ({attempt.failure}: {attempt.detail}); the task does not fall back on it"
            ex.status_code = 502
            await send_error(turn.send, 502, "candidate_failed", ex.error, [turn.call_header], turn.api)
            return None
        if turn.streaming:  # nothing sent yet: the LLM's own stream, relayed as it comes
            ex.metadata["route"]["served_by"] = "llm"
            await self.relay.forward(turn, served_by=b"llm")
            if ex.error is not None:
                ex.metadata["route"]["served_by"] = None
            return None
        outcome = await self.call_llm(turn)
        if outcome.ok:
            ex.metadata["route"]["served_by"] = "llm"
            await self._serve_llm(turn, outcome)
            return None
        await self._send_llm_failure(turn, outcome)
        return None

    # -- LLM first (canary's other share) -------------------------------------------------------

    async def _llm_first(self, turn: Turn) -> Response | None:
        """The LLM answers; when it fails (after retries), a valid candidate answer does.
        Returns the LLM's answer for the shadow comparison."""
        route, request, ex = turn.route, turn.request, turn.exchange
        outcome = await self.call_llm(turn)
        if outcome.ok:
            ex.metadata["route"]["served_by"] = "llm"
            await self._serve_llm(turn, outcome)
            return apis.recorded_answer(turn.api, ex)
        if not outcome.retriable:
            await self._send_llm_failure(turn, outcome)
            return None
        attempt = await self.attempt(route, request, ex.id)
        ex.metadata["candidate"] = self._record(attempt, request)
        ex.metadata["route"]["fallback"] = f"llm_{outcome.code}"
        ex.metadata["route"]["fallback_detail"] = outcome.error
        if attempt.failure is None:
            await self._serve_candidate(turn, attempt)
        else:
            await self._send_llm_failure(turn, outcome)
        return None

    # -- the candidate ---------------------------------------------------------------------------

    async def attempt(self, route: Route, request: dict[str, Any], call_id: str | None = None, *,
                      background: bool = False) -> Attempt:
        """Run the candidate within the task's budget, with retries and its circuit breaker,
        and check the answer against the contract. `call_id` names the call in its batch;
        `background` marks a shadow run (served requests go first)."""
        cfg = self.task_settings(route.task).swap
        assert route.candidate is not None
        got = self.candidates.get(route.candidate, cfg, route.task)
        if isinstance(got, str):
            return Attempt("unavailable", got)
        breaker = self.breakers.get("candidate:" + got.name, failures=cfg.breaker_failures,
                                    cooldown_s=cfg.breaker_cooldown_s)
        prepared = selective.prepared(got.prepare(request), got.upstream is not None, self.live.get(route.task))
        t0 = time.perf_counter()
        deadline = t0 + cfg.budget_ms / 1000
        failure: str | None = "error"
        detail, gen, answer = "not attempted", None, None
        for n in range(cfg.retries + 1):
            if not breaker.allow():
                failure, detail = "circuit_open", f"circuit of candidate '{got.name}' is open"
                break
            left = deadline - time.perf_counter()
            if n:
                await asyncio.sleep(min(BACKOFF_S * 2 ** (n - 1), max(left, 0)))
                left = deadline - time.perf_counter()
            if left <= 0:
                failure, detail = "timeout", f"no answer within {cfg.budget_ms:g} ms"
                break
            try:
                answer = await asyncio.wait_for(got.generate(prepared, tag=call_id, background=background), left)
                gen = answer.generation
            except TimeoutError:
                breaker.failure()
                failure, detail, gen = "timeout", f"no answer within {cfg.budget_ms:g} ms", None
                break
            if gen.error is None and gen.response is not None:
                breaker.success()
                failure = None
                break
            breaker.failure()
            failure, detail, gen = "error", gen.error or "no answer", None
        ms = (time.perf_counter() - t0) * 1000
        if failure is not None or gen is None or gen.response is None:
            return Attempt(failure or "error", detail, latency_ms=ms, candidate=got)
        usage = Usage(input_tokens=gen.input_tokens, output_tokens=gen.output_tokens)
        contract = await self.enforcer.contract(route.task, request)
        violations = self.enforcer.check(gen.response, contract, request)
        batch = answer.batch if answer is not None else None
        score = answer.confidence if answer is not None else None
        if violations:
            return Attempt("contract", f"{violations[0].code} at {violations[0].path or 'answer'}: "
                           f"{violations[0].message}", gen.response, usage, ms, violations, got, batch, score)
        score, low = selective.low_confidence(self.live.get(route.task), cfg,
                                              self.task_settings(route.task).fallback_on, gen.token_logprobs, score)
        if low is not None:
            return Attempt("low_confidence", low, gen.response, usage, ms, [], got, batch, score)
        return Attempt(None, None, gen.response, usage, ms, [], got, batch, score)

    def _record(self, attempt: Attempt, request: dict[str, Any]) -> dict[str, Any]:
        """The attempt's record. A store that reorders JSON keys (PostgreSQL's jsonb) would give
        replay the tools in another order, hence another prompt: there the declaration is also
        kept as the exact text the candidate read."""
        record = attempt.record()
        if self._reorders_keys and attempt.candidate is not None and attempt.candidate.spec.is_local:
            record["declaration"] = orjson.dumps({k: request[k] for k in ("tools", "response_format")
                                                  if k in request}).decode()
        return record

    async def _serve_candidate(self, turn: Turn, attempt: Attempt) -> None:
        route, ex = turn.route, turn.exchange
        assert attempt.response is not None and attempt.candidate is not None
        cand = attempt.candidate
        ex.metadata["route"]["served_by"] = "candidate"
        ex.provider, ex.upstream = "fledgling", cand.name
        ex.price_in, ex.price_out = cand.price_in, cand.price_out
        message = attempt.response.message()
        finish = "tool_calls" if attempt.response.tool_calls else (attempt.response.finish_reason or "stop")
        usage = {"prompt_tokens": attempt.usage.input_tokens, "completion_tokens": attempt.usage.output_tokens,
                 "total_tokens": attempt.usage.input_tokens + attempt.usage.output_tokens}
        completion = {"id": "chatcmpl-" + ex.id.removeprefix("call_"), "object": "chat.completion",
                      "created": int(time.time()), "model": cand.name,
                      "system_fingerprint": f"fledgling-{cand.fingerprint.get('adapter_sha256') or 'base'}"
                                            f"-seed{cand.fingerprint['seed']}",
                      "choices": [{"index": 0, "message": {**message, "refusal": None},
                                   "logprobs": None, "finish_reason": finish}],
                      "usage": usage}
        if turn.api != "chat":  # the same answer in the caller's API
            completion = apis.render(turn.api, attempt.response, attempt.usage, model=cand.name, call_id=ex.id,
                                     wire=turn.wire_request)
        ex.status_code = 200
        ex.response = completion
        upstream = route.upstream
        self.figures.of(route.task).candidate_tokens_usd += \
            cost_usd(attempt.usage, upstream.price_in, upstream.price_out) or 0.0
        await apis.send_answer(turn.send, turn.api, completion, turn.request,
                               [turn.call_header, (b"x-fledgling-served-by", b"candidate")])
        ex.latency_ms = turn.elapsed_ms()

    # -- the LLM ---------------------------------------------------------------------------------

    async def call_llm(self, turn: Turn) -> LlmOutcome:
        """A non-streaming call to the task's LLM, retried with backoff behind its breaker."""
        cfg = self.task_settings(turn.route.task).swap
        upstream = turn.route.upstream
        breaker = self.breakers.get("llm:" + upstream.name, failures=cfg.breaker_failures,
                                    cooldown_s=cfg.breaker_cooldown_s)
        body = {k: v for k, v in turn.wire_request.items() if k not in ("stream", "stream_options")}
        if upstream.model is not None:
            body["model"] = upstream.model
        raw_body = orjson.dumps(body)
        last = LlmOutcome(503, error="not attempted", retriable=True)
        for n in range(cfg.retries + 1):
            if not breaker.allow():
                return LlmOutcome(503, error=f"circuit of upstream '{upstream.name}' is open",
                                  code="circuit_open", retriable=True)
            if n:
                await asyncio.sleep(BACKOFF_S * 2 ** (n - 1))
            try:
                got, raw, hdrs = await self.relay.call(upstream, raw_body, turn)
            except ClientLeft:
                return LlmOutcome(CLIENT_CLOSED, error="client disconnected before the answer",
                                  code="client_closed")
            except UpstreamFault as fault:
                breaker.failure()
                last = LlmOutcome(fault.status, error=fault.message, code=fault.code, retriable=True)
                continue
            if got.kind == "completion":
                breaker.success()
                return LlmOutcome(200, raw, got.answer, hdrs)
            if got.kind == "error":
                last = LlmOutcome(got.status, raw, None, hdrs, got.reason, "upstream_error",
                                  got.status in RETRY_STATUS)
            else:
                last = LlmOutcome(502, error=got.reason, code="bad_upstream_response", retriable=True)
            if not last.retriable:
                breaker.success()  # the endpoint is up; it refused this request
                return last
            breaker.failure()
        return last

    async def _serve_llm(self, turn: Turn, outcome: LlmOutcome) -> None:
        ex = turn.exchange
        ex.status_code = 200
        ex.response = outcome.answer
        served = (b"x-fledgling-served-by", b"llm")
        if turn.streaming:
            await apis.send_answer(turn.send, turn.api, outcome.answer or {}, turn.request, [turn.call_header, served])
        else:
            await send_bytes(turn.send, 200, outcome.raw, headers=[*outcome.headers, turn.call_header, served])
        ex.latency_ms = turn.elapsed_ms()

    async def _send_llm_failure(self, turn: Turn, outcome: LlmOutcome) -> None:
        ex, call_header = turn.exchange, turn.call_header
        ex.error = outcome.error
        ex.status_code = outcome.status
        if outcome.raw and outcome.status >= 400:
            await send_bytes(turn.send, outcome.status, outcome.raw, headers=[*outcome.headers, call_header])
        else:
            await send_error(turn.send, outcome.status, outcome.code, outcome.error or "upstream failed",
                             [call_header], turn.api)

    # -- shadow runs -------------------------------------------------------------------------------

    def _spawn_shadow(self, route: Route, request: dict[str, Any], ex: Exchange, reference: Response) -> bool:
        """Start the candidate beside the LLM; True when it will record the call itself."""
        if route.candidate is None:
            return False
        if len(self._shadows) >= SHADOW_LIMIT:
            ex.metadata["shadow"] = {"skipped": "busy"}
            self.figures.of(route.task).shadow_skipped += 1
            return False
        task = asyncio.get_running_loop().create_task(self._shadow(route, request, ex, reference))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)
        return True

    async def _shadow(self, route: Route, request: dict[str, Any], ex: Exchange, reference: Response) -> None:
        try:
            attempt = await self.attempt(route, request, ex.id, background=True)
            record = self._record(attempt, request)
            agreed = None
            if attempt.failure in (None, "low_confidence") and attempt.response is not None:
                contract = await self.enforcer.contract(route.task, request)
                agreed = agree(attempt.response, reference, contract)
                fig = self.figures.of(route.task)
                fig.compared += 1
                fig.agreed += agreed
                fig.candidate_ms.append(attempt.latency_ms)
            record["agree"] = agreed
            ex.metadata["shadow"] = record
            await self._observe(route, agreed=agreed, failed=attempt.failure is not None,
                                latency_ms=attempt.latency_ms if attempt.failure is None else None)
        except Exception as exc:  # the shadow must never lose the call's record
            log.exception("shadow run failed")
            ex.metadata["shadow"] = {"failure": "internal", "detail": str(exc)[:200]}
        finally:
            self.recorder.record(ex)

    def _spawn_audit(self, turn: Turn, served: Response) -> bool:
        """Ask the LLM too, off the response path; True when the audit will record the call."""
        if len(self._shadows) >= SHADOW_LIMIT:
            turn.exchange.metadata["audit"] = {"skipped": "busy"}
            self.figures.of(turn.route.task).audit_skipped += 1
            return False
        task = asyncio.get_running_loop().create_task(self._audit(turn, served))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)
        return True

    async def _audit(self, turn: Turn, served: Response) -> None:
        route, ex = turn.route, turn.exchange
        try:
            record = await selective.audit(turn, served, self.call_llm, self.enforcer.contract,
                                           self.figures.of(route.task))
            ex.metadata["audit"] = record
            await self._observe(route, agreed=record["agree"])
        except Exception as exc:  # the audit must never lose the call's record
            log.exception("audit failed")
            ex.metadata["audit"] = {"failure": "internal", "detail": str(exc)[:200]}
        finally:
            self.recorder.record(ex)

    def idle(self) -> bool:
        """No shadow run (or gate rollback) in flight: every call so far is recorded or on its way."""
        return not self._shadows

    async def drain(self, timeout: float = 30.0) -> None:
        """Let shadow runs finish (they record their calls), then close the candidates."""
        if self._shadows:
            await asyncio.wait(list(self._shadows), timeout=timeout)
        await self.candidates.aclose()

    # -- the live gate -----------------------------------------------------------------------------

    async def _observe(self, route: Route, **outcome: Any) -> None:
        """Feed the live gate; on its alarm, roll back in the background (never on the
        response path)."""
        gate = self.task_settings(route.task).swap.gate
        reason = self.gates.observe(route.task, gate, route.mode, route.changed_at, **outcome)
        if reason is None or self._rolled_back.get(route.task, -1.0) == route.changed_at:
            return  # an observation still in flight from a rollout that was already ended
        self._rolled_back[route.task] = route.changed_at
        task = asyncio.get_running_loop().create_task(self._rollback(route, reason))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _rollback(self, route: Route, reason: str) -> None:
        try:
            await asyncio.to_thread(rollout.rollback, self.store, self.settings, route.task,
                                    actor="live-gate", reason=reason, to_mode="shadow")
            self.figures.of(route.task).rollbacks += 1
            log.warning("task '%s' rolled back to shadow: %s", route.task, reason)
            await self.live.refresh()
        except Exception:
            log.exception("live-gate rollback of '%s' failed", route.task)
            self._rolled_back.pop(route.task, None)

    def _account(self, route: Route, ex: Exchange) -> None:
        fig = self.figures.of(route.task)
        meta = ex.metadata["route"]
        if meta["served_by"] is None:
            fig.client_errors += 1
        else:
            fig.served_by[meta["served_by"]] += 1
        if meta["fallback"]:
            fig.fallbacks[meta["fallback"]] += 1
        if meta["served_by"] == "llm" and ex.latency_ms is not None:
            fig.llm_ms.append(ex.latency_ms)
        if meta["served_by"] == "candidate":
            fig.candidate_ms.append(ex.metadata.get("candidate", {}).get("latency_ms", 0.0))
        if meta["served_by"] == "llm" and isinstance(ex.response, dict):
            cost = cost_usd(usage_of(ex.response.get("usage")), ex.price_in, ex.price_out)
            if cost is not None:
                fig.cost_usd += cost
                fig.llm_priced += 1


