"""The selective verdict: score and threshold chosen on val, `coverage.min`, the other gates on
the covered test items, and the planner's count for a NOT YET."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from fledgling.calls import Response, ToolCall
from fledgling.config import Gate
from fledgling.evals.gates import evaluate_gates, evaluate_selective
from fledgling.evals.runs import EvalRun, ItemResult

ANSWER = Response(tool_calls=[ToolCall(name="lookup_order", arguments='{"order_id": "A1"}')])


def run(model: str, split: str, rows: list[tuple[bool, dict[str, float]]], latency: float) -> EvalRun:
    """rows: (success, confidence scores) per item; call ids are the split and the index."""
    items = [ItemResult(f"{split}-{k}", "ground_truth", ANSWER, None, False, latency, 100, 10,
                        {"args_exact_match": float(ok), "success": float(ok), "schema_valid": 1.0,
                         **{f"confidence.{n}": v for n, v in conf.items()}})
             for k, (ok, conf) in enumerate(rows)]
    return EvalRun(f"{model}-{split}", "t", split, 1, None, model, "recorded" if model == "llm" else "gguf",
                   model != "llm", False, datetime.now(UTC), {"ground_truth": len(items)},
                   {"n": len(items), "metrics": {}, "latency_ms": {}, "errors": 0, "parse_failures": 0,
                    "cost_per_1k_usd": 2.0 if model == "llm" else None}, items)


def sure_then_unsure(split: str, sure: int, unsure: int, wrong_sure: int = 0):
    """The candidate is right where sure (mean -0.1) but for `wrong_sure`, a coin flip where not (-2)."""
    cand = [(k >= wrong_sure, {"mean_logprob": -0.1, "min_logprob": -0.3}) for k in range(sure)] + \
        [(k % 2 == 0, {"mean_logprob": -2.0, "min_logprob": -4.0}) for k in range(unsure)]
    ref = [(True, {}) for _ in range(sure + unsure)]
    return run("slm", split, cand, 100.0), run("llm", split, ref, 900.0)


GATES = {"args_accuracy": Gate(non_inferior=0.05), "schema_valid": Gate(min=0.9), "coverage": Gate(min=0.5)}


def test_swap_at_the_share_chosen_on_val():
    cv, rv = sure_then_unsure("val", 120, 80)
    ct, rt = sure_then_unsure("test", 150, 100)
    d = evaluate_selective(ct, rt, cv, rv, GATES, "toolcall")
    assert d.verdict == "SWAP", d.text
    assert d.text.startswith("SWAP at 60% coverage (confidence >= -0.1): non-inferior at delta=0.05 "
                             "on the covered items, paired CI [")
    assert d.test is not None and (d.test.covered, d.test.n) == (150, 250)
    assert [(g.metric, g.outcome) for g in d.gates] == [("schema_valid", "pass")]
    # blended: 150 at 100 ms, 100 at 100 + 900 ms
    assert d.test.blended_latency_ms["mean"] == (150 * 100 + 100 * 1000) / 250
    # the all-items verdict on the same run is NO: a coin flip on 40% of it
    assert evaluate_gates(ct, rt, GATES, "toolcall").verdict == "NO"


def test_no_threshold_reaches_the_minimum_coverage():
    cv, rv = sure_then_unsure("val", 120, 80)
    ct, rt = sure_then_unsure("test", 150, 100)
    d = evaluate_selective(ct, rt, cv, rv, {**GATES, "coverage": Gate(min=0.7)}, "toolcall")
    assert d.verdict == "NO" and d.text.startswith("NO threshold reaches parity with coverage >= 70%")
    assert d.test is None  # test is not looked at when val finds nothing


def test_not_yet_says_how_many_more_items_settle_it():
    cv, rv = sure_then_unsure("val", 120, 80)
    ct, rt = sure_then_unsure("test", 40, 27, wrong_sure=1)
    d = evaluate_selective(ct, rt, cv, rv, GATES, "toolcall")
    assert d.verdict == "NOT YET" and d.more_items_needed and d.more_items_needed > 0, d.text
    assert f"~{d.more_items_needed} more test items" in d.text
    # the same rates on a test split that large settle it
    k = math.ceil((67 + d.more_items_needed) / 67)
    ct2, rt2 = sure_then_unsure("test", 40 * k, 27 * k, wrong_sure=k)
    assert evaluate_selective(ct2, rt2, cv, rv, GATES, "toolcall").verdict == "SWAP"


def test_the_score_with_more_coverage_at_parity_on_val_wins():
    """mean_logprob cannot tell the coin flips from the sure answers here; min_logprob can."""
    cand = [(True, {"mean_logprob": -0.2, "min_logprob": -0.3}) for _ in range(120)] + \
        [(k % 2 == 0, {"mean_logprob": -0.1, "min_logprob": -3.0}) for k in range(80)]
    ref = [(True, {}) for _ in range(200)]
    cv, rv = run("slm", "val", cand, 100.0), run("llm", "val", ref, 900.0)
    ct, rt = run("slm", "test", cand, 100.0), run("llm", "test", ref, 900.0)
    d = evaluate_selective(ct, rt, cv, rv, GATES, "toolcall")
    assert d.score == "min_logprob" and d.scores["mean_logprob"] is None and d.scores["min_logprob"] == 0.6
    assert d.verdict == "SWAP"


def test_without_scores_the_verdict_waits():
    cand = [(True, {}) for _ in range(50)]
    cv, rv = run("slm", "val", cand, 100.0), run("llm", "val", cand, 900.0)
    d = evaluate_selective(cv, rv, cv, rv, GATES, "toolcall")
    assert d.verdict == "NOT YET" and "no confidence scores" in d.text
