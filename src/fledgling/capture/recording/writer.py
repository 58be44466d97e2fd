"""The store writer: a background thread that batches spooled calls into the trace store.

It first replays spool files left by a crashed (or stopped) process, then absorbs what the
spool acknowledges as it comes. Inserts are idempotent on call id, so a record that reaches the
store twice (replayed after a crash that happened between insert and file deletion) is stored
once. When the store is unreachable it retries with backoff; the spool keeps the records.

One record never blocks the others: a batch the store refuses is retried record by record, and
a record the store still refuses while it is reachable (a NUL PostgreSQL cannot hold, JSON too
deep to write) goes to the quarantine (quarantine.py), counted. "Reachable" is decided by a
read of that record's id: if the read works, the store is up and refuses this one record; if it
fails, the store is down and the writer waits for it, keeping everything.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fledgling.calls import Call
from fledgling.capture.recording.exchange import Exchange, exchange_to_call
from fledgling.capture.recording.quarantine import Quarantine
from fledgling.capture.recording.spool import SUFFIX, Item, Segment, Spool, claim_orphans, read_segment
from fledgling.capture.recording.supervised import Supervised
from fledgling.store import Store

log = logging.getLogger("fledgling.gateway")

RECORD_ATTEMPTS = 3
"""Tries of one record (the store reachable each time) before it is quarantined."""


class StoreWriter(Supervised):
    thread_name = "fledgling-writer"
    what = "the store writer thread"

    def __init__(self, store: Store, spool: Spool, *, batch: int = 500, linger_ms: float = 50.0,
                 quarantine: Quarantine | None = None):
        self.store = store
        self.spool = spool
        self.quarantine = quarantine or spool.quarantine
        self.batch = batch
        self.linger_s = linger_ms / 1000
        self.stored = 0
        self.replayed = 0
        self.quarantined = 0
        self.failures = 0
        self.last_error: str | None = None
        self.failing_since: float | None = None  # time.monotonic() of the first failure in a row
        self._queue: deque[tuple[Segment | None, list[Item], float]] = deque()
        self._inflight = 0  # calls of the batch being written, and when the oldest was queued
        self._inflight_since: float | None = None
        self._busy = True  # until the replay of orphaned spool files is done
        self._replayed_orphans = False
        self._idle = threading.Condition()
        super().__init__()

    def submit(self, segment: Segment | None, calls: list[Item]) -> None:
        """Called by the spool once `calls` are durable in `segment` (None: not on disk)."""
        self._queue.append((segment, calls, time.monotonic()))
        self._wake.set()

    @property
    def pending(self) -> int:
        """Calls not yet in the store: queued, and the batch being written."""
        return sum(len(calls) for _, calls, _ in list(self._queue)) + self._inflight

    @property
    def oldest_pending_s(self) -> float:
        """How long the oldest call not yet in the store has waited (0 when none waits), the
        batch being written included: a store that hangs on a write shows here."""
        since = [t for t in (self._inflight_since,) if t is not None]
        try:
            since.append(self._queue[0][2])
        except IndexError:
            pass
        return time.monotonic() - min(since) if since else 0.0

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
        try:
            if not self._replayed_orphans:
                self._replay_orphans()
                self._replayed_orphans = True
            self._busy = False
            while not self._stop:
                if not self._queue:
                    self._busy = False
                    with self._idle:
                        self._idle.notify_all()
                    self._wake.wait(1.0)
                    self._wake.clear()
                    continue
                if self.linger_s and self.pending < self.batch:
                    time.sleep(self.linger_s)
                try:
                    self._write_some()
                except Exception as exc:  # a bug here must not end recording: report, go on
                    log.exception("store writer error")
                    self._failed(f"writer error: {type(exc).__name__}: {exc}")
                    time.sleep(0.1)
        except BaseException as exc:  # the thread is dying: say why, the supervisor restarts it
            self.died = f"{type(exc).__name__}: {exc}"[:300]
            self._failed(f"the writer thread died ({self.died})")

    def _write_some(self) -> None:
        self._busy = True
        taken: list[tuple[Segment | None, list[Item], float]] = []
        done = False
        try:
            n = 0
            while self._queue and n < self.batch:
                item = self._queue.popleft()
                taken.append(item)
                n += len(item[1])
            self._inflight, self._inflight_since = n, min((t for _, _, t in taken), default=None)
            owners = [(segment, c) for segment, items, _ in taken for c in items]
            handled = self._store([c for _, c in owners])
            if handled is None:
                return
            counts: dict[int, tuple[Segment, int]] = {}
            for (segment, _), ok in zip(owners, handled, strict=True):
                if segment is not None and ok:
                    seg, k = counts.get(id(segment), (segment, 0))
                    counts[id(segment)] = (seg, k + 1)
            done = True
            for segment, k in counts.values():
                self.spool.mark_stored(segment, k)
        finally:
            if not done:  # stopping, or dying mid-batch: the records stay queued, none dropped
                self._queue.extendleft(reversed(taken))
            self._inflight, self._inflight_since = 0, None
            self._busy = False

    def _store(self, items: Sequence[Item]) -> list[bool] | None:
        """Store (or quarantine) every item; per item, whether it is now safe (in the store or
        the quarantine file). None when stopping before the store took them."""
        calls: list[Call | None] = []
        handled = [True] * len(items)
        for i, item in enumerate(items):
            call = self._as_call(item)
            if call is None:
                handled[i] = self._quarantine("cannot be turned into a call", item)
            calls.append(call)
        good = [(i, c) for i, c in enumerate(calls) if c is not None]
        if not good:
            return handled
        while True:
            try:
                self.store.insert_calls([c for _, c in good])
            except Exception as exc:
                self._failed(_first_line(exc))
                if not self._reachable(good[0][1]):
                    if not self._wait_for_store():
                        return None
                    continue
                break  # the store is up and refuses this batch: find the record(s) it refuses
            self.stored += len(good)
            self._ok()
            return handled
        for i, call in good:
            ok = self._store_one(call)
            if ok is None:
                return None
            handled[i] = ok
        return handled

    def _store_one(self, call: Call) -> bool | None:
        attempts = 0
        while True:
            try:
                self.store.insert_calls([call])
            except Exception as exc:
                reason = _first_line(exc)
                self._failed(reason)
                if not self._reachable(call):
                    if not self._wait_for_store():
                        return None
                    continue
                if self._stored_already(call):
                    return True
                attempts += 1
                if attempts < RECORD_ATTEMPTS:
                    time.sleep(0.05 * attempts)
                    continue
                return self._quarantine(f"the store refused it: {reason}", call)
            self.stored += 1
            self._ok()
            return True

    def _reachable(self, call: Call) -> bool:
        try:
            self.store.get_call(call.id)
        except Exception:
            return False
        return True

    def _stored_already(self, call: Call) -> bool:
        try:
            return self.store.get_call(call.id) is not None
        except Exception:
            return False

    def _wait_for_store(self) -> bool:
        """Back off until the store answers again; False when asked to stop meanwhile."""
        delay = 0.1
        while not self._stop:
            log.warning("store unreachable (%s); retrying in %.1fs", self.last_error, delay)
            time.sleep(delay)
            try:
                self.store.get_call("")
                return True
            except Exception as exc:
                self._failed(_first_line(exc))
            delay = min(delay * 2, 5.0)
        return False

    def _quarantine(self, reason: str, record: Any) -> bool:
        self.quarantined += 1
        return self.quarantine.add(reason, record, call_id=getattr(record, "id", None))

    def _as_call(self, item: Item) -> Call | None:
        try:
            return exchange_to_call(item) if isinstance(item, Exchange) else item
        except Exception:  # exchange_to_call never raises; this guards the guard
            log.exception("an exchange could not be turned into a call")
            return None

    def _failed(self, reason: str) -> None:
        self.failures += 1
        self.last_error = reason[:300]
        if self.failing_since is None:
            self.failing_since = time.monotonic()

    def _ok(self) -> None:
        self.last_error = None
        self.failing_since = None

    def _replay_orphans(self) -> None:
        for segment in claim_orphans(self.spool.directory):
            unreadable: list[bool] = []

            def quarantine(reason: str, line: bytes, kept: list[bool] = unreadable) -> None:
                kept.append(self._quarantine(reason, line))

            it = read_segment(segment.path, on_unreadable=quarantine)
            safe = True
            while True:
                chunk = list(itertools.islice(it, self.batch))
                if not chunk:
                    break
                handled = self._store(chunk)
                if handled is None:
                    return
                safe = safe and all(handled)
                self.replayed += len(chunk)
            if safe and all(unreadable):
                log.info("replayed spool file %s", segment.path.name)
                self.spool.release(segment)
            else:  # something could not be kept elsewhere: the file stays for the next start
                log.error("spool file %s kept: some records could not be quarantined", segment.path.name)


def _first_line(exc: BaseException) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


class SpoolDrain:
    """`gateway --workers N`: the store writer in a process of its own, so serving processes never
    run store code. The workers' spools hand each file off (close it, releasing its `flock`) once
    it is `hand_off_ms` old; this process claims every file nobody holds, stores its records
    (idempotent on call id) and deletes it, a dead worker's files included. The records were
    acknowledged by the worker's fsync: the durability bound is the workers' fsync window.

    `run()` drains until `stop` is set, then keeps draining while a spool file is held by a
    process of its own process group or `serving()` says a worker still runs (the workers
    draining their last records), at most `stop_timeout_s`."""

    def __init__(self, store: Store, spool_dir: str, *, batch: int = 500, poll_s: float = 0.05,
                 pending_bound_s: float = 30.0, stop_timeout_s: float = 60.0,
                 serving: Callable[[], bool] | None = None):
        self.spool = Spool(spool_dir)  # never started: only its directory, quarantine and release
        self.writer = StoreWriter(store, self.spool, batch=batch)
        self.poll_s = poll_s
        self.pending_bound_s = pending_bound_s
        self.stop_timeout_s = stop_timeout_s
        self.stop = threading.Event()
        self.serving = serving or (lambda: False)
        self.passes = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self._pass()
            self.stop.wait(self.poll_s)
        deadline = time.monotonic() + self.stop_timeout_s
        give_up = threading.Timer(self.stop_timeout_s, self._give_up)  # a store still down then
        give_up.daemon = True
        give_up.start()
        try:
            while True:
                self._pass()
                if self.writer._stop or time.monotonic() > deadline or not (
                        self._siblings_hold_files() or self.serving()):
                    break
                time.sleep(self.poll_s)
            if not self.writer._stop:
                self._pass()
        finally:
            give_up.cancel()

    def _give_up(self) -> None:
        log.error("spool drain: stopping with files left after %.0fs; the next start stores them",
                  self.stop_timeout_s)
        self.writer._stop = True

    def _pass(self) -> None:
        try:
            self.writer._replay_orphans()
        except Exception as exc:  # a bug must not end the drain: report, go on
            log.exception("spool drain error")
            self.writer._failed(f"drain error: {type(exc).__name__}: {exc}")
        self.passes += 1

    def _siblings_hold_files(self) -> bool:
        group = os.getpgid(0)
        for path in self.spool.directory.glob(f"*{SUFFIX}"):
            pid = _pid_of(path)
            try:
                if pid is not None and pid != os.getpid() and os.getpgid(pid) == group:
                    return True
            except ProcessLookupError:
                continue
        return False

    def waiting(self) -> tuple[int, float]:
        """Spool files not yet stored, and the age of the oldest (from its name), in seconds."""
        now = time.time_ns()
        ages = [(now - born) / 1e9 for p in self.spool.directory.glob(f"*{SUFFIX}")
                if (born := _born_ns(p)) is not None]
        return len(ages), max(ages, default=0.0)

    def health(self) -> tuple[str, list[str]]:
        w = self.writer
        reasons: list[str] = []
        if w.failing_since is not None:
            reasons.append(f"store writes failing for {time.monotonic() - w.failing_since:.0f}s: {w.last_error}")
        files, oldest = self.waiting()
        if oldest > self.pending_bound_s:
            reasons.append(f"{files} spool files waiting for the store, the oldest for {oldest:.0f}s "
                           f"(bound {self.pending_bound_s:g}s)")
        if self.writer.quarantine.lost:
            reasons.append(f"{self.writer.quarantine.lost} refused records could not be written to "
                           f"{self.writer.quarantine.path}; their spool files are kept")
        return ("degraded" if reasons else "ok"), reasons

    def stats(self) -> dict[str, Any]:
        w = self.writer
        files, oldest = self.waiting()
        return {"stored": w.stored, "drained": w.replayed, "store_pending_files": files,
                "store_pending_s": round(oldest, 3), "store_failures": w.failures,
                "store_error": w.last_error, "quarantined": w.quarantine.count,
                "quarantine_file": str(w.quarantine.path)}


def _born_ns(path: Path) -> int | None:
    head = path.name.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _pid_of(path: Path) -> int | None:
    tail = path.name.removesuffix(SUFFIX).rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None
