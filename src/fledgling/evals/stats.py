"""Statistics for parity claims: intervals, the paired non-inferiority test, sample-size planning.

Pure functions, no I/O. Choices, stated once:

- A proportion's 95% interval is Wilson's score interval (good coverage at small n and near 0/1).
- A continuous mean's interval is Student's t.
- Candidate vs reference on the same items is a *paired* comparison. For pass/fail metrics the
  interval of the difference in success rates is Newcombe's hybrid score interval for paired
  proportions (his method 10, 1998: Wilson intervals of both marginals combined with the
  observed correlation), which keeps its coverage at small n where the Wald interval does not.
  For continuous metrics it is the paired t interval of the per-item differences.
- Non-inferiority with margin delta holds when the lower end of that two-sided 95% interval is
  above -delta (a one-sided 2.5% test); it is refuted when the upper end is below -delta.
- McNemar's exact test (binomial on the discordant pairs) is reported beside it: does the
  candidate differ from the reference at all?
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

Z95 = NormalDist().inv_cdf(0.975)

Decision = Literal["non_inferior", "inferior", "inconclusive"]


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n: int


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile, by bisection on the regularised incomplete beta (no scipy at run time)."""
    if df <= 0:
        return math.inf
    target = p if p >= 0.5 else 1 - p
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < target:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if _t_cdf(mid, df) < target:
            lo = mid
        else:
            hi = mid
    q = (lo + hi) / 2
    return q if p >= 0.5 else -q


def _t_cdf(t: float, df: int) -> float:
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2, 0.5, x)
    return 1 - tail if t >= 0 else tail


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) by its continued fraction (Numerical Recipes' form)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f / a


def _is_binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def mean_interval(values: Sequence[float]) -> Estimate:
    """Mean with its 95% interval: Wilson for 0/1 values, Student's t otherwise."""
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = sum(values) / n
    if _is_binary(values):
        low, high = wilson_interval(sum(values), n)
        return Estimate(mean, low, high, n)
    return t_interval(values)


def t_interval(values: Sequence[float]) -> Estimate:
    """Mean with Student's t 95% interval (unbounded for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return Estimate(mean, -math.inf, math.inf, 1)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n)


@dataclass(frozen=True)
class PairedComparison:
    """Candidate minus reference on the same items."""

    n: int
    candidate: float
    reference: float
    diff: float
    low: float
    high: float
    delta: float
    decision: Decision
    method: str
    both: int = 0  # pass/fail only: both succeeded
    candidate_only: int = 0  # candidate succeeded, reference failed
    reference_only: int = 0
    neither: int = 0
    mcnemar_p: float | None = None
    more_items_needed: int | None = None


def paired_non_inferiority(candidate: Sequence[float], reference: Sequence[float],
                           delta: float) -> PairedComparison:
    """Is the candidate at most `delta` worse than the reference, at 95% confidence?"""
    if len(candidate) != len(reference):
        raise ValueError("paired comparison needs one candidate and one reference score per item")
    n = len(candidate)
    if n == 0:
        return PairedComparison(0, math.nan, math.nan, math.nan, -1.0, 1.0, delta,
                                "inconclusive", "none")
    if _is_binary(candidate) and _is_binary(reference):
        a = sum(1 for c, r in zip(candidate, reference, strict=True) if c and r)
        b = sum(1 for c, r in zip(candidate, reference, strict=True) if c and not r)
        c_ = sum(1 for c, r in zip(candidate, reference, strict=True) if not c and r)
        d = n - a - b - c_
        low, high = newcombe_paired_interval(a, b, c_, d)
        diff = (b - c_) / n
        decision = _decide(low, high, delta)
        return PairedComparison(
            n, (a + b) / n, (a + c_) / n, diff, low, high, delta, decision,
            "Newcombe hybrid score interval (paired)", a, b, c_, d, mcnemar_exact(b, c_),
            None if decision != "inconclusive" else more_paired_items(b / n, c_ / n, n, delta))
    diffs = [c - r for c, r in zip(candidate, reference, strict=True)]
    est = t_interval(diffs)
    decision = _decide(est.low, est.high, delta)
    return PairedComparison(n, sum(candidate) / n, sum(reference) / n, est.mean, est.low, est.high,
                            delta, decision, "paired t interval")


def _decide(low: float, high: float, delta: float) -> Decision:
    if low > -delta:
        return "non_inferior"
    if high < -delta:
        return "inferior"
    return "inconclusive"


def newcombe_paired_interval(a: int, b: int, c: int, d: int, z: float = Z95) -> tuple[float, float]:
    """95% interval for p(candidate) - p(reference) from the paired 2x2 table.

    a: both succeed, b: only the candidate, c: only the reference, d: neither.
    """
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    if margins == 0:
        phi = 0.0
    else:
        num = a * d - b * c
        phi = (max(num - n / 2, 0) if num > 0 else num) / math.sqrt(margins)
    diff = p1 - p2
    low = diff - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = diff + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, low), min(1.0, high)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: binomial(b + c, 1/2) on the discordant pairs."""
    m = b + c
    if m == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m
    return min(1.0, 2 * tail)


def more_paired_items(p_candidate_only: float, p_reference_only: float, n_now: int,
                      delta: float, power: float = 0.8) -> int | None:
    """How many more paired items would settle the claim if the observed rates held.

    Uses the normal approximation for a paired difference of proportions: the total n at which
    |diff + delta| exceeds (z_{0.975} + z_power) standard errors. None when the observed
    difference sits exactly on the margin (no finite number settles it).
    """
    diff = p_candidate_only - p_reference_only
    gap = abs(diff + delta)
    variance = p_candidate_only + p_reference_only - diff * diff
    if gap == 0:
        return None
    if variance <= 0:
        variance = 1.0 / max(n_now, 1)  # no discordant pairs yet: assume one more would appear
    z = Z95 + NormalDist().inv_cdf(power)
    total = math.ceil(z * z * variance / (gap * gap))
    return max(0, total - n_now)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method), q in [0, 100]."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    return {f"p{q}": percentile(latencies_ms, q) for q in (50, 95, 99)} | {
        "mean": sum(latencies_ms) / len(latencies_ms) if latencies_ms else None}
