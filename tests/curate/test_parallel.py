"""Preparing calls in worker processes: same bytes as in-process, input order, bounded reading."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from typing import Any

import pytest

from fledgling.calls import Feedback, Response
from fledgling.contracts import infer_contract
from fledgling.curate import curate
from fledgling.curate.parallel import chunk_size, prepared
from fledgling.curate.prepare import PrepareOptions
from fledgling.errors import InputError
from fledgling.store import CallFilter, Store
from tests.curate.conftest import contact_call, make_call, tool_call

FILES = ("train.jsonl", "val.jsonl", "test.jsonl", "report.json", "manifest.json")


def mixed_calls(n: int) -> list:
    """Kept, dropped (error, negative feedback, contract), corrected, PII and duplicate calls."""
    bad = Response(tool_calls=[tool_call("lookup_order", {})], finish_reason="tool_calls")
    calls = []
    for i in range(n):
        kw: dict[str, Any] = {"session": f"s{i // 4}", "metadata": {"llm_error": None}}
        if i % 11 == 0:
            calls.append(make_call(i, status="error", **kw))
        elif i % 13 == 0:
            calls.append(make_call(i, response=bad, **{**kw, "metadata": {"llm_error": "missing_arg"}}))
        elif i % 17 == 0:
            calls.append(make_call(i, response=bad, feedback=Feedback(corrected=make_call(i).response), **kw))
        elif i % 19 == 0:
            calls.append(make_call(i, user="where is my order ORD-1? it was due last week", **kw))
        elif i % 4 == 0:
            calls.append(contact_call(i, **kw))
        else:
            calls.append(make_call(i, **kw))
    return calls


def test_workers_write_the_same_bytes_as_one_process(store: Store, tmp_path) -> None:
    store.insert_calls(mixed_calls(400))
    one = curate(store, "support-agent", seed=5, out_dir=tmp_path / "one", workers=0)
    two = curate(store, "support-agent", seed=5, out_dir=tmp_path / "two", workers=2)
    assert chunk_size(400, 2) < 400 // 4    # many chunks, so the order across chunks is exercised
    for name in FILES:
        assert (one.path / name).read_bytes() == (two.path / name).read_bytes(), name
    report = two.report
    assert report["calls_in"] == 400 and report["dropped"]["error"] == 37
    assert report["redactions"]["by_type"]["EMAIL"] > 0 and report["duplicates"]["exact"] > 0
    assert report["corrected_labels"] > 0 and report["ground_truth"]["planted_errors"] > 0


def test_bad_worker_count_is_a_one_line_error(sqlite_store: Store, tmp_path) -> None:
    sqlite_store.insert_calls([make_call(1)])
    with pytest.raises(InputError, match="--workers -1 must be 0"):
        curate(sqlite_store, "support-agent", out_dir=tmp_path, workers=-1)


def _rows_and_options(store: Store, n: int) -> tuple[list[dict[str, Any]], PrepareOptions]:
    store.insert_calls(mixed_calls(n))
    flt = CallFilter(task="support-agent")
    contract = infer_contract(store.iter_calls(flt), "support-agent")
    return list(store.iter_call_rows(flt)), PrepareOptions.of(contract, "chat", drop_tool_failures=True,
                                                               near_duplicates=True)


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_workers_start_under_every_start_method(sqlite_store: Store, method: str) -> None:
    rows, options = _rows_and_options(sqlite_store, 60)
    expected = list(prepared(rows, options, 0))
    got = list(prepared(rows, options, 1, chunk=7, context=mp.get_context(method)))
    assert got == expected
    assert [p.call_id for p in got] == [r["id"] for r in rows]
    assert sum(p.reason is None for p in got) > 30 and any(p.signature for p in got)


def test_reading_stays_a_bounded_window_ahead(sqlite_store: Store) -> None:
    rows, options = _rows_and_options(sqlite_store, 300)
    read = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal read
        for r in rows:
            read += 1
            yield r

    stream = prepared(counted(), options, 2, chunk=10)
    first = next(stream)
    assert first.call_id == rows[0]["id"]
    assert read <= (2 * 2 + 1) * 10           # in-flight chunks plus the one refilled
    assert mp.active_children()               # the work is done by worker processes
    stream.close()                            # stopping early shuts the workers down
    assert not mp.active_children()
