"""Training: running jobs live (progress, loss curve, ETA) and past runs with their manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from fledgling.errors import InputError
from fledgling.models.manifest import read as read_manifest
from fledgling.store import Store
from fledgling.train import runs
from fledgling.ui.charts import line_chart, loss_history
from fledgling.ui.pages.deps import not_found, store
from fledgling.ui.render import page

router = APIRouter()


@router.get("/training")
def training(request: Request, s: Store = Depends(store)) -> Response:
    all_runs = runs.list_runs(s, limit=50)
    live = [_with_chart(r) for r in all_runs if r.active]
    return page(request, "training.html", title="Training", live=live,
                past=[r for r in all_runs if not r.active])


@router.get("/training/{run_id}")
def run_detail(request: Request, run_id: str, s: Store = Depends(store)) -> Response:
    try:
        run = runs.get(s, run_id)
    except InputError:
        raise not_found(f"no training run '{run_id}'") from None
    manifest: dict[str, Any] | None = None
    manifest_error = None
    if run.state == "completed":
        try:
            manifest = read_manifest(Path(run.run_dir))
        except InputError as exc:
            manifest_error = str(exc)
    return page(request, "training_run.html", title=f"Run {run.id}", item=_with_chart(run),
                manifest=manifest, manifest_error=manifest_error)


def _with_chart(run: runs.TrainRun) -> dict[str, Any]:
    series = loss_history(run.run_dir, run.step, run.loss)
    progress = run.step / run.total_steps if run.total_steps else None
    return {"run": run, "chart": line_chart(series), "series": series, "progress": progress}
