"""The loop's steps as jobs: one library function each (curate, train, eval, report, calibrate,
publish), with the arguments it accepts.

A step gets a `JobContext` (the store, the settings, the task, the checked arguments, and
`progress(fraction, message)`) and returns a JSON-able result. The autopilot runs the same
steps in its own process; a job runs one in a worker process (`fledgling.jobs.worker`), never
in the dashboard's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fledgling.config import Settings
from fledgling.store import Store

DATASETS_DIR = Path(".fledgling") / "datasets"
REPORTS_DIR = Path(".fledgling") / "reports"


class JobArgs(BaseModel):
    """Arguments of a job: unknown names are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class CurateArgs(JobArgs):
    seed: int = Field(default=0, description="seed of the split")
    val: float = Field(default=0.1, gt=0, lt=1, description="share of examples for validation")
    test: float = Field(default=0.2, gt=0, lt=1, description="share of examples for test")
    near_dup_threshold: float = Field(default=0.9, ge=0, le=1)
    out_dir: str | None = Field(default=None, description="root of datasets (default .fledgling/datasets)")


class TrainArgs(JobArgs):
    backend: Literal["lora", "unsloth", "openai", "dry-run"] = "lora"
    base: str = Field(default="smollm2-135m-instruct", max_length=500,
                      description="bundled base name, a checkpoint directory or a .gguf file")
    epochs: int = Field(default=3, ge=1, le=100)
    lr: float = Field(default=2e-4, gt=0, lt=1)
    rank: int = Field(default=16, ge=1, le=512)
    seed: int = 0
    max_examples: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=2, ge=1, le=512)
    grad_accum: int = Field(default=4, ge=1, le=512)
    max_length: int = Field(default=512, ge=16, le=32768)
    prompt: Literal["lean", "compact"] = "lean"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    dataset_version: int | None = Field(default=None, ge=1)
    out_dir: str | None = Field(default=None, description="run directory (default .fledgling/runs/<run id>)")


class EvalArgs(JobArgs):
    model: str = Field(min_length=1, max_length=500,
                       description="a [models] name, a catalog entry, recorded, openai:URL#MODEL, hf:..., gguf:...")
    split: Literal["train", "val", "test"] = "test"
    dataset_version: int | None = Field(default=None, ge=1)
    limit: int | None = Field(default=None, ge=1)
    constrained: bool = False
    batch_size: int = Field(default=16, ge=1, le=512)
    max_new_tokens: int = Field(default=256, ge=1, le=8192)


class ReportArgs(JobArgs):
    split: Literal["train", "val", "test"] = "test"
    out_dir: str | None = Field(default=None, description="default .fledgling/reports/<task>")


class CalibrateArgs(JobArgs):
    target_accuracy: float = Field(default=0.95, ge=0, le=1)
    split: Literal["train", "val", "test"] = "val"
    limit: int | None = Field(default=None, ge=1)


class PublishArgs(JobArgs):
    model: str = Field(min_length=1, max_length=200)
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="the Hub repository, e.g. my-org/support-agent-slm")
    public: bool = False
    auto: bool = Field(default=False, description="publish only if the task's acceptance gates pass")


@dataclass
class JobContext:
    store: Store
    settings: Settings
    task: str
    args: Any
    progress: Callable[[float | None, str | None], None]


def run_curate(ctx: JobContext) -> dict[str, Any]:
    from fledgling.curate import curate

    a: CurateArgs = ctx.args
    ds = curate(ctx.store, ctx.task, seed=a.seed, val=a.val, test=a.test,
                near_dup_threshold=a.near_dup_threshold,
                out_dir=Path(a.out_dir) if a.out_dir else DATASETS_DIR, workers=0,
                progress=lambda done, total: ctx.progress(done / total if total else None,
                                                          f"{done} of {total} calls"))
    return {"dataset_version": ds.version, "path": str(ds.path), "counts": ds.counts, "new": ds.new}


class _TrainView:
    """What the trainer reports, turned into the job's progress."""

    def __init__(self, ctx: JobContext):
        self.ctx = ctx
        self.total: int | None = None

    def update(self, *, step: int | None = None, total_steps: int | None = None,
               loss: float | None = None, state: str | None = None, message: str | None = None,
               **_: Any) -> None:
        if total_steps:
            self.total = total_steps
        if step is not None and self.total:
            text = f"step {step} of {self.total}" + (f", loss {loss:.4f}" if loss is not None else "")
            self.ctx.progress(min(1.0, step / self.total), text)
        elif state or message:
            self.ctx.progress(None, message or state)


def run_train(ctx: JobContext) -> dict[str, Any]:
    from fledgling.train.backend import TrainSpec
    from fledgling.train.orchestrator import train

    a: TrainArgs = ctx.args
    fields = a.model_dump(exclude={"dataset_version", "out_dir"})
    spec = TrainSpec.model_validate({"task": ctx.task, **fields})
    outcome = train(spec, ctx.store, dataset_version=a.dataset_version,
                    out_dir=Path(a.out_dir) if a.out_dir else None, view=_TrainView(ctx))
    return {"run_id": outcome.run_id, "model": outcome.model.name if outcome.model else None,
            "run_dir": str(outcome.plan.run_dir)}


def run_eval_job(ctx: JobContext) -> dict[str, Any]:
    from fledgling.evals.runs import load_items, run_eval, task_contract
    from fledgling.models import open_backend, resolve_model
    from fledgling.swap.candidate import candidate_spec

    a: EvalArgs = ctx.args
    if a.model == "recorded" or ":" in a.model or a.model in ctx.settings.models:
        spec = resolve_model(a.model, ctx.settings)
    else:  # a model catalog entry (a trained candidate)
        spec = candidate_spec(ctx.store, ctx.settings, a.model)
    version, contract_version, items = load_items(ctx.store, ctx.task, a.split, a.dataset_version, a.limit)
    contract = task_contract(ctx.store, ctx.task, contract_version, items)
    ctx.progress(0.0, f"loading {spec.name}")
    backend = open_backend(spec, constrained=a.constrained, recorded_calls=(i.call for i in items),
                           batch_size=a.batch_size, max_new_tokens=a.max_new_tokens, contract=contract)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        ctx.progress(done / len(items) if items else None, f"{done} of {len(items)} items")

    run = run_eval(ctx.store, ctx.task, spec, backend, items, contract, split=a.split,
                   dataset_version=version, constrained=a.constrained, progress=advance,
                   chunk=a.batch_size)
    success = run.summary.get("metrics", {}).get("success", {}).get("mean")
    return {"eval_run": run.id, "model": run.model, "n_items": len(items), "success": success}


def run_report(ctx: JobContext) -> dict[str, Any]:
    from fledgling.report import build_report, write_report

    a: ReportArgs = ctx.args
    report = build_report(ctx.store, ctx.settings, ctx.task, a.split)
    paths = write_report(report, Path(a.out_dir) if a.out_dir else REPORTS_DIR / ctx.task)
    return {"verdict": report["verdict"], "primary": report["primary"],
            "selective": report.get("selective"), "paths": {k: str(v) for k, v in paths.items()}}


def run_calibrate(ctx: JobContext) -> dict[str, Any]:
    from fledgling.evals.runs import load_items
    from fledgling.swap.calibrate import calibrate_task

    a: CalibrateArgs = ctx.args
    total = len(load_items(ctx.store, ctx.task, a.split, limit=a.limit)[2])
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        ctx.progress(done / total if total else None, f"{done} of {total} answers")

    result = calibrate_task(ctx.store, ctx.settings, ctx.task, a.target_accuracy, split=a.split,
                            limit=a.limit, progress=advance)
    cal = result.calibration
    return {"candidate": result.candidate, "threshold": cal.threshold, "coverage": cal.coverage,
            "accuracy": cal.accuracy if cal.threshold is not None else None,
            "scored": result.scored, "unscored": result.unscored, "failed": result.failed}


def run_publish(ctx: JobContext) -> dict[str, Any]:
    from fledgling.report.publish import publish

    a: PublishArgs = ctx.args
    url = publish(ctx.store, a.model, a.repo, private=not a.public, auto=a.auto, task=ctx.task)
    return {"url": url}
