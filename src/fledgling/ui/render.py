"""Templates: one Jinja2 environment with autoescaping on for every template, and the filters
pages use to show numbers, times and JSON the same way everywhere."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, Environment, FileSystemLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse

from fledgling.urls import mask_url

TEMPLATES = Path(__file__).parent / "templates"

NAV = [("/", "Overview"), ("/traces", "Traces"), ("/contracts", "Contracts"),
       ("/datasets", "Datasets"), ("/compare", "Compare"), ("/reports", "Reports"),
       ("/training", "Training"), ("/jobs", "Jobs"), ("/models", "Models"), ("/rollout", "Rollout")]


def pretty_json(value: Any) -> str:
    """Indented JSON; a string that holds JSON (tool arguments) is parsed first."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return text
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def usd(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"${value:,.{digits}f}"


def pct(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value * 100:.{digits}f}%"


def ms(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f} ms"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"


def make_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      undefined=ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pretty_json=pretty_json, when=when, usd=usd, pct=pct, ms=ms,
                       duration=duration, mask_url=mask_url)
    return env


ENV = make_environment()


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with what the base layout needs: the nav, the CSRF token, the mount prefix."""
    state = request.scope.get("state", {})
    session = state.get("session")
    guard = state.get("guard")
    root = request.scope.get("root_path", "")
    path = request.url.path.removeprefix(root) or "/"
    html = ENV.get_template(template).render(
        request=request, root=root, nav=NAV, path=path,
        section="/" + path.strip("/").split("/")[0] if path != "/" else "/",
        csrf_token=session.csrf if session else "",
        logged_in=bool(guard and guard.token and session and session.authenticated),
        **context)
    return HTMLResponse(html, status_code=status_code)
