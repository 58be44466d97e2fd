"""Preparing calls in worker processes, in input order, with bounded memory.

`prepared(rows, options, workers)` yields one `Prepared` per row of `Store.iter_call_rows`, in
the rows' order, so a curation gives the same bytes however many workers prepared it. With
`workers=0` it prepares in this process. Otherwise the rows are cut into chunks and at most
`2 x workers` chunks are in flight: reading stays just ahead of the workers, and memory does
not grow with the number of calls (unlike `Pool.imap`, whose feeder drains the whole input).

Workers receive raw rows (JSON columns as text), parse them themselves and send back compact
`Prepared` tuples. They build their state from the `PrepareOptions` passed to the pool initializer,
never from globals of the parent, so they start the same under fork, forkserver and spawn.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from multiprocessing.context import BaseContext
from typing import Any

from fledgling.curate.prepare import Prepared, PrepareOptions, Preparer
from fledgling.errors import FledglingError

PARALLEL_FROM = 5000
"""Inputs with fewer calls are prepared in-process: starting workers would cost more than it saves."""
MAX_CHUNK = 500
MIN_CHUNK = 25

_worker: Preparer | None = None


def auto_workers(total: int) -> int:
    """Worker processes for `total` calls: none for small inputs, else one per usable core."""
    if total < PARALLEL_FROM:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if cores > 1 else 0


def chunk_size(total: int, workers: int) -> int:
    """About eight chunks per worker (even load), within [MIN_CHUNK, MAX_CHUNK] calls."""
    return max(MIN_CHUNK, min(MAX_CHUNK, total // max(1, 8 * workers)))


def prepared(rows: Iterable[Mapping[str, Any]], options: PrepareOptions, workers: int, *,
             chunk: int = MAX_CHUNK, context: BaseContext | None = None) -> Iterator[Prepared]:
    """Each row prepared, in input order; `context` picks the start method (default: the platform's)."""
    if workers <= 0:
        preparer = Preparer(options)
        for row in rows:
            yield preparer.row(row)
        return
    chunks = _chunks(rows, chunk)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start, initargs=(options,))
    try:
        pending: deque[Future[list[Prepared]]] = deque(
            pool.submit(_prepare, c) for c in islice(chunks, 2 * workers))
        while pending:
            try:
                done = pending.popleft().result()
            except BrokenProcessPool:
                raise FledglingError("a curation worker process died (out of memory, or killed); "
                                     "run again, with fewer workers (--workers 1, or 0 for none)"
                                     ) from None
            following = next(chunks, None)
            if following is not None:
                pending.append(pool.submit(_prepare, following))
            yield from done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _chunks(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def _start(options: PrepareOptions) -> None:
    """Worker initializer: the per-run state, built from what the parent sent."""
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _worker = Preparer(options)


def _prepare(rows: list[Mapping[str, Any]]) -> list[Prepared]:
    assert _worker is not None, "worker started without _start"
    return [_worker.row(r) for r in rows]
