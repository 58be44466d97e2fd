"""Running the gateway: uvicorn (uvloop + httptools) on a socket we bind ourselves.

Binding first lets `--port 0` pick a free port and still print the real address. uvicorn's
SIGINT/SIGTERM handling runs the app's lifespan shutdown, which closes the upstream pool and
drains the recorder (pending spool -> disk -> store), so a graceful stop loses nothing.

`serve_workers` runs several such servers as forked processes accepting on the one pre-bound
socket (as gunicorn does: connections waiting in the backlog survive a worker's death, where
SO_REUSEPORT would drop the dead worker's queue). Each worker has its own recorder, so its own
spool files (under `flock` in the shared spool directory), but no store writer: one more process,
`run_drain`, stores every worker's handed-off files, a dead worker's included, and the store
keeps each call id once.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable

import uvicorn

from fledgling.capture.recording.recorder import Recorder
from fledgling.config import Settings
from fledgling.errors import ConfigError
from fledgling.gateway.app import GatewayApp
from fledgling.origin import is_loopback
from fledgling.store import Store


def build_app(settings: Settings, store: Store, *, upstream: str | None = None,
              keys: frozenset[str] | None = None, access_log: bool | None = None,
              external_writer: bool = False) -> GatewayApp:
    recorder = Recorder.from_settings(store, settings.gateway, external_writer=external_writer)
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


# -- several serving processes on one port ------------------------------------------------------

RESTART_DELAY_S = 0.2
CRASH_LOOP_S = 2.0  # a worker that dies this soon after starting, this many times in a row,
CRASH_LOOP_MAX = 5  # stops the supervisor: its cause (config, store) will not go away by itself


def serve_workers(n: int, sock: socket.socket, run_worker: Callable[[int], int], *,
                  log: Callable[[str], None] = print, run_writer: Callable[[], int] | None = None) -> int:
    """Fork `n` serving processes that accept on one pre-bound socket (the kernel spreads the
    connections), and `run_writer` (the store writer process) if given; restart any that dies
    while the supervisor is running, and on SIGINT/SIGTERM pass the signal on to the workers, wait
    for every worker's graceful drain, then stop the writer (which stores what they left).
    `run_worker(index)` runs in the child and returns its exit status. Returns 0 when every
    process stopped cleanly.

    Nothing may open a database connection, an event loop or a thread before this forks: each
    worker builds its own store, recorder and app."""
    stopping = False
    children: dict[int, int] = {}  # pid -> worker index
    started: dict[int, float] = {}  # worker index -> when it was last started
    writer = n  # the writer process's index
    quick_deaths = dict.fromkeys(range(n + 1), 0)
    status = 0
    supervisor = os.getpid()

    def start(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_DFL)
                _stop_with(supervisor)
                code = run_worker(index) if index < writer or run_writer is None else run_writer()
            except BaseException as exc:  # noqa: BLE001 - the worker must exit, never return here
                sys.stderr.write(f"{_name(index, writer)}: {type(exc).__name__}: {exc}\n")
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index
        started[index] = time.monotonic()

    def signal_them(which: Callable[[int], bool]) -> None:
        for pid, index in list(children.items()):
            if which(index):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def on_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        signal_them(lambda index: index < writer)  # the writer last: it stores what they leave
        if not any(index < writer for index in children.values()):
            signal_them(lambda index: True)

    previous = {sig: signal.signal(sig, on_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for i in range(n):
            start(i)
        if run_writer is not None:
            start(writer)
        while children:
            try:
                pid, wstatus = os.wait()
            except ChildProcessError:
                break
            index = children.pop(pid, None)
            if index is None:
                continue
            code = os.waitstatus_to_exitcode(wstatus)
            if stopping:
                status = status or (code if code > 0 else 0)
                if not any(i < writer for i in children.values()):
                    signal_them(lambda i: True)
                continue
            why = f"exit status {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
            quick_deaths[index] = quick_deaths[index] + 1 if time.monotonic() - started[index] < CRASH_LOOP_S else 0
            if quick_deaths[index] >= CRASH_LOOP_MAX:
                log(f"{_name(index, writer)} (pid {pid}) died ({why}) {CRASH_LOOP_MAX} times right after "
                    "starting; stopping the gateway")
                status = 1
                on_stop(signal.SIGTERM, None)
                continue
            log(f"{_name(index, writer)} (pid {pid}) died ({why}); restarting it"
                + (" (the store writer stores its spool files)" if index < writer else ""))
            time.sleep(RESTART_DELAY_S)
            if not stopping:
                start(index)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _name(index: int, writer: int) -> str:
    return f"gateway worker {index}" if index < writer else "gateway store writer"


def run_drain(settings: Settings, store: Store) -> int:
    """The store writer process of `--workers N` (`SpoolDrain`): stores the workers' spool files
    until SIGTERM, then what they leave as they drain; publishes its part of /health."""
    from fledgling.capture.recording.writer import SpoolDrain
    from fledgling.gateway import workers

    gw = settings.gateway
    drain = SpoolDrain(store, gw.spool_dir, batch=gw.writer_batch, pending_bound_s=gw.health_pending_bound_s,
                       serving=lambda: workers.serving(gw.spool_dir))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: drain.stop.set())

    def publish() -> None:
        while True:
            status, reasons = drain.health()
            try:
                workers.publish(gw.spool_dir, "writer", {"worker": None, "health": {
                    "status": status, "reasons": reasons, "recorder": drain.stats()}})
            except OSError as exc:
                sys.stderr.write(f"gateway store writer: cannot publish its health snapshot: {exc}\n")
            if drain.stop.wait(workers.PUBLISH_S):
                return

    publisher = threading.Thread(target=publish, name="fledgling-publish", daemon=True)
    publisher.start()
    try:
        drain.run()
    finally:
        publisher.join(5)
        workers.withdraw(gw.spool_dir, "writer")
        store.close()
    return 0


def _stop_with(supervisor: int) -> None:
    """Linux: have the kernel send this worker SIGTERM (a graceful drain) if the supervisor dies,
    even by `kill -9`, so no worker is left serving on its own."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != supervisor:  # it died before the call above
        os.kill(os.getpid(), signal.SIGTERM)
