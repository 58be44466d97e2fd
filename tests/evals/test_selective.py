"""Selective statistics against a brute-force reference on synthetic runs: coverage, the paired
counts and intervals on the covered items, the blended system, and the threshold choice."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from fledgling.evals.selective import (
    SelectiveItem,
    at_threshold,
    choose_threshold,
    reliability,
    risk_coverage,
    threshold_for_coverage,
)
from fledgling.evals.stats import newcombe_paired_interval

item = st.builds(
    SelectiveItem,
    confidence=st.one_of(st.none(), st.sampled_from([-3.0, -2.0, -1.5, -1.0, -0.5, -0.25, -0.1, 0.0])),
    candidate=st.booleans(), reference=st.booleans(), valid=st.booleans(),
    candidate_ms=st.floats(1, 500), reference_ms=st.one_of(st.none(), st.floats(100, 3000)),
    candidate_usd=st.just(0.0), reference_usd=st.one_of(st.none(), st.floats(0.0001, 0.01)))
runs = st.lists(item, min_size=1, max_size=80)


def brute(items, t, delta):
    """Everything about threshold t, counted item by item with no shared code."""
    cov = [it for it in items if it.valid and it.confidence is not None and it.confidence >= t]
    a = sum(1 for it in cov if it.candidate and it.reference)
    b = sum(1 for it in cov if it.candidate and not it.reference)
    c = sum(1 for it in cov if not it.candidate and it.reference)
    d = len(cov) - a - b - c
    low, high = newcombe_paired_interval(a, b, c, d) if cov else (-1.0, 1.0)
    decision = "non_inferior" if cov and low > -delta else "inferior" if cov and high < -delta else "inconclusive"
    served = [(it.candidate if it in cov else it.reference) for it in items]
    ms = []
    for it in items:
        if it in cov:
            ms.append(it.candidate_ms)
        elif it.reference_ms is not None:
            ms.append(it.candidate_ms + it.reference_ms)
        else:
            ms.append(None)
    usd = []
    for it in items:
        usd.append(it.candidate_usd if it in cov else
                   None if it.reference_usd is None else it.candidate_usd + it.reference_usd)
    return {"covered": len(cov), "abcd": (a, b, c, d), "low": low, "high": high, "decision": decision,
            "blended": sum(served) / len(items), "ms": ms, "usd": usd}


@settings(max_examples=300, deadline=None)
@given(runs, st.sampled_from([0.02, 0.05, 0.1]))
def test_every_point_matches_brute_force(items, delta):
    points = risk_coverage(items, delta)
    coverable = {it.confidence for it in items if it.valid and it.confidence is not None}
    assert [p.threshold for p in points] == sorted(coverable, reverse=True)
    assert [p.covered for p in points] == sorted(p.covered for p in points)  # coverage grows
    for p in points:
        ref = brute(items, p.threshold, delta)
        assert p.n == len(items) and p.covered == ref["covered"] > 0
        cmp = p.comparison
        assert (cmp.both, cmp.candidate_only, cmp.reference_only, cmp.neither) == ref["abcd"]
        assert cmp.low == pytest.approx(ref["low"]) and cmp.high == pytest.approx(ref["high"])
        assert cmp.decision == ref["decision"]
        a, b, c, _ = ref["abcd"]
        lo, hi = proportion_confint(a + b, ref["covered"], method="wilson")
        assert p.candidate.mean == pytest.approx((a + b) / ref["covered"])
        assert (p.candidate.low, p.candidate.high) == (pytest.approx(lo), pytest.approx(hi))
        assert p.reference.mean == pytest.approx((a + c) / ref["covered"])
        assert p.blended_success == pytest.approx(ref["blended"])
        if None in ref["ms"]:
            assert p.blended_latency_ms["mean"] is None
        else:
            assert p.blended_latency_ms["mean"] == pytest.approx(sum(ref["ms"]) / len(items))
        if None in ref["usd"]:
            assert p.blended_usd_per_1k is None
        else:
            assert p.blended_usd_per_1k == pytest.approx(sum(ref["usd"]) * 1000 / len(items))


@settings(max_examples=300, deadline=None)
@given(runs, st.sampled_from([0.02, 0.05, 0.1]), st.sampled_from([0.0, 0.3, 0.5]))
def test_threshold_choice_is_the_largest_non_inferior_coverage(items, delta, min_coverage):
    candidates = sorted({it.confidence for it in items if it.valid and it.confidence is not None})
    ok = [(brute(items, t, delta)["covered"], t) for t in candidates
          if brute(items, t, delta)["decision"] == "non_inferior"
          and brute(items, t, delta)["covered"] >= min_coverage * len(items)]
    chosen = choose_threshold(items, delta, min_coverage)
    if not ok:
        assert chosen is None
    else:
        covered, t = max(ok)
        assert chosen is not None and (chosen.covered, chosen.threshold) == (covered, t)


@settings(max_examples=100, deadline=None)
@given(runs, runs)
def test_choice_on_val_ignores_test(val, test):
    """The threshold comes from val alone; test only says how it fares there."""
    chosen = choose_threshold(val, 0.05)
    again = choose_threshold(val, 0.05)
    assert (chosen and chosen.threshold) == (again and again.threshold)
    if chosen is not None:
        on_test = at_threshold(test, chosen.threshold, 0.05)
        assert on_test.covered == brute(test, chosen.threshold, 0.05)["covered"]


def test_a_sure_specialist_earns_its_share():
    """Right where sure (conf -0.1, 120 items), a coin flip where not (conf -2, 80 items): the
    covered share is the sure part, non-inferior; the whole run is not."""
    sure = [SelectiveItem(-0.1, True, True, candidate_ms=100, reference_ms=900) for _ in range(120)]
    unsure = [SelectiveItem(-2.0, k % 2 == 0, True, candidate_ms=100, reference_ms=900) for k in range(80)]
    items = sure + unsure
    chosen = choose_threshold(items, 0.05, 0.5)
    assert chosen is not None and chosen.threshold == -0.1 and chosen.coverage == 0.6
    assert chosen.comparison.low > -0.05
    whole = at_threshold(items, -2.0, 0.05)
    assert whole.comparison.decision == "inferior"
    assert chosen.blended_latency_ms["mean"] == pytest.approx((120 * 100 + 80 * 1000) / 200)
    assert threshold_for_coverage(items, 0.5) == -0.1 and threshold_for_coverage(items, 0.7) == -2.0


def test_unscored_and_invalid_answers_are_never_covered():
    items = [SelectiveItem(None, True, True), SelectiveItem(0.0, True, True, valid=False),
             SelectiveItem(-1.0, True, True)]
    (point,) = risk_coverage(items, 0.05)
    assert point.threshold == -1.0 and point.covered == 1 and point.n == 3


def test_reliability_bins_and_ece():
    pairs = [(math.log(0.95), True)] * 9 + [(math.log(0.95), False)] + [(math.log(0.35), False)] * 10
    bins, ece = reliability(pairs)
    assert [(b.n, round(b.accuracy, 2)) for b in bins] == [(10, 0.0), (10, 0.9)]
    # |0.9 - 0.95| and |0 - 0.35|, each half the items
    assert ece == pytest.approx(0.5 * 0.05 + 0.5 * 0.35)
    assert reliability([]) == ([], None)
