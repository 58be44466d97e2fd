"""What every command shares: the loaded settings, the open store, the consoles, JSON output."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from fledgling.config import Settings, load_settings
from fledgling.store import Store

console = Console()
err_console = Console(stderr=True)

_config_path: Path | None = None
_settings: Settings | None = None
_store: Store | None = None


def set_config_path(path: Path | None) -> None:
    global _config_path, _settings, _store
    _config_path, _settings, _store = path, None, None


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = load_settings(_config_path)
    return _settings


def store() -> Store:
    global _store
    if _store is None:
        _store = Store(settings().db_url)
    return _store


def print_json(data: Any) -> None:
    """The `--json` output of every read command: plain JSON on stdout, no markup, no wrapping."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    return str(value)
