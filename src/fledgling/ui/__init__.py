"""The dashboard: a server-rendered web console over the same library functions the CLI calls.

    app.py        `create_app(settings, store)`: the FastAPI app (mountable in the gateway)
    security.py   token login, sessions, CSRF, security headers, the bind-address rule
    render.py     the Jinja2 environment (autoescaping everywhere) and template filters
    queries.py    read queries the pages need that the library does not offer yet
    charts.py     small inline-SVG charts (the loss curve)
    pages/        one router per page: overview, traces, contracts, datasets, evals,
                  training, models, rollout
"""

from fledgling.ui.app import create_app

__all__ = ["create_app"]
