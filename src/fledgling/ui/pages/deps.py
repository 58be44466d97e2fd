"""What every page route reads from the app: the store, the settings, the submitted form."""

from __future__ import annotations

from fastapi import HTTPException, Request

from fledgling.config import Settings
from fledgling.store import Store


def store(request: Request) -> Store:
    return request.app.state.store


def settings(request: Request) -> Settings:
    return request.app.state.settings


def form(request: Request) -> dict[str, str]:
    """The urlencoded form the guard parsed while checking its CSRF token."""
    return request.scope.get("state", {}).get("form", {})


def not_found(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=what)
