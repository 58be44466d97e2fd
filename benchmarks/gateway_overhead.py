"""What the recording gateway adds to every LLM call, measured against calling directly.

One run, three processes plus the load generator: a stand-in upstream that answers instantly
(a real OpenAI-compatible HTTP server), `fledgling gateway` in front of it (recording to SQLite
through its spool, as in production; `--workers N` serving processes), and, when
`litellm[proxy]` is installed, the LiteLLM proxy in front of the same upstream. At each fixed
rate the same load goes (a) directly and (b) through each proxy; latency counts from the moment
a request is sent.

The apparatus must not eat the cores it measures. The load generator is Debian's `wrk` (C,
epoll; `apt-get install wrk`) driven by a Lua script that sets the POST body and paces the
requests on a fixed schedule (request k of a run is due at t0 + k/rate whatever happened
before, as long as one of its connections is free); without `wrk` it falls back to a Python
open-loop generator (aiohttp in its own process). The stand-in upstream is nginx (`apt-get
install nginx-light`) answering a fixed chat completion / Responses object, with the Python
stand-in (uvicorn) as the fallback. `--generator` and `--standin` pick one explicitly.

The same run also offers OpenAI Responses requests (`POST /v1/responses`, the default API of most
agent frameworks) directly and through the gateway: rows `direct-responses` and
`fledgling-responses`, the added latency measured against `direct-responses`.

Prints p50/p90/p99 latency, the added latency (proxy minus direct at the same percentile), the
highest rate held (zero errors and >= 95% of the offered rate achieved), and ratios vs LiteLLM.

    .venv/bin/python benchmarks/gateway_overhead.py [--rates 100,300,1000,2000] [--seconds 4]
        [--workers 2] [--generator auto|wrk|python] [--standin auto|nginx|python]

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


CHAT_ANSWER = orjson.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1764547200, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": ANSWER, "finish_reason": "tool_calls"}],
    "usage": {"prompt_tokens": 60, "completion_tokens": 12, "total_tokens": 72}})


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None)


def start_nginx_standin(exe: str, port: int, workdir: Path) -> subprocess.Popen:
    """nginx answering the fixed chat completion and Responses object (C: it needs a few percent
    of a core where the Python stand-in needed most of one)."""
    from fledgling.calls import Response, Usage
    from fledgling.capture.apis.responses import render_response

    responses = orjson.dumps(render_response(Response.from_message(ANSWER), response_id="resp_1",
                                             model="gpt-4o-mini", usage=Usage(input_tokens=60, output_tokens=12)))
    for body in (CHAT_ANSWER, responses):
        if b"'" in body or b"$" in body:  # nginx would read them as quote / variable
            raise RuntimeError("the stand-in answer cannot be put in an nginx `return`")
    chat, resp = (b.decode().replace("\\", "\\\\") for b in (CHAT_ANSWER, responses))  # nginx unescapes \
    d = workdir / "nginx"
    d.mkdir()
    (d / "nginx.conf").write_text(f"""daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    default_type application/json;
    location = /v1/chat/completions {{ return 200 '{chat}'; }}
    location = /v1/responses {{ return 200 '{resp}'; }}
    location = /v1/models {{ return 200 '{{"object": "list", "data": [{{"id": "gpt-4o-mini", "object": "model"}}]}}'; }}
  }}
}}
""")
    return subprocess.Popen([exe, "-p", str(d), "-c", str(d / "nginx.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


# -- the load generator: wrk (C) with a Lua script ---------------------------------------------

WRK_LUA = r"""-- POST the body on a fixed schedule: request k of this thread is due at t0 + k * interval.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } fledgling_timespec;
int clock_gettime(int clk, fledgling_timespec *tp);
]]
local ts = ffi.new("fledgling_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer __KEY__"
wrk.body = [==[__BODY__]==]

local interval, due
function init(args)
  interval = tonumber(args[1])
end

function delay()
  local t = now_ms()
  if due == nil then due = t end
  local wait = due - t
  due = due + interval
  if wait < 0 then return 0 end
  return wait
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "\nFLEDGLING {\"requests\": %d, \"duration_us\": %d, \"connect\": %d, \"read\": %d, " ..
    "\"write\": %d, \"status\": %d, \"timeout\": %d, \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f}\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def wrk_script(workdir: Path, body: bytes) -> Path:
    if b"]==]" in body:
        raise RuntimeError("the request body cannot be put in a Lua long string")
    path = workdir / f"wrk-{len(list(workdir.glob('wrk-*.lua')))}.lua"
    path.write_text(WRK_LUA.replace("__KEY__", KEY).replace("__BODY__", body.decode()))
    return path


def run_wrk(exe: str, url: str, rate: float, seconds: float, script: Path) -> dict:
    # enough connections that each one has about 250 ms between its requests: a target slower
    # than that falls behind the schedule (achieved < offered), as it would with more clients
    conns = int(min(1000, max(32, rate * 0.25)))
    out = subprocess.run([exe, "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
                          "-s", str(script), url, "--", f"{1000.0 / rate:.6f}"],
                         capture_output=True, text=True, timeout=seconds + 120)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("FLEDGLING ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary (exit {out.returncode}): {(out.stderr or out.stdout)[-2000:]}")
    w = orjson.loads(line.removeprefix("FLEDGLING "))
    kinds = {k: w[k] for k in ("connect", "read", "write", "status", "timeout") if w[k]}
    errors = sum(kinds.values())
    elapsed = w["duration_us"] / 1e6
    ok = w["requests"] - w["status"]
    # nothing answered within the run (requests still in flight at its end are not counted): no latency
    return {"ok": ok, "errors": errors, "error_kinds": kinds, "achieved": ok / elapsed if elapsed else 0.0,
            **{f"p{q}": w[f"p{q}"] / 1000 if w["requests"] else float("nan") for q in (50, 90, 99)}}


# -- the fallback load generator: Python, in its own process ------------------------------------

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


def run_python_load(url: str, rate: float, n: int) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    body = RESPONSES_BODY if url.endswith("/responses") else BODY
    p = ctx.Process(target=_load, args=(url, rate, n, KEY, body, q))
    p.start()
    r = q.get()
    p.join()
    lat = r["latencies"]
    kinds: dict[str, int] = {}
    for e in r["errors"]:
        kinds[e] = kinds.get(e, 0) + 1
    return {"ok": len(lat), "errors": len(r["errors"]), "error_kinds": kinds,
            "achieved": len(lat) / r["elapsed"] if r["elapsed"] else 0.0,
            **{f"p{q}": pct(lat, q) for q in (50, 90, 99)}}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


# -- the proxies ------------------------------------------------------------------------------

def start_gateway(upstream: str, workdir: Path, workers: int = 1) -> tuple[subprocess.Popen, str]:
    port = free_port()
    (workdir / "fledgling.toml").write_text(
        f'[store]\nurl = "sqlite:///{workdir}/fledgling.db"\n\n'
        f'[gateway]\nupstream = "{upstream}"\nspool_dir = "{workdir}/spool"\n')
    env = {**os.environ, "FLEDGLING_CONFIG": str(workdir / "fledgling.toml")}
    env.pop("FLEDGLING_GATEWAY_KEYS", None)
    proc = subprocess.Popen([sys.executable, "-c", "from fledgling.cli import main; main()",
                             "gateway", "--port", str(port), "--workers", str(workers)], env=env, cwd=workdir,
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
    ap.add_argument("--workers", type=int, default=1, help="`fledgling gateway --workers N`")
    ap.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto",
                    help="load generator (auto: wrk when installed, else Python)")
    ap.add_argument("--standin", choices=("auto", "nginx", "python"), default="auto",
                    help="stand-in upstream (auto: nginx when installed, else Python)")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    wrk = shutil.which("wrk") if args.generator in ("auto", "wrk") else None
    if args.generator == "wrk" and not wrk:
        sys.exit("--generator wrk: wrk is not installed (apt-get install wrk)")
    nginx = find_nginx() if args.standin in ("auto", "nginx") else None
    if args.standin == "nginx" and not nginx:
        sys.exit("--standin nginx: nginx is not installed (apt-get install nginx-light)")

    work = Path(tempfile.mkdtemp(prefix="fledgling-bench-"))
    up_port = free_port()
    ctx = mp.get_context("spawn")
    standin: subprocess.Popen | None = None
    upstream_proc = None
    if nginx:
        standin = start_nginx_standin(nginx, up_port, work)
    else:
        upstream_proc = ctx.Process(target=_serve_upstream, args=(up_port,), daemon=True)
        upstream_proc.start()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    wait_http(upstream + "/models", proc=standin)
    console.print(f"load generator: {'wrk ' + wrk if wrk else 'Python (aiohttp)'}; stand-in upstream: "
                  f"{'nginx ' + nginx if nginx else 'Python (uvicorn)'}; gateway workers: {args.workers}")
    targets: dict[str, str] = {"direct": upstream + "/chat/completions"}
    procs: list[subprocess.Popen] = []
    loads: list[float] = []
    try:
        gw, targets["fledgling"] = start_gateway(upstream, work, args.workers)
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
        scripts = {name: wrk_script(work, RESPONSES_BODY if url.endswith("/responses") else BODY)
                   for name, url in targets.items()} if wrk else {}
        if wrk:  # warm every target's connections and code paths, as the Python generator does
            for name, url in targets.items():
                run_wrk(wrk, url, 100, 1, scripts[name])
        results: dict[tuple[str, float], dict] = {}
        for rate in rates:
            n = int(rate * args.seconds)
            for name, url in targets.items():
                console.print(f"  {name:>19} at {rate:>6.0f} req/s x {args.seconds:g} s ...", end=" ")
                r = (run_wrk(wrk, url, rate, args.seconds, scripts[name]) if wrk
                     else run_python_load(url, rate, n))
                results[(name, rate)] = r
                loads.append(os.getloadavg()[0])
                console.print(f"p50 {r['p50']:.2f} ms, errors {r['errors']}"
                              + (f" {r['error_kinds']}" if r["errors"] else ""))
        report(rates, targets, results)
        console.print(f"load average (1 min) during the run: {min(loads):.2f} to {max(loads):.2f}; "
                      f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
        db = work / "fledgling.db"
        stop(gw)
        procs.remove(gw)
        if db.exists():
            import sqlite3

            stored = sqlite3.connect(db).execute("select count(*) from calls").fetchone()[0]
            sent = sum(results[(name, r)]["ok"] for r in rates for name in ("fledgling", "fledgling-responses"))
            console.print(f"recorded by the gateway: {stored} calls in the store "
                          f"(>= {sent} answered in the timed runs, plus warm-up)")
    finally:
        for p in procs:
            stop(p)
        if standin is not None:
            stop(standin)
        if upstream_proc is not None:
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
            base = results[("direct-responses" if name.endswith("responses") else "direct", rate)]
            r = results[(name, rate)]
            row = [name, f"{rate:.0f}", str(r["ok"]), str(r["errors"]), f"{r['achieved']:.0f}",
                   *(f"{r[f'p{q}']:.2f}" for q in (50, 90, 99))]
            row += (["-"] * 3 if name.startswith("direct") else
                    [f"{r[f'p{q}'] - base[f'p{q}']:+.2f}" for q in (50, 90, 99)])
            table.add_row(*row)
    console.print(table)
    best = {name: max((rate for rate in rates if held(results[(name, rate)], rate)), default=0.0)
            for name in targets}
    for name, rate in best.items():
        top = max(results[(name, r)]["achieved"] for r in rates)
        console.print(f"highest rate held with zero errors: {name:>19} {rate:.0f} req/s "
                      f"(most answered per second at any rate: {top:.0f})")
    if "litellm" in targets:
        for rate in rates:
            base, f, ll = (results[(n, rate)] for n in ("direct", "fledgling", "litellm"))
            if f["ok"] and ll["ok"]:
                ratios = [(ll[f"p{q}"] - base[f"p{q}"]) / max(f[f"p{q}"] - base[f"p{q}"], 1e-3) for q in (50, 99)]
                console.print(f"at {rate:.0f} req/s LiteLLM adds {ratios[0]:.1f}x (p50) and "
                              f"{ratios[1]:.1f}x (p99) the latency Fledgling adds")
        top = {n: max(results[(n, r)]["achieved"] for r in rates) for n in ("fledgling", "litellm")}
        console.print(f"throughput: Fledgling answered up to {top['fledgling']:.0f} req/s, LiteLLM "
                      f"up to {top['litellm']:.0f} req/s ({top['fledgling'] / max(top['litellm'], 1e-9):.1f}x); "
                      f"highest rate held: {best['fledgling']:.0f} vs {best['litellm']:.0f} req/s")


if __name__ == "__main__":
    main()
