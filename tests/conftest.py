"""Shared fixtures. Store tests run on BOTH SQLite and a real PostgreSQL server.

`make test` starts PostgreSQL on loopback and sets FLEDGLING_TEST_PG_URL; without it the
PostgreSQL half fails (it is never skipped), so run the suite through `make test`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from fledgling.store import Store

PG_URL = os.environ.get("FLEDGLING_TEST_PG_URL")

# Rich fixes a console's width when it is created (at import): 80 columns without a terminal,
# as in CI. Tests read whole words in tables, so give every console the same wide page.
os.environ["COLUMNS"] = "200"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No test reads the developer's fledgling.toml or database by accident."""
    monkeypatch.delenv("FLEDGLING_DB_URL", raising=False)
    monkeypatch.delenv("FLEDGLING_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fledgling.db"
        return
    yield from _fresh_pg_database()


def _fresh_pg_database() -> Iterator[str]:
    if not PG_URL:
        pytest.fail("FLEDGLING_TEST_PG_URL is not set: run the suite with `make test`, which "
                    "starts a PostgreSQL server on loopback")
    name = f"fledgling_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path}/fledgling.db")
    yield s
    s.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that open the `browser` fixture are `browser` tests (`make check` leaves them out)."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
