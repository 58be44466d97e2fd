"""The live gate: watches a task's canary or swap and rolls it back to shadow by itself.

Three outcome streams per task, each a Bernoulli "bad or not" per request:

- disagreement: the candidate's answer differs from the LLM's (shadow comparisons: in canary,
  the candidate runs beside the LLM on the LLM's share);
- fallback: the candidate failed (error, timeout, broken contract, open circuit);
- slow: the candidate took longer than `latency_ms` (when set).

Each stream runs a sequential probability ratio test of H0 "bad share = acceptable" against H1
"bad share = unacceptable", in its repeated form (Page's CUSUM: the log-likelihood ratio is
summed, floored at 0, and an alarm is raised when it crosses log((1-beta)/alpha)). It needs no
fixed sample size, looks after every request without inflating its error, and keeps watching
for as long as the rollout runs. The first alarm triggers the rollback; a new rollout change
(a new stored state) starts the gate afresh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fledgling.config import LiveGate as GateSettings
from fledgling.config import SprtRates


@dataclass
class Cusum:
    rates: SprtRates
    alpha: float
    beta: float
    score: float = 0.0
    n: int = 0
    bad: int = 0

    @property
    def threshold(self) -> float:
        return math.log((1 - self.beta) / self.alpha)

    def add(self, bad: bool) -> bool:
        p0, p1 = self.rates.acceptable, self.rates.unacceptable
        step = math.log(p1 / p0) if bad else math.log((1 - p1) / (1 - p0))
        self.score = max(0.0, self.score + step)
        self.n += 1
        self.bad += bad
        return self.score >= self.threshold


@dataclass
class TaskGate:
    settings: GateSettings
    epoch: tuple[str, float | None]
    streams: dict[str, Cusum] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.settings
        self.streams = {name: Cusum(getattr(s, name), s.alpha, s.beta)
                        for name in ("disagreement", "fallback", "slow")}

    def observe(self, metric: str, bad: bool) -> str | None:
        """Add one outcome; the alarm's reason when this one crossed the line."""
        c = self.streams[metric]
        if not c.add(bad):
            return None
        what = {"disagreement": "disagreed with the LLM", "fallback": "fell back to the LLM",
                "slow": f"took over {self.settings.latency_ms or 0:g} ms"}[metric]
        return (f"live gate: the candidate {what} in {c.bad} of {c.n} requests "
                f"({c.bad / c.n:.0%}); acceptable is {c.rates.acceptable:.0%}, the test "
                f"(SPRT/CUSUM, alpha {self.settings.alpha:g}) says it is nearer "
                f"{c.rates.unacceptable:.0%}")


class LiveGates:
    """One gate per task, restarted whenever the task's rollout changes."""

    def __init__(self) -> None:
        self._gates: dict[str, TaskGate] = {}

    def observe(self, task: str, settings: GateSettings, mode: str, changed_at: float | None, *,
                agreed: bool | None = None, failed: bool | None = None,
                latency_ms: float | None = None) -> str | None:
        """Feed one request's outcomes; returns the rollback reason on an alarm. Only a canary
        or a swap is watched (shadow is where a rollback lands)."""
        if not settings.enabled or mode not in ("canary", "swapped"):
            return None
        epoch = (mode, changed_at)
        gate = self._gates.get(task)
        if gate is None or gate.epoch != epoch:
            gate = self._gates[task] = TaskGate(settings, epoch)
        alarms = []
        if agreed is not None:
            alarms.append(gate.observe("disagreement", not agreed))
        if failed is not None:
            alarms.append(gate.observe("fallback", failed))
        if latency_ms is not None and settings.latency_ms is not None:
            alarms.append(gate.observe("slow", latency_ms > settings.latency_ms))
        return next((a for a in alarms if a), None)

    def snapshot(self, task: str) -> dict[str, dict[str, float]]:
        gate = self._gates.get(task)
        if gate is None:
            return {}
        return {name: {"n": c.n, "bad": c.bad, "score": round(c.score, 3), "threshold": round(c.threshold, 3)}
                for name, c in gate.streams.items()}
