"""A circuit breaker per upstream: stop calling an endpoint that keeps failing, try it again later.

closed -> (`failures` consecutive failures) -> open: calls are refused at once, so the fallback
answers without waiting on a dead endpoint -> (`cooldown_s` later) -> half-open: one trial call
goes through; its success closes the circuit, its failure opens it for another cooldown.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, name: str, *, failures: int = 5, cooldown_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_out = False
        self.opened = 0  # how many times it opened (for the figures)

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.cooldown_s else "open"

    def allow(self) -> bool:
        """May a call go through now? In half-open, only one trial at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial_out:
            self._trial_out = True
            return True
        return False

    def success(self) -> None:
        self._consecutive = 0
        self._opened_at = None
        self._trial_out = False

    def failure(self) -> None:
        self._consecutive += 1
        if self._opened_at is not None or self._consecutive >= self.failures:
            if self._opened_at is None or self._trial_out:
                self.opened += 1
            self._opened_at = self._clock()
            self._trial_out = False


class Breakers:
    """One breaker per upstream name, created on first use."""

    def __init__(self) -> None:
        self._by_name: dict[str, CircuitBreaker] = {}

    def get(self, name: str, *, failures: int, cooldown_s: float) -> CircuitBreaker:
        b = self._by_name.get(name)
        if b is None:
            b = self._by_name[name] = CircuitBreaker(name, failures=failures, cooldown_s=cooldown_s)
        return b

    def states(self) -> dict[str, str]:
        return {name: b.state for name, b in self._by_name.items()}
