"""Records of an input file, streamed one at a time, each with where it was found.

JSONL is read line by line; a JSON file whose records sit in a top-level array (or in
`{"data": [...]}`, as the Langfuse API pages them) is parsed incrementally with ijson, so memory
stays bounded by one record, not by the file. Every failure is an `InputError` that names the
file, the line or record, and (through `BadField`) the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ijson
import orjson
from pydantic import ValidationError

from fledgling.capture.coerce import BadField
from fledgling.errors import InputError
from fledgling.payload import MAX_JSON_DEPTH, too_deep

_SINGLE_OBJECT_KEYS = {"id", "traceId", "resourceSpans", "observations", "type", "request", "messages"}
_UTF8_BOM = b"\xef\xbb\xbf"
_TOO_DEEP = f"is nested deeper than {MAX_JSON_DEPTH} levels, which the store cannot keep"
_NOT_UTF8 = "is not valid UTF-8 text; save the export as UTF-8"


@dataclass
class Skipped:
    """A record the reader did not understand and left out (a warning, not an error)."""

    source: str
    record: str
    reason: str
    field: str | None = None
    shape: str | None = None

    def __str__(self) -> str:
        where = f"{self.source}: {self.record}"
        what = f"field {self.field!r}: {self.reason}" if self.field else self.reason
        return f"{where}: {what}" + (f" (shape {self.shape})" if self.shape and self.shape not in what else "")


@dataclass
class Tally:
    """What a reader has got through so far: bytes (for progress), records that are not calls,
    and those it skipped. With `strict`, a record it cannot map is an error, not a skip."""

    offset: int = 0
    size: int = 0
    ignored: int = 0
    seen: int = 0
    strict: bool = False
    skipped: list[Skipped] = field(default_factory=list)


@contextmanager
def reading(source: str, where: str) -> Iterator[None]:
    """Turn any failure to map one record into an `InputError` that says where it happened."""
    try:
        yield
    except InputError:
        raise
    except BadField as exc:
        raise InputError(exc.message, source=source, record=where, field=exc.field) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or None
        raise InputError(first_line(err.get("msg", "invalid value")), source=source, record=where,
                         field=field) from None
    except RecursionError:
        raise InputError(_TOO_DEEP, source=source, record=where) from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise InputError(f"cannot be read ({type(exc).__name__}: {first_line(exc, 200)})",
                         source=source, record=where) from None


def first_line(error: object, limit: int = 120) -> str:
    """The gist of a parser's message: yajl (behind ijson) adds lines that point at the bad
    byte, which do not belong in a one-line error."""
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else type(error).__name__


def records(path: Path, tally: Tally) -> Iterator[tuple[str, Any, bool]]:
    """(where, value, suspect) for each record: JSONL lines, or the items of a JSON array or
    `data` array. `suspect` is False when the raw text cannot hold a NUL character, which
    spares the mapper a walk over the whole value."""
    source = str(path)
    try:
        tally.size = path.stat().st_size
        f = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot open the file ({exc.strerror or exc})", source=source) from None
    with f:
        start = _start(f.read(4), source)
        f.seek(start)
        tally.offset = start
        if _looks_like_jsonl(f, start):
            yield from _lines(f, source, tally)
        else:
            yield from _json_items(f, source, tally, start)


def _start(head: bytes, source: str) -> int:
    """Where the JSON text starts: after a UTF-8 byte order mark. UTF-16 and UTF-32 (a BOM, or
    the NUL bytes they put beside ASCII) are refused by name rather than as garbled JSON."""
    if head.startswith(_UTF8_BOM):
        return len(_UTF8_BOM)
    utf16 = head[1:4:2] == b"\0\0" or head[0:3:2] == b"\0\0"  # "{" as 7B 00 or 00 7B
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or utf16:
        raise InputError("is UTF-16 or UTF-32 text, not UTF-8; save the export as UTF-8",
                         source=source)
    return 0


def _looks_like_jsonl(f: Any, start: int) -> bool:
    """A file whose first non-blank line is a whole JSON value is read as JSON Lines."""
    for line in f:
        if line.strip():
            f.seek(start)
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                return False
            return True
    f.seek(start)
    return True


def _lines(f: Any, source: str, tally: Tally) -> Iterator[tuple[str, Any, bool]]:
    for lineno, line in enumerate(f, 1):
        tally.offset += len(line)
        if not line.strip():
            continue
        where = f"line {lineno}"
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InputError(_json_reason(exc, line), source=source, record=where) from None
        _check_depth(value, line, source, where)
        yield where, value, b"\\u0000" in line


def _json_reason(exc: orjson.JSONDecodeError, line: bytes) -> str:
    if not line.endswith(b"\n") and line.strip():
        return _decode_reason(exc, "; the file looks truncated")
    return _decode_reason(exc, f" at column {exc.colno}")


def _decode_reason(exc: orjson.JSONDecodeError, position: str) -> str:
    if exc.msg.startswith("depth limit"):
        return _TOO_DEEP
    if "not valid UTF-8" in exc.msg:
        return _NOT_UTF8
    return f"invalid JSON ({exc.msg}{position})"


def _check_depth(value: Any, raw: bytes | None, source: str, where: str) -> None:
    """Refuse a record the store could not write back. Text with few brackets cannot be deep,
    which spares the walk over most records."""
    if (raw is None or raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH) and too_deep(value):
        raise InputError(_TOO_DEEP, source=source, record=where)


def _json_items(f: Any, source: str, tally: Tally, start: int) -> Iterator[tuple[str, Any, bool]]:
    head = f.read(64).lstrip(b" \t\r\n")
    f.seek(start)
    first = head[:1]
    if first == b"[":
        prefix = "item"
    elif first == b"{" and _has_top_level_data(f, source):
        prefix = "data.item"
        f.seek(start)
    elif first == b"{":
        f.seek(start)
        yield from _whole(f, source, tally)
        return
    else:
        raise InputError("is neither JSON nor JSON Lines (expected '[', '{' or one JSON value "
                         "per line)", source=source, record="line 1")
    index = 0
    try:
        for index, value in enumerate(ijson.items(f, prefix, use_float=True), 1):
            tally.offset = f.tell()
            _check_depth(value, None, source, f"record {index}")
            yield f"record {index}", value, True
    except (ijson.JSONError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"invalid JSON after record {index} ({first_line(exc)}); the file may be "
                         "truncated", source=source, record=f"record {index + 1}") from None
    tally.offset = tally.size


def _has_top_level_data(f: Any, source: str) -> bool:
    """Scan only the top-level keys, up to the first that decides what kind of object this is."""
    try:
        for prefix, event, value in ijson.parse(f):
            if prefix == "" and event == "map_key":
                if value == "data":
                    return True
                if value in _SINGLE_OBJECT_KEYS:
                    return False
    except (ijson.JSONError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"invalid JSON ({first_line(exc)})", source=source, record="record 1") from None
    return False


def _whole(f: Any, source: str, tally: Tally) -> Iterator[tuple[str, Any, bool]]:
    data = f.read()
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(_decode_reason(exc, f" at line {exc.lineno}, column {exc.colno}"),
                         source=source, record="record 1") from None
    _check_depth(value, data, source, "record 1")
    tally.offset = tally.size
    yield "record 1", value, b"\\u0000" in data
