"""Overview: every task with its traffic, spend, rollout mode and latest verdict."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from fledgling.config import Settings
from fledgling.evals import runs as eval_runs
from fledgling.report import build_report
from fledgling.store import Store
from fledgling.swap import rollout
from fledgling.ui import queries
from fledgling.ui.pages.deps import settings, store
from fledgling.ui.render import page

router = APIRouter()


@router.get("/")
def overview(request: Request, s: Store = Depends(store), cfg: Settings = Depends(settings)) -> Response:
    traffic = queries.task_traffic(s)
    modes = {t.task: rollout.current(s, cfg, t.task) for t in traffic}
    totals = {"calls": sum(t.calls for t in traffic), "cost": sum(t.cost_usd for t in traffic),
              "errors": sum(t.errors for t in traffic)}
    return page(request, "overview.html", title="Overview", traffic=traffic, modes=modes,
                totals=totals, store_url=s.safe_url, verdicts=_verdicts(s, cfg, [t.task for t in traffic]),
                fallback=queries.fallback_rates(s))


def _verdicts(s: Store, cfg: Settings, tasks: list[str]) -> dict[str, dict[str, str]]:
    """The parity verdict of each task with eval runs on its test split (as `fledgling report`)."""
    out = {}
    for task in tasks:
        if not eval_runs.list_runs(s, task, "test"):
            continue
        report = build_report(s, cfg, task, "test")
        state = {"SWAP": "pass", "NO": "fail"}.get(report["verdict"], "inconclusive")
        out[task] = {"state": state, "label": f"{report['verdict']} · {report['primary'] or 'no candidate'}"}
    return out

