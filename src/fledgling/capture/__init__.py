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

from fledgling.calls import Call, cost_usd
from fledgling.errors import InputError

if TYPE_CHECKING:
    from fledgling.capture.records import Skipped, Tally
    from fledgling.store import Store

KINDS = ("langfuse", "otel", "openai-jsonl")

Prices = dict[str, tuple[float | None, float | None]]
"""Model name -> (USD per million input tokens, per million output tokens): `[models.X]`'s
`usd_per_mtok_in` / `usd_per_mtok_out`, for calls whose source gave no cost."""

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
                 progress: Progress | None = None, strict: bool = False,
                 prices: Prices | None = None) -> ImportResult:
    """Import each file in one transaction; raises `InputError` (naming file, line/record and
    field) at the first malformed file, after the files before it were committed. Records not
    understood are skipped and listed in each `FileResult.warnings`, or, with `strict`, fail
    their file like a malformed one. A call without a cost from its source is priced from
    `prices` (by model name, or the longest name its model starts with, `gpt-4o` for
    `gpt-4o-2024-08-06`), and marked `metadata.cost_source = "price table"`."""
    reader = _reader(kind)
    result = ImportResult(kind)
    for path in map(Path, paths):
        result.files.append(_import_one(store, reader, path, task, progress, strict, prices or {}))
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
                path: Path, task: str | None, progress: Progress | None, strict: bool,
                prices: Prices) -> FileResult:
    from fledgling.capture.records import Tally

    tally = Tally(strict=strict)
    res = FileResult(path)
    if path.is_dir():
        raise InputError("is a directory; pass the export files inside it", source=str(path))

    def counted() -> Iterator[Call]:
        for call in reader(path, task, tally):
            call = priced(call, prices)
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


def priced(call: Call, prices: Prices) -> Call:
    """The call with its cost: the source's own, else from the price table, else unknown."""
    if call.cost_usd is not None:
        return call
    price = _price(call.model, prices)
    cost = cost_usd(call.usage, *price) if price else None
    if cost is None:
        return call
    return call.model_copy(update={"cost_usd": cost, "metadata": {**call.metadata, "cost_source": "price table"}})


def _price(model: str | None, prices: Prices) -> tuple[float | None, float | None] | None:
    if not model or not prices:
        return None
    if model in prices:
        return prices[model]
    stems = [name for name in prices if model.startswith(name + "-")]
    return prices[max(stems, key=len)] if stems else None


__all__ = ["KINDS", "FileResult", "ImportResult", "Prices", "import_files", "priced"]
