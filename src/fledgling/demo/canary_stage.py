"""The `fledgling demo` rollout stage: `support-agent` goes to canary with the tuned adapter.

A real gateway on loopback, in front of a stand-in LLM that replays the recorded answers, with
the task's candidate (the adapter the train stage selected, served in-process in the compact
prompt it was trained on; the base SmolLM2 in the compact prompt when nothing was trained) on
half of the sessions. Held-out test-split requests go through it, a few at a time, as the
agent sent them; then the stage prints the live figures: the share the SLM served, fallbacks
by reason, agreement with the LLM (on the LLM's half, where the candidate runs in shadow),
latency and the cost saved.

Bounded for a 2-core CPU: every request runs the candidate (served or in shadow), on the fast
engine (llama.cpp) when it is installed, so `REQUESTS` bounds the stage's time (docs/swap.md has
the measured figures; benchmarks/serving_latency.py measures the engines). The
rollout state stays stored: a `fledgling gateway` on this store starts in canary.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from typing import Any

import orjson

from fledgling.config import parse_settings
from fledgling.swap import rollout

TASK = "support-agent"
PERCENT = 50
REQUESTS = 16
CONCURRENCY = 4
BASE = "smollm2"  # the bundled base SLM, when no adapter was trained
SWAP = {"budget_ms": 45_000, "batch_size": 4, "batch_wait_ms": 50, "max_tokens": 256, "retries": 0}


def canary_stage(ctx: Any) -> str:
    from fledgling.contracts import load_contract
    from fledgling.demo.pricing import MODEL, PRICES
    from fledgling.demo.standin import RecordedAnswers, StandInUpstream
    from fledgling.evals.runs import load_items
    from fledgling.gateway.server import ServerThread, build_app
    from fledgling.swap.candidate import candidate_spec, open_candidate
    from fledgling.swap.figures import figures_table

    store, console = ctx.store, ctx.console
    _, _, items = load_items(store, TASK, "test", limit=REQUESTS)
    calls = [i.call for i in items if i.call.response is not None]
    trained = rollout.candidate_of(store, parse_settings({}), TASK)
    name = trained or BASE
    price_in, price_out = PRICES[MODEL]
    scale = float(getattr(ctx, "latency_scale", 0.0))  # the stand-in LLM takes the recorded latency x this
    with ServerThread(StandInUpstream(RecordedAnswers(calls), model=MODEL, latency_scale=scale)) as llm_url:
        models: dict[str, Any] = {"llm": {"kind": "openai", "base_url": llm_url + "/v1",
                                          "usd_per_mtok_in": price_in, "usd_per_mtok_out": price_out}}
        if not trained:
            models[BASE] = {"kind": "gguf", "path": BASE}
        settings = parse_settings({
            "models": models,
            "tasks": {TASK: {"upstream": "llm", "candidate": None if trained else BASE, "swap": SWAP}},
            "gateway": {"upstream": "llm", "spool_dir": tempfile.mkdtemp(prefix="fledgling-canary-"),
                        "spool_fsync_ms": 5}})
        app = build_app(settings, store, keys=frozenset())
        with console.status(f"loading the candidate {name} (in-process, constrained decoding)"):
            t0 = time.perf_counter()
            spec = candidate_spec(store, settings, name)
            swap = settings.tasks[TASK].swap
            candidate = open_candidate(spec, swap, pool=app.pool, contract=load_contract(store, TASK),
                                       prompt=None if trained else "compact")
            app.swap.candidates.put(name, candidate)
            loaded_s = time.perf_counter() - t0
        prompt = candidate.fingerprint["decoding"].get("prompt")
        engine = candidate.fingerprint["decoding"].get("engine")
        console.print(f"  candidate {name} ({'trained adapter' if trained else 'base model, nothing trained'}), "
                      f"{prompt} prompt, {engine} engine, loaded in {loaded_s:.1f} s")
        state = rollout.set_mode(store, settings, TASK, "canary", PERCENT, actor="demo",
                                 reason="demo: the tuned adapter answers half of the sessions")
        console.print(f"  {TASK} is now {state.mode} at {state.canary_percent:g}% (stored: a gateway on this "
                      "store starts that way)")
        with ServerThread(app) as gateway, _progress(console) as bar:
            job = bar.add_task(f"{len(calls)} requests through the gateway", total=len(calls))
            asyncio.run(_send(gateway + "/v1/chat/completions", calls,
                              lambda: bar.advance(job)))
            deadline = time.monotonic() + swap.budget_ms / 1000 + 5
            while not app.swap.idle() and time.monotonic() < deadline:  # shadow runs finish
                time.sleep(0.1)
            figures = app.swap.figures.snapshot().get(TASK)
            events = rollout.events(store, TASK, limit=1)
    assert figures is not None
    console.print(figures_table({TASK: figures}))
    recorded = sorted(c.latency_ms for c in calls if c.latency_ms)
    served = figures["served_by"].get("candidate", 0)
    agreement = f"{figures['agreement']:.0%} of {figures['compared']}" if figures["agreement"] is not None else "-"
    fallbacks = ", ".join(f"{k} {v}" for k, v in sorted(figures["fallbacks"].items())) or "none"
    if recorded:
        pace = f"after their recorded latency x {scale:g}" if scale > 0 else "at once"
        console.print(f"  the stand-in LLM answers {pace}; the recorded LLM calls took "
                      f"{recorded[len(recorded) // 2]:.0f} ms (p50)", highlight=False)
    if events and events[0].actor == "live-gate":
        console.print(f"  [yellow]the live gate rolled {TASK} back to shadow:[/] {events[0].reason}")
    ctx.results["canary"] = figures
    return (f"{TASK} canary {PERCENT}%: the SLM served {served} of {figures['requests']} requests "
            f"({figures['candidate_share']:.0%}), fallbacks: {fallbacks}, agreement with the LLM {agreement}, "
            f"saved {figures['saved_usd']:.4f} USD")


def _progress(console: Any) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


async def _send(url: str, calls: list[Any], tick: Any, concurrency: int = CONCURRENCY) -> None:
    """Each call's request as its agent sent it (its session for canary stickiness),
    `concurrency` at a time; the gateway gives each a new call id, so the traffic is recorded anew."""
    import aiohttp

    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=SWAP["budget_ms"] / 1000 * 3)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def one(call: Any) -> None:
            body = call.request.model_dump(mode="json", exclude_none=True)
            body.setdefault("model", call.model or "recorded")
            headers = {"content-type": "application/json", "x-fledgling-task": TASK,
                       "x-fledgling-metadata": orjson.dumps({"demo": "canary"}).decode()}
            if call.session_id:
                headers["x-fledgling-session"] = call.session_id
            async with gate, session.post(url, data=orjson.dumps(body), headers=headers) as resp:
                await resp.read()
            tick()

        await asyncio.gather(*(one(c) for c in calls))
