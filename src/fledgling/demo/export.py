"""Writing the demo traffic as OpenAI-format JSONL files, one per task.

The files are what an agent's request log would look like, so the demo goes through the same
importer a user's own logs go through. Each file is written to a temporary name and renamed at
the end: a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from fledgling.capture.openai_jsonl import dump_call
from fledgling.demo.traffic import TASKS, generate_calls


@dataclass
class WrittenFile:
    task: str
    path: Path
    calls: int
    bytes: int


def write_traffic(out_dir: Path, *, seed: int = 0, n: int = 2000,
                  progress: Callable[[int], None] | None = None) -> list[WrittenFile]:
    """Generate `n` calls and write `<task>.jsonl` files into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {task: WrittenFile(task, out_dir / f"{task}.jsonl", 0, 0) for task in TASKS}
    tmp = {task: f.path.with_name(f".{f.path.name}.tmp") for task, f in files.items()}
    handles = {task: open(path, "wb") for task, path in tmp.items()}
    try:
        for i, call in enumerate(generate_calls(seed, n), 1):
            handles[call.task].write(orjson.dumps(dump_call(call)) + b"\n")
            files[call.task].calls += 1
            if progress is not None and i % 500 == 0:
                progress(i)
        for handle in handles.values():
            handle.close()
        for task, f in files.items():
            os.replace(tmp[task], f.path)
            f.bytes = f.path.stat().st_size
    finally:
        for task, handle in handles.items():
            handle.close()
            tmp[task].unlink(missing_ok=True)
    if progress is not None:
        progress(n)
    return list(files.values())
