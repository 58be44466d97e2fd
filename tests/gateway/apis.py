"""The set-up the Responses / Messages gateway tests share: the three-API stand-in upstream
(tests/standin_apis.py) behind a real gateway, both on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fledgling.config import parse_settings
from fledgling.gateway.app import GatewayApp
from fledgling.gateway.server import ServerThread, build_app
from fledgling.store import Store
from tests.standin_apis import RunningStandIn, StandInAPIs

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
           "additionalProperties": False}
PRICE_IN, PRICE_OUT = 2.5, 10.0


@dataclass
class Setup:
    upstream: StandInAPIs
    upstream_url: str
    gateway_url: str
    app: GatewayApp
    store: Store

    def drain(self) -> None:
        assert self.app.recorder.drain(10), self.app.recorder.stats()

    def calls(self, **filters: Any) -> list[Any]:
        self.drain()
        calls = sorted(self.store.iter_calls(), key=lambda c: c.created_at)
        return [c for c in calls if all(c.metadata.get(k) == v for k, v in filters.items())]


def settings_for(upstream_url: str, workdir: Path, *, tasks: dict[str, Any] | None = None,
                 models: dict[str, Any] | None = None, **gateway: Any) -> Any:
    return parse_settings({
        "models": {
            "llm": {"kind": "openai", "base_url": upstream_url + "/v1", "usd_per_mtok_in": PRICE_IN,
                    "usd_per_mtok_out": PRICE_OUT},
            "claude": {"kind": "anthropic", "base_url": upstream_url + "/v1", "api_key_env": "TEST_ANTHROPIC_KEY",
                       "usd_per_mtok_in": PRICE_IN, "usd_per_mtok_out": PRICE_OUT},
            **(models or {}),
        },
        "tasks": {"weather": {"upstream": "llm"}, "claude-weather": {"upstream": "claude"}, **(tasks or {})},
        "gateway": {"upstream": "llm", "spool_dir": str(workdir / "spool"), "spool_fsync_ms": 2, **gateway},
    })


@pytest.fixture
def apis(sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-test-key")
    stand_in = RunningStandIn()
    with stand_in as upstream:
        app = build_app(settings_for(stand_in.url, tmp_path), sqlite_store)
        with ServerThread(app) as url:
            yield Setup(upstream, stand_in.url, url, app, sqlite_store)
