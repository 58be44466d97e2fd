"""The trace store on SQLite and on a real PostgreSQL server: round-trips, idempotence, queries."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from fledgling.calls import Call, Feedback, Request, Response, Usage
from fledgling.errors import StoreError
from fledgling.store import CallFilter, Store
from fledgling.store.schema import metadata

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_call(i: int, *, task: str = "support-agent", model: str = "gpt-4o", source: str = "test",
              status: str = "ok", tools: tuple[str, ...] = ("lookup_order",)) -> Call:
    return Call(
        id=f"call-{i:05d}", task=task, trace_id=f"trace-{i // 3}", session_id=f"sess-{i // 6}",
        source=source, created_at=T0 + timedelta(seconds=i), provider="openai", model=model,
        request=Request(messages=[{"role": "system", "content": "You help."},
                                  {"role": "user", "content": f"where is order {i}? ünïcødé"}],
                        tools=[{"type": "function", "function": {"name": t, "parameters": {
                            "type": "object", "properties": {"order_id": {"type": "string"}}}}}
                               for t in tools], temperature=0.0, seed=7),
        response=None if status == "error" else Response(
            tool_calls=[{"id": f"tc{i}{j}", "type": "function",
                         "function": {"name": t, "arguments": f'{{"order_id": "A{i}"}}'}}
                        for j, t in enumerate(tools)],
            finish_reason="tool_calls"),
        usage=Usage(input_tokens=100 + i, output_tokens=20), latency_ms=float(100 + i),
        cost_usd=0.001, status=status, error="upstream timeout" if status == "error" else None,
        metadata={"i": i, "nested": {"ok": True}},
    )


def test_round_trip_keeps_every_field(store: Store) -> None:
    feedback = Feedback(score=0.0, label="bad", corrected=Response(content="fixed"))
    call = make_call(1).model_copy(update={"feedback": feedback})
    assert store.insert_calls([call]) == 1
    assert store.get_call(call.id) == call
    assert store.get_call("missing") is None


def test_insert_is_idempotent_on_id(store: Store) -> None:
    calls = [make_call(i) for i in range(10)]
    assert store.insert_calls(calls) == 10
    assert store.insert_calls(calls) == 0
    assert store.insert_calls(calls[:3] + [make_call(10)] + calls[:3]) == 1
    assert store.count_calls() == 11


def test_batch_insert_across_batches_and_tool_rows(store: Store) -> None:
    calls = [make_call(i, tools=("lookup_order", "refund")) for i in range(1234)]
    assert store.insert_calls(calls, batch_size=100) == 1234
    assert store.tool_counts("support-agent") == {"lookup_order": 1234, "refund": 1234}


def test_transaction_rolls_back_everything(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with store.transaction() as conn:
            store.insert_calls([make_call(i) for i in range(5)], conn=conn)
            raise RuntimeError("boom")
    assert store.count_calls() == 0


def test_filters_pagination_and_counts(store: Store) -> None:
    calls = ([make_call(i) for i in range(30)]
             + [make_call(100 + i, task="ticket-triage", model="gpt-4o-mini", tools=()) for i in range(20)]
             + [make_call(200 + i, status="error", source="gateway") for i in range(5)])
    store.insert_calls(calls)
    assert store.count_calls() == 55
    assert store.count_calls(CallFilter(task="ticket-triage")) == 20
    assert store.count_calls(CallFilter(model="gpt-4o-mini")) == 20
    assert store.count_calls(CallFilter(source="gateway", status="error")) == 5
    window = CallFilter(since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=20))
    assert store.count_calls(window) == 10

    page1 = store.query_calls(CallFilter(task="support-agent"), limit=20)
    page2 = store.query_calls(CallFilter(task="support-agent"), limit=20, offset=20)
    assert page1.total == 35 and page1.has_more and not page2.has_more
    ids = [c.id for c in page1.items + page2.items]
    assert len(set(ids)) == 35
    assert ids == sorted(ids, reverse=True)  # newest first

    streamed = [c.id for c in store.iter_calls(CallFilter(task="support-agent"), batch_size=7)]
    assert streamed == sorted(ids)
    assert store.tasks() == [("support-agent", 35), ("ticket-triage", 20)]


def test_stats_per_group(store: Store) -> None:
    store.insert_calls([make_call(i) for i in range(101)] + [make_call(500 + i, status="error") for i in range(3)])
    (g,) = store.stats(by=("task",))
    assert g.calls == 104 and g.errors == 3
    assert g.latency_percentile(50) == pytest.approx(151.5)
    assert g.latency_percentile(99) == pytest.approx(600.97)
    assert g.input_tokens == sum(100 + i for i in range(101)) + sum(600 + i for i in range(3))


def test_feedback_update(store: Store) -> None:
    store.insert_calls([make_call(1)])
    store.set_feedback("call-00001", Feedback(score=1.0, label="good"))
    assert store.get_call("call-00001").feedback.label == "good"
    with pytest.raises(StoreError):
        store.set_feedback("nope", Feedback(score=1.0))


def test_contracts_and_cursors(store: Store) -> None:
    assert store.put_contract(task="t", version="abc", kind="toolcall", n_calls=3, tools=[{"name": "f"}],
                              output_schema=None, stats={"f": 3})
    assert not store.put_contract(task="t", version="abc", kind="toolcall", n_calls=5, tools=[{"name": "f"}],
                                  output_schema=None, stats={"f": 5})
    (stored,) = store.contracts("t")
    assert (stored["version"], stored["n_calls"], stored["stats"]) == ("abc", 5, {"f": 5})
    assert store.get_cursor("langfuse:h") is None
    store.set_cursor("langfuse:h", "2026-01-01T00:00:00Z")
    store.set_cursor("langfuse:h", "2026-02-01T00:00:00Z")
    assert store.get_cursor("langfuse:h") == "2026-02-01T00:00:00Z"


def test_migrations_match_the_schema(store: Store) -> None:
    """The named Alembic revisions create exactly the tables the code uses."""
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_reopening_is_a_no_op(store_url: str) -> None:
    Store(store_url).insert_calls([make_call(1)])
    again = Store(store_url)
    assert again.count_calls() == 1


def test_sqlite_file_is_plain_and_in_wal_mode(tmp_path) -> None:
    path = tmp_path / "sub" / "dir" / "f.db"
    Store(f"sqlite:///{path}").insert_calls([make_call(1)])
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"calls", "tool_calls", "contracts", "import_cursors", "alembic_version"} <= tables
    task, name = db.execute("SELECT c.task, t.name FROM calls c JOIN tool_calls t ON t.call_id = c.id").fetchone()
    assert (task, name) == ("support-agent", "lookup_order")


def test_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot open the trace store"):
        Store("postgresql+psycopg://nobody@127.0.0.1:1/nothing?connect_timeout=2")
    with pytest.raises(StoreError, match="not usable"):
        Store("nosuchdb://x")
