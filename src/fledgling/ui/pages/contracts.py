"""Contracts: each task's versions, tools with their schemas, and what the traffic used."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from fledgling.contracts import load_contract
from fledgling.store import Store
from fledgling.ui.pages.deps import store
from fledgling.ui.render import page

router = APIRouter()


@router.get("/contracts")
def contracts(request: Request, s: Store = Depends(store), task: str = "", version: str = "") -> Response:
    tasks = [t for t, _ in s.tasks()]
    with_contracts = {t: s.contracts(t) for t in tasks}
    with_contracts = {t: rows for t, rows in with_contracts.items() if rows}
    task = task if task in with_contracts else next(iter(with_contracts), "")
    contract = load_contract(s, task, version or None) if task else None
    return page(request, "contracts.html", title="Contracts", tasks=list(with_contracts), task=task,
                versions=with_contracts.get(task, []), contract=contract)
