"""The `Recorder`: spool + store writer, the one way captured calls reach the store.

The gateway and `fledgling.instrument` both record through it: `record()` is O(1) and never
touches the disk or the database on the caller's thread. A supervisor thread restarts a spool
or writer thread that died, and `health()` says, with reasons, whenever recording is impaired.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from fledgling.calls import Call
from fledgling.capture.recording.exchange import Exchange
from fledgling.capture.recording.quarantine import Quarantine
from fledgling.capture.recording.spool import Spool
from fledgling.capture.recording.writer import StoreWriter
from fledgling.config import GatewaySettings
from fledgling.store import Store

SUPERVISE_S = 0.25
HAND_OFF_MS = 200.0
"""With an external writer, how old a spool file gets before it is handed to that process: the
delay before a call reaches the store (not the durability bound, which is the fsync window)."""


class Recorder:
    def __init__(self, store: Store, spool_dir: str | Path, *, fsync_ms: float = 10.0,
                 fsync_records: int = 512, writer_batch: int = 500, pending_bound_s: float = 30.0,
                 fault_window_s: float = 30.0, external_writer: bool = False):
        """`external_writer`: another process stores what this one spools (`SpoolDrain`, run by
        `gateway --workers N`): no store code runs here, the spool hands its files off.
        `pending_bound_s`: calls waiting longer than this for the store make health degraded.
        `fault_window_s`: how long a passing fault (a thread restarted, a record quarantined, the
        spool directory recreated) keeps health degraded after it happened."""
        self.store = store
        self.quarantine = Quarantine(spool_dir)
        self.external_writer = external_writer
        self.spool = Spool(spool_dir, fsync_ms=fsync_ms, fsync_records=fsync_records,
                           quarantine=self.quarantine, hand_off_ms=HAND_OFF_MS if external_writer else None)
        self.writer = StoreWriter(store, self.spool, batch=writer_batch, quarantine=self.quarantine)
        if not external_writer:
            self.spool.on_durable = self.writer.submit
        self.pending_bound_s = pending_bound_s
        self.fault_window_s = fault_window_s
        self._started = False
        self._events: dict[str, float] = {}  # passing fault -> when it was last seen (monotonic)
        self._quarantined_seen = 0
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self._supervising = threading.Lock()

    @classmethod
    def from_settings(cls, store: Store, gateway: GatewaySettings, *, external_writer: bool = False) -> Recorder:
        return cls(store, gateway.spool_dir, fsync_ms=gateway.spool_fsync_ms,
                   fsync_records=gateway.spool_fsync_records, writer_batch=gateway.writer_batch,
                   pending_bound_s=gateway.health_pending_bound_s,
                   fault_window_s=gateway.health_fault_window_s, external_writer=external_writer)

    def start(self) -> Recorder:
        """Start the flusher and the writer; the writer first replays what a crash left behind."""
        if not self._started:
            self._started = True
            self._stopping.clear()
            if not self.external_writer:
                self.writer.start()
            self.spool.start()
            self._supervisor = threading.Thread(target=self._supervise, name="fledgling-supervisor",
                                                daemon=True)
            self._supervisor.start()
        return self

    def record(self, item: Exchange | Call) -> None:
        self.spool.append(item)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything recorded so far is in the store (with an external writer: on
        disk, for that process to store)."""
        if self.external_writer:
            return self.spool.flush(timeout)
        return self.spool.flush(timeout) and self.writer.drain(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Graceful stop: spool what is pending, store everything, delete the spool files."""
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout)
        self.supervise()  # a thread that died just now still gets to finish the drain
        self.spool.close()
        if not self.external_writer:
            self.writer.close(timeout)

    def _supervise(self) -> None:
        while not self._stopping.wait(SUPERVISE_S):
            self.supervise()

    def supervise(self) -> None:
        """Restart a dead spool or writer thread, and remember it for `health()`."""
        with self._supervising:
            self._restart_dead()

    def _restart_dead(self) -> None:
        if self.spool.restart():
            self._events[f"the spool thread died ({self.spool.died}) and was restarted"] = time.monotonic()
        if not self.external_writer and self.writer.restart():
            self._events[f"the store writer thread died ({self.writer.died}) and was restarted"] = time.monotonic()
        if self.quarantine.count > self._quarantined_seen:
            self._quarantined_seen = self.quarantine.count
            self._events["records were quarantined (see `fledgling traces quarantine`): "
                         f"{self.quarantine.last_reason}"] = time.monotonic()

    def health(self) -> tuple[str, list[str]]:
        """`("ok", [])`, or `("degraded", reasons)` while recording is impaired (and for
        `fault_window_s` after a passing fault)."""
        if self._started:
            self.supervise()
        now = time.monotonic()
        reasons: list[str] = []
        spool, writer = self.spool, self.writer
        if self._started and not spool.alive:
            reasons.append(f"the spool thread is not running ({spool.died or 'not started'})")
        if self._started and not writer.alive and not self.external_writer:
            reasons.append(f"the store writer thread is not running ({writer.died or 'not started'})")
        if spool.failing:
            reasons.append(f"spool: {spool.failing}")
        elif spool.last_fault_at is not None and now - spool.last_fault_at < self.fault_window_s:
            reasons.append(f"spool fault {now - spool.last_fault_at:.0f}s ago: {spool.last_fault}")
        if writer.failing_since is not None:
            reasons.append(f"store writes failing for {now - writer.failing_since:.0f}s: "
                           f"{writer.last_error}")
        waited = writer.oldest_pending_s
        if waited > self.pending_bound_s:
            reasons.append(f"{writer.pending} calls waiting for the store for {waited:.0f}s "
                           f"(bound {self.pending_bound_s:g}s)")
        if self.quarantine.lost:
            reasons.append(f"{self.quarantine.lost} refused records could not be written to "
                           f"{self.quarantine.path}; their spool files are kept")
        for event, at in list(self._events.items()):
            if now - at < self.fault_window_s:
                reasons.append(f"{event} ({now - at:.0f}s ago)")
        return ("degraded" if reasons else "ok"), reasons

    def stats(self) -> dict[str, Any]:
        if self.external_writer:  # the writer process counts what reaches the store
            return {**self.spool.stats(), "quarantined": self.quarantine.count,
                    "quarantine_file": str(self.quarantine.path)}
        return {**self.spool.stats(), "stored": self.writer.stored,
                "replayed": self.writer.replayed, "store_pending": self.writer.pending,
                "store_pending_s": round(self.writer.oldest_pending_s, 3),
                "store_failures": self.writer.failures, "store_error": self.writer.last_error,
                "writer_restarts": self.writer.restarts, "quarantined": self.quarantine.count,
                "quarantine_file": str(self.quarantine.path)}
