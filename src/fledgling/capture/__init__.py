"""Ways calls get into the trace store: importers for Langfuse, OpenTelemetry and OpenAI JSONL.

`import_files` streams each file into the store inside ONE transaction, so a malformed record
anywhere rolls that file back entirely (nothing half-written), while the files before it stay
imported. Ids are derived from the source's own ids, so importing a file twice adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fledgling.calls import Call
from fledgling.errors import InputError

if TYPE_CHECKING:
    from fledgling.capture.records import Tally
    from fledgling.store import Store

KINDS = ("langfuse", "otel", "openai-jsonl")

Progress = Callable[[Path, int, int], None]
"""Called as `progress(path, bytes_done, bytes_total)` while a file is read."""


@dataclass
class FileResult:
    path: Path
    read: int = 0
    inserted: int = 0
    ignored: int = 0

    @property
    def skipped(self) -> int:
        """Calls read that were already in the store."""
        return self.read - self.inserted


@dataclass
class ImportResult:
    kind: str
    files: list[FileResult] = field(default_factory=list)

    @property
    def read(self) -> int:
        return sum(f.read for f in self.files)

    @property
    def inserted(self) -> int:
        return sum(f.inserted for f in self.files)


def import_files(store: Store, kind: str, paths: list[Path], *, task: str | None = None,
                 progress: Progress | None = None) -> ImportResult:
    """Import each file all-or-nothing; raises `InputError` (naming file, line/record and field)
    at the first malformed file, after the files before it were committed."""
    reader = _reader(kind)
    result = ImportResult(kind)
    for path in map(Path, paths):
        result.files.append(_import_one(store, reader, path, task, progress))
    return result


def _reader(kind: str) -> Callable[[Path, str | None, Tally], Iterator[Call]]:
    if kind == "langfuse":
        from fledgling.capture.langfuse import calls_in_file
    elif kind == "otel":
        from fledgling.capture.otel import calls_in_file
    elif kind == "openai-jsonl":
        from fledgling.capture.openai_jsonl import calls_in_file
    else:
        raise InputError(f"unknown import kind {kind!r}; use one of: {', '.join(KINDS)}")
    return calls_in_file


def _import_one(store: Store, reader: Callable[[Path, str | None, Tally], Iterator[Call]],
                path: Path, task: str | None, progress: Progress | None) -> FileResult:
    from fledgling.capture.records import Tally

    tally = Tally()
    res = FileResult(path)
    if path.is_dir():
        raise InputError("is a directory; pass the export files inside it", source=str(path))

    def counted() -> Iterator[Call]:
        for call in reader(path, task, tally):
            res.read += 1
            if progress is not None and res.read % 500 == 0:
                progress(path, tally.offset, tally.size)
            yield call

    with store.transaction() as conn:
        res.inserted = store.insert_calls(counted(), conn=conn)
    res.ignored = tally.ignored
    if progress is not None:
        progress(path, tally.size, tally.size)
    return res


__all__ = ["KINDS", "FileResult", "ImportResult", "import_files"]
