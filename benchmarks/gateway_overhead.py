"""What the recording gateway adds to every LLM call, measured against calling directly.

One run, three processes plus the load generator: a stand-in upstream that answers instantly
(a real OpenAI-compatible HTTP server), `fledgling gateway` in front of it (recording to SQLite
through its spool, as in production), and, when `litellm[proxy]` is installed, the LiteLLM
proxy in front of the same upstream. The load generator is its own process (aiohttp, open
loop: request i is sent at t0 + i/rate whatever happened before) so it does not share a GIL
with what it measures. At each fixed rate the same bounded number of requests goes (a)
directly and (b) through each proxy; latency counts from the moment a request is sent.

The same run also offers OpenAI Responses requests (`POST /v1/responses`, the default API of most
agent frameworks) directly and through the gateway: rows `direct-responses` and
`fledgling-responses`, the added latency measured against `direct-responses`.

Prints p50/p90/p99 latency, the added latency (proxy minus direct at the same percentile), the
highest rate held (zero errors and >= 95% of the offered rate achieved), and ratios vs LiteLLM.

    .venv/bin/python benchmarks/gateway_overhead.py [--rates 100,300,1000,2000] [--seconds 4]

LiteLLM is looked up in $FLEDGLING_LITELLM (path to its `litellm` executable), then
/tmp/litellm-venv/bin/litellm (install it there with
`python -m venv /tmp/litellm-venv && /tmp/litellm-venv/bin/pip install 'litellm[proxy]'`,
kept apart so it cannot disturb the project's environment).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
BODY = orjson.dumps({
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are the support agent of an online shop. Use the tools "
                                      "to look orders up; never invent an order status."},
        {"role": "user", "content": "Hi, where is my order A1234? It was due yesterday."},
    ],
    "tools": [{"type": "function", "function": {
        "name": "lookup_order", "description": "Find an order by id",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"]}}}],
    "temperature": 0,
})
# One strong key for every target: LiteLLM refuses to start without a master key.
KEY = "sk-" + secrets.token_hex(24)
ANSWER = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function",
     "function": {"name": "lookup_order", "arguments": "{\"order_id\": \"A1234\"}"}}]}

RESPONSES_BODY = orjson.dumps({
    "model": "gpt-4o-mini", "store": False,
    "instructions": "You are the support agent of an online shop. Use the tools to look orders up; never "
                    "invent an order status.",
    "input": [{"role": "user", "content": [{"type": "input_text",
                                            "text": "Hi, where is my order A1234? It was due yesterday."}]}],
    "tools": [{"type": "function", "name": "lookup_order", "description": "Find an order by id", "strict": False,
               "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                              "required": ["order_id"]}}],
    "temperature": 0,
})

console = Console(width=140)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"{url}: the server exited at startup:\n{err[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout:.0f}s")


# -- the stand-in upstream, in its own process ------------------------------------------------

def _serve_upstream(port: int) -> None:
    import uvicorn

    from fledgling.calls import Response, Usage
    from fledgling.capture.apis.responses import render_response
    from fledgling.demo.standin import StandInUpstream

    chat = StandInUpstream(lambda _req: ANSWER)
    answer = orjson.dumps(render_response(Response.from_message(ANSWER), response_id="resp_1", model="gpt-4o-mini",
                                          usage=Usage(input_tokens=60, output_tokens=12)))

    async def app(scope, receive, send):  # /responses: one fixed answer; the rest: the chat stand-in
        if scope["type"] != "http" or not scope["path"].endswith("/responses"):
            return await chat(scope, receive, send)
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="error",
                access_log=False)


# -- the load generator, in its own process ---------------------------------------------------

def _load(url: str, rate: float, n: int, key: str, body: bytes, out: mp.Queue) -> None:
    import uvloop

    out.put(uvloop.run(_load_async(url, rate, n, key, body)))


async def _load_async(url: str, rate: float, n: int, key: str, body: bytes) -> dict:
    import aiohttp

    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    latencies: list[float] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=1024)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(100):  # warm the connection pool and both servers' code paths
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
        clock = time.perf_counter  # the loop's own clock has millisecond resolution under uvloop
        t0 = clock() + 0.05

        async def one(i: int) -> None:
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - clock()))
            sent = clock()
            try:
                async with session.post(url, data=body, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=30)) as r:
                    await r.read()
                    if r.status != 200:
                        errors.append(f"HTTP {r.status}")
                        return
            except Exception as exc:  # any failure counts as an error of the system under test
                errors.append(type(exc).__name__)
                return
            latencies.append((clock() - sent) * 1000)

        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = clock() - t0
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed}


def run_load(url: str, rate: float, n: int) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    body = RESPONSES_BODY if url.endswith("/responses") else BODY
    p = ctx.Process(target=_load, args=(url, rate, n, KEY, body, q))
    p.start()
    result = q.get()
    p.join()
    return result


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


# -- the proxies ------------------------------------------------------------------------------

def start_gateway(upstream: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    (workdir / "fledgling.toml").write_text(
        f'[store]\nurl = "sqlite:///{workdir}/fledgling.db"\n\n'
        f'[gateway]\nupstream = "{upstream}"\nspool_dir = "{workdir}/spool"\n')
    env = {**os.environ, "FLEDGLING_CONFIG": str(workdir / "fledgling.toml")}
    env.pop("FLEDGLING_GATEWAY_KEYS", None)
    proc = subprocess.Popen([sys.executable, "-c", "from fledgling.cli import main; main()",
                             "gateway", "--port", str(port)], env=env, cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
    return proc, f"http://127.0.0.1:{port}/v1/chat/completions"


def find_litellm() -> str | None:
    for cand in (os.environ.get("FLEDGLING_LITELLM"), "/tmp/litellm-venv/bin/litellm"):
        if cand and Path(cand).is_file():
            return cand
    return None


def start_litellm(exe: str, upstream: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cfg = workdir / "litellm.yaml"
    cfg.write_text(
        "model_list:\n"
        "  - model_name: gpt-4o-mini\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: {upstream}\n"
        "      api_key: sk-upstream\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "general_settings:\n"
        f"  master_key: {KEY}\n")
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    proc = subprocess.Popen([exe, "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
                             "--num_workers", "1"], env=env, cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", timeout=180, proc=proc)
    return proc, f"http://127.0.0.1:{port}/v1/chat/completions"


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the run ----------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="100,300,500,1000,2000",
                    help="comma-separated offered rates in requests/s")
    ap.add_argument("--seconds", type=float, default=4.0,
                    help="how long each rate is offered (requests = rate x seconds)")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    work = Path(tempfile.mkdtemp(prefix="fledgling-bench-"))
    up_port = free_port()
    ctx = mp.get_context("spawn")
    upstream_proc = ctx.Process(target=_serve_upstream, args=(up_port,), daemon=True)
    upstream_proc.start()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    wait_http(upstream + "/models")
    targets: dict[str, str] = {"direct": upstream + "/chat/completions"}
    procs: list[subprocess.Popen] = []
    try:
        gw, targets["fledgling"] = start_gateway(upstream, work)
        procs.append(gw)
        targets["direct-responses"] = upstream + "/responses"
        targets["fledgling-responses"] = targets["fledgling"].removesuffix("/chat/completions") + "/responses"
        litellm = find_litellm()
        if litellm:
            console.print(f"LiteLLM proxy: {litellm}")
            ll, targets["litellm"] = start_litellm(litellm, upstream, work)
            procs.append(ll)
        else:
            console.print("[yellow]LiteLLM proxy not installed; comparing against direct only "
                          "(see the docstring to install it)[/]")
        results: dict[tuple[str, float], dict] = {}
        for rate in rates:
            n = int(rate * args.seconds)
            for name, url in targets.items():
                console.print(f"  {name:>9} at {rate:>6.0f} req/s x {n} requests ...", end=" ")
                r = run_load(url, rate, n)
                r["achieved"] = len(r["latencies"]) / r["elapsed"] if r["elapsed"] else 0.0
                results[(name, rate)] = r
                console.print(f"p50 {pct(r['latencies'], 50):.2f} ms, errors {len(r['errors'])}")
        report(rates, targets, results)
        db = work / "fledgling.db"
        stop(gw)
        procs.remove(gw)
        if db.exists():
            import sqlite3

            stored = sqlite3.connect(db).execute("select count(*) from calls").fetchone()[0]
            sent = sum(len(results[(name, r)]["latencies"]) for r in rates
                       for name in ("fledgling", "fledgling-responses"))
            console.print(f"recorded by the gateway: {stored} calls in the store "
                          f"(>= {sent} answered in the timed runs, plus warm-up)")
    finally:
        for p in procs:
            stop(p)
        upstream_proc.terminate()
        shutil.rmtree(work, ignore_errors=True)


def held(r: dict, rate: float) -> bool:
    return not r["errors"] and r["achieved"] >= 0.95 * rate


def report(rates: list[float], targets: dict[str, str], results: dict) -> None:
    table = Table(title="Latency per request (ms) and added latency vs direct at the same percentile")
    for col in ("target", "rate/s", "ok", "errors", "achieved/s", "p50", "p90", "p99",
                "+p50", "+p90", "+p99"):
        table.add_column(col, justify="right")
    for rate in rates:
        for name in targets:
            base = results[("direct-responses" if name.endswith("responses") else "direct", rate)]["latencies"]
            r = results[(name, rate)]
            lat = r["latencies"]
            row = [name, f"{rate:.0f}", str(len(lat)), str(len(r["errors"])), f"{r['achieved']:.0f}",
                   *(f"{pct(lat, q):.2f}" for q in (50, 90, 99))]
            row += (["-"] * 3 if name.startswith("direct") else
                    [f"{pct(lat, q) - pct(base, q):+.2f}" for q in (50, 90, 99)])
            table.add_row(*row)
    console.print(table)
    best = {name: max((rate for rate in rates if held(results[(name, rate)], rate)), default=0.0)
            for name in targets}
    for name, rate in best.items():
        top = max(results[(name, r)]["achieved"] for r in rates)
        console.print(f"highest rate held with zero errors: {name:>9} {rate:.0f} req/s "
                      f"(most answered per second at any rate: {top:.0f})")
    if "litellm" in targets:
        for rate in rates:
            base = results[("direct", rate)]["latencies"]
            f = results[("fledgling", rate)]["latencies"]
            ll = results[("litellm", rate)]["latencies"]
            if f and ll:
                ratios = [(pct(ll, q) - pct(base, q)) / max(pct(f, q) - pct(base, q), 1e-3)
                          for q in (50, 99)]
                console.print(f"at {rate:.0f} req/s LiteLLM adds {ratios[0]:.1f}x (p50) and "
                              f"{ratios[1]:.1f}x (p99) the latency Fledgling adds")
        top = {n: max(results[(n, r)]["achieved"] for r in rates) for n in ("fledgling", "litellm")}
        console.print(f"throughput: Fledgling answered up to {top['fledgling']:.0f} req/s, LiteLLM "
                      f"up to {top['litellm']:.0f} req/s ({top['fledgling'] / max(top['litellm'], 1e-9):.1f}x)")


if __name__ == "__main__":
    main()
