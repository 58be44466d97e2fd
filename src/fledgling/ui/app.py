"""`create_app(settings, store)`: the dashboard as one FastAPI app.

`fledgling ui` serves it under uvicorn; the gateway can mount it (`Mount("/ui", app=...)`):
links use the mount prefix, and the guard (`security.Guard`) wraps every route either way. The
JSON API (`ui/api.py`) is mounted at `/api`, inside the same guard.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse

from fledgling.config import Settings, load_settings
from fledgling.errors import FledglingError
from fledgling.jobs import runner
from fledgling.store import Store
from fledgling.ui.api import create_api
from fledgling.ui.pages import ROUTERS
from fledgling.ui.render import page
from fledgling.ui.security import TOKEN_ENV, Guard

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None, store: Store | None = None, *,
               token: str | None = None, jobs_dir: Path | None = None) -> FastAPI:
    """The dashboard over `store` (default: the configured one). `token` (default
    `$FLEDGLING_UI_TOKEN`) turns the login on. Jobs it starts write their logs to `jobs_dir`
    (default .fledgling/jobs); jobs whose worker died while it was down are marked failed now."""
    settings = settings or load_settings()
    store = store or Store(settings.db_url)
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    jobs_dir = (jobs_dir or runner.JOBS_DIR).resolve()
    runner.reap(store)
    app = FastAPI(title="Fledgling", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.store = store
    app.state.jobs_dir = jobs_dir
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/api", create_api(settings, store, jobs_dir=jobs_dir))
    for router in ROUTERS:
        app.include_router(router)

    @app.exception_handler(FledglingError)
    async def _fledgling_error(request: Request, exc: FledglingError) -> HTMLResponse:
        return page(request, "error.html", status_code=400, title="Cannot do that", message=str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        title = "Not found" if exc.status_code == 404 else f"Error {exc.status_code}"
        return page(request, "error.html", status_code=exc.status_code, title=title,
                    message=str(exc.detail))

    app.add_middleware(Guard, token=token)
    return app
