"""`fledgling ui`: serve the dashboard (traces, contracts, datasets, evals, training, models, rollout)."""

from __future__ import annotations

import os

import typer

from fledgling.cli import options, session

app = typer.Typer(invoke_without_command=True)

DEFAULT_PORT = 8788


@app.callback(invoke_without_command=True)
def ui(
    bind_host: str = options.bind_host("127.0.0.1",
                                  "Interface to listen on. Anything but loopback needs FLEDGLING_UI_TOKEN."),
    port: int = options.port(DEFAULT_PORT, "Port to listen on."),
    log_level: str = options.log_level(),
) -> None:
    """Serve the web dashboard over the configured trace store.

    With FLEDGLING_UI_TOKEN set, the dashboard asks for that token at login; without it, the
    dashboard only listens on loopback and answers only requests addressed to localhost,
    127.0.0.1 or [::1] (add other names to FLEDGLING_ALLOWED_HOSTS). Ctrl-C stops it.
    """
    import uvicorn

    from fledgling.ui import create_app
    from fledgling.ui.security import TOKEN_ENV, check_bind

    token = os.environ.get(TOKEN_ENV) or None
    host = bind_host
    check_bind(host, token)
    app_ = create_app(session.settings(), session.store(), token=token)
    shown = f"[{host}]" if ":" in host else host
    con = session.console
    con.print(f"[bold green]Fledgling dashboard[/] on [bold]http://{shown}:{port}/[/]")
    con.print(f"  store: {session.store().safe_url}")
    con.print(f"  login: {'token required (' + TOKEN_ENV + ')' if token else 'off (loopback only; Host checked)'}")
    uvicorn.run(app_, host=host, port=port, log_level=log_level, server_header=False)
