"""The spool: a local append-only log of captured calls, fsync'd in small groups.

Serving never waits for it. `append` only puts the record in memory; a flusher thread writes
whatever accumulated, one `write` + `fsync` per group, at most `fsync_ms` after the oldest
record of the group arrived (or as soon as `fsync_records` are waiting). A record is
**acknowledged** once its group's fsync returned: from then on no crash (kill -9, power loss)
can lose it, because a restart replays every spool file the store has not yet absorbed. What a
crash can lose is bounded by the window: the records of the last `fsync_ms` (plus one fsync).

Files: `<spool_dir>/<time_ns>-<pid>.spool`, one JSON record per line: `{"exchange": ...}` (what
the gateway saw on the wire, turned into a `Call` by the store writer) or `{"call": ...}`. Each live file is held
under an exclusive `flock` by its writer, so several gateways (or instrumented clients) can
share a spool directory: a replay only claims files nobody holds. A file is deleted once every
record in it is in the store.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from fledgling.calls import Call
from fledgling.gateway.exchange import Exchange, exchange_from_record, exchange_record, exchange_to_call

log = logging.getLogger("fledgling.gateway")

SUFFIX = ".spool"


@dataclass
class Segment:
    """One spool file, owned (locked) by this process while it is open."""

    path: Path
    fd: int
    records: int = 0
    stored: int = 0
    bytes: int = 0
    closed: bool = False

    @property
    def done(self) -> bool:
        return self.closed and self.stored >= self.records


Item = Exchange | Call
Durable = Callable[[Segment, list[Item]], None]


class Spool:
    """Append from any thread; a flusher thread group-commits to disk and hands records on."""

    def __init__(self, directory: str | Path, *, fsync_ms: float = 10.0, fsync_records: int = 512,
                 segment_bytes: int = 16 * 1024 * 1024, on_durable: Durable | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync_s = fsync_ms / 1000
        self.fsync_records = fsync_records
        self.segment_bytes = segment_bytes
        self.on_durable = on_durable
        self.appended = 0
        self._seq = itertools.count(1)  # next() is atomic: appends may come from any thread
        self.acknowledged = 0
        self.unspooled = 0
        self._pending: deque[Item] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._lock = threading.Lock()
        self._segment: Segment | None = None
        self._thread = threading.Thread(target=self._run, name="fledgling-spool", daemon=True)
        self._flushed = threading.Condition()

    # -- producer side (the response path) -------------------------------------------------

    def append(self, item: Item) -> None:
        """Queue one record. O(1), no I/O: the flusher thread does the rest."""
        self._pending.append(item)
        self.appended = next(self._seq)
        if len(self._pending) >= self.fsync_records:
            self._wake.set()
        elif len(self._pending) == 1:
            self._wake.set()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything appended so far has been written out (acknowledged)."""
        target = self.appended
        self._wake.set()
        with self._flushed:
            return self._flushed.wait_for(lambda: self.acknowledged + self.unspooled >= target, timeout)

    def close(self) -> None:
        """Write out what is pending and stop the flusher; open files stay until stored."""
        self._stop = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self._write_pending()
        if self._segment is not None:
            self._close_segment(self._segment)

    def stats(self) -> dict[str, Any]:
        return {"dir": str(self.directory), "appended": self.appended,
                "acknowledged": self.acknowledged, "unspooled": self.unspooled,
                "fsync_ms": self.fsync_s * 1000}

    def mark_stored(self, segment: Segment, n: int) -> None:
        """The store now holds `n` more records of `segment`; delete the file once all are."""
        with self._lock:
            segment.stored += n
            if segment.done:
                self.release(segment)

    # -- flusher ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait()
            if self._stop:
                break
            self._wake.clear()
            if len(self._pending) < self.fsync_records and self.fsync_s > 0:
                deadline = time.monotonic() + self.fsync_s
                while len(self._pending) < self.fsync_records and not self._stop:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._wake.wait(left)
                    self._wake.clear()
            self._write_pending()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        calls: list[Item] = []
        lines: list[bytes] = []
        while self._pending:
            item = self._pending.popleft()
            try:
                lines.append(_line(item))
            except Exception:  # a record that cannot be serialised must not stop the spool
                log.exception("dropping a capture that could not be serialised")
                with self._flushed:
                    self.unspooled += 1
                    self._flushed.notify_all()
                continue
            calls.append(item)
        if not calls:
            return
        data = b"".join(lines)
        segment = self._current_segment()
        durable = True
        try:
            _write_all(segment.fd, data)
            os.fsync(segment.fd)
        except OSError:
            durable = False
            log.exception("spool write failed; %d records go to the store unspooled", len(calls))
        with self._lock:
            segment.records += len(calls)
            segment.bytes += len(data)
        with self._flushed:
            if durable:
                self.acknowledged += len(calls)
            else:
                self.unspooled += len(calls)
            self._flushed.notify_all()
        if self.on_durable is not None:
            self.on_durable(segment, calls)
        if segment.bytes >= self.segment_bytes:
            self._close_segment(segment)

    def _current_segment(self) -> Segment:
        if self._segment is None:
            self._segment = _open_segment(self.directory)
        return self._segment

    def _close_segment(self, segment: Segment) -> None:
        with self._lock:
            segment.closed = True
            if self._segment is segment:
                self._segment = None
            if segment.done:
                self.release(segment)

    def release(self, segment: Segment) -> None:
        if segment.fd < 0:
            return
        segment.path.unlink(missing_ok=True)
        os.close(segment.fd)
        segment.fd = -1


def _open_segment(directory: Path) -> Segment:
    """A new file, locked before it gets the name a replay would look for."""
    name = f"{time.time_ns():020d}-{os.getpid()}"
    tmp = directory / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    path = directory / f"{name}{SUFFIX}"
    os.rename(tmp, path)
    _fsync_dir(directory)
    return Segment(path=path, fd=fd)


def _line(item: Item) -> bytes:
    if isinstance(item, Exchange):
        return orjson.dumps({"exchange": exchange_record(item)}) + b"\n"
    return b'{"call":' + item.model_dump_json().encode() + b"}\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- replay ---------------------------------------------------------------------------------

def claim_orphans(directory: str | Path) -> list[Segment]:
    """Spool files no live process holds (their writer died or stopped): ours to replay now."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    claimed: list[Segment] = []
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if not path.exists():  # replayed and deleted by someone else meanwhile
            os.close(fd)
            continue
        claimed.append(Segment(path=path, fd=fd, closed=True))
    return claimed


def read_segment(path: str | Path) -> Iterator[Call]:
    """The complete records of one spool file, as calls. A torn last line (crash mid-write) is
    skipped: it was never acknowledged."""
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            try:
                rec = orjson.loads(line)
                if "exchange" in rec:
                    yield exchange_to_call(exchange_from_record(rec["exchange"]))
                else:
                    yield Call.model_validate(rec["call"])
            except (orjson.JSONDecodeError, ValidationError, KeyError, TypeError, ValueError):
                log.warning("skipping an unreadable record in %s", path)


def spooled_ids(directory: str | Path) -> list[str]:
    """Ids of every complete record in a spool directory (for audits and tests)."""
    return [c.id for p in sorted(Path(directory).glob(f"*{SUFFIX}")) for c in read_segment(p)]
