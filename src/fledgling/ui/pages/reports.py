"""Reports: the parity report of a task's eval runs on a split, exactly as `fledgling report`
writes it (`fledgling.report.render_html`), framed inside the dashboard."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse, Response

from fledgling.config import Settings
from fledgling.evals import runs as eval_runs
from fledgling.report import build_report, render_html
from fledgling.store import Store
from fledgling.ui.pages.deps import settings, store
from fledgling.ui.render import page

router = APIRouter()

# The report file is self-contained (inline CSS and SVG, no script); framed, it may use its own
# inline styles and nothing else, and only this dashboard may frame it.
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
              "base-uri 'none'; frame-ancestors 'self'")


@router.get("/reports")
def reports(request: Request, s: Store = Depends(store), cfg: Settings = Depends(settings),
            task: str = "", split: str = "") -> Response:
    by_task = {t: eval_runs.list_runs(s, t) for t, _ in s.tasks()}
    by_task = {t: r for t, r in by_task.items() if r}
    task = task if task in by_task else next(iter(by_task), "")
    splits = sorted({r.split for r in by_task.get(task, [])})
    split = split if split in splits else ("test" if "test" in splits else next(iter(splits), ""))
    report = build_report(s, cfg, task, split) if task and split else None
    return page(request, "reports.html", title="Reports", by_task=by_task, task=task, splits=splits,
                split=split, report=report)


@router.get("/reports/view")
def report_file(s: Store = Depends(store), cfg: Settings = Depends(settings), task: str = "",
                split: str = "test") -> Response:
    html = render_html(build_report(s, cfg, task, split))
    return HTMLResponse(html, headers={"content-security-policy": REPORT_CSP,
                                       "x-frame-options": "SAMEORIGIN"})
