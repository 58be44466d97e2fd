"""Ingest benchmark: demo calls -> OpenAI JSONL -> trace store (SQLite and PostgreSQL).

For a small and a large run (10,000 and 100,000 calls by default) it measures, each stage in its
own subprocess so peak memory figures do not mix:

  generate   generate the calls and write them as JSONL
  sqlite     import the JSONL into a fresh SQLite file
  postgres   import the JSONL into a fresh PostgreSQL database (created, then dropped)

and prints calls/second and peak RSS. Memory is bounded when the large run's peak is about the
small run's (streaming), not ten times it (load-all).

    python benchmarks/ingest.py [--small 10000] [--large 100000] [--pg-url URL]

PostgreSQL URL: --pg-url, else $FLEDGLING_BENCH_PG_URL, else
postgresql+psycopg://postgres@127.0.0.1:54329/postgres.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:54329/postgres"


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, unlike ru_maxrss, does not inherit the
    parent's peak across fork+exec, so each stage's figure is its own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def stage_generate(out: Path, n: int) -> dict:
    from fledgling.demo.export import write_traffic

    base = _peak_rss_mb()
    t0 = time.perf_counter()
    files = write_traffic(out, seed=0, n=n)
    seconds = time.perf_counter() - t0
    return {"calls": sum(f.calls for f in files), "seconds": seconds, "base_mb": base,
            "peak_mb": _peak_rss_mb(), "bytes": sum(f.bytes for f in files)}


def stage_import(out: Path, url: str) -> dict:
    from fledgling.capture import import_files
    from fledgling.store import Store

    store = Store(url)
    base = _peak_rss_mb()
    t0 = time.perf_counter()
    result = import_files(store, "openai-jsonl", sorted(out.glob("*.jsonl")))
    seconds = time.perf_counter() - t0
    count = store.count_calls()
    store.close()
    return {"calls": result.inserted, "stored": count, "seconds": seconds, "base_mb": base,
            "peak_mb": _peak_rss_mb()}


def run_stage(*args: str) -> dict:
    """Run one stage in a fresh interpreter; its last stdout line is the JSON result."""
    proc = subprocess.run([sys.executable, __file__, "--stage", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"stage {args[0]} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fresh_pg_database(admin_url: str) -> tuple[str, object]:
    from sqlalchemy import create_engine, text

    name = f"fledgling_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin_url.rsplit("/", 1)[0] + "/" + name, drop


def bench(n: int, pg_admin: str, workdir: Path) -> dict[str, dict]:
    out = workdir / f"calls-{n}"
    results = {"generate": run_stage("generate", str(out), str(n))}
    results["sqlite"] = run_stage("import", str(out), f"sqlite:///{workdir}/bench-{n}.db")
    url, drop = fresh_pg_database(pg_admin)
    try:
        results["postgres"] = run_stage("import", str(out), url)
    finally:
        drop()
    for r in results.values():
        if r["calls"] != n:
            sys.exit(f"expected {n} calls, got {r['calls']}")
    results["generate"]["mb_file"] = results["generate"]["bytes"] / 1e6
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--pg-url", default=os.environ.get("FLEDGLING_BENCH_PG_URL", DEFAULT_PG))
    args = parser.parse_args()
    if args.stage:
        kind, *rest = args.stage
        result = (stage_generate(Path(rest[0]), int(rest[1])) if kind == "generate"
                  else stage_import(Path(rest[0]), rest[1]))
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="fledgling-bench-") as tmp:
        runs = {n: bench(n, args.pg_url, Path(tmp)) for n in (args.small, args.large)}
    small, large = runs[args.small], runs[args.large]
    print(f"ingest benchmark: demo calls, seed 0 (python {sys.version.split()[0]}, {os.cpu_count()} cores)")
    print(f"JSONL size: {small['generate']['mb_file']:.0f} MB for {args.small:,} calls, "
          f"{large['generate']['mb_file']:.0f} MB for {args.large:,}")
    header = f"{'stage':<10}{'calls':>10}{'seconds':>10}{'calls/s':>10}{'peak MB':>10}{'growth MB':>11}"
    print(header)
    print("-" * len(header))
    for n, res in runs.items():
        for stage, r in res.items():
            print(f"{stage:<10}{n:>10,}{r['seconds']:>10.1f}{n / r['seconds']:>10,.0f}{r['peak_mb']:>10.0f}"
                  f"{r['peak_mb'] - r['base_mb']:>11.0f}")
    print()
    print(f"SQLite vs PostgreSQL import speed at {args.large:,}: "
          f"{large['sqlite']['seconds'] / large['postgres']['seconds']:.2f}x "
          "(PostgreSQL calls/s divided by SQLite calls/s)")
    for stage in ("generate", "sqlite", "postgres"):
        ratio = large[stage]["peak_mb"] / small[stage]["peak_mb"]
        verdict = "bounded" if ratio < 1.5 else "GROWS WITH INPUT"
        print(f"peak memory {stage:<9} {args.large // args.small}x the calls -> {ratio:.2f}x the peak RSS ({verdict})")


if __name__ == "__main__":
    main()
