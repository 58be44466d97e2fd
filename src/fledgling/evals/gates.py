"""Acceptance gates -> a verdict: SWAP, NOT YET (not enough evidence) or NO (evidence against).

Gates come from `[tasks.T.gates]` in fledgling.toml, one per metric:
`{ min = x }` (the metric's whole 95% interval must be at or above x), `{ max = x }` (for
latency and cost, the observed value must be at or below x; for rates, the whole interval),
`{ non_inferior = delta }` (the candidate's paired difference to the reference must be above
-delta at 95% confidence; see `stats.paired_non_inferiority`). Every gate says why it passed,
failed, or cannot tell yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fledgling.config import Gate
from fledgling.evals.runs import EvalRun
from fledgling.evals.stats import PairedComparison, paired_non_inferiority

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
    chosen = gates or default_gates(kind)
    results = [_one(ALIASES.get(name, name), name, gate, candidate, reference)
               for name, gate in chosen.items()]
    outcomes = {r.outcome for r in results}
    verdict: Verdict = "NO" if "fail" in outcomes else "NOT YET" if "not_yet" in outcomes else "SWAP"
    return Decision(verdict, results, default_gates=not gates)


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
