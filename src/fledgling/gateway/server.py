"""Running the gateway: uvicorn (uvloop + httptools) on a socket we bind ourselves.

Binding first lets `--port 0` pick a free port and still print the real address. uvicorn's
SIGINT/SIGTERM handling runs the app's lifespan shutdown, which closes the upstream pool and
drains the recorder (pending spool -> disk -> store), so a graceful stop loses nothing.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time

import uvicorn

from fledgling.capture.recording.recorder import Recorder
from fledgling.config import Settings
from fledgling.errors import ConfigError
from fledgling.gateway.app import GatewayApp
from fledgling.origin import is_loopback
from fledgling.store import Store


def build_app(settings: Settings, store: Store, *, upstream: str | None = None,
              keys: frozenset[str] | None = None, access_log: bool | None = None) -> GatewayApp:
    recorder = Recorder.from_settings(store, settings.gateway)
    return GatewayApp(settings, recorder, upstream=upstream, keys=keys, access_log=access_log)


def check_bind(host: str, keys: frozenset[str]) -> None:
    """Refuse to take calls from beyond this machine unless every call must carry a gateway key."""
    if not keys and not is_loopback(host):
        raise ConfigError(f"refusing to serve the gateway on {host} without gateway keys: set "
                          "FLEDGLING_GATEWAY_KEYS to one or more long random secrets (e.g. `export "
                          "FLEDGLING_GATEWAY_KEYS=$(openssl rand -hex 24)`), or bind to 127.0.0.1")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(app: GatewayApp, *, log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on",
                            log_level=log_level, access_log=False, timeout_graceful_shutdown=10,
                            backlog=2048)
    return uvicorn.Server(config)


def serve(app: GatewayApp, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully (blocking). The socket is already
    listening, so clients may connect before this is called: they wait in the backlog."""
    # The spool and store threads share the GIL with the event loop: a short switch interval
    # bounds how long their batch work can hold up a request (default is 5 ms).
    sys.setswitchinterval(0.0005)
    server = make_server(app, log_level=log_level)
    # uvicorn re-raises the stop signal once it has shut down; by then the recorder is drained,
    # so the signal has done its job and must not turn a clean stop into a kill.
    previous = {sig: signal.signal(sig, _already_handled) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _already_handled(signum: int, frame: object) -> None:
    """Placeholder handler for a stop signal uvicorn has already acted on."""


class ServerThread:
    """Any ASGI app served by uvicorn on a background thread, on a free loopback port.

    For the demo, the benchmark and the tests: `with ServerThread(app) as url: ...`; leaving
    the block shuts the server down gracefully (lifespan shutdown included).
    """

    def __init__(self, app: object, host: str = "127.0.0.1", port: int = 0):
        self.sock = bind(host, port)
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.server = make_server(app)  # type: ignore[arg-type]
        self._thread = threading.Thread(target=self._run, name="fledgling-server", daemon=True)

    def _run(self) -> None:
        self.server.run(sockets=[self.sock])

    def start(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.005)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(30)
        self.sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
