"""What the swap path costs: routing + enforcement over the plain record path, and what the
batching queue buys a local candidate.

Part 1 (added latency). Three processes plus the load generator: stand-in LLM and stand-in
candidate (real OpenAI-compatible servers answering instantly with the same valid tool call, in
one child process), `fledgling gateway` (recording to SQLite, as in production), and this
script sending the same closed-loop load (CONCURRENCY requests in flight) in each mode, switched
at run time through the admin API: record (baseline), shadow, canary 50%, swapped. Prints
p50/p95 latency, throughput and ratios vs record.

Part 2 (local candidate throughput). The bundled SmolLM2-135M (or `--tiny`: a tiny random
Llama) serving N concurrent tool-call requests through the gateway's `Candidate`, with the
batching queue and without it (each request its own generate call, concurrently). Prints
answers/s, tokens/s and the ratio.

    .venv/bin/python benchmarks/swap_overhead.py [--requests 600] [--concurrency 8] [--tiny]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
console = Console()
TASK = "support-agent"
ADMIN = "bench-admin"
TOOLS = [{"type": "function", "function": {
    "name": "lookup_order", "description": "Find an order",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^A[0-9]{4}$"}},
                   "required": ["order_id"], "additionalProperties": False}}}]


def _answer(request: dict) -> dict:
    order = request["messages"][-1]["content"].split()[-1].rstrip("?")
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "lookup_order", "arguments": orjson.dumps({"order_id": order}).decode()}}]}


def _standins(queue: mp.Queue) -> None:
    from fledgling.demo.standin import StandInUpstream
    from fledgling.gateway.server import ServerThread

    llm, cand = ServerThread(StandInUpstream(_answer)), ServerThread(StandInUpstream(_answer, model="slm"))
    queue.put((llm.start(), cand.start()))
    while True:
        time.sleep(3600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _body(i: int) -> bytes:
    return orjson.dumps({"model": "gpt-4o", "tools": TOOLS, "messages": [
        {"role": "system", "content": "You are the support agent of an online shop."},
        {"role": "user", "content": f"Where is my order A{i % 10000:04d}?"}]})


async def _load(url: str, n: int, concurrency: int) -> tuple[list[float], float, int]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    counter = iter(range(n))
    async with aiohttp.ClientSession() as session:
        async def worker() -> None:
            nonlocal errors
            for i in counter:
                t0 = time.perf_counter()
                async with session.post(url, data=_body(i), headers={
                        "content-type": "application/json", "x-fledgling-task": TASK,
                        "x-fledgling-session": f"s{i}"}) as r:
                    await r.read()
                    errors += r.status != 200
                latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - t0, errors


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q / 100))]


def part1(n: int, concurrency: int) -> None:
    import httpx

    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    standins = ctx.Process(target=_standins, args=(q,), daemon=True)
    standins.start()
    llm_url, cand_url = q.get(timeout=30)
    work = Path(tempfile.mkdtemp(prefix="swap-bench-"))
    port = _free_port()
    config = work / "fledgling.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{work}/fledgling.db"\n\n'
        f'[models.llm]\nkind = "openai"\nbase_url = "{llm_url}/v1"\nusd_per_mtok_in = 2.5\nusd_per_mtok_out = 10\n\n'
        f'[models.cand]\nkind = "openai"\nbase_url = "{cand_url}/v1"\nmodel = "slm"\n\n'
        f'[tasks.{TASK}]\nupstream = "llm"\ncandidate = "cand"\n\n[tasks.{TASK}.swap.gate]\nenabled = false\n\n'
        f'[gateway]\nupstream = "llm"\nspool_dir = "{work}/spool"\n')
    env = {**os.environ, "FLEDGLING_CONFIG": str(config), "FLEDGLING_ADMIN_KEY": ADMIN}
    gw = subprocess.Popen([sys.executable, "-c", "from fledgling.cli import main; main()", "gateway",
                           "--port", str(port)], env=env, cwd=work, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if gw.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("gateway did not start: " + gw.stderr.read().decode()[-2000:])
            time.sleep(0.1)
        admin = httpx.Client(base_url=base, headers={"authorization": f"Bearer {ADMIN}"}, timeout=30)
        rows = []
        asyncio.run(_load(base + "/v1/chat/completions", 200, concurrency))  # warm up
        for mode, percent in (("record", 0), ("shadow", 0), ("canary", 50), ("swapped", 0)):
            if mode != "record":
                admin.post(f"/admin/rollout/{TASK}", json={"mode": mode, "percent": percent}).raise_for_status()
            lat, secs, errors = asyncio.run(_load(base + "/v1/chat/completions", n, concurrency))
            rows.append((f"{mode}" + (f" {percent}%" if mode == "canary" else ""), lat, secs, errors))
            time.sleep(0.5)  # let shadow runs finish
        figures = admin.get("/admin/swap").json()["tasks"].get(TASK, {})
    finally:
        gw.terminate()
        gw.wait(30)
        standins.kill()
    base_p50, base_p95, base_rps = _pct(rows[0][1], 50), _pct(rows[0][1], 95), n / rows[0][2]
    table = Table(title=f"part 1: swap path vs record path ({n} requests, {concurrency} in flight, instant upstreams)")
    for col in ("mode", "p50 ms", "p95 ms", "added p50 ms", "added p95 ms", "req/s", "p50 ratio", "req/s ratio",
                "errors"):
        table.add_column(col, justify="right")
    for name, lat, secs, errors in rows:
        p50, p95, rps = _pct(lat, 50), _pct(lat, 95), n / secs
        table.add_row(name, f"{p50:.2f}", f"{p95:.2f}", f"{p50 - base_p50:+.2f}", f"{p95 - base_p95:+.2f}",
                      f"{rps:.0f}", f"{p50 / base_p50:.2f}x", f"{rps / base_rps:.2f}x", str(errors))
    console.print(table)
    console.print(f"  gateway figures: served {figures.get('served_by')}, agreement {figures.get('agreement')}, "
                  f"fallbacks {figures.get('fallbacks')}", highlight=False)


def part2(tiny: bool, n: int) -> None:
    from fledgling.config import SwapSettings
    from fledgling.models.spec import ModelSpec, resolve_model
    from fledgling.swap.candidate import open_candidate

    if tiny:
        from tests.models.tiny import build_tiny_model

        spec = ModelSpec("tiny", resolve_model("hf:" + str(build_tiny_model(Path(tempfile.mkdtemp())))).settings)
    else:
        spec = resolve_model("gguf:smollm2")
    swap = SwapSettings(max_tokens=48, batch_size=n, batch_wait_ms=20)
    results = {}
    for batching in (False, True):
        t_load = time.perf_counter()
        cand = open_candidate(spec, swap, batching=batching)
        load_s = time.perf_counter() - t_load
        requests = [cand.prepare(orjson.loads(_body(i)) | {"max_tokens": 48}) for i in range(n)]

        async def run(cand=cand, requests=requests) -> tuple[float, int, int]:
            await cand.generate(requests[0])  # warm up
            t0 = time.perf_counter()
            gens = [a.generation for a in await asyncio.gather(*(cand.generate(r) for r in requests))]
            secs = time.perf_counter() - t0
            await cand.aclose()
            return secs, sum(g.output_tokens for g in gens), sum(g.error is None for g in gens)

        secs, tokens, ok = asyncio.run(run())
        results[batching] = (secs, tokens, ok, load_s, cand.queue.batches if cand.queue else n)
    table = Table(title=f"part 2: local candidate ({spec.name}), {n} concurrent tool-call requests, "
                        "constrained, greedy, <= 48 new tokens")
    for col in ("serving", "seconds", "answers/s", "tokens/s", "forward batches", "ok", "ratio (answers/s)"):
        table.add_column(col, justify="right")
    base = results[False][2] / results[False][0]
    for batching, (secs, tokens, ok, _, batches) in results.items():
        table.add_row("batching queue" if batching else "one generate per request", f"{secs:.2f}",
                      f"{ok / secs:.2f}", f"{tokens / secs:.1f}", str(batches), f"{ok}/{n}",
                      f"{ok / secs / base:.2f}x")
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--local-requests", type=int, default=8)
    ap.add_argument("--tiny", action="store_true", help="part 2 on a tiny random model instead of SmolLM2")
    args = ap.parse_args()
    part1(args.requests, args.concurrency)
    part2(args.tiny, args.local_requests)


if __name__ == "__main__":
    main()
