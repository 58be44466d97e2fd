"""Curation at scale: 10,000 and 100,000 demo calls from SQLite, both demo tasks.

For each size: a fresh SQLite store is filled with the demo generator's calls and the task
contracts are inferred (setup, not timed); then `curate` runs for both tasks in a fresh child
process, once per `--workers` setting (default: 0, calls prepared in the curating process, the
baseline; and auto, one worker process per core). Each run reports wall time, CPU time (of
the curating process and its workers; a steadier figure on a busy machine), calls per second
and peak resident memory (ru_maxrss of the curating process, and of the largest worker).
A child that only imports Fledgling and opens the store gives the memory baseline. The last
lines compare the settings (speed-up of each over the first, same size) and the sizes
(per-call cost ratio, 1.0 = perfectly linear, and memory growth).

    .venv/bin/python benchmarks/curate.py [--sizes 10000 100000] [--workers 0 auto] [--seed 0]
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


def _curate_child(db: str, out: str, seed: int, workers: int | None, queue: mp.Queue) -> None:
    from fledgling.curate import curate
    from fledgling.store import Store

    # A spawned child inherits 'spawn' as its start method; curate's workers should start the
    # way they do for a user, with the platform's default (fork on Linux).
    mp.set_start_method(None, force=True)
    store = Store(f"sqlite:///{db}")
    t0 = time.perf_counter()
    cpu0 = _cpu()
    n = examples = 0
    for task in TASKS:
        ds = curate(store, task, seed=seed, out_dir=Path(out), workers=workers)
        n += ds.report["calls_in"]
        examples += ds.report["examples_out"]
    seconds, cpu = time.perf_counter() - t0, _cpu() - cpu0
    queue.put((n, examples, seconds, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


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


def _workers(value: str) -> int | None:
    return None if value == "auto" else int(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=_workers, nargs="+", default=[0, None],
                        help="worker settings to compare: a number (0 = in-process) or auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows: dict[int | None, list[tuple[int, float, float, float]]] = {w: [] for w in args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            db = Path(tmp) / f"calls-{n}.db"
            setup = fill(db, n, args.seed)
            base_mb = in_child(_baseline_child, str(db))
            print(f"{n:,} calls  [setup {setup:.0f} s, memory baseline {base_mb:.0f} MB]", flush=True)
            for w in args.workers:
                calls, examples, seconds, cpu, peak_mb, worker_mb = in_child(
                    _curate_child, str(db), str(Path(tmp) / f"out-{n}-{w}"), args.seed, w)
                rows[w].append((calls, seconds, peak_mb, base_mb))
                print(f"  workers {'auto' if w is None else w:>4}: {calls:,} calls -> {examples:,} examples: "
                      f"{seconds:6.1f} s wall ({cpu:.1f} s CPU), {calls / seconds:7,.0f} calls/s, peak RSS "
                      f"{peak_mb:4.0f} MB (+{peak_mb - base_mb:.0f} MB over baseline)"
                      + (f", largest worker {worker_mb:.0f} MB" if worker_mb else ""), flush=True)
    first = args.workers[0]
    for w in args.workers[1:]:
        for (n, t0, _, _), (_, t1, _, _) in zip(rows[first], rows[w], strict=True):
            print(f"{n:,} calls: workers {'auto' if w is None else w} vs {first}: "
                  f"x{t0 / t1:.2f} faster (wall)")
    for w, series in rows.items():
        if len(series) >= 2:
            (n0, t0, m0, b0), (n1, t1, m1, b1) = series[0], series[-1]
            print(f"workers {'auto' if w is None else w}: size x{n1 / n0:.1f}: time x{t1 / t0:.2f}, "
                  f"per-call cost ratio {(t1 / n1) / (t0 / n0):.2f} (1.00 = linear), "
                  f"memory above baseline x{(m1 - b1) / max(m0 - b0, 1):.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
