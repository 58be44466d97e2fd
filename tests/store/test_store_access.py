"""The store file holds every prompt: owner-only when Fledgling creates it; a bad URL is one line
that shows no password."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fledgling.errors import StoreError
from fledgling.store import Store
from tests.store.test_store import make_call


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_sqlite_store_is_created_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o002)  # even a permissive umask gives nobody else access
    try:
        db = tmp_path / "new" / "fledgling.db"
        with Store(f"sqlite:///{db}") as store:
            store.insert_calls([make_call(1)])
            assert store.count_calls() == 1
            modes = {p.name: _mode(p) for p in db.parent.iterdir()}  # -wal and -shm exist while open
        assert _mode(db.parent) == 0o700
        assert modes == {"fledgling.db": 0o600, "fledgling.db-wal": 0o600, "fledgling.db-shm": 0o600}
    finally:
        os.umask(old)


def test_an_existing_store_keeps_its_mode(tmp_path: Path) -> None:
    """Fledgling tightens only what it creates: a file the user made (and shared) is left as is."""
    db = tmp_path / "shared.db"
    db.touch(mode=0o640)
    os.chmod(db, 0o640)
    with Store(f"sqlite:///{db}") as store:
        assert store.count_calls() == 0
    assert _mode(db) == 0o640


@pytest.mark.parametrize("url", ["mysql://app:hunter2@db.example/traces", "oracle://app:hunter2@db/x",
                                 "postgresql+asyncpg://app:hunter2@127.0.0.1/x", "mssql+pyodbc://a:hunter2@h/x",
                                 "nosuchdb://x", "just-a-path.db"])
def test_unknown_driver_is_one_line_without_the_password(url: str) -> None:
    with pytest.raises(StoreError, match="SQLite or PostgreSQL") as exc:
        Store(url)
    message = str(exc.value)
    assert "hunter2" not in message and "\n" not in message
    assert "sqlite:///path/to.db" in message


def test_unknown_driver_from_the_cli_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "FLEDGLING_DB_URL": "mysql+pymysql://app:hunter2@127.0.0.1/traces"}
    cli = subprocess.run([sys.executable, "-c", "from fledgling.cli import main; main()", "traces", "list"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert cli.returncode == 4
    assert len(cli.stderr.strip().splitlines()) == 1 and "Traceback" not in cli.stderr
    assert "mysql+pymysql://app:***@127.0.0.1/traces" in cli.stderr and "hunter2" not in cli.stderr


def test_store_messages_mask_the_password(store_url: str) -> None:
    """A PostgreSQL URL's password (in the authority or as ?password=) never reaches a message."""
    if store_url.startswith("postgresql"):  # the loopback test server trusts any password
        scheme, rest = store_url.split("://", 1)
        user, _, where = rest.rpartition("@")
        with Store(f"{scheme}://{user}:s3cret-pw@{where}") as store:
            assert store.count_calls() == 0
            assert "s3cret-pw" not in store.safe_url and f"{user}:***@" in store.safe_url
    unreachable = "postgresql+psycopg://app:s3cret-pw@127.0.0.1:1/x?connect_timeout=2&password=s3cret-pw"
    with pytest.raises(StoreError, match="cannot open the trace store") as exc:
        Store(unreachable)
    assert "s3cret-pw" not in str(exc.value) and "app:***@127.0.0.1:1" in str(exc.value)
