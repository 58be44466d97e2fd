"""Serving latency of the specialist, engine by engine, beside the recorded LLM's.

Workload: the demo's support-agent test items (the demo's traffic, seed 0, 2,000 calls, its
contract and curation, as `fledgling demo` builds them), one call at a time (batch 1),
constrained decoding, greedy. Models: the base SmolLM2-135M (compact prompt, with the tool
signatures it needs) and the tuned adapter (in the prompt it was trained on; `--adapter DIR`,
default: the newest support-agent adapter a demo or `fledgling train` run left in .fledgling/runs).
Engines, side by side in one process on the same items:

- transformers: the `LocalBackend` loop (SmolLM2's GGUF dequantised, PEFT adapter merged);
- llama.cpp: `LlamaCppBackend` on the same GGUF, with its weights served in three types: the
  file's own Q4_1 with the adapter applied at run time (`gguf_type = "source"`), a Q8_0 copy with
  the adapter merged in (the default) and a Q4_0 copy; Q8_0 with one forward pass per answer token
  (`jump-forward off`) and with grammar-forced tokens run as one multi-token step (`jump-forward
  on`, the default).

Per row: p50 / p95 ms per call (wall time of the call, prompt to parsed answer), answer tokens/s
(answer tokens over the summed call time), mean answer tokens and forward passes per call, the
share of contract-valid answers and of answers calling the reference's tool, the answers equal
to the transformers engine's (same model, same items), and the load time. The recorded LLM's
latency of the same items is printed beside them, and every ratio is against the transformers
engine in the same run. The transformers engine is slow at batch 1, so it runs on the first
`--transformers-items` items only; the "vs transformers" ratio is the tokens/s of those same
items. Then: requests/s and client p50 at 8 concurrent requests through a real gateway on
loopback (task in `swapped` mode, the llama.cpp candidate answering, a stand-in LLM behind it as
the fallback).

    .venv/bin/python benchmarks/serving_latency.py [--items 48] [--transformers-items 12]
        [--adapter DIR] [--threads N] [--gateway-requests 48]

Targets (issue #15): p50 < 150 ms and p95 < 300 ms per support-agent tool call, >= 3x the
transformers engine's tokens/s. Print the load average with the figures: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

TASK = "support-agent"
MAX_NEW_TOKENS = 256  # the demo's cap: the bounded grammar keeps every tool and optional argument


def demo_items(tmp: Path, n_calls: int = 2000, seed: int = 0) -> tuple[Any, list[Any], Any]:
    """(store, test items, contract) built as the demo builds them."""
    from fledgling.contracts import infer_contract, save_contract
    from fledgling.curate import curate
    from fledgling.demo import generate_calls
    from fledgling.evals.runs import load_items, task_contract
    from fledgling.store import CallFilter, Store

    store = Store(f"sqlite:///{tmp}/bench.db")
    store.insert_calls(generate_calls(seed=seed, n=n_calls))
    save_contract(store, infer_contract(store.iter_calls(CallFilter(task=TASK)), TASK))
    curate(store, TASK, seed=seed, out_dir=tmp / "datasets")
    _, version, items = load_items(store, TASK, "test")
    return store, items, task_contract(store, TASK, version, items)


def newest_adapter() -> Path | None:
    found = sorted(Path(".fledgling/runs").glob(f"{TASK}-*/adapter/adapter_config.json"),
                   key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(backend: Any, items: list[Any], contract: Any) -> dict[str, Any]:
    from fledgling.contracts import validate

    backend.generate_sync([items[0].call.request])  # warm: the grammar compiled
    if hasattr(backend, "clear_prefix_cache"):
        backend.clear_prefix_cache()  # each pass starts cold: no prompt kept from an earlier pass
    ms, tokens, steps, valid, tool_ok, texts, counts = [], 0, 0, 0, 0, [], []
    for item in items:
        req = item.call.request
        started = time.perf_counter()
        gen = backend.generate_sync([req])[0]
        ms.append((time.perf_counter() - started) * 1000)
        tokens += gen.output_tokens
        counts.append(gen.output_tokens)
        steps += getattr(backend, "last_steps", gen.output_tokens)
        texts.append(gen.text or "")
        if gen.response is not None:
            valid += not validate(gen.response, contract, tool_choice=req.tool_choice)
            names = sorted(tc.name for tc in gen.response.tool_calls)
            tool_ok += names == sorted(tc.name for tc in item.reference.tool_calls)
    return {"n": len(items), "p50": pct(ms, 0.5), "p95": pct(ms, 0.95), "tok_s": tokens / (sum(ms) / 1000),
            "tokens": tokens / len(items), "steps": steps / len(items), "valid": valid / len(items),
            "tool": tool_ok / len(items), "texts": texts, "ms": ms, "counts": counts}


def rate_on_first(m: dict[str, Any], n: int) -> float:
    """Answer tokens/s over the first `n` items only (the items the transformers engine ran)."""
    return sum(m["counts"][:n]) / (sum(m["ms"][:n]) / 1000)


def gateway_throughput(spec: Any, prompt: str | None, store: Any, items: list[Any], contract: Any,
                       concurrency: int) -> tuple[float, float, int, dict[str, int]]:
    """(requests/s, client p50 ms, requests, served_by counts) at `concurrency` through a gateway."""
    import aiohttp
    import orjson

    from fledgling.config import parse_settings
    from fledgling.demo.standin import RecordedAnswers, StandInUpstream
    from fledgling.gateway.server import ServerThread, build_app
    from fledgling.swap import rollout
    from fledgling.swap.candidate import open_candidate

    calls = [i.call for i in items]
    swap = {"budget_ms": 30_000, "batch_size": 8, "batch_wait_ms": 2, "max_tokens": MAX_NEW_TOKENS, "retries": 0}
    with ServerThread(StandInUpstream(RecordedAnswers(calls))) as llm_url:
        settings = parse_settings({
            "models": {"llm": {"kind": "openai", "base_url": llm_url + "/v1"},
                       "slm": spec.settings.model_dump(exclude_none=True, by_alias=True)},
            "tasks": {TASK: {"upstream": "llm", "candidate": "slm", "swap": swap}},
            "gateway": {"upstream": "llm", "spool_dir": tempfile.mkdtemp(prefix="bench-spool-"),
                        "spool_fsync_ms": 5}})
        app = build_app(settings, store, keys=frozenset())
        candidate = open_candidate(spec.__class__("slm", spec.settings), settings.tasks[TASK].swap, pool=app.pool,
                                   contract=contract, prompt=prompt)
        app.swap.candidates.put("slm", candidate)
        rollout.set_mode(store, settings, TASK, "swapped", actor="benchmark", reason="serving_latency")
        served: dict[str, int] = {}
        latencies: list[float] = []

        async def run(url: str) -> float:
            gate = asyncio.Semaphore(concurrency)
            async with aiohttp.ClientSession() as session:
                async def one(call: Any) -> None:
                    body = call.request.model_dump(mode="json", exclude_none=True)
                    body.setdefault("model", "gpt-4o")
                    async with gate:
                        t0 = time.perf_counter()
                        async with session.post(url, data=orjson.dumps(body), headers={
                                "content-type": "application/json", "x-fledgling-task": TASK}) as resp:
                            await resp.read()
                        latencies.append((time.perf_counter() - t0) * 1000)
                        who = resp.headers.get("x-fledgling-served-by", f"HTTP {resp.status}")
                        served[who] = served.get(who, 0) + 1

                await asyncio.gather(*(one(c) for c in calls[:2]))  # warm
                latencies.clear()
                served.clear()
                started = time.perf_counter()
                await asyncio.gather(*(one(c) for c in calls))
                return time.perf_counter() - started

        with ServerThread(app) as gateway:
            seconds = asyncio.run(run(gateway + "/v1/chat/completions"))
        figures = app.swap.figures.snapshot().get(TASK) or {}
        served.update({f"fallback {k}": v for k, v in (figures.get("fallbacks") or {}).items()})
        rollout.set_mode(store, settings, TASK, "record", actor="benchmark", reason="done")
    return len(calls) / seconds, pct(latencies, 0.5), len(calls), served


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=48)
    ap.add_argument("--transformers-items", type=int, default=12)
    ap.add_argument("--adapter", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--gateway-requests", type=int, default=48)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()

    from fledgling.config import ModelSettings
    from fledgling.models.local import decode_threads
    from fledgling.models.spec import ModelSpec, default_prompt, open_local
    from fledgling.train.lora import quiet_libraries

    quiet_libraries()
    console = Console(width=240)
    threads = decode_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    with console.status("building the demo's support-agent test items"):
        store, items, contract = demo_items(tmp)
    items = items[: args.items]
    recorded = [i.call.latency_ms for i in items if i.call.latency_ms]
    adapter = args.adapter or newest_adapter()
    models = [("base", ModelSpec("smollm2", ModelSettings(kind="gguf", path="smollm2")), "compact")]
    if adapter is not None:
        ms = ModelSettings(kind="hf", base="smollm2-135m-instruct", adapter=str(adapter))
        models.append(("tuned", ModelSpec("tuned", ms), default_prompt(ms)[0]))
    console.print(f"{len(items)} {TASK} test items, constrained, batch 1, {threads} thread(s), "
                  f"tuned adapter: {adapter or 'none found (train one: fledgling demo or fledgling train)'}; "
                  f"load average at start: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")

    reuse: dict[tuple[str, str], float] = {}
    table = Table(title=f"{TASK}: ms per call and answer tokens/s, batch 1, constrained")
    for col in ("model", "engine", "items", "p50 ms", "p95 ms", "tokens/s", "vs transformers", "answer tokens",
                "forward passes", "valid", "reference tool", "same as transformers", "load s"):
        table.add_column(col, justify="left" if col in ("model", "engine") else "right")
    for label, spec, prompt in models:
        task = dict(task=TASK, allow_text=bool((contract.stats or {}).get("no_tool_call_share")))
        started = time.perf_counter()
        slow = open_local(spec, constrained=True, max_new_tokens=MAX_NEW_TOKENS, prompt=prompt, threads=threads,
                          engine="transformers").variant(batch_size=1, **task)
        slow_load = time.perf_counter() - started
        few = items[: args.transformers_items]
        with console.status(f"{label}: transformers on {len(few)} items"):
            ref = measure(slow, few, contract)
        rows = [("transformers (fp32)", ref, slow_load)]
        del slow
        for gguf_type, jumps in (("source", (True,)), ("q8_0", (False, True)), ("q4_0", (True,))):
            typed = spec.__class__(spec.name, spec.settings.model_copy(update={"gguf_type": gguf_type}))
            started = time.perf_counter()
            fast = open_local(typed, constrained=True, max_new_tokens=MAX_NEW_TOKENS, prompt=prompt,
                              threads=threads, engine="llama.cpp").variant(**task)
            fast_load = time.perf_counter() - started
            if getattr(fast, "engine_name", None) != "llama.cpp":
                console.print("[red]llama.cpp is not installed: run scripts/llama_cpp.sh[/]")
                return
            for jump in jumps:
                name = f"llama.cpp {fast.weights_type}, jump-fwd {'on' if jump else 'off'}"
                with console.status(f"{label}: {name}"):
                    got = measure(fast.variant(jump_forward=jump), items, contract)
                rows.append((name, got, fast_load))
                cache = fast.prefix_cache
                reuse[label, name] = cache["reused_tokens"] / max(1, cache["prompt_tokens"])
            del fast
        for engine, m, load in rows:
            same = sum(a == b for a, b in zip(m["texts"], ref["texts"], strict=False))
            table.add_row(label, engine, str(m["n"]), f"{m['p50']:.0f}", f"{m['p95']:.0f}", f"{m['tok_s']:.1f}",
                          f"{rate_on_first(m, ref['n']) / ref['tok_s']:.2f}x", f"{m['tokens']:.1f}",
                          f"{m['steps']:.1f}",
                          f"{m['valid']:.0%}", f"{m['tool']:.0%}", f"{same}/{len(ref['texts'])}", f"{load:.1f}")
    if recorded:
        table.add_row("recorded LLM", "(the demo's traffic)", str(len(recorded)), f"{pct(recorded, 0.5):.0f}",
                      f"{pct(recorded, 0.95):.0f}", "", "", "", "", "", "", "", "")
    console.print(table)
    console.print("prompt tokens restored from the prefix cache instead of evaluated: " + ", ".join(
        f"{label} {name.removeprefix('llama.cpp ')} {share:.0%}" for (label, name), share in reuse.items()))
    console.print(f"load average after the engines: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    label, spec, prompt = models[-1]
    with console.status(f"{args.gateway_requests} requests through the gateway, {args.concurrency} at a time"):
        rps, p50, n, served = gateway_throughput(spec, prompt, store, items[: args.gateway_requests] if
                                                 len(items) >= args.gateway_requests else
                                                 (items * (args.gateway_requests // len(items) + 1))
                                                 [: args.gateway_requests], contract, args.concurrency)
    console.print(f"gateway, {label} model on llama.cpp, swapped mode, {args.concurrency} concurrent: "
                  f"{rps:.1f} requests/s over {n} requests, client p50 {p50:.0f} ms, served by {served}; "
                  f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    store.close()


if __name__ == "__main__":
    main()
