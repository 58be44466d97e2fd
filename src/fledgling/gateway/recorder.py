"""The `Recorder`: spool + store writer, the one way captured calls reach the store.

The gateway and `fledgling.instrument` both record through it: `record()` is O(1) and never
touches the disk or the database on the caller's thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fledgling.calls import Call
from fledgling.config import GatewaySettings
from fledgling.gateway.exchange import Exchange
from fledgling.gateway.spool import Spool
from fledgling.gateway.writer import StoreWriter
from fledgling.store import Store


class Recorder:
    def __init__(self, store: Store, spool_dir: str | Path, *, fsync_ms: float = 10.0,
                 fsync_records: int = 512, writer_batch: int = 500):
        self.store = store
        self.spool = Spool(spool_dir, fsync_ms=fsync_ms, fsync_records=fsync_records)
        self.writer = StoreWriter(store, self.spool, batch=writer_batch)
        self.spool.on_durable = self.writer.submit
        self._started = False

    @classmethod
    def from_settings(cls, store: Store, gateway: GatewaySettings) -> Recorder:
        return cls(store, gateway.spool_dir, fsync_ms=gateway.spool_fsync_ms,
                   fsync_records=gateway.spool_fsync_records, writer_batch=gateway.writer_batch)

    def start(self) -> Recorder:
        """Start the flusher and the writer; the writer first replays what a crash left behind."""
        if not self._started:
            self._started = True
            self.writer.start()
            self.spool.start()
        return self

    def record(self, item: Exchange | Call) -> None:
        self.spool.append(item)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything recorded so far is in the store."""
        return self.spool.flush(timeout) and self.writer.drain(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Graceful stop: spool what is pending, store everything, delete the spool files."""
        if not self._started:
            return
        self._started = False
        self.spool.close()
        self.writer.close(timeout)

    def stats(self) -> dict[str, Any]:
        return {**self.spool.stats(), "stored": self.writer.stored,
                "replayed": self.writer.replayed, "store_pending": self.writer.pending,
                "store_failures": self.writer.failures, "store_error": self.writer.last_error}
