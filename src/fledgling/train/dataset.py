"""The curated dataset a trainer reads: `{train,val,test}.jsonl` of chat-with-tools examples.

Curation writes `.fledgling/datasets/<task>/v<N>/` and records each version in the store's
`datasets` table. One line is `{"messages": [...], "tools": [...]}` (the last message is the
answer) plus provenance (`call_ids`); both of curation's formats, `chat` and `openai`, read. Every line is
checked before any training starts, so a bad file fails in a second, not after an epoch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fledgling.errors import InputError

if TYPE_CHECKING:
    from fledgling.store import Store  # training workers read a dataset without the store

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Example:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    call_ids: tuple[str, ...] = ()


@dataclass
class Dataset:
    """One dataset version: where it lives, its content hash, and its parsed splits."""

    task: str
    version: str
    path: Path
    sha256: str
    splits: dict[str, list[Example]] = field(default_factory=dict)

    def split(self, name: str, limit: int | None = None) -> list[Example]:
        items = self.splits.get(name, [])
        return items[:limit] if limit is not None else items

    def describe(self) -> dict[str, Any]:
        return {"task": self.task, "version": self.version, "path": str(self.path),
                "sha256": self.sha256, "counts": {k: len(v) for k, v in self.splits.items()}}

    def copy_rules(self) -> dict[str, str]:
        """The fields curation found copied from the conversation, with how they are copied
        (`report.json`'s `label_checks.copy_rules`); none for a dataset curation did not write
        or that predates them. Training passes them on in the model's manifest."""
        rules = self._label_checks().get("copy_rules")
        return {str(k): str(v) for k, v in rules.items()} if isinstance(rules, dict) else {}

    def call_rules(self) -> list[str]:
        """The rules against repeated calls curation found the labels keep (`distinct`, `new`:
        `fledgling.curate.repeats`, `label_checks.call_rules`); none when it did not write them."""
        found = self._label_checks().get("call_rules")
        rules = found.get("rules") if isinstance(found, dict) else None
        return [str(r) for r in rules] if isinstance(rules, list) else []

    def _label_checks(self) -> dict[str, Any]:
        try:
            report = json.loads((self.path / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        checks = report.get("label_checks") if isinstance(report, dict) else None
        return checks if isinstance(checks, dict) else {}


def locate(store: Store, task: str, version: int | None = None) -> tuple[Path, str]:
    """The directory and version label of a task's curated dataset (the newest by default)."""
    row = store.datasets.get(task, version)
    if row is None:
        which = f"version {version} of " if version is not None else ""
        raise InputError(f"no curated dataset {which}task '{task}' in the store; run "
                         f"`fledgling curate --task {task}` first, or pass --dataset DIR")
    return Path(row["path"]), f"v{row['version']}"


def load(path: Path, *, task: str, version: str | None = None) -> Dataset:
    """Read and check every split in `path` (train is required; val and test are optional)."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"dataset directory {path} does not exist; run `fledgling curate` or "
                         "pass the directory that holds train.jsonl")
    if not (path / "train.jsonl").is_file():
        raise InputError(f"{path} has no train.jsonl; a curated dataset has train/val/test.jsonl")
    h = hashlib.sha256()
    splits: dict[str, list[Example]] = {}
    for name in SPLITS:
        file = path / f"{name}.jsonl"
        if not file.is_file():
            continue
        raw = file.read_bytes()
        h.update(name.encode() + b"\0" + raw)
        splits[name] = _parse(file, raw)
    if not splits["train"]:
        raise InputError(f"{path / 'train.jsonl'} has no examples; curate more calls first")
    return Dataset(task, version or path.name, path, h.hexdigest(), splits)


def _parse(file: Path, raw: bytes) -> list[Example]:
    out: list[Example] = []
    for n, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise InputError(f"not JSON ({exc})", source=str(file), record=f"line {n}") from None
        out.append(_example(rec, file, n))
    return out


def _example(rec: Any, file: Path, n: int) -> Example:
    where = {"source": str(file), "record": f"line {n}"}
    if not isinstance(rec, dict):
        raise InputError("expected a JSON object", **where)
    messages = rec.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InputError("must be a non-empty list of chat messages", field="messages", **where)
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise InputError("each message needs a string 'role'", field=f"messages[{i}]", **where)
    last = messages[-1]
    if last["role"] != "assistant":
        raise InputError("the last message must be the assistant's answer (the training target)",
                         field=f"messages[{len(messages) - 1}].role", **where)
    if not last.get("content") and not last.get("tool_calls"):
        raise InputError("the answer has neither content nor tool_calls",
                         field=f"messages[{len(messages) - 1}]", **where)
    tools = rec.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InputError("must be a list of tools", field="tools", **where)
    ids = rec.get("call_ids") or ([rec["call_id"]] if rec.get("call_id") else [])
    return Example(messages, tools or None, rec.get("response_format"), tuple(str(i) for i in ids))
