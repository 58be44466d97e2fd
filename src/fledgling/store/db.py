"""The `Store`: idempotent batch inserts, filtered queries with pagination, streaming reads."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Text,
    and_,
    cast,
    create_engine,
    event,
    func,
    make_url,
    select,
    text,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from fledgling.calls import Call, Feedback, Request, Response, Usage
from fledgling.errors import StoreError
from fledgling.store.autopilot import Autopilots
from fledgling.store.catalog import Catalog
from fledgling.store.dashboard import Dashboard
from fledgling.store.datasets import Datasets
from fledgling.store.eval_runs import EvalRuns
from fledgling.store.filters import CallFilter
from fledgling.store.jobs import Jobs
from fledgling.store.rollouts import Rollouts
from fledgling.store.schema import calls as calls_t
from fledgling.store.schema import contracts as contracts_t
from fledgling.store.schema import import_cursors as cursors_t
from fledgling.store.schema import tool_calls as tool_calls_t
from fledgling.store.train_runs import TrainRuns
from fledgling.urls import mask_url

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x0F1ED611


@dataclass
class Page:
    items: list[Call]
    total: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total


@dataclass
class GroupStats:
    key: dict[str, Any]
    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)
    without_usage: int = 0  # calls whose source reported no usage: their tokens and cost are unknown

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0

    def latency_percentile(self, q: float) -> float | None:
        return percentile(sorted(self.latencies), q)


class Store:
    """One trace store. Opening it applies any pending migrations.

    Calls, contracts and import cursors are its own methods; every other table has a
    repository here (`store.datasets.find(task)`, `store.rollouts.get(task)`, ...)."""

    def __init__(self, url: str, *, migrate: bool = True):
        self.url = url
        self.engine = _make_engine(url)
        self.dialect = self.engine.dialect.name
        self.datasets = Datasets(self.engine)
        self.eval_runs = EvalRuns(self.engine)
        self.train_runs = TrainRuns(self.engine)
        self.catalog = Catalog(self.engine)
        self.rollouts = Rollouts(self.engine)
        self.dashboard = Dashboard(self.engine)
        self.jobs = Jobs(self.engine)
        self.autopilots = Autopilots(self.engine)
        if migrate:
            self.migrate()

    # -- lifecycle ---------------------------------------------------------------------------

    def migrate(self) -> None:
        """Apply the named Alembic revisions that this database has not seen yet."""
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        try:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                if MigrationContext.configure(conn).get_current_revision() == head:
                    return
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise StoreError(f"cannot open the trace store at {self.safe_url}: {_first_line(exc)}; "
                             "check the URL (FLEDGLING_DB_URL or [store] url) and that the "
                             "server is running") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def safe_url(self) -> str:
        return mask_url(self.url)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One all-or-nothing unit of work: pass the connection to the write methods."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _use(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.engine.begin() as own:
                yield own

    # -- writes ------------------------------------------------------------------------------

    def insert_calls(self, calls: Iterable[Call], *, conn: Connection | None = None,
                     batch_size: int = 500) -> int:
        """Insert calls, skipping ids already stored. Returns how many were new."""
        inserted = 0
        with self._use(conn) as c:
            it = iter(calls)
            while batch := list(islice(it, batch_size)):
                inserted += self._insert_batch(c, batch)
        return inserted

    def _insert_batch(self, conn: Connection, batch: list[Call]) -> int:
        by_id: dict[str, Call] = {}
        for call in batch:
            by_id.setdefault(call.id, call)
        rows = [_call_to_row(call) for call in by_id.values()]
        ins = (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(calls_t)
        stmt = ins.on_conflict_do_nothing(index_elements=["id"]).returning(calls_t.c.id)
        new_ids = list(conn.execute(stmt, rows).scalars())
        tool_rows = [{"call_id": cid, "position": i, "name": tc.name, "arguments": tc.arguments}
                     for cid in new_ids if (resp := by_id[cid].response)
                     for i, tc in enumerate(resp.tool_calls)]
        if tool_rows:
            conn.execute(tool_calls_t.insert(), tool_rows)
        return len(new_ids)

    def set_feedback(self, call_id: str, feedback: Feedback, *, conn: Connection | None = None) -> None:
        with self._use(conn) as c:
            res = c.execute(calls_t.update().where(calls_t.c.id == call_id)
                            .values(feedback=feedback.model_dump(mode="json", exclude_none=True)))
            if res.rowcount == 0:
                raise StoreError(f"no call with id {call_id}; list ids with `fledgling traces list`")

    # -- reads -------------------------------------------------------------------------------

    def get_call(self, call_id: str) -> Call | None:
        with self.engine.connect() as c:
            row = c.execute(self._select_calls().where(calls_t.c.id == call_id)).mappings().first()
        return call_from_row(row) if row else None

    def session_of_response(self, response_id: str, task: str, since: datetime) -> str | None:
        """The session of the newest call of `task` since `since` whose answer had `response_id`
        (a Responses API id, `metadata.response_id`). The task and time bounds keep the scan on
        the (task, created_at) index: the JSON field itself is not indexed."""
        query = (select(calls_t.c.session_id)
                 .where(calls_t.c.task == task, calls_t.c.created_at >= since,
                        calls_t.c.metadata["response_id"].as_string() == response_id)
                 .order_by(calls_t.c.created_at.desc()).limit(1))
        with self.engine.connect() as c:
            return c.execute(query).scalar_one_or_none()

    def _select_calls(self) -> Select:
        """All call columns, the JSON ones as raw text: pydantic parses and validates JSON text
        in one Rust pass, about twice as fast as decoding to dicts first."""
        as_text = (lambda col: cast(col, Text)) if self.dialect == "postgresql" else (
            lambda col: type_coerce(col, Text))
        cols = [as_text(col).label(col.name) if col.name in _JSON_COLUMNS else col
                for col in calls_t.columns]
        return select(*cols)

    def count_calls(self, flt: CallFilter = CallFilter()) -> int:
        with self.engine.connect() as c:
            return c.execute(select(func.count()).select_from(calls_t)
                             .where(and_(True, *flt.clauses()))).scalar_one()

    def query_calls(self, flt: CallFilter = CallFilter(), *, limit: int = 50, offset: int = 0,
                    newest_first: bool = True) -> Page:
        order = ((calls_t.c.created_at.desc(), calls_t.c.id.desc()) if newest_first
                 else (calls_t.c.created_at, calls_t.c.id))
        with self.engine.connect() as c:
            rows = c.execute(self._select_calls().where(and_(True, *flt.clauses())).order_by(*order)
                             .limit(limit).offset(offset)).mappings().all()
        return Page([call_from_row(r) for r in rows], self.count_calls(flt), offset, limit)

    def iter_calls(self, flt: CallFilter = CallFilter(), *, batch_size: int = 1000) -> Iterator[Call]:
        """Every matching call, oldest first, in keyset-paginated batches (bounded memory)."""
        for row in self.iter_call_rows(flt, batch_size=batch_size):
            yield call_from_row(row)

    def iter_call_rows(self, flt: CallFilter = CallFilter(), *,
                       batch_size: int = 1000) -> Iterator[dict[str, Any]]:
        """`iter_calls` as plain row dicts (JSON columns as text, not parsed): compact to send
        to worker processes, which turn them into calls with `call_from_row`."""
        after: tuple[datetime, str] | None = None
        key = tuple_(calls_t.c.created_at, calls_t.c.id)
        while True:
            q = self._select_calls().where(and_(True, *flt.clauses()))
            if after is not None:
                q = q.where(key > tuple_(*after))
            q = q.order_by(calls_t.c.created_at, calls_t.c.id).limit(batch_size)
            with self.engine.connect() as c:
                rows = c.execute(q).mappings().all()
            if not rows:
                return
            for r in rows:
                yield dict(r)
            after = (rows[-1]["created_at"], rows[-1]["id"])

    def tasks(self) -> list[tuple[str, int]]:
        with self.engine.connect() as c:
            rows = c.execute(select(calls_t.c.task, func.count()).group_by(calls_t.c.task)
                             .order_by(calls_t.c.task)).all()
        return [(t, n) for t, n in rows]

    def stats(self, flt: CallFilter = CallFilter(),
              by: tuple[str, ...] = ("task", "model", "source")) -> list[GroupStats]:
        """Counts, error rate, tokens, cost and latency percentiles per group."""
        cols = [getattr(calls_t.c, b) for b in by]
        where = and_(True, *flt.clauses())
        agg = select(*cols, func.count(),
                     func.sum(func.cast(calls_t.c.status == "error", calls_t.c.input_tokens.type)),
                     func.coalesce(func.sum(calls_t.c.input_tokens), 0),
                     func.coalesce(func.sum(calls_t.c.output_tokens), 0),
                     func.coalesce(func.sum(calls_t.c.cost_usd), 0.0),
                     func.count() - func.count(calls_t.c.input_tokens)).where(where).group_by(*cols)
        groups: dict[tuple, GroupStats] = {}
        with self.engine.connect() as c:
            for row in c.execute(agg):
                k = tuple(row[: len(by)])
                n, errors, tin, tout, cost, unknown = row[len(by):]
                groups[k] = GroupStats(dict(zip(by, k, strict=True)), n, int(errors or 0), int(tin), int(tout),
                                       float(cost), without_usage=int(unknown or 0))
            lat = select(*cols, calls_t.c.latency_ms).where(where, calls_t.c.latency_ms.is_not(None))
            for row in c.execute(lat.execution_options(yield_per=5000)):
                groups[tuple(row[: len(by)])].latencies.append(row[-1])
        return [groups[k] for k in sorted(groups, key=lambda k: tuple(str(x) for x in k))]

    def tool_counts(self, task: str) -> dict[str, int]:
        with self.engine.connect() as c:
            rows = c.execute(select(tool_calls_t.c.name, func.count())
                             .join(calls_t, calls_t.c.id == tool_calls_t.c.call_id)
                             .where(calls_t.c.task == task).group_by(tool_calls_t.c.name)).all()
        return dict(sorted(rows, key=lambda r: -r[1]))

    # -- contracts -----------------------------------------------------------------------------

    def put_contract(self, *, task: str, version: str, kind: str, n_calls: int, tools: list,
                     output_schema: dict | None, stats: dict, output_strict: bool | None = None,
                     conn: Connection | None = None) -> bool:
        """Store a contract version. Returns False when that version existed; its observed
        stats and call count are then refreshed (the schemas, being the version, cannot differ).
        `output_strict`: the output format's `strict` flag (None: it did not say)."""
        key = and_(contracts_t.c.task == task, contracts_t.c.version == version)
        with self._use(conn) as c:
            if c.execute(select(contracts_t.c.version).where(key)).first() is not None:
                c.execute(contracts_t.update().where(key).values(n_calls=n_calls, stats=stats))
                return False
            c.execute(contracts_t.insert().values(
                task=task, version=version, kind=kind, created_at=datetime.now(UTC),
                n_calls=n_calls, tools=tools, output_schema=output_schema, output_strict=output_strict,
                stats=stats))
            return True

    def contracts(self, task: str) -> list[dict[str, Any]]:
        """Every stored contract version of a task, newest first."""
        with self.engine.connect() as c:
            rows = c.execute(select(contracts_t).where(contracts_t.c.task == task)
                             .order_by(contracts_t.c.created_at.desc())).mappings().all()
        return [dict(r) for r in rows]

    # -- import cursors ----------------------------------------------------------------------

    def get_cursor(self, source: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(select(cursors_t.c.cursor).where(cursors_t.c.source == source)).scalar()

    def set_cursor(self, source: str, cursor: str, *, conn: Connection | None = None) -> None:
        ins = (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(cursors_t)
        now = datetime.now(UTC)
        stmt = ins.values(source=source, cursor=cursor, updated_at=now).on_conflict_do_update(
            index_elements=["source"], set_={"cursor": cursor, "updated_at": now})
        with self._use(conn) as c:
            c.execute(stmt)


def open_store(url: str | None = None) -> Store:
    """The store named by the argument, else `$FLEDGLING_DB_URL`, else fledgling.toml's."""
    if url is None:
        from fledgling.config import load_settings

        url = load_settings().db_url
    return Store(url)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


# -- engine and row mapping ------------------------------------------------------------------

def _make_engine(url: str) -> Engine:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    backend, _, driver = scheme.partition("+")
    if not ((backend == "sqlite" and driver in ("", "pysqlite"))
            or (backend in ("postgresql", "postgres") and driver in ("", "psycopg"))):
        what = f"not '{scheme}'" if scheme else "and this URL names no driver"
        raise StoreError(f"store URL '{mask_url(url)}' is not usable (Fledgling stores in SQLite or "
                         f"PostgreSQL, {what}); use sqlite:///path/to.db or postgresql+psycopg://user@host/db")
    try:
        if backend == "sqlite":
            path = make_url(url).database or ""
            if path and path != ":memory:" and not path.startswith("file:"):
                _create_owner_only(Path(path))
            engine = create_engine(url, json_serializer=_dumps, json_deserializer=orjson.loads)
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return create_engine(url, json_serializer=_dumps, json_deserializer=orjson.loads,
                             pool_pre_ping=True, pool_size=5, max_overflow=10)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise StoreError(f"store URL '{mask_url(url)}' is not usable ({_first_line(exc)}); use "
                         "sqlite:///path/to.db or postgresql+psycopg://user@host/db") from None
    except OSError as exc:
        raise StoreError(f"cannot create the trace store at {mask_url(url)}: {exc.strerror or exc} "
                         f"({exc.filename}); pick a writable path for [store] url or FLEDGLING_DB_URL") from None


def _create_owner_only(path: Path) -> None:
    """The store holds every prompt: the file (and the directory) Fledgling creates are the
    owner's alone. SQLite gives its -wal and -shm files the database file's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class RawJson(str):
    """JSON text already serialised (by pydantic's Rust serializer): stored as is."""


def _dumps(obj: Any) -> str:
    if isinstance(obj, RawJson):
        return obj
    return orjson.dumps(obj).decode()


def _first_line(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def _call_to_row(call: Call) -> dict[str, Any]:
    resp = call.response
    return {
        "id": call.id, "task": call.task, "trace_id": call.trace_id, "session_id": call.session_id,
        "source": call.source, "created_at": call.created_at, "provider": call.provider,
        "model": call.model, "status": call.status, "error": call.error,
        "finish_reason": resp.finish_reason if resp else None,
        "input_tokens": None if call.usage.missing else call.usage.input_tokens,
        "output_tokens": None if call.usage.missing else call.usage.output_tokens,
        "latency_ms": call.latency_ms, "cost_usd": call.cost_usd,
        "request": RawJson(call.request.model_dump_json(exclude_none=True)),
        "response": RawJson(resp.model_dump_json(exclude_none=True)) if resp else None,
        "feedback": RawJson(call.feedback.model_dump_json(exclude_none=True)) if call.feedback else None,
        "metadata": call.metadata,
    }


_JSON_COLUMNS = frozenset({"request", "response", "feedback", "metadata"})


def _present(json_text: str | None) -> bool:
    return json_text is not None and json_text != "null"


def call_from_row(row: Any) -> Call:
    """The call in one row of the calls table (as `Store.iter_call_rows` yields them)."""
    return Call(
        id=row["id"], task=row["task"], trace_id=row["trace_id"], session_id=row["session_id"],
        source=row["source"], created_at=row["created_at"], provider=row["provider"],
        model=row["model"], status=row["status"], error=row["error"],
        usage=Usage(missing=True) if row["input_tokens"] is None else
        Usage(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"] or 0),
        latency_ms=row["latency_ms"], cost_usd=row["cost_usd"],
        request=Request.model_validate_json(row["request"]),
        response=Response.model_validate_json(row["response"]) if _present(row["response"]) else None,
        feedback=Feedback.model_validate_json(row["feedback"]) if _present(row["feedback"]) else None,
        metadata=orjson.loads(row["metadata"]) if _present(row["metadata"]) else {},
    )
