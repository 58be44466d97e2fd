"""Models: the catalog, and choosing a task's candidate (a confirmation page, then a POST)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from fledgling.models import catalog
from fledgling.store import Store
from fledgling.ui.pages.deps import form, store
from fledgling.ui.render import page

router = APIRouter()


@router.get("/models")
def models(request: Request, s: Store = Depends(store), task: str = "", selected: str = "") -> Response:
    tasks = [t for t, _ in s.tasks()]
    task = task if task in tasks else (tasks[0] if tasks else "")
    entries = catalog.list_models(s, task or None)
    chosen = {t: catalog.selected_model(s, t) for t in tasks}
    return page(request, "models.html", title="Models", tasks=tasks, task=task, entries=entries,
                chosen=chosen, just_selected=selected)


@router.get("/models/select")
def confirm_select(request: Request, task: str, model: str, s: Store = Depends(store)) -> Response:
    entry = catalog.get_model(s, model)
    current = catalog.selected_model(s, task)
    return page(request, "models_confirm.html", title="Select a candidate", task=task, entry=entry,
                current=current)


@router.post("/models/select")
def select(request: Request, s: Store = Depends(store)) -> Response:
    data = form(request)
    task, name = data.get("task", ""), data.get("model", "")
    catalog.select_model(s, task, name)
    target = "/models?" + urlencode({"task": task, "selected": name})
    return RedirectResponse(request.scope.get("root_path", "") + target, status_code=303)
