"""What every command shares: the loaded settings, the open store, and the consoles."""

from __future__ import annotations

from pathlib import Path

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
