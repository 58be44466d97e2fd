"""`fledgling gateway`: run the recording proxy in front of the agent's LLM."""

from __future__ import annotations

import os
from typing import Any

import typer

from fledgling.cli import options, session
from fledgling.errors import ConfigError

app = typer.Typer(invoke_without_command=True)


@app.callback(invoke_without_command=True)
def gateway(
    bind_host: str | None = options.bind_host(None, "Interface to listen on (default: [gateway] host, 127.0.0.1)."),
    port: int | None = options.port(None, "Port to listen on (default: [gateway] port, 8787; 0 picks a free one)."),
    upstream: str | None = typer.Option(
        None, "--upstream",
        help="Where calls go when no [tasks.X] upstream claims them: a model name from [models] "
             "or an OpenAI-compatible base URL such as https://api.openai.com/v1."),
    log_level: str = options.log_level(),
    access_log: bool | None = typer.Option(
        None, "--access-log/--no-access-log",
        help="Log one line per request (method, path, status, ms) to stderr (default: [gateway] "
             "access_log). Refused requests are logged either way."),
    workers: int = options.workers(
        "Serving processes sharing the port (1 to 256), each with its own spool files, and one "
        "store writer process storing them all; a process that dies is restarted, and its spool "
        "files are stored.",
        default=1),
) -> None:
    """Serve the OpenAI chat-completions and Responses APIs and the Anthropic Messages API,
    forward every call upstream, and record it.

    Point your agent at it by setting the OpenAI client's base_url to the printed address.
    Calls are spooled to disk first (fsync'd every [gateway] spool_fsync_ms) and written to the
    trace store in the background; Ctrl-C drains both before exiting.
    """
    from fledgling.gateway.pipeline import gateway_keys
    from fledgling.gateway.server import build_app, check_bind, serve
    from fledgling.urls import mask_url

    settings = session.settings()
    gw = settings.gateway
    host = bind_host or gw.host
    port = gw.port if port is None else port
    keys = gateway_keys()
    check_bind(host, keys)
    if not 1 <= workers <= 256:
        raise typer.BadParameter(f"{workers}: use 1 to 256 workers", param_hint="--workers")
    if workers > 1:
        return _serve_workers(workers, host, port, upstream, keys, access_log, log_level)
    app_ = build_app(settings, session.store(), upstream=upstream, keys=keys, access_log=access_log)
    sock, url = _listen(host, port)
    con = session.console
    con.print(f"[bold green]Fledgling gateway[/] listening on [bold]{url}[/]")
    for u in app_.router.upstreams():
        con.print(f"  upstream [cyan]{mask_url(u.name)}[/] -> {mask_url(u.base_url)}")
    con.print(f"  recording to {session.store().safe_url} via spool {gw.spool_dir} "
              f"(fsync window {gw.spool_fsync_ms:g} ms)")
    con.print(f"  gateway keys: {'required' if keys else 'off (set FLEDGLING_GATEWAY_KEYS to require them)'}")
    admin = "on (FLEDGLING_ADMIN_KEY)" if app_.admin.keys else "off (set FLEDGLING_ADMIN_KEY to turn it on)"
    con.print(f"  admin API: {admin}")
    key_hint = "one of FLEDGLING_GATEWAY_KEYS" if keys else "your upstream API key"
    con.print(f"  point your agent at it: [bold]OpenAI(base_url=\"{url}\", api_key=<{key_hint}>)[/]"
              f"  (or OPENAI_BASE_URL={url}); tag calls with the X-Fledgling-Task header")
    con.print(f"  serves chat completions and Responses at {url}, Anthropic Messages at {url}/messages "
              f"(Anthropic(base_url=\"{url.removesuffix('/v1')}\") or ANTHROPIC_BASE_URL)")
    serve(app_, sock, log_level=log_level)
    stats = app_.recorder.stats()
    con.print(f"stopped; {stats['stored']} calls stored this run"
              + (f", {stats['replayed']} replayed from the spool" if stats["replayed"] else ""))


def _serve_workers(workers: int, host: str, port: int, upstream: str | None, keys: frozenset[str],
                   access_log: bool | None, log_level: str) -> None:
    """`--workers N`: bind, migrate the store once, then fork N workers (gateway/server.py)."""
    from fledgling.gateway.server import build_app, run_drain, serve, serve_workers
    from fledgling.store import Store

    settings = session.settings()
    gw = settings.gateway
    store = Store(settings.db_url)  # migrates once, here, not N times at once in the workers
    safe_url = store.safe_url
    store.close()
    sock, url = _listen(host, port)
    con = session.console
    con.print(f"[bold green]Fledgling gateway[/] listening on [bold]{url}[/] with {workers} workers")
    con.print(f"  recording to {safe_url} via spool {gw.spool_dir} (one set of files per worker, "
              f"fsync window {gw.spool_fsync_ms:g} ms; one store writer process for all)")
    con.print(f"  gateway keys: {'required' if keys else 'off (set FLEDGLING_GATEWAY_KEYS to require them)'}")
    con.print("  live gate and circuit breakers are per worker, /health and /admin/swap sum them all; "
              "rollout changes reach every worker through the store within a second")
    session.console.file.flush()

    def run_worker(index: int) -> int:
        app_ = build_app(settings, Store(settings.db_url, migrate=False), upstream=upstream, keys=keys,
                         access_log=access_log, external_writer=True)
        app_.worker = {"index": index, "pid": os.getpid(), "workers": workers}
        serve(app_, sock, log_level=log_level)
        stats = app_.recorder.stats()
        con.print(f"worker {index} stopped; {stats['acknowledged']} calls spooled this run")
        return 0

    def run_writer() -> int:
        sock.close()  # it serves nothing
        return run_drain(settings, Store(settings.db_url, migrate=False))

    code = serve_workers(workers, sock, run_worker, log=con.print, run_writer=run_writer)
    sock.close()
    if code:
        raise typer.Exit(code)


def _listen(host: str, port: int) -> tuple[Any, str]:
    """The bound socket and the base URL agents are pointed at; a port in use is one clear error."""
    from fledgling.gateway.server import bind

    try:
        sock = bind(host, port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port "
                          "or stop what is using it") from None
    bound = sock.getsockname()[1]
    return sock, f"http://{host if ':' not in host else f'[{host}]'}:{bound}/v1"
