"""Acceptance gates -> a verdict: SWAP, NOT YET (not enough evidence) or NO (evidence against).

Gates come from `[tasks.T.gates]` in fledgling.toml, one per metric:
`{ min = x }` (the metric's whole 95% interval must be at or above x), `{ max = x }` (for
latency and cost, the observed value must be at or below x; for rates, the whole interval),
`{ non_inferior = delta }` (the candidate's paired difference to the reference must be above
-delta at 95% confidence; see `stats.paired_non_inferiority`). Every gate says why it passed,
failed, or cannot tell yet.

`coverage = { min = x }` makes the verdict selective (`evaluate_selective`): the candidate
answers only the items it is sure of, at a confidence threshold chosen on the val split (the
largest coverage whose covered items are non-inferior, `evals/selective.py`), and every other
gate is then evaluated once, on the test items that threshold covers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from fledgling.config import Gate
from fledgling.evals.confidence import DEFAULT_SCORE, PREFIX, SCORES
from fledgling.evals.runs import EvalRun, ItemResult
from fledgling.evals.selective import (
    CoveragePoint,
    SelectiveItem,
    at_threshold,
    choose_threshold,
    threshold_for_coverage,
)
from fledgling.evals.stats import PairedComparison, latency_summary, mean_interval, paired_non_inferiority

Outcome = Literal["pass", "fail", "not_yet"]
Verdict = Literal["SWAP", "NOT YET", "NO"]

ALIASES = {"tool_name_accuracy": "tool_name_match", "args_accuracy": "args_exact_match",
           "schema_validity": "schema_valid", "accuracy": "success"}
POINT_METRICS = {"latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "cost_per_1k_usd",
                 "error_rate", "parse_failure_rate"}


@dataclass
class GateResult:
    metric: str
    rule: str
    outcome: Outcome
    reason: str
    observed: float | None = None
    comparison: PairedComparison | None = None


@dataclass
class Decision:
    verdict: Verdict
    gates: list[GateResult]
    default_gates: bool


def default_gates(kind: str) -> dict[str, Gate]:
    """Used when fledgling.toml sets none: the exact answer non-inferior at 5 points, valid output."""
    main = "args_exact_match" if kind == "toolcall" else "exact_match"
    return {main: Gate(non_inferior=0.05), "schema_valid": Gate(min=0.95)}


def point_value(run: EvalRun, metric: str) -> float | None:
    s = run.summary
    if metric.startswith("latency_p"):
        return (s.get("latency_ms") or {}).get(metric.removeprefix("latency_").removesuffix("_ms"))
    if metric == "cost_per_1k_usd":
        return s.get("cost_per_1k_usd")
    if metric == "error_rate":
        return s["errors"] / s["n"] if s.get("n") else None
    if metric == "parse_failure_rate":
        return s["parse_failures"] / s["n"] if s.get("n") else None
    m = s.get("metrics", {}).get(metric)
    return m["mean"] if m else None


def evaluate_gates(candidate: EvalRun, reference: EvalRun | None, gates: dict[str, Gate],
                   kind: str) -> Decision:
    chosen = {k: g for k, g in (gates or default_gates(kind)).items() if k != COVERAGE}
    results = [_one(ALIASES.get(name, name), name, gate, candidate, reference)
               for name, gate in chosen.items()]
    outcomes = {r.outcome for r in results}
    verdict: Verdict = "NO" if "fail" in outcomes else "NOT YET" if "not_yet" in outcomes else "SWAP"
    return Decision(verdict, results, default_gates=not gates or set(gates) == {COVERAGE})


def _one(metric: str, shown: str, gate: Gate, cand: EvalRun, ref: EvalRun | None) -> GateResult:
    if gate.non_inferior is not None:
        return _non_inferior(metric, shown, gate.non_inferior, cand, ref)
    value = point_value(cand, metric)
    interval = cand.summary.get("metrics", {}).get(metric)
    if value is None:
        return GateResult(shown, _rule(gate), "not_yet", f"no '{metric}' measured for this run")
    if gate.min is not None:
        low = value if interval is None or metric in POINT_METRICS else interval["low"]
        high = value if interval is None or metric in POINT_METRICS else interval["high"]
        if low >= gate.min:
            return GateResult(shown, _rule(gate), "pass",
                              f"{_fmt(value)} (95% CI low {_fmt(low)}) >= {gate.min}", value)
        if high < gate.min:
            return GateResult(shown, _rule(gate), "fail",
                              f"{_fmt(value)} (95% CI high {_fmt(high)}) < {gate.min}", value)
        return GateResult(shown, _rule(gate), "not_yet",
                          f"{_fmt(value)}: 95% CI [{_fmt(low)}, {_fmt(high)}] straddles {gate.min}; "
                          "more items needed", value)
    assert gate.max is not None
    low = value if interval is None or metric in POINT_METRICS else interval["low"]
    high = value if interval is None or metric in POINT_METRICS else interval["high"]
    if high <= gate.max:
        return GateResult(shown, _rule(gate), "pass", f"{_fmt(value)} <= {gate.max}", value)
    if low > gate.max:
        return GateResult(shown, _rule(gate), "fail", f"{_fmt(value)} > {gate.max}", value)
    return GateResult(shown, _rule(gate), "not_yet",
                      f"{_fmt(value)}: 95% CI [{_fmt(low)}, {_fmt(high)}] straddles {gate.max}", value)


def _non_inferior(metric: str, shown: str, delta: float, cand: EvalRun, ref: EvalRun | None) -> GateResult:
    rule = f"non-inferior to the reference, delta {delta}"
    if ref is None:
        return GateResult(shown, rule, "not_yet", "no reference run on this split; run "
                          "`fledgling eval --model recorded` first")
    ref_scores = {i.call_id: i.scores.get(metric) for i in ref.items}
    both = [(i.scores.get(metric), ref_scores.get(i.call_id)) for i in cand.items]
    pairs = [(c, r) for c, r in both if c is not None and r is not None]
    if not pairs:
        return GateResult(shown, rule, "not_yet", f"no paired items with '{metric}' in both runs")
    cmp = paired_non_inferiority([c for c, _ in pairs], [r for _, r in pairs], delta)
    head = (f"diff {cmp.diff:+.3f} (95% CI [{cmp.low:+.3f}, {cmp.high:+.3f}], n={cmp.n}, {cmp.method})")
    if cmp.decision == "non_inferior":
        return GateResult(shown, rule, "pass", f"{head}: lower bound above -{delta}", cmp.diff, cmp)
    if cmp.decision == "inferior":
        return GateResult(shown, rule, "fail", f"{head}: whole interval below -{delta}", cmp.diff, cmp)
    more = (f"~{cmp.more_items_needed} more paired items would settle it at the observed rates"
            if cmp.more_items_needed is not None else "more items needed")
    return GateResult(shown, rule, "not_yet", f"{head}: straddles -{delta}; {more}", cmp.diff, cmp)


def _rule(gate: Gate) -> str:
    return f">= {gate.min}" if gate.min is not None else f"<= {gate.max}"


def _fmt(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 10 else f"{x:,.0f}"


# -- selective parity --------------------------------------------------------------------------

COVERAGE = "coverage"
DEFAULT_MIN_COVERAGE = 0.5


@dataclass
class SelectiveDecision:
    """The selective verdict: a threshold chosen on val, tested once on test."""

    verdict: Verdict
    text: str
    metric: str
    delta: float
    min_coverage: float
    score: str  # which confidence score (`evals/confidence.py`)
    val: CoveragePoint | None  # the chosen threshold on val (or the min-coverage point when none)
    test: CoveragePoint | None  # the same threshold on test
    gates: list[GateResult]  # the task's other gates, on the covered test items
    scores: dict[str, float | None]  # each score's largest coverage at parity on val (None: none)
    unscored: int  # test items without a confidence (never covered)
    more_items_needed: int | None = None  # test (or val) items that would settle a NOT YET


def selection_rule(gates: dict[str, Gate], kind: str) -> tuple[str, float]:
    """(metric, delta) the threshold must hold parity on: the task's first non-inferiority
    gate, else the default one."""
    for name, gate in (gates or {}).items():
        if gate.non_inferior is not None:
            return ALIASES.get(name, name), gate.non_inferior
    (name, gate), = ((k, g) for k, g in default_gates(kind).items() if g.non_inferior is not None)
    assert gate.non_inferior is not None
    return name, gate.non_inferior


def has_confidence(run: EvalRun) -> bool:
    return any(k.startswith(PREFIX) for i in run.items for k in i.scores)


def selective_items(cand: EvalRun, ref: EvalRun, metric: str, score: str = DEFAULT_SCORE) -> list[SelectiveItem]:
    """The paired items of two runs on one split, as the selective statistics read them."""
    by_id = {i.call_id: i for i in ref.items}
    cand_usd = (cand.summary.get("cost_per_1k_usd") or 0.0) / 1000  # a local model's compute: unpriced
    ref_cost = ref.summary.get("cost_per_1k_usd")
    out = []
    for c in cand.items:
        r = by_id.get(c.call_id)
        if r is None or r.scores.get(metric) is None:
            continue
        out.append(SelectiveItem(
            confidence=c.scores.get(PREFIX + score), candidate=c.scores.get(metric) == 1.0,
            reference=r.scores.get(metric) == 1.0, valid=_valid(c), candidate_ms=c.latency_ms,
            reference_ms=r.latency_ms if r.error is None else None, candidate_usd=cand_usd,
            reference_usd=ref_cost / 1000 if ref_cost is not None else None))
    return out


def _valid(item: ItemResult) -> bool:
    """Would the gateway serve this answer (before its confidence is looked at)?"""
    return item.error is None and item.prediction is not None and not item.parse_failed \
        and item.scores.get("schema_valid") != 0.0


def evaluate_selective(cand_test: EvalRun, ref_test: EvalRun, cand_val: EvalRun, ref_val: EvalRun,
                       gates: dict[str, Gate], kind: str) -> SelectiveDecision:
    """Choose the score and threshold on val (largest coverage at parity), test them on test."""
    declared = gates[COVERAGE].min if COVERAGE in gates else None
    min_cov: float = declared if declared is not None else DEFAULT_MIN_COVERAGE
    metric, delta = selection_rule({k: g for k, g in gates.items() if k != COVERAGE}, kind)
    chosen: dict[str, CoveragePoint | None] = {
        name: choose_threshold(selective_items(cand_val, ref_val, metric, name), delta, min_cov)
        for name in SCORES if has_score(cand_val, name)}
    covering = {n: p.coverage if p else None for n, p in chosen.items()}
    score = max((n for n, p in chosen.items() if p is not None), default=None,
                key=lambda n: (chosen[n].coverage, n == DEFAULT_SCORE))  # type: ignore[union-attr]
    test_items = selective_items(cand_test, ref_test, metric, score or DEFAULT_SCORE)
    unscored = sum(1 for i in test_items if i.confidence is None)
    head: dict[str, Any] = {"metric": metric, "delta": delta, "min_coverage": min_cov, "scores": covering,
                            "unscored": unscored}
    if not chosen:
        return SelectiveDecision("NOT YET", "no confidence scores in the candidate's val run: run it again "
                                 "with a local model (its answers carry token log-probabilities)",
                                 score=DEFAULT_SCORE, val=None, test=None, gates=[], **head)
    if score is None:
        return _none_on_val(cand_val, ref_val, head)
    val_point = chosen[score]
    assert val_point is not None
    test_point = at_threshold(test_items, val_point.threshold, delta)
    covered_ids = {c.call_id for c, it in zip(_paired(cand_test, ref_test, metric), test_items, strict=True)
                   if it.valid and it.confidence is not None and it.confidence >= val_point.threshold}
    others = {k: g for k, g in (gates or default_gates(kind)).items()
              if k != COVERAGE and ALIASES.get(k, k) != metric}
    sub = evaluate_gates(_restrict(cand_test, covered_ids), _restrict(ref_test, covered_ids), others, kind) \
        if others else Decision("SWAP", [], False)
    cmp = test_point.comparison
    where = f"{test_point.coverage:.0%} coverage (confidence >= {val_point.threshold:.4g})"
    ci = f"paired CI [{cmp.low:+.3f}, {cmp.high:+.3f}], n={cmp.n} of {test_point.n}"
    failed = [g for g in sub.gates if g.outcome == "fail"]
    pending = [g for g in sub.gates if g.outcome == "not_yet"]
    more = None
    if test_point.coverage < min_cov:
        verdict: Verdict = "NO"
        text = (f"NO: the val threshold covers {where} on test, under the minimum {min_cov:.0%}")
    elif cmp.decision == "inferior":
        verdict, text = "NO", f"NO at {where}: inferior at delta={delta:g} on the covered items, {ci}"
    elif failed:
        verdict = "NO"
        text = f"NO at {where}: on the covered items " + "; ".join(f"{g.metric} {g.reason}" for g in failed)
    elif cmp.decision == "inconclusive":
        verdict = "NOT YET"
        covered_more = cmp.more_items_needed
        more = math.ceil(covered_more / test_point.coverage) if covered_more is not None and test_point.coverage \
            else None
        text = (f"NOT YET at {where}: {ci} straddles -{delta:g}; " +
                (f"~{more} more test items (~{covered_more} covered) would settle it at the observed rates"
                 if more is not None else "more items needed"))
    elif pending:
        verdict = "NOT YET"
        text = f"NOT YET at {where}: on the covered items " + "; ".join(f"{g.metric} {g.reason}" for g in pending)
    else:
        verdict = "SWAP"
        text = f"SWAP at {where}: non-inferior at delta={delta:g} on the covered items, {ci}"
    return SelectiveDecision(verdict, text, score=score, val=val_point, test=test_point, gates=sub.gates,
                             more_items_needed=more, **head)


def has_score(run: EvalRun, score: str) -> bool:
    return any(PREFIX + score in i.scores for i in run.items)


def _paired(cand: EvalRun, ref: EvalRun, metric: str) -> list[ItemResult]:
    """The candidate's items that `selective_items` keeps, in its order."""
    by_id = {i.call_id: i for i in ref.items}
    return [c for c in cand.items if (r := by_id.get(c.call_id)) is not None and r.scores.get(metric) is not None]


def _none_on_val(cand_val: EvalRun, ref_val: EvalRun, head: dict[str, Any]) -> SelectiveDecision:
    """No threshold reaches parity on val: NO, or NOT YET with the items that would settle it
    at the most confident share that still meets the minimum coverage."""
    metric, delta, min_cov = head["metric"], head["delta"], head["min_coverage"]
    items = selective_items(cand_val, ref_val, metric, DEFAULT_SCORE)
    t = threshold_for_coverage(items, min_cov)
    text = f"NO threshold reaches parity with coverage >= {min_cov:.0%} (on val, delta={delta:g})"
    if t is None:
        return SelectiveDecision("NO", text + ": too few valid, scored answers", score=DEFAULT_SCORE,
                                 val=None, test=None, gates=[], **head)
    point = at_threshold(items, t, delta)
    cmp = point.comparison
    text += f"; at {point.coverage:.0%}: paired CI [{cmp.low:+.3f}, {cmp.high:+.3f}], n={cmp.n}"
    if cmp.decision == "inconclusive" and cmp.more_items_needed is not None and point.coverage:
        more = math.ceil(cmp.more_items_needed / point.coverage)
        return SelectiveDecision("NOT YET", text + f"; ~{more} more val items would settle it at the observed "
                                 "rates", score=DEFAULT_SCORE, val=point, test=None, gates=[],
                                 more_items_needed=more, **head)
    return SelectiveDecision("NO", text, score=DEFAULT_SCORE, val=point, test=None, gates=[], **head)


def _restrict(run: EvalRun, ids: set[str]) -> EvalRun:
    """The run on some of its items, its summary recomputed on them (cost per call kept)."""
    items = [i for i in run.items if i.call_id in ids]
    metrics = {}
    for name in {k for i in items for k in i.scores if not k.startswith(PREFIX)}:
        values = [v for i in items if (v := i.scores.get(name)) is not None]
        if values:
            est = mean_interval(values)
            metrics[name] = {"mean": est.mean, "low": max(0.0, est.low), "high": min(1.0, est.high), "n": est.n}
    summary = {**run.summary, "n": len(items), "metrics": metrics,
               "latency_ms": latency_summary([i.latency_ms for i in items if i.error is None]),
               "errors": sum(1 for i in items if i.error), "parse_failures": sum(1 for i in items if i.parse_failed)}
    return replace(run, summary=summary, items=items)
