"""Dashboard benchmark: the traces page and the call detail on 100,000 calls in SQLite.

Builds (or reuses, with --db) a SQLite store of demo calls, serves the dashboard under uvicorn on
loopback, and times full HTTP requests (server-side rendering included) with a keep-alive client:

  traces first page      /traces
  traces filtered        /traces?task=support-agent&status=ok   and   ?source=demo&model=...
  traces deep page       /traces?before=<cursor 90% of the way back>
  call detail            /traces/<id>   (request, answer, contract validation)

and, as the baseline measured in the same run, the same deep page fetched the way
`Store.query_calls` pages (OFFSET), to show what keyset cursors buy. Prints median and p95.

    python benchmarks/ui.py [--calls 100000] [--repeat 40] [--db PATH]

Target from issue 8: the traces page under 300 ms on this machine with 100k calls.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fledgling.config import Settings
from fledgling.contracts import infer_contract, save_contract
from fledgling.demo import TASKS, generate_calls
from fledgling.store import CallFilter, Store
from fledgling.ui import create_app
from fledgling.ui.queries import encode_cursor

console = Console()


def fill(store: Store, n: int) -> None:
    have = store.count_calls()
    if have >= n:
        console.print(f"reusing {have:,} calls in {store.safe_url}")
        return
    with Progress(TextColumn("inserting demo calls"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        job = bar.add_task("insert", total=n)
        batch = []
        for call in generate_calls(seed=0, n=n):
            batch.append(call)
            if len(batch) == 5000:
                store.insert_calls(batch)
                bar.advance(job, len(batch))
                batch = []
        store.insert_calls(batch)
    for task in TASKS:
        save_contract(store, infer_contract(store.iter_calls(CallFilter(task=task)), task))


def serve(store: Store) -> tuple[uvicorn.Server, str]:
    server = uvicorn.Server(uvicorn.Config(create_app(Settings(), store, token=""), host="127.0.0.1",
                                          port=0, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def timed(client: httpx.Client, path: str, repeat: int) -> list[float]:
    client.get(path).raise_for_status()  # warm-up
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(path)
        out.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return out


def timed_call(fn, repeat: int) -> list[float]:
    fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--db", type=Path, help="SQLite file to build or reuse (default: a temporary one)")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    db = args.db or Path(tmp.name) / "fledgling.db"
    store = Store(f"sqlite:///{db}")
    fill(store, args.calls)
    total = store.count_calls()
    deep_offset = int(total * 0.9)
    deep = store.query_calls(limit=1, offset=deep_offset - 1).items[0]
    some_call = store.query_calls(CallFilter(task="support-agent"), limit=1, offset=total // 3).items[0]
    model = some_call.model or ""
    server, url = serve(store)

    rows: list[tuple[str, list[float]]] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        cases = [
            ("traces: first page", "/traces"),
            ("traces: task + status filter", "/traces?task=support-agent&status=ok"),
            ("traces: source + model filter", f"/traces?source=demo&model={model}"),
            ("traces: errors only", "/traces?status=error"),
            (f"traces: deep page (after {deep_offset:,} calls)",
             "/traces?" + httpx.QueryParams({"before": encode_cursor(deep.created_at, deep.id)}).__str__()),
            ("call detail (with contract check)", f"/traces/{some_call.id}"),
        ]
        for label, path in cases:
            rows.append((label, timed(client, path, args.repeat)))
    baseline = timed_call(lambda: store.query_calls(limit=50, offset=deep_offset), args.repeat)
    server.should_exit = True

    table = Table(title=f"dashboard on {total:,} calls (SQLite), {args.repeat} requests each")
    table.add_column("request")
    table.add_column("median ms", justify="right")
    table.add_column("p95 ms", justify="right")
    table.add_column("< 300 ms", justify="center")
    for label, values in rows:
        table.add_row(label, f"{statistics.median(values):.1f}", f"{p95(values):.1f}",
                      "yes" if p95(values) < 300 else "NO")
    table.add_section()
    table.add_row(f"baseline: Store.query_calls OFFSET {deep_offset:,} (query only, no HTTP/render)",
                  f"{statistics.median(baseline):.1f}", f"{p95(baseline):.1f}", "")
    console.print(table)
    deep_ms = statistics.median(rows[4][1])
    console.print(f"deep page through the dashboard (keyset, HTTP + render) vs OFFSET query alone: "
                  f"{statistics.median(baseline) / deep_ms:.1f}x faster")
    store.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
