"""Curation at scale: 10,000 and 100,000 demo calls from SQLite, both demo tasks.

For each size: a fresh SQLite store is filled with the demo generator's calls and the task
contracts are inferred (setup, not timed); then `curate` runs for both tasks in a fresh child
process, which reports wall time (and CPU time, a steadier figure on a busy machine), calls
per second and its peak resident memory (ru_maxrss).
A child that only imports Fledgling and opens the store gives the memory baseline. The last
line compares the sizes: per-call cost ratio (1.0 = perfectly linear) and memory growth.

    .venv/bin/python benchmarks/curate.py [--sizes 10000 100000] [--seed 0]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

TASKS = ("support-agent", "ticket-triage")


def fill(db: Path, n: int, seed: int) -> float:
    from fledgling.contracts import infer_contract, save_contract
    from fledgling.demo import generate_calls
    from fledgling.store import CallFilter, Store

    t0 = time.perf_counter()
    store = Store(f"sqlite:///{db}")
    store.insert_calls(generate_calls(seed=seed, n=n), batch_size=2000)
    for task in TASKS:
        save_contract(store, infer_contract(store.iter_calls(CallFilter(task=task)), task))
    store.close()
    return time.perf_counter() - t0


def _curate_child(db: str, out: str, seed: int, queue: mp.Queue) -> None:
    from fledgling.curate import curate
    from fledgling.store import Store

    store = Store(f"sqlite:///{db}")
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    n = examples = 0
    for task in TASKS:
        ds = curate(store, task, seed=seed, out_dir=Path(out))
        n += ds.report["calls_in"]
        examples += ds.report["examples_out"]
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    queue.put((n, examples, seconds, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def _baseline_child(db: str, queue: mp.Queue) -> None:
    import fledgling.curate  # noqa: F401  (the same imports as a curation)
    from fledgling.store import Store

    Store(f"sqlite:///{db}").count_calls()
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def in_child(target, *args):  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            db = Path(tmp) / f"calls-{n}.db"
            setup = fill(db, n, args.seed)
            base_mb = in_child(_baseline_child, str(db))
            calls, examples, seconds, cpu, peak_mb = in_child(_curate_child, str(db),
                                                              str(Path(tmp) / f"out-{n}"), args.seed)
            rows.append((calls, examples, seconds, peak_mb, base_mb))
            print(f"{calls:>8,} calls -> {examples:>7,} examples: {seconds:6.1f} s wall ({cpu:.1f} s CPU), "
                  f"{calls / seconds:8,.0f} calls/s, peak RSS {peak_mb:6.0f} MB "
                  f"(baseline {base_mb:.0f} MB, +{peak_mb - base_mb:.0f} MB)  [setup {setup:.0f} s]",
                  flush=True)
    if len(rows) >= 2:
        (n0, _, t0, m0, b0), (n1, _, t1, m1, b1) = rows[0], rows[-1]
        print(f"size x{n1 / n0:.1f}: time x{t1 / t0:.2f}, per-call cost ratio {(t1 / n1) / (t0 / n0):.2f} "
              f"(1.00 = linear), memory above baseline x{(m1 - b1) / max(m0 - b0, 1):.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
