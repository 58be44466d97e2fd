"""The quarantine: records the store refused, kept beside the spool instead of blocking it.

A record lands here only when the store is reachable and still refuses it on its own (after
the batch it came in was retried record by record), or when a spool line cannot be read back.
Each is one JSON line of `<spool_dir>/quarantine.jsonl` (owner-only), with the time, the reason
and the raw record, so nothing is lost silently: `fledgling traces quarantine` lists them, and
the recorder's figures count them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fledgling.calls import Call
from fledgling.capture.recording.exchange import Exchange, bounded_text, exchange_record

log = logging.getLogger("fledgling.gateway")

FILENAME = "quarantine.jsonl"


class Quarantine:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = self.directory / FILENAME
        self.count = 0
        self.lost = 0  # quarantined records that could not even be written here (disk trouble)
        self.last_reason: str | None = None
        self._lock = threading.Lock()

    def add(self, reason: str, record: Any, *, call_id: str | None = None) -> bool:
        """Keep `record` with `reason`. False when the file cannot be written (the caller then
        keeps the record where it was, e.g. its spool file, for a later replay)."""
        try:
            line = _line(reason, record, call_id)
        except Exception:  # never raise on the way to the quarantine: keep at least the reason
            line = orjson.dumps({"at": datetime.now(UTC).isoformat(), "id": call_id,
                                 "reason": reason, "record": None}) + b"\n"
        with self._lock:
            self.count += 1
            self.last_reason = reason
            try:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                self.lost += 1
                log.error("could not quarantine record %s (%s): %s", call_id, reason, exc)
                return False
        log.warning("quarantined record %s: %s", call_id, reason)
        return True


def _line(reason: str, record: Any, call_id: str | None) -> bytes:
    entry: dict[str, Any] = {"at": datetime.now(UTC).isoformat(), "id": call_id, "reason": reason}
    try:
        if isinstance(record, Exchange):
            entry["exchange"] = exchange_record(record)
        elif isinstance(record, Call):  # pydantic's JSON as is (it writes what orjson cannot)
            return orjson.dumps(entry)[:-1] + b',"call":' + record.model_dump_json().encode() + b"}\n"
        elif isinstance(record, bytes | bytearray):
            entry["line"] = bytes(record).decode("utf-8", "replace")
        else:
            entry["record"] = record
        return orjson.dumps(entry) + b"\n"
    except Exception:  # a record too odd to write whole is kept as a bounded preview
        entry = {k: entry[k] for k in ("at", "id", "reason")}
        entry["preview"] = bounded_text(exchange_record(record) if isinstance(record, Exchange)
                                        else record)
        return orjson.dumps(entry) + b"\n"


def read_quarantine(directory: str | Path) -> Iterator[dict[str, Any]]:
    """The quarantined entries of a spool directory, oldest first (an unreadable line is shown
    as such, never skipped)."""
    path = Path(directory) / FILENAME
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                try:  # e.g. an integer wider than 64 bits, which orjson does not read
                    entry = json.loads(line)
                except ValueError:
                    entry = None
            if not isinstance(entry, dict):
                entry = {"reason": f"line {n} of {path.name} is not a JSON object", "id": None}
            yield entry


def quarantine_report(directory: str | Path) -> dict[str, Any]:
    """What `fledgling traces quarantine` shows: the file, the count, the count per reason, and
    each record's time, id and reason (the raw records stay in the file)."""
    entries: list[dict[str, Any]] = [{"at": e.get("at"), "id": e.get("id"), "reason": str(e.get("reason"))}
                                     for e in read_quarantine(directory)]
    by_reason: dict[str, int] = {}
    for e in entries:
        by_reason[e["reason"]] = by_reason.get(e["reason"], 0) + 1
    return {"file": str(Path(directory) / FILENAME), "count": len(entries), "by_reason": by_reason,
            "records": entries}
