"""Reports: the parity report of a reference run and a candidate run of the same task."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from fledgling.evals import runs as eval_runs
from fledgling.store import Store
from fledgling.ui.pages.deps import store
from fledgling.ui.render import page

router = APIRouter()


@router.get("/reports")
def reports(request: Request, s: Store = Depends(store)) -> Response:
    by_task = {t: eval_runs.list_runs(s, t) for t, _ in s.tasks()}
    by_task = {t: r for t, r in by_task.items() if r}
    return page(request, "reports.html", title="Reports", by_task=by_task)
