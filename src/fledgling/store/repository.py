"""What every repository of the store shares: the engine, and one way to join a transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine


class Repository:
    """One table's (or one page's) queries. Writes take an optional `conn` from
    `Store.transaction()`, so several repositories can write in one unit of work."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self.dialect = engine.dialect.name

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self._engine.begin() as own:
                yield own

