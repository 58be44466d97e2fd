"""Login and logout (only meaningful when `FLEDGLING_UI_TOKEN` is set)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from fledgling.ui.pages.deps import form
from fledgling.ui.render import page
from fledgling.ui.security import safe_next

router = APIRouter()


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    guard = request.state.guard
    if not guard.token or request.state.session.authenticated:
        return RedirectResponse(request.scope.get("root_path", "") + safe_next(next), status_code=303)
    return page(request, "login.html", title="Log in", next=safe_next(next), failed=False)


@router.post("/login")
def login(request: Request) -> Response:
    data = form(request)
    guard = request.state.guard
    target = safe_next(data.get("next"))
    client = request.client.host if request.client else ""
    wait = guard.logins.retry_after(client)
    if wait:
        refused = page(request, "login.html", status_code=429, title="Log in", next=target,
                       failed=False, wait=wait)
        refused.headers["retry-after"] = str(wait)
        return refused
    if not guard.token_matches(data.get("token", "")):
        guard.logins.failed(client)
        return page(request, "login.html", status_code=403, title="Log in", next=target, failed=True)
    guard.logins.succeeded(client)
    # the guard sets the cookie: a fresh session id on login, the only place a session is made
    request.state.new_session_id = guard.log_in(request.state.session_id)
    return RedirectResponse(request.scope.get("root_path", "") + target, status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    request.state.new_session_id = request.state.guard.log_out(request.state.session_id)
    return RedirectResponse(request.scope.get("root_path", "") + "/login", status_code=303)
