"""The `fledgling demo` selective stage: support-agent is swapped for the share its candidate has
earned, at a threshold chosen on val and tested once on test, through a real gateway.

1. The task's candidate (the trained adapter, else the base SmolLM2 in the compact prompt) is
   loaded once, exactly as the gateway serves it (same prompt, same grammar), and evaluated on
   the first `VAL_ITEMS` of the val split and `TEST_ITEMS` of the test split, beside the
   recorded LLM on the same items. Every answer keeps its confidence scores.
2. The report chooses the score and the threshold on val (the largest coverage whose covered
   items are non-inferior to the LLM at delta) and tests them on test: the selective verdict.
3. The task moves to swapped at that threshold (`rollout.from_report`), with an audit share,
   and the same test requests go through a real gateway in front of a stand-in LLM that replays
   the recorded answers. The stage prints what the specialist served, the fallbacks by reason,
   agreement on the audited share, the blended latency (the candidate's own time, plus the
   recorded LLM time where the LLM answered) and the cost saved, beside the report's figures.

Whatever the verdict honestly is, it is printed; without a threshold nothing is swapped.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from fledgling.config import parse_settings
from fledgling.evals.stats import percentile, wilson_interval
from fledgling.swap import rollout

TASK = "support-agent"
# Every val and test item of the demo's 2,400 calls (seed 0: 123 and 252). Non-inferiority at
# delta 0.05 needs n: at 32 covered val items even a perfect specialist's paired interval starts
# near -0.11, so 64 items could never prove 50% coverage; at 236 it can.
VAL_ITEMS = 256
TEST_ITEMS = 256
AUDIT_PERCENT = 25.0  # a quarter, so a demo-sized run audits a handful; production: a few percent
GATES = {"success": {"non_inferior": 0.05}, "schema_valid": {"min": 0.95}, "coverage": {"min": 0.5}}
BASE = "smollm2"
SWAP = {"budget_ms": 45_000, "batch_size": 4, "batch_wait_ms": 50, "max_tokens": 256, "retries": 0}


def selective_stage(ctx: Any) -> str:
    from fledgling.contracts import load_contract
    from fledgling.demo.canary_stage import _progress, _send
    from fledgling.demo.pricing import MODEL, PRICES
    from fledgling.demo.standin import RecordedAnswers, StandInUpstream
    from fledgling.evals.runs import evaluate_model, load_items
    from fledgling.gateway.server import ServerThread, build_app
    from fledgling.models import catalog
    from fledgling.models.spec import resolve_model
    from fledgling.report import build_report, write_report
    from fledgling.swap.candidate import candidate_spec, open_candidate
    from fledgling.swap.figures import figures_table

    store, console = ctx.store, ctx.console
    trained = rollout.candidate_of(store, parse_settings({}), TASK)
    name = trained or BASE
    _, _, items = load_items(store, TASK, "test", limit=TEST_ITEMS)
    calls = [i.call for i in items if i.call.response is not None]
    price_in, price_out = PRICES[MODEL]
    declared = ctx.settings.tasks.get(TASK)
    gates = {k: g.model_dump(exclude_none=True) for k, g in declared.gates.items()} if declared else {}
    gates = {**(gates or GATES), "coverage": gates.get("coverage", GATES["coverage"])}
    with ServerThread(StandInUpstream(RecordedAnswers(calls), model=MODEL)) as llm_url:
        models: dict[str, Any] = {"llm": {"kind": "openai", "base_url": llm_url + "/v1",
                                          "usd_per_mtok_in": price_in, "usd_per_mtok_out": price_out}}
        # named, so the report's primary is this one; by alias, as fledgling.toml spells the keys
        models[name] = (catalog.get_model(store, name).settings().model_dump(exclude_none=True, by_alias=True)
                        if trained else {"kind": "gguf", "path": BASE})
        settings = parse_settings({
            "models": models,
            "tasks": {TASK: {"upstream": "llm", "candidate": name, "swap": SWAP, "gates": gates}},
            "gateway": {"upstream": "llm", "spool_dir": tempfile.mkdtemp(prefix="fledgling-selective-"),
                        "spool_fsync_ms": 5}})
        app = build_app(settings, store, keys=frozenset())
        with console.status(f"loading the candidate {name} (in-process, constrained decoding)"):
            t0 = time.perf_counter()
            spec = candidate_spec(store, settings, name)
            candidate = open_candidate(spec, settings.tasks[TASK].swap, pool=app.pool,
                                       contract=load_contract(store, TASK), prompt=None if trained else "compact")
            app.swap.candidates.put(name, candidate)
        console.print(f"  candidate {name}, {candidate.fingerprint['decoding'].get('prompt')} prompt, "
                      f"{candidate.fingerprint['decoding'].get('engine')} engine, loaded in "
                      f"{time.perf_counter() - t0:.1f} s", highlight=False)

        for split, limit in (("val", VAL_ITEMS), ("test", TEST_ITEMS)):
            evaluate_model(store, TASK, resolve_model("recorded"), split=split, limit=limit)
            with _progress(console) as bar:
                job = bar.add_task(f"{name} on {split}", total=limit)
                evaluate_model(store, TASK, spec, split=split, limit=limit, backend=candidate.backend,
                               progress=partial(bar.advance, job))
        report = build_report(store, settings, TASK)
        paths = write_report(report, Path(ctx.out_dir).parent / "reports" / TASK)
        sel = report.get("selective") or {}
        console.print(f"  selective verdict: [bold]{sel.get('text', 'no confidence scores')}[/]", highlight=False)
        if sel.get("scores_on_val"):
            console.print("  scores compared on val (coverage at parity): " + ", ".join(
                f"{k} {'-' if v is None else format(v, '.0%')}" for k, v in sel["scores_on_val"].items())
                + f"; used {sel['score']}", highlight=False)
        cal = sel.get("calibration") or {}
        if cal.get("ece") is not None:
            console.print(f"  calibration of {cal['score']} on test: ECE {cal['ece']:.3f}  [dim]{paths['html']}[/]",
                          highlight=False)
        ctx.results["selective_report"] = sel
        if sel.get("threshold") is not None:
            chosen = rollout.from_report(report, TASK, AUDIT_PERCENT)
        elif (sel.get("val") or {}).get("threshold") is not None:
            chosen = rollout.Selective(sel["val"]["threshold"], sel.get("score") or "mean_logprob", AUDIT_PERCENT,
                                       sel["verdict"], "unproven: " + sel["text"])
            console.print(f"  [yellow]no threshold is proven[/]: to show the live part, the demo swaps at the most "
                          f"confident {sel['min_coverage']:.0%} of val anyway (a deployment would not); the "
                          "audit share and the live gate watch it", highlight=False)
        else:
            return f"{TASK}: {sel.get('text', 'no selective verdict')}; nothing swapped"
        state = rollout.set_mode(store, settings, TASK, "swapped", actor="demo", selective=chosen,
                                 reason="demo: swapped for the share the report proved")
        console.print(f"  {TASK} is now swapped at {state.confidence_score} >= {state.min_confidence:.4g}, "
                      f"audit {state.audit_percent:g}% (stored)", highlight=False)
        with ServerThread(app) as gateway, _progress(console) as bar:
            job = bar.add_task(f"{len(calls)} held-out requests through the gateway", total=len(calls))
            started = datetime.now(UTC)
            # one at a time, as the report's latencies were measured: with several in flight on
            # two cores, each request's time would include the others' (live p50 4.7 s vs 1.0 s)
            asyncio.run(_send(gateway + "/v1/chat/completions", calls, lambda: bar.advance(job), concurrency=1))
            deadline = time.monotonic() + 60
            while not app.swap.idle() and time.monotonic() < deadline:  # audits finish
                time.sleep(0.1)
            figures = app.swap.figures.snapshot().get(TASK)
            assert app.recorder.drain(30)
    assert figures is not None
    console.print(figures_table({TASK: figures}))
    live = _live(store, calls, started)
    test = sel.get("test") or _at(store, name, sel, chosen.min_confidence)
    lo, hi = wilson_interval(test["covered"], test["n"])
    served = figures["served_by"].get("candidate", 0)
    share = served / figures["requests"] if figures["requests"] else 0.0
    inside = lo <= share <= hi
    audited = figures["audited"] - figures["audit_failed"]
    audit = f"{figures['audit_agreement']:.0%} of {audited}" if figures["audit_agreement"] is not None else "-"
    fallbacks = ", ".join(f"{k} {v}" for k, v in sorted(figures["fallbacks"].items())) or "none"
    saved = figures["saved_usd"] - figures["audit_cost_usd"]
    report_ms = test["blended_latency_ms"]
    console.print(f"  served by the specialist: {served} of {figures['requests']} ({share:.0%}); the report's test "
                  f"coverage {test['coverage']:.0%} [95% CI {lo:.0%}, {hi:.0%}]: "
                  f"{'inside' if inside else 'OUTSIDE'} it", highlight=False)
    console.print(f"  blended latency live p50 {_ms(live['p50'])} / p95 {_ms(live['p95'])} ms "
                  f"(report on test: {_ms(report_ms.get('p50'))} / {_ms(report_ms.get('p95'))} ms); "
                  f"agreement on the audited share {audit}; cost saved {saved:.4f} USD after the audits' "
                  f"{figures['audit_cost_usd']:.4f}", highlight=False)
    ctx.results["selective"] = {"figures": figures, "live_latency": live, "inside": inside}
    return (f"{TASK} swapped at {chosen.confidence_score} >= {chosen.min_confidence:.4g} ({sel['verdict']}): "
            f"the SLM served {served} of {figures['requests']} ({share:.0%}; report {test['coverage']:.0%}), "
            f"fallbacks: {fallbacks}, audit agreement {audit}, blended p50 {_ms(live['p50'])} ms, "
            f"saved {saved:.4f} USD")


def _at(store: Any, name: str, sel: dict[str, Any], threshold: float) -> dict[str, Any]:
    """The test figures at a threshold the report did not test (an unproven one)."""
    from fledgling.evals.gates import selective_items
    from fledgling.evals.runs import load_run_items
    from fledgling.evals.selective import at_threshold
    from fledgling.report.parity import latest_runs

    runs = latest_runs(store, TASK, "test")
    cand = load_run_items(store, next(r for r in runs if r.model == name))
    ref = load_run_items(store, next(r for r in runs if r.model == "recorded"))
    return at_threshold(selective_items(cand, ref, sel["metric"], sel["score"]), threshold, sel["delta"]).as_dict()


def _live(store: Any, sent: list[Any], since: datetime) -> dict[str, float | None]:
    """Blended latency of the gateway's calls: the candidate's time, plus the recorded LLM time
    of the same request where the LLM answered (the stand-in LLM itself answers at once)."""
    from fledgling.store import CallFilter

    recorded = {_key(c): c.latency_ms for c in sent}
    out = []
    for call in store.iter_calls(CallFilter(task=TASK, since=since)):
        route = (call.metadata or {}).get("route") or {}
        if route.get("mode") != "swapped":
            continue
        cand_ms = ((call.metadata or {}).get("candidate") or {}).get("latency_ms") or 0.0
        llm_ms = recorded.get(_key(call)) if route.get("served_by") == "llm" else 0.0
        if llm_ms is None:
            continue
        out.append(cand_ms + llm_ms)
    return {"n": len(out), "p50": percentile(out, 50), "p95": percentile(out, 95),
            "mean": sum(out) / len(out) if out else None}


def _key(call: Any) -> str:
    return call.request.model_dump_json(include={"messages", "tools"})


def _ms(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.0f}"
