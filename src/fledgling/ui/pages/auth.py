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
    if not guard.token_matches(data.get("token", "")):
        return page(request, "login.html", status_code=403, title="Log in", next=target, failed=True)
    guard.sessions.drop(request.state.session_id)
    sid, _ = guard.sessions.new(authenticated=True)
    request.state.new_session_id = sid  # the guard sets the cookie: a fresh session id on login
    return RedirectResponse(request.scope.get("root_path", "") + target, status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    guard = request.state.guard
    guard.sessions.drop(request.state.session_id)
    sid, _ = guard.sessions.new(authenticated=not guard.token)
    request.state.new_session_id = sid
    return RedirectResponse(request.scope.get("root_path", "") + "/login", status_code=303)
