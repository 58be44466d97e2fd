"""Statistics against scipy / statsmodels / numpy as oracles, and the planner against its own claim."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from fledgling.evals.stats import (
    Z95,
    mcnemar_exact,
    mean_interval,
    more_paired_items,
    newcombe_paired_interval,
    paired_non_inferiority,
    percentile,
    t_quantile,
    wilson_interval,
)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_statsmodels(kn):
    k, n = kn
    low, high = wilson_interval(k, n)
    ref = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert low == pytest.approx(ref[0], abs=1e-9) and high == pytest.approx(ref[1], abs=1e-9)


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 29, 100, 1000])
@pytest.mark.parametrize("p", [0.9, 0.975, 0.995, 0.025])
def test_t_quantile_matches_scipy(df, p):
    assert t_quantile(p, df) == pytest.approx(sps.t.ppf(p, df), rel=1e-7)


def test_continuous_mean_interval_matches_scipy_t():
    rng = random.Random(1)
    values = [rng.gauss(0.7, 0.2) for _ in range(37)]
    est = mean_interval(values)
    low, high = sps.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))
    assert est.mean == pytest.approx(np.mean(values))
    assert est.low == pytest.approx(low, rel=1e-7) and est.high == pytest.approx(high, rel=1e-7)


def test_binary_mean_interval_is_wilson():
    est = mean_interval([1.0] * 18 + [0.0] * 2)
    assert (est.low, est.high) == pytest.approx(proportion_confint(18, 20, method="wilson"))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_exact_matches_statsmodels(b, c):
    ref = mcnemar([[10, b], [c, 5]], exact=True).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(min(1.0, ref), abs=1e-12)


def test_newcombe_reduces_to_its_definition_with_statsmodels_wilson_parts():
    a, b, c, d = 30, 9, 3, 8
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = proportion_confint(a + b, n, method="wilson")
    l2, u2 = proportion_confint(a + c, n, method="wilson")
    phi = (a * d - b * c - n / 2) / math.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    low = p1 - p2 - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    high = p1 - p2 + math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    assert newcombe_paired_interval(a, b, c, d) == pytest.approx((low, high), abs=1e-12)


def test_newcombe_agrees_with_scipy_paired_bootstrap_at_large_n():
    rng = np.random.default_rng(0)
    n = 3000
    ref = (rng.random(n) < 0.9).astype(float)
    cand = np.where(rng.random(n) < 0.92, ref, 1 - ref)
    table = dict(a=int(((cand == 1) & (ref == 1)).sum()), b=int(((cand == 1) & (ref == 0)).sum()),
                 c=int(((cand == 0) & (ref == 1)).sum()), d=int(((cand == 0) & (ref == 0)).sum()))
    low, high = newcombe_paired_interval(**table)
    boot = sps.bootstrap((cand, ref), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis),
                         paired=True, n_resamples=4000, method="percentile", random_state=1)
    assert low == pytest.approx(boot.confidence_interval.low, abs=0.004)
    assert high == pytest.approx(boot.confidence_interval.high, abs=0.004)


def test_non_inferiority_decisions():
    same = [1.0] * 190 + [0.0] * 10
    clear = paired_non_inferiority(same, same, delta=0.05)
    assert clear.decision == "non_inferior" and clear.diff == 0.0 and clear.mcnemar_p == 1.0
    worse_cand = [0.0] * 60 + [1.0] * 140
    bad = paired_non_inferiority(worse_cand, [1.0] * 200, delta=0.05)
    assert bad.decision == "inferior" and bad.mcnemar_p < 1e-6
    few = paired_non_inferiority([1.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], delta=0.05)
    assert few.decision == "inconclusive" and few.more_items_needed and few.more_items_needed > 0


def test_continuous_paired_uses_paired_t():
    rng = random.Random(3)
    ref = [rng.random() for _ in range(50)]
    cand = [min(1.0, r + rng.gauss(0.01, 0.05)) for r in ref]
    cmp = paired_non_inferiority(cand, ref, delta=0.05)
    diffs = np.array(cand) - np.array(ref)
    low, high = sps.t.interval(0.95, len(diffs) - 1, loc=diffs.mean(), scale=sps.sem(diffs))
    assert (cmp.low, cmp.high) == pytest.approx((low, high), rel=1e-7)
    assert cmp.method == "paired t interval"


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 0.2), st.floats(0.0, 0.2), st.integers(10, 400), st.floats(0.01, 0.1))
def test_planner_gives_the_smallest_n_that_settles_at_observed_rates(p10, p01, n_now, delta):
    """At power 0.5 the planner's total n is the first at which the Wald bound clears -delta."""
    more = more_paired_items(p10, p01, n_now, delta, power=0.5)
    diff = p10 - p01
    var = p10 + p01 - diff * diff
    if more is None:
        assert diff + delta == 0
        return
    assume(var > 0 and abs(diff + delta) > 1e-3)
    total = n_now + more

    def settled(n: int) -> bool:
        return abs(diff + delta) >= Z95 * math.sqrt(var / n) * (1 - 1e-12)

    assert settled(total)
    if more > 0:
        assert not settled(total - 1)


@pytest.mark.parametrize("q", [0, 25, 50, 95, 99, 100])
def test_percentile_matches_numpy(q):
    values = [random.Random(q).expovariate(0.01) for _ in range(101)]
    assert percentile(values, q) == pytest.approx(np.percentile(values, q))
