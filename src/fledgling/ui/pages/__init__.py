"""One router per dashboard page; each route calls the library and renders a template."""

from fledgling.ui.pages import auth, contracts, datasets, overview, traces

ROUTERS = [auth.router, overview.router, traces.router, contracts.router, datasets.router]
