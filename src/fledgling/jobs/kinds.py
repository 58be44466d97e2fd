"""The kinds of job a worker can run, each with its arguments' model: the loop's steps
(`steps.py`) and the autopilot. Arguments are checked here, before a worker starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError

from fledgling.errors import InputError
from fledgling.jobs.steps import (
    CalibrateArgs,
    CurateArgs,
    EvalArgs,
    JobArgs,
    JobContext,
    PublishArgs,
    ReportArgs,
    TrainArgs,
    run_calibrate,
    run_curate,
    run_eval_job,
    run_publish,
    run_report,
    run_train,
)


class AutopilotArgs(JobArgs):
    require_approval: bool = False
    interval_s: float = Field(default=5.0, ge=0.05, le=3600)


def run_autopilot(ctx: JobContext) -> dict[str, Any]:
    from fledgling.jobs.autopilot import Autopilot

    a: AutopilotArgs = ctx.args
    pilot = Autopilot(ctx.store, ctx.settings, ctx.task, require_approval=a.require_approval)
    rounds = pilot.watch(interval_s=a.interval_s, on_round=lambda n: ctx.progress(None, f"round {n}"))
    return {"rounds": rounds}


@dataclass(frozen=True)
class Kind:
    args: type[JobArgs]
    run: Callable[[JobContext], dict[str, Any]]
    help: str


KINDS: dict[str, Kind] = {
    "curate": Kind(CurateArgs, run_curate, "curate the task's calls into a new dataset version"),
    "train": Kind(TrainArgs, run_train, "fine-tune a candidate on the newest dataset"),
    "eval": Kind(EvalArgs, run_eval_job, "run a model on a split and store its scores"),
    "report": Kind(ReportArgs, run_report, "write the swap-readiness report"),
    "calibrate": Kind(CalibrateArgs, run_calibrate, "calibrate the candidate's low-confidence fallback"),
    "publish": Kind(PublishArgs, run_publish, "push a trained adapter to the Hugging Face Hub"),
    "autopilot": Kind(AutopilotArgs, run_autopilot, "watch traffic, retrain, and promote on evidence"),
}


def check_arguments(kind: str, arguments: dict[str, Any]) -> JobArgs:
    """The arguments as the kind's model; an unknown kind or a bad value is one clear line."""
    found = KINDS.get(kind)
    if found is None:
        raise InputError(f"unknown job kind '{kind}'; use one of {', '.join(KINDS)}")
    try:
        return found.args.model_validate(arguments)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        raise InputError(f"{kind} job: {where}: {err['msg']}") from None
