"""Ways calls get into the trace store: importers for Langfuse, OpenTelemetry and OpenAI JSONL.

`import_files` streams each file into the store inside ONE transaction, so a malformed file
(bad JSON, a record that is not a trace at all) rolls that file back entirely (nothing
half-written), while the files before it stay imported. A record whose shape is not understood
(a Langfuse observation whose input holds no messages) is skipped with a warning naming it and
counted in the file's result; with `strict=True` it fails the file instead. Ids are derived from
the source's own ids, so importing a file twice adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fledgling.calls import Call
from fledgling.errors import InputError

if TYPE_CHECKING:
    from fledgling.capture.records import Skipped, Tally
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
    seen: int = 0
    """LLM-call records met (Langfuse: GENERATION observations), mapped or skipped."""
    tool_calls: int = 0
    """Tool calls in the answers of the calls read."""
    warnings: list[Skipped] = field(default_factory=list)
    """Records skipped because their shape was not understood, each naming record and reason."""

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
                 progress: Progress | None = None, strict: bool = False) -> ImportResult:
    """Import each file in one transaction; raises `InputError` (naming file, line/record and
    field) at the first malformed file, after the files before it were committed. Records not
    understood are skipped and listed in each `FileResult.warnings`, or, with `strict`, fail
    their file like a malformed one."""
    reader = _reader(kind)
    result = ImportResult(kind)
    for path in map(Path, paths):
        result.files.append(_import_one(store, reader, path, task, progress, strict))
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
                path: Path, task: str | None, progress: Progress | None, strict: bool) -> FileResult:
    from fledgling.capture.records import Tally

    tally = Tally(strict=strict)
    res = FileResult(path)
    if path.is_dir():
        raise InputError("is a directory; pass the export files inside it", source=str(path))

    def counted() -> Iterator[Call]:
        for call in reader(path, task, tally):
            res.read += 1
            res.tool_calls += len(call.response.tool_calls) if call.response else 0
            if progress is not None and res.read % 500 == 0:
                progress(path, tally.offset, tally.size)
            yield call

    with store.transaction() as conn:
        res.inserted = store.insert_calls(counted(), conn=conn)
    res.ignored = tally.ignored
    res.seen = max(tally.seen, res.read + len(tally.skipped))
    res.warnings = list(tally.skipped)
    if progress is not None:
        progress(path, tally.size, tally.size)
    return res


__all__ = ["KINDS", "FileResult", "ImportResult", "import_files"]
