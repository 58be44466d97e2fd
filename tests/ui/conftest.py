"""Browser-test fixtures: one demo store, the dashboard under uvicorn on loopback (open, and
token-protected), and Debian's chromium driven by Playwright."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from fledgling.config import Settings
from fledgling.store import Store
from fledgling.ui import create_app
from tests.ui.data import build

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
TOKEN = "test-token-8c1f2e"


@dataclass
class UiData:
    store: Store
    workdir: Path
    runs: dict[str, Any]


@pytest.fixture(scope="session")
def ui_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiData]:
    workdir = tmp_path_factory.mktemp("ui")
    store = Store(f"sqlite:///{workdir}/fledgling.db")
    runs = build(store, workdir)
    yield UiData(store, workdir, runs)
    store.close()


class Served:
    """A dashboard app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: Any):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the dashboard did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


@pytest.fixture(scope="session")
def server(ui_data: UiData) -> Iterator[Served]:
    served = Served(create_app(Settings(), ui_data.store, token=""))
    yield served
    served.stop()


@pytest.fixture(scope="session")
def secured(ui_data: UiData) -> Iterator[Served]:
    served = Served(create_app(Settings(), ui_data.store, token=TOKEN))
    yield served
    served.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module: Playwright's sync API keeps an event loop running in the
    main thread while it is open, so it is closed before other modules' tests run there."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Watched:
    """A page plus everything it complained about: console errors, page errors, dialogs."""

    page: Any
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    w = Watched(page)
    page.on("console", lambda m: w.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: w.errors.append(f"pageerror: {e}"))

    def on_dialog(dialog: Any) -> None:
        w.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield w
    context.close()
