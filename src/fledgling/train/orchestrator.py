"""One training run end to end: find the data, plan, run, record — the function the CLI calls.

The run's row in `train_runs` is created before anything slow happens and carries the state to
the end: `completed` (and the result is in the model catalog), `failed` (with the error), or
`interrupted` (Ctrl-C; `--resume` continues from the newest checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fledgling.errors import FledglingError
from fledgling.models import catalog
from fledgling.store import Store
from fledgling.train import dataset as datasets
from fledgling.train import runs
from fledgling.train.backend import Plan, Result, TrainingError, TrainSpec
from fledgling.train.launcher import prepare_launch
from fledgling.train.registry import LAUNCHED, get_backend

RUNS_DIR = Path(".fledgling") / "runs"


@dataclass
class Outcome:
    run_id: str
    plan: Plan
    result: Result | None = None
    model: catalog.CatalogModel | None = None


def train(spec: TrainSpec, store: Store, *, dataset_dir: Path | None = None,
          dataset_version: int | None = None, out_dir: Path | None = None, resume: bool = False,
          dry_run: bool = False, view: Any = None, callbacks: list[Any] | None = None) -> Outcome:
    """Plan a run and, unless `dry_run`, execute it. Returns the plan and what it produced."""
    if dataset_dir is not None:
        data = datasets.load(dataset_dir, task=spec.task)
    else:
        path, label = datasets.locate(store, spec.task, dataset_version)
        data = datasets.load(path, task=spec.task, version=label)

    if resume:
        previous = runs.resumable(store, spec.task, spec.backend)
        if previous is None:
            raise TrainingError(f"no unfinished {spec.backend} run of task '{spec.task}' to resume; "
                                "start a new one without --resume")
        run_id, run_dir = previous.id, Path(previous.run_dir)
    else:
        run_id = runs.new_run_id(store, spec.task, spec.backend, RUNS_DIR)
        run_dir = Path(out_dir) if out_dir else RUNS_DIR / run_id
        if run_dir.exists() and any(run_dir.iterdir()):
            raise TrainingError(f"{run_dir} is not empty; pick another --out or resume with --resume")
    run_dir.mkdir(parents=True, exist_ok=True)

    backend = get_backend(spec.backend)
    plan = backend.prepare(spec, data, run_dir)
    plan.resume, plan.run_id = resume, run_id
    if spec.backend in LAUNCHED:
        prepare_launch(plan)
    spec_json = spec.model_dump(mode="json")
    if dry_run:
        runs.start(store, run_id=run_id, task=spec.task, backend=spec.backend, base=spec.base,
                   run_dir=run_dir, spec=spec_json, state="planned")
        return Outcome(run_id, plan)

    runs.start(store, run_id=run_id, task=spec.task, backend=spec.backend, base=spec.base,
               run_dir=run_dir, spec=spec_json)
    reporter = runs.StoreReporter(store, run_id, view=view)
    try:
        result = backend.run(plan, reporter, callbacks=callbacks or None)
    except KeyboardInterrupt:
        reporter.flush()
        runs.update(store, run_id, state="interrupted",
                    message="interrupted; continue with --resume")
        raise
    except FledglingError as exc:
        reporter.flush()
        runs.update(store, run_id, state="failed", error=str(exc))
        raise
    except Exception as exc:
        reporter.flush()
        runs.update(store, run_id, state="failed", error=f"{type(exc).__name__}: {exc}")
        raise TrainingError(f"training run {run_id} failed: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}; the status record has "
                            f"the details (`fledgling train status {run_id}`)") from exc
    reporter.flush()
    model = _record(store, spec, run_id, result)
    return Outcome(run_id, plan, result, model)


def _record(store: Store, spec: TrainSpec, run_id: str, result: Result) -> catalog.CatalogModel | None:
    """Finish the run's row and add what it produced to the catalog, in one transaction."""
    with store.transaction() as conn:
        entry = None
        if result.model is not None:
            m = result.model
            entry = catalog.add_model(
                store, run_id, kind=m["kind"], origin=m.get("origin", "adapter"), task=spec.task,
                base=m.get("base"), path=m.get("path"), adapter=m.get("adapter"),
                base_url=m.get("base_url"), model_id=m.get("model_id"), run_id=run_id,
                manifest=m.get("manifest", {}), conn=conn)
        store.train_runs.update(run_id, conn=conn, state="completed", eta_s=0.0,
                                metrics=_jsonable(result.metrics), model=entry.name if entry else None,
                                message="done")
    return entry


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool, list, dict)) or v is None else str(v))
            for k, v in metrics.items()}
