"""Selective parity: the share of items the specialist may answer, and the proof that it is enough.

Pure functions, no I/O. The specialist answers an item when its answer is valid under the
contract and its confidence is at least a threshold t ("covered"); every other item goes to the
LLM. For each t, on the same items (paired):

- coverage: covered / n;
- the specialist's and the LLM's success on the covered items, with Wilson intervals, and the
  paired non-inferiority comparison of the two (`stats.paired_non_inferiority`: Newcombe's
  interval of the difference; non-inferior when its lower end is above -delta);
- the blended system over all n items: its success (specialist on the covered, LLM on the
  rest), latency (the specialist's time on the covered; the specialist's attempt plus the
  LLM's recorded time on the rest) and cost (the specialist's, plus the LLM's on the rest).

Choosing t looks at many thresholds, so the comparison at the chosen one is optimistic on the
split it was chosen on. Hence: t is chosen on val (the lowest t, i.e. the largest coverage,
whose covered items are non-inferior at delta) and the claim is tested once, at that t, on test.

Items without a confidence or with an answer the contract rejects are never covered (the
gateway falls back on them before any score); they are counted, never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fledgling.evals.stats import Estimate, PairedComparison, mean_interval, paired_non_inferiority, percentile


@dataclass(frozen=True)
class SelectiveItem:
    """One item of a paired run: the specialist's confidence and success, the LLM's success."""

    confidence: float | None
    candidate: bool
    reference: bool
    valid: bool = True  # the specialist's answer passed the contract (else the gateway falls back)
    candidate_ms: float = 0.0
    reference_ms: float | None = None  # the LLM's recorded latency (None: unknown)
    candidate_usd: float | None = 0.0
    reference_usd: float | None = None  # None: unpriced


def is_covered(item: SelectiveItem, threshold: float) -> bool:
    return item.valid and item.confidence is not None and item.confidence >= threshold


@dataclass(frozen=True)
class CoveragePoint:
    threshold: float
    n: int
    covered: int
    candidate: Estimate  # success on the covered items
    reference: Estimate  # the LLM's success on the same items
    comparison: PairedComparison
    blended_success: float
    blended_latency_ms: dict[str, float | None]  # mean, p50, p95 (None: an LLM latency is unknown)
    blended_usd_per_1k: float | None  # None: a price is unknown

    @property
    def coverage(self) -> float:
        return self.covered / self.n if self.n else 0.0

    @property
    def non_inferior(self) -> bool:
        return self.comparison.decision == "non_inferior"

    def as_dict(self) -> dict[str, object]:
        c = self.comparison
        return {"threshold": self.threshold, "n": self.n, "covered": self.covered, "coverage": self.coverage,
                "candidate": _est(self.candidate), "reference": _est(self.reference),
                "diff": c.diff, "low": c.low, "high": c.high, "delta": c.delta, "decision": c.decision,
                "more_items_needed": c.more_items_needed,
                "blended_success": self.blended_success, "blended_latency_ms": self.blended_latency_ms,
                "blended_usd_per_1k": self.blended_usd_per_1k}


def _est(e: Estimate) -> dict[str, float | int | None]:
    return {"mean": None if math.isnan(e.mean) else e.mean, "low": None if math.isnan(e.low) else e.low,
            "high": None if math.isnan(e.high) else e.high, "n": e.n}


def at_threshold(items: Sequence[SelectiveItem], threshold: float, delta: float) -> CoveragePoint:
    """The specialist serving the items scoring >= threshold, the LLM the rest."""
    covered = [i for i in items if is_covered(i, threshold)]
    cand = [float(i.candidate) for i in covered]
    ref = [float(i.reference) for i in covered]
    cmp = paired_non_inferiority(cand, ref, delta)
    blended = [i.candidate if is_covered(i, threshold) else i.reference for i in items]
    latencies = [_blended_ms(i, threshold) for i in items]
    known = [ms for ms in latencies if ms is not None]
    latency: dict[str, float | None] = (
        {"mean": sum(known) / len(known), "p50": percentile(known, 50), "p95": percentile(known, 95)}
        if known and len(known) == len(latencies) else {"mean": None, "p50": None, "p95": None})
    costs = [_blended_usd(i, threshold) for i in items]
    usd = sum(c for c in costs if c is not None) * 1000 / len(items) \
        if items and all(c is not None for c in costs) else None
    return CoveragePoint(threshold, len(items), len(covered), mean_interval(cand), mean_interval(ref), cmp,
                         sum(blended) / len(items) if items else math.nan, latency, usd)


def _blended_ms(item: SelectiveItem, threshold: float) -> float | None:
    if is_covered(item, threshold):
        return item.candidate_ms
    return None if item.reference_ms is None else item.candidate_ms + item.reference_ms


def _blended_usd(item: SelectiveItem, threshold: float) -> float | None:
    if item.candidate_usd is None:
        return None
    if is_covered(item, threshold):
        return item.candidate_usd
    return None if item.reference_usd is None else item.candidate_usd + item.reference_usd


def thresholds(items: Sequence[SelectiveItem]) -> list[float]:
    """Every threshold that covers a different set: the distinct scores of the coverable items,
    highest first (so coverage grows along the list)."""
    return sorted({i.confidence for i in items if i.valid and i.confidence is not None}, reverse=True)


def risk_coverage(items: Sequence[SelectiveItem], delta: float) -> list[CoveragePoint]:
    """One point per threshold, coverage ascending."""
    return [at_threshold(items, t, delta) for t in thresholds(items)]


def choose_threshold(items: Sequence[SelectiveItem], delta: float,
                     min_coverage: float = 0.0) -> CoveragePoint | None:
    """The largest coverage (at least `min_coverage`) whose covered items are non-inferior at
    delta; None when no threshold gets there. Use it on val, then `at_threshold` on test."""
    best = None
    for point in risk_coverage(items, delta):
        if point.non_inferior and point.coverage >= min_coverage:
            best = point
    return best


def threshold_for_coverage(items: Sequence[SelectiveItem], coverage: float) -> float | None:
    """The highest threshold that covers at least this share of the items (None: none does)."""
    for t in thresholds(items):
        if sum(is_covered(i, t) for i in items) >= coverage * len(items):
            return t
    return None


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    n: int
    confidence: float  # mean stated probability in the bin
    accuracy: float  # share right in the bin


def reliability(pairs: Sequence[tuple[float, bool]], bins: int = 10) -> tuple[list[ReliabilityBin], float | None]:
    """Reliability diagram and expected calibration error of (log-probability score, right).

    A score is read as the probability exp(score) that the answer is right; bins are equal
    width on [0, 1]; ECE is the item-weighted mean |accuracy - confidence| over the bins."""
    if not pairs:
        return [], None
    grouped: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for score, ok in pairs:
        p = min(1.0, max(0.0, math.exp(score)))
        grouped[min(bins - 1, int(p * bins))].append((p, ok))
    out = [ReliabilityBin(k / bins, (k + 1) / bins, len(g), sum(p for p, _ in g) / len(g),
                          sum(ok for _, ok in g) / len(g)) for k, g in enumerate(grouped) if g]
    ece = sum(b.n * abs(b.accuracy - b.confidence) for b in out) / len(pairs)
    return out, ece
