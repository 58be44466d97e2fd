"""The swap-readiness report as data: verdict and gates, metrics with intervals, per-tool
accuracy, latency, cost and projected saving, and the worst failures side by side.

HTML, Markdown and JSON are renderings of this one dict (`report/html.py`, `report/markdown.py`),
so the three always say the same thing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from fledgling.config import Settings
from fledgling.errors import InputError
from fledgling.evals.gates import COVERAGE, Decision, evaluate_gates
from fledgling.evals.runs import EvalRun, describe_cost, describe_latency, list_runs, load_run_items, reference_of
from fledgling.evals.scoring import compare_tool_calls
from fledgling.evals.stats import wilson_interval
from fledgling.report.selective import selective_section
from fledgling.store import CallFilter, Store

VERDICT_ORDER = {"SWAP": 0, "NOT YET": 1, "NO": 2}
MIN_VOLUME_HOURS = 1.0  # observed traffic shorter than this is a burst, not a rate to project
SHOWN_METRICS = ("success", "tool_name_match", "args_exact_match", "arg_precision", "arg_recall",
                 "schema_valid", "exact_match", "field_accuracy")
WORST = 8


def latest_runs(store: Store, task: str, split: str) -> list[EvalRun]:
    """The newest run per (model, prompt format, constrained) on this split."""
    seen: dict[tuple[str, str | None, bool], EvalRun] = {}
    for run in list_runs(store, task, split):
        seen.setdefault((run.model, run.prompt, run.constrained), run)
    return list(seen.values())


def build_report(store: Store, settings: Settings, task: str, split: str = "test",
                 kind: str | None = None) -> dict[str, Any]:
    runs = latest_runs(store, task, split)
    if not runs:
        raise InputError(f"task '{task}' has no eval runs on '{split}'; run `fledgling eval --task {task} "
                         "--model recorded` and a candidate first")
    for run in runs:
        load_run_items(store, run)
    task_cfg = settings.tasks.get(task)
    ref_name = task_cfg.reference if task_cfg and task_cfg.reference else "recorded"
    reference = next((r for r in runs if r.model == ref_name), None) or \
        next((r for r in runs if r.model_kind == "recorded"), None)
    candidates = [r for r in runs if r is not reference]
    gates = task_cfg.gates if task_cfg else {}
    kind = kind or ("toolcall" if any(r.summary["metrics"].get("args_exact_match") for r in runs) else "structured")
    decisions = {c.id: evaluate_gates(c, reference, gates, kind) for c in candidates}
    if task_cfg and task_cfg.candidate:
        primary = next((c for c in candidates if c.model == task_cfg.candidate), None)
    else:
        primary = None
    if primary is None and candidates:
        primary = min(candidates, key=lambda c: (VERDICT_ORDER[decisions[c.id].verdict],
                                                 -c.summary["metrics"].get("success", {}).get("mean", 0)))
    selective = _selective(store, task, split, primary, reference, ref_name, gates, kind)
    verdict = decisions[primary.id].verdict if primary else "NOT YET"
    if selective is not None and COVERAGE in gates:
        verdict = selective["verdict"]
    calls = {i.call_id for r in runs for i in r.items}
    call_by_id = {cid: store.get_call(cid) for cid in calls}
    volume = monthly_volume(store, task, task_cfg.monthly_calls if task_cfg else None)
    monthly = volume["calls"]
    return {
        "task": task, "split": split, "kind": kind,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "verdict": verdict,
        "selective": selective,
        "primary": primary.label if primary else None,
        "reference": _run_info(reference) if reference else None,
        "default_gates": decisions[primary.id].default_gates if primary else True,
        "candidates": [_candidate(c, decisions[c.id], reference, monthly) for c in candidates],
        "per_tool": _per_tool(runs, call_by_id),
        "tool_call_items": _tool_call_items(runs, call_by_id),
        "monthly_calls": monthly,
        "monthly_volume": volume,
        "usage": usage_coverage(store, task, call_by_id),
        "worst_failures": _worst(primary, reference, call_by_id) if primary else [],
    }


def _selective(store: Store, task: str, split: str, primary: EvalRun | None, reference: EvalRun | None,
               ref_name: str, gates: dict, kind: str) -> dict[str, Any] | None:
    """The selective verdict of the primary candidate: its threshold chosen on the val runs of
    the same candidate and reference, tested on this split."""
    if primary is None or reference is None or split == "val":
        return None
    val = latest_runs(store, task, "val")
    same = (primary.model, primary.prompt, primary.constrained)
    cand_val = next((r for r in val if (r.model, r.prompt, r.constrained) == same), None)
    ref_val = next((r for r in val if r.model == ref_name), None) or \
        next((r for r in val if r.model_kind == "recorded"), None)
    for run in (cand_val, ref_val):
        if run is not None:
            load_run_items(store, run)
    return selective_section(primary, reference, cand_val, ref_val, gates, kind)


def _run_info(run: EvalRun) -> dict[str, Any]:
    return {"id": run.id, "label": run.label, "model": run.model, "kind": run.model_kind,
            "prompt": run.prompt, "constrained": run.constrained, "lenient": run.lenient, "n": run.n_items,
            "label_sources": run.label_sources, "created_at": run.created_at.isoformat(),
            "metrics": {k: v for k, v in run.summary["metrics"].items() if k in SHOWN_METRICS},
            "latency_ms": run.summary["latency_ms"],
            "latencies": run.summary.get("latency_samples_ms") or
            sorted(i.latency_ms for i in run.items if i.error is None),
            "latency_basis": run.summary.get("latency_basis"),
            "latency_note": describe_latency(run.summary.get("latency_basis")),
            "errors": run.summary["errors"], "parse_failures": run.summary["parse_failures"],
            "cost_per_1k_usd": run.summary.get("cost_per_1k_usd"),
            "cost_basis": run.summary.get("cost_basis"),
            "cost_note": describe_cost(run.summary.get("cost_basis"))}


def _candidate(run: EvalRun, decision: Decision, reference: EvalRun | None, monthly: float | None) -> dict[str, Any]:
    info = _run_info(run)
    info["verdict"] = decision.verdict
    info["gates"] = [{"metric": g.metric, "rule": g.rule, "outcome": g.outcome, "reason": g.reason,
                      "observed": g.observed,
                      "interval": [g.comparison.low, g.comparison.high] if g.comparison else None,
                      "more_items_needed": g.comparison.more_items_needed if g.comparison else None}
                     for g in decision.gates]
    ref_cost = reference.summary.get("cost_per_1k_usd") if reference else None
    cand_cost = run.summary.get("cost_per_1k_usd")  # None: unpriced, never free
    info["monthly_saving_usd"] = ((ref_cost - cand_cost) / 1000 * monthly
                                  if ref_cost is not None and cand_cost is not None and monthly else None)
    return info


def usage_coverage(store: Store, task: str, evaluated: dict[str, Any]) -> dict[str, Any]:
    """How many calls lack usage (their source reported none: tokens and cost unknown, not 0),
    among the task's stored calls and among the evaluated ones, with a sentence saying so."""
    groups = store.stats(CallFilter(task=task), by=("task",))
    stored, unknown = sum(g.calls for g in groups), sum(g.without_usage for g in groups)
    calls = [c for c in evaluated.values() if c is not None]
    unknown_evaluated = sum(1 for c in calls if c.usage.missing)
    if not unknown:
        note = f"all {stored:,} stored calls of the task have usage reported by their source"
    else:
        note = (f"{unknown:,} of {stored:,} stored calls of the task have no usage reported by their source "
                f"(tokens and cost unknown); {unknown_evaluated:,} of the {len(calls):,} evaluated calls")
        if unknown_evaluated:
            note += ", which the recorded cost leaves out, so it reads low"
    return {"calls": stored, "without_usage": unknown, "evaluated": len(calls),
            "evaluated_without_usage": unknown_evaluated, "note": note}


def monthly_volume(store: Store, task: str, configured: float | None,
                   min_hours: float = MIN_VOLUME_HOURS) -> dict[str, Any]:
    """Calls a month for the saving, and where the figure comes from: `config` (the task's
    `monthly_calls`), `observed` (the task's stored traffic, per 30 days, when it spans at least
    `min_hours`), or `calls: None` with the reason (a burst is not a rate)."""
    if configured is not None:
        return {"calls": configured, "source": "config", "note": f"{configured:,.0f} calls a month, "
                f"from [tasks.{task}].monthly_calls"}
    flt = CallFilter(task=task)
    n = store.count_calls(flt)
    first = store.query_calls(flt, limit=1, newest_first=False).items
    last = store.query_calls(flt, limit=1, newest_first=True).items
    if n < 2 or not first or not last:
        return {"calls": None, "source": None, "note": f"unknown: {n} call(s) observed; set "
                f"[tasks.{task}].monthly_calls"}
    start, end = first[0].created_at, last[0].created_at
    hours = (end - start).total_seconds() / 3600
    window = {"from": start.isoformat(timespec="seconds"), "to": end.isoformat(timespec="seconds"),
              "hours": hours, "calls": n}
    if hours < min_hours:
        return {"calls": None, "source": None, "window": window,
                "note": f"unknown: the {n:,} observed calls span {_span(hours)}, under the {min_hours:g} h "
                        f"needed to project a month from them; set [tasks.{task}].monthly_calls"}
    calls = n / hours * 24 * 30
    return {"calls": calls, "source": "observed", "window": window,
            "note": f"{calls:,.0f} calls a month, projected from {n:,} calls observed over {_span(hours)} "
                    f"({window['from']} to {window['to']})"}


def _span(hours: float) -> str:
    seconds = hours * 3600
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if hours < 2 else f"{hours:,.1f} h"


def _tool_key(call) -> str:
    ref = reference_of(call)
    if ref is None:
        return "?"
    names = sorted({tc.name for tc in ref[0].tool_calls})
    return "+".join(names) if names else "(no tool call)"


def _per_tool(runs: list[EvalRun], calls: dict) -> dict[str, dict[str, dict[str, float]]]:
    """success rate per reference tool (or class) and run: {tool: {run label: {mean, n}}}."""
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        for item in run.items:
            call = calls.get(item.call_id)
            if call is not None:
                table[_tool_key(call)][run.label].append(item.scores.get("success") or 0.0)
    return {tool: {label: {"mean": sum(v) / len(v), "n": len(v)} for label, v in by_run.items()}
            for tool, by_run in sorted(table.items())}


def _tool_call_items(runs: list[EvalRun], calls: dict) -> dict[str, dict[str, Any]]:
    """Tool-name and argument accuracy on the items whose reference calls a tool, per run, with
    Wilson intervals: {run label: {n, tool_name_match: {mean, low, high}, args_exact_match: ...}}.

    Over all items these metrics also count the turns answered in text, where a model that
    never calls a tool scores; this is the part a specialist is trained for."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        picked = [i for i in run.items if (call := calls.get(i.call_id)) is not None
                  and (ref := reference_of(call)) is not None and ref[0].tool_calls]
        if not picked:
            continue
        row: dict[str, Any] = {"n": len(picked)}
        for metric in ("tool_name_match", "args_exact_match"):
            hits = sum(1 for i in picked if i.scores.get(metric) == 1.0)
            low, high = wilson_interval(hits, len(picked))
            row[metric] = {"mean": hits / len(picked), "low": low, "high": high}
        out[run.label] = row
    return out


def _worst(cand: EvalRun, ref: EvalRun | None, calls: dict) -> list[dict[str, Any]]:
    """Failed items where the reference succeeded first, then the rest, lowest scores first."""
    ref_ok = {i.call_id: i.scores.get("success") for i in ref.items} if ref else {}
    failed = [i for i in cand.items if not i.scores.get("success")]
    failed.sort(key=lambda i: (-(ref_ok.get(i.call_id) or 0), i.scores.get("arg_recall") or
                               i.scores.get("field_accuracy") or 0, i.call_id))
    out = []
    for item in failed[:WORST]:
        call = calls.get(item.call_id)
        if call is None:
            continue
        reference = reference_of(call)
        ref_msg = reference[0].message() if reference else None
        pred_msg = item.prediction.message() if item.prediction else None
        out.append({"call_id": item.call_id,
                    "input": _last_user(call.request.messages),
                    "reference": ref_msg, "candidate": pred_msg,
                    "error": item.error, "parse_failed": item.parse_failed,
                    "differs": _differs(item, reference[0] if reference else None)})
    return out


def _last_user(messages: list[dict]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user":
            content = msg.get("content")
            return content if isinstance(content, str) else str(content)
    return ""


def _differs(item, reference) -> str:
    if item.error:
        return f"no answer: {item.error}"
    if item.parse_failed:
        return "the answer could not be parsed"
    if reference is None or item.prediction is None:
        return "no reference"
    if reference.tool_calls or item.prediction.tool_calls:
        cmp = compare_tool_calls(item.prediction.tool_calls, reference.tool_calls)
        want = sorted(tc.name for tc in reference.tool_calls) or ["(no call)"]
        got = sorted(tc.name for tc in item.prediction.tool_calls) or ["(no call)"]
        if not cmp.tool_name_match:
            return f"called {', '.join(got)} instead of {', '.join(want)}"
        return f"right tool, arguments differ (precision {cmp.arg_precision:.2f}, recall {cmp.arg_recall:.2f})"
    return (f"fields differ (field accuracy {item.scores.get('field_accuracy') or 0:.2f})"
            if item.scores.get("field_accuracy") is not None else "content differs")
