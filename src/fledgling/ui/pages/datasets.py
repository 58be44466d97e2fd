"""Datasets: curated versions per task, and the curation report of the chosen one."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from fledgling.curate.registry import list_datasets
from fledgling.store import Store
from fledgling.ui import queries
from fledgling.ui.pages.deps import store
from fledgling.ui.render import page

router = APIRouter()


@router.get("/datasets")
def datasets(request: Request, s: Store = Depends(store), task: str = "", version: int = 0) -> Response:
    versions = list_datasets(s)
    chosen = None
    if versions:
        if not task:
            task, version = versions[0]["task"], versions[0]["version"]
        elif not version:
            version = max((v["version"] for v in versions if v["task"] == task), default=0)
        chosen = queries.dataset_report(s, task, version)
    splits = ((chosen or {}).get("report") or {}).get("splits") or {}
    classes = sorted({c for split in splits.values() for c in split.get("classes", {})})
    return page(request, "datasets.html", title="Datasets", versions=versions, chosen=chosen,
                classes=classes)
