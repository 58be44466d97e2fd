"""The store writer: a background thread that batches spooled calls into the trace store.

It first replays spool files left by a crashed (or stopped) process, then absorbs what the
spool acknowledges as it comes. Inserts are idempotent on call id, so a record that reaches the
store twice (replayed after a crash that happened between insert and file deletion) is stored
once. When the store is unreachable it retries with backoff; the spool keeps the records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from fledgling.calls import Call
from fledgling.gateway.exchange import Exchange, exchange_to_call
from fledgling.gateway.spool import Item, Segment, Spool, claim_orphans, read_segment
from fledgling.store import Store

log = logging.getLogger("fledgling.gateway")


class StoreWriter:
    def __init__(self, store: Store, spool: Spool, *, batch: int = 500, linger_ms: float = 50.0):
        self.store = store
        self.spool = spool
        self.batch = batch
        self.linger_s = linger_ms / 1000
        self.stored = 0
        self.replayed = 0
        self.failures = 0
        self.last_error: str | None = None
        self._queue: deque[tuple[Segment, list[Item]]] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._busy = True  # until the replay of orphaned spool files is done
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="fledgling-writer", daemon=True)

    def submit(self, segment: Segment, calls: list[Item]) -> None:
        """Called by the spool once `calls` are durable in `segment`."""
        self._queue.append((segment, calls))
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    @property
    def pending(self) -> int:
        return sum(len(calls) for _, calls in list(self._queue))

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted call is in the store."""
        self._wake.set()
        with self._idle:
            return self._idle.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float = 30.0) -> None:
        self.drain(timeout)
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        self._replay_orphans()
        self._busy = False
        while not self._stop:
            if not self._queue:
                with self._idle:
                    self._idle.notify_all()
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            if self.linger_s and self.pending < self.batch:
                time.sleep(self.linger_s)
            self._write_some()

    def _write_some(self) -> None:
        self._busy = True
        try:
            taken: list[tuple[Segment, list[Item]]] = []
            n = 0
            while self._queue and n < self.batch:
                item = self._queue.popleft()
                taken.append(item)
                n += len(item[1])
            if not self._insert([_as_call(c) for _, items in taken for c in items]):
                self._queue.extendleft(reversed(taken))
                return
            for segment, calls in taken:
                self.spool.mark_stored(segment, len(calls))
        finally:
            self._busy = False

    def _insert(self, calls: list[Call]) -> bool:
        delay = 0.1
        while True:
            try:
                self.store.insert_calls(calls)
            except Exception as exc:  # the store being down must not lose or drop records
                self.failures += 1
                self.last_error = str(exc).splitlines()[0][:300]
                log.warning("store write failed (%s); retrying in %.1fs", self.last_error, delay)
                if self._stop:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.stored += len(calls)
            self.last_error = None
            return True

    def _replay_orphans(self) -> None:
        for segment in claim_orphans(self.spool.directory):
            it = read_segment(segment.path)
            while True:
                chunk = [c for _, c in zip(range(self.batch), it)]
                if not chunk:
                    break
                if not self._insert(chunk):
                    return
                self.replayed += len(chunk)
            log.info("replayed spool file %s", segment.path.name)
            self.spool.release(segment)


def _as_call(item: Item) -> Call:
    return exchange_to_call(item) if isinstance(item, Exchange) else item
