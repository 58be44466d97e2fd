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
record in it is in the store (or quarantined, see quarantine.py).

When the spool cannot write (directory read-only, removed, disk full) serving goes on: the
records of that group go straight to the store writer, counted as `unspooled` (a crash before
the store has them would lose them), the failure is reported as `failing` (the gateway's health
says `degraded`), a removed directory is recreated, and every later group tries the disk again.
The directory and its files are created owner-only (0700/0600): they hold every prompt.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fledgling.calls import Call
from fledgling.capture.recording.exchange import Exchange, exchange_from_record, exchange_record, exchange_to_call
from fledgling.capture.recording.quarantine import Quarantine
from fledgling.capture.recording.supervised import Supervised
from fledgling.errors import ConfigError

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
    opened: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> bool:
        return self.closed and self.stored >= self.records


Item = Exchange | Call
Durable = Callable[[Segment | None, list[Item]], None]
"""Called once records are written out: their segment, or None when the spool could not
write them (then the store writer is all that holds them)."""


def ensure_writable(directory: str | Path) -> Path:
    """Create the spool directory (owner-only) and prove a file can be created in it; a clear
    `ConfigError` otherwise, so a gateway that could not keep what it acknowledges never starts."""
    directory = Path(directory)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = directory / f".probe-{os.getpid()}-{time.time_ns()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"the spool directory {directory} is not writable ({exc.strerror or exc}); "
                          "fix its permissions or set [gateway] spool_dir to a writable directory") from None
    return directory


class Spool(Supervised):
    """Append from any thread; a flusher thread group-commits to disk and hands records on."""

    thread_name = "fledgling-spool"
    what = "the spool thread"

    def __init__(self, directory: str | Path, *, fsync_ms: float = 10.0, fsync_records: int = 512,
                 segment_bytes: int = 16 * 1024 * 1024, on_durable: Durable | None = None,
                 quarantine: Quarantine | None = None, hand_off_ms: float | None = None):
        """`hand_off_ms`: another process stores the records (`gateway --workers N`'s writer
        process, see `SpoolDrain`): every file is closed, and its lock released, once it is this
        old (or full), so that process can claim it; nothing here deletes it."""
        self.directory = ensure_writable(directory)
        self.quarantine = quarantine or Quarantine(self.directory)
        self.fsync_s = fsync_ms / 1000
        self.fsync_records = fsync_records
        self.segment_bytes = segment_bytes
        self.hand_off_s = hand_off_ms / 1000 if hand_off_ms is not None else None
        self.handed_off = 0
        self.on_durable = on_durable
        self.appended = 0
        self._seq = itertools.count(1)  # next() is atomic: appends may come from any thread
        self.acknowledged = 0
        self.unspooled = 0
        self.quarantined = 0
        self.failing: str | None = None  # why the last write failed; None once one succeeds
        self.faults = 0
        self.last_fault: str | None = None
        self.last_fault_at: float | None = None  # time.monotonic()
        self._pending: deque[Item] = deque()
        self._lock = threading.Lock()
        self._segment: Segment | None = None
        super().__init__()
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

    # -- lifecycle (start, alive, restart: `Supervised`) ----------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything appended so far has been written out (acknowledged)."""
        target = self.appended
        self._wake.set()
        with self._flushed:
            return self._flushed.wait_for(
                lambda: self.acknowledged + self.unspooled + self.quarantined >= target, timeout)

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
                "fsync_ms": self.fsync_s * 1000, "spool_error": self.failing,
                "spool_faults": self.faults, "spool_restarts": self.restarts,
                **({"handed_off_files": self.handed_off} if self.hand_off_s is not None else {})}

    def _fault(self, reason: str) -> None:
        if self.failing != reason:
            log.error("spool: %s", reason)
        self.failing = reason
        self.faults += 1
        self.last_fault = reason
        self.last_fault_at = time.monotonic()

    def mark_stored(self, segment: Segment | None, n: int) -> None:
        """The store now holds `n` more records of `segment`; delete the file once all are."""
        if segment is None:
            return
        with self._lock:
            segment.stored += n
            if segment.done:
                self.release(segment)

    # -- flusher ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop:
                self._wake.wait(self._until_hand_off())
                if self._stop:
                    break
                self._wake.clear()
                self._hand_off_due()
                if len(self._pending) < self.fsync_records and self.fsync_s > 0:
                    deadline = time.monotonic() + self.fsync_s
                    while len(self._pending) < self.fsync_records and not self._stop:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._wake.wait(left)
                        self._wake.clear()
                try:
                    self._write_pending()
                except Exception as exc:  # a bug here must not end the thread: report, go on
                    log.exception("spool flusher error")
                    self._fault(f"flusher error: {type(exc).__name__}: {exc}"[:300])
                    time.sleep(0.05)
                    self._wake.set()
        except BaseException as exc:  # the thread is dying: say why, the supervisor restarts it
            self.died = f"{type(exc).__name__}: {exc}"[:300]
            self._fault(f"the spool thread died ({self.died})")

    def _until_hand_off(self) -> float | None:
        """How long the flusher may sleep before the open file is due to be handed off."""
        segment = self._segment
        if self.hand_off_s is None or segment is None:
            return None
        return max(0.0, segment.opened + self.hand_off_s - time.monotonic())

    def _hand_off_due(self) -> None:
        segment = self._segment
        if self.hand_off_s is not None and segment is not None and \
                time.monotonic() - segment.opened >= self.hand_off_s:
            self._close_segment(segment)

    def _write_pending(self) -> None:
        if not self._pending:
            return
        calls: list[Item] = []
        group: dict[str, Any] = {"segment": None, "written": False, "submitted": False}
        try:
            self._write_group(calls, group)
        except BaseException:  # dying mid-group: nothing taken may be dropped
            if not group["written"]:
                self._pending.extendleft(reversed(calls))
            elif not group["submitted"] and self.on_durable is not None:
                self.on_durable(group["segment"], calls)
            if self._segment is not None:  # no more writes to it; kept until its records are stored
                self._close_segment(self._segment)
            raise

    def _write_group(self, calls: list[Item], group: dict[str, Any]) -> None:
        lines: list[bytes] = []
        while self._pending:
            item = self._pending.popleft()
            calls.append(item)
            line = self._line_or_quarantine(item)
            if line is None:
                calls.pop()
                continue
            lines.append(line)
        if not calls:
            return
        data = b"".join(lines)
        segment = None
        try:
            segment = self._current_segment()
            _write_all(segment.fd, data)
            os.fsync(segment.fd)
        except OSError as exc:
            self._fault(f"cannot write to {self.directory} ({exc.strerror or exc}); calls go to "
                        "the store unspooled until it can")
            if segment is not None:  # never write to it again: a torn group may end it
                self._close_segment(segment)
            segment = None
        else:
            self.failing = None
            with self._lock:
                segment.records += len(calls)
                segment.bytes += len(data)
        if segment is None and self.hand_off_s is not None:
            # no store writer in this process to take them: they wait in memory for the disk
            # (a crash meanwhile loses them; health says `degraded` all along)
            self._pending.extendleft(reversed(calls))
            calls.clear()
            time.sleep(0.1)
            self._wake.set()
            return
        group["segment"], group["written"] = segment, True
        with self._flushed:
            if segment is not None:
                self.acknowledged += len(calls)
            else:
                self.unspooled += len(calls)
            self._flushed.notify_all()
        if self.on_durable is not None:
            self.on_durable(segment, calls)
        group["submitted"] = True
        if segment is not None and segment.bytes >= self.segment_bytes:
            self._close_segment(segment)
        else:
            self._hand_off_due()

    def _line_or_quarantine(self, item: Item) -> bytes | None:
        """The spool line of `item`. An exchange that cannot be written as JSON (an answer nested
        deeper than orjson writes) is spooled as the error call it converts to; a record that
        still cannot be written is quarantined, and counted."""
        try:
            return _line(item)
        except Exception as exc:
            first = exc
        if isinstance(item, Exchange):
            try:
                return _line(exchange_to_call(item))
            except Exception as exc:
                first = exc
        self.quarantine.add(f"cannot be written to the spool: {type(first).__name__}: {first}"[:300],
                            item, call_id=getattr(item, "id", None))
        with self._flushed:
            self.quarantined += 1
            self._flushed.notify_all()
        return None

    def _current_segment(self) -> Segment:
        if self._segment is not None and not self.directory.is_dir():
            self._fault(f"the spool directory {self.directory} vanished; recreating it")
            self._close_segment(self._segment)
        if self._segment is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._segment = _open_segment(self.directory)
        return self._segment

    def _close_segment(self, segment: Segment) -> None:
        with self._lock:
            segment.closed = True
            if self._segment is segment:
                self._segment = None
            if self.hand_off_s is not None and segment.fd >= 0:  # the writer process's to store now
                os.close(segment.fd)
                segment.fd = -1
                self.handed_off += 1
            elif segment.done:
                self.release(segment)

    def release(self, segment: Segment) -> None:
        if segment.fd < 0:
            return
        try:
            segment.path.unlink(missing_ok=True)
        except OSError as exc:  # kept: a later replay finds its records already stored
            self._fault(f"cannot delete the stored spool file {segment.path.name} ({exc.strerror})")
        os.close(segment.fd)
        segment.fd = -1


def _open_segment(directory: Path) -> Segment:
    """A new file, locked before it gets the name a replay would look for."""
    name = f"{time.time_ns():020d}-{os.getpid()}"
    tmp = directory / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    path = directory / f"{name}{SUFFIX}"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(tmp, path)
        _fsync_dir(directory)
    except OSError:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
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


Unreadable = Callable[[str, bytes], None]


def read_segment(path: str | Path, on_unreadable: Unreadable | None = None) -> Iterator[Call]:
    """The complete records of one spool file, as calls. A torn last line (crash mid-write) is
    skipped: it was never acknowledged. A complete line that cannot be read back is handed to
    `on_unreadable(reason, line)` (the writer quarantines it), whatever its fault."""
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            try:
                call = _call_of(orjson.loads(line))
            except Exception as exc:  # one bad line must not stop the replay of the others
                reason = f"unreadable spool record in {Path(path).name}: {type(exc).__name__}: {exc}"
                log.warning("%s", reason[:300])
                if on_unreadable is not None:
                    on_unreadable(reason[:300], line)
                continue
            yield call


def _call_of(rec: Any) -> Call:
    if not isinstance(rec, dict):
        raise ValueError(f"a spool line holds a {type(rec).__name__}, not an object")
    if "exchange" in rec:
        return exchange_to_call(exchange_from_record(rec["exchange"]))
    return Call.model_validate(rec["call"])


def spooled_ids(directory: str | Path) -> list[str]:
    """Ids of every complete record in a spool directory (for audits and tests)."""
    return [c.id for p in sorted(Path(directory).glob(f"*{SUFFIX}")) for c in read_segment(p)]
