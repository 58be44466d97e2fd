"""`python -m fledgling.train.worker plan.json`: one training process of a launched run.

The launcher (`accelerate launch`, or a job scheduler) starts this once per GPU. Every process
trains; only process 0 writes the status record and the files. The store is the one named by
`FLEDGLING_DB_URL` / fledgling.toml, exactly as for the command that wrote the plan.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from fledgling.train.backend import Plan, TrainSpec
from fledgling.train.dataset import load
from fledgling.train.registry import get_launched


class _Silent:
    """The reporter of processes other than 0: they train, they do not report."""

    def update(self, **_: Any) -> None:
        return None


def load_plan(path: Path) -> Plan:
    body = json.loads(Path(path).read_text(encoding="utf-8"))
    spec = TrainSpec.model_validate(body["spec"])
    data = load(Path(body["dataset"]["path"]), task=spec.task, version=body["dataset"]["version"])
    return Plan(spec, data, Path(body["run_dir"]), files={k: Path(v) for k, v in body["files"].items()},
                resume=body["resume"], run_id=body["run_id"])


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m fledgling.train.worker PLAN.json", file=sys.stderr)
        return 2
    plan = load_plan(Path(argv[0]))
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0 and plan.run_id:
        from fledgling.store import open_store
        from fledgling.train.runs import StoreReporter

        reporter: Any = StoreReporter(open_store(), plan.run_id)
    else:
        reporter = _Silent()
    get_launched(plan.spec.backend).train_here(plan, reporter)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
