"""Splits: no session or trace in two splits, every tool in test, deterministic by seed."""

from __future__ import annotations

from collections import Counter

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fledgling.calls import Response
from fledgling.curate import curate
from fledgling.curate.splits import Groups, assign
from fledgling.store import Store
from tests.curate.conftest import contact_call, make_call, tool_call

calls_strategy = st.lists(
    st.tuples(st.one_of(st.none(), st.integers(0, 15)), st.one_of(st.none(), st.integers(0, 25)),
              st.sampled_from(["lookup_order", "update_contact", "refund", "(no tool call)"])),
    min_size=1, max_size=120)


@settings(max_examples=200, deadline=None)
@given(calls=calls_strategy, seed=st.integers(0, 2**31), val=st.sampled_from([0.0, 0.1, 0.25]),
       test=st.sampled_from([0.0, 0.2, 0.3]))
def test_no_session_or_trace_is_in_two_splits(calls, seed, val, test) -> None:
    groups = Groups()
    ids = [f"c{i}" for i in range(len(calls))]
    for cid, (session, trace, _) in zip(ids, calls, strict=True):
        groups.link(cid, f"s{session}" if session is not None else None,
                    f"t{trace}" if trace is not None else None)
    classes: dict[str, Counter[str]] = {}
    for cid, (_, _, cls) in zip(ids, calls, strict=True):
        classes.setdefault(groups.of(cid), Counter())[cls] += 1
    split_of, _ = assign(classes, seed=seed, val=val, test=test)
    seen: dict[tuple[str, int], set[str]] = {}
    for cid, (session, trace, _) in zip(ids, calls, strict=True):
        split = split_of[groups.of(cid)]
        if session is not None:
            seen.setdefault(("s", session), set()).add(split)
        if trace is not None:
            seen.setdefault(("t", trace), set()).add(split)
    assert all(len(splits) == 1 for splits in seen.values())
    assert set(split_of.values()) <= {"train", "val", "test"}
    if val == 0:
        assert "val" not in split_of.values()
    if test == 0:
        assert "test" not in split_of.values()
    again, _ = assign(dict(reversed(list(classes.items()))), seed=seed, val=val, test=test)
    assert again == split_of  # arrival order does not matter, only the seed


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sessions=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 9)), min_size=5, max_size=40))
def test_pipeline_output_never_leaks_a_session_or_trace(sqlite_store: Store, tmp_path_factory, sessions) -> None:
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM dataset_items")
        conn.exec_driver_sql("DELETE FROM datasets")
        conn.exec_driver_sql("DELETE FROM calls")
    calls = [make_call(i, session=f"s{s}", trace=f"t{t}") for i, (s, t) in enumerate(sessions)]
    sqlite_store.insert_calls(calls)
    ds = curate(sqlite_store, "support-agent", out_dir=tmp_path_factory.mktemp("ds"), near_dup_threshold=1.0)
    by_id = {c.id: c for c in calls}
    where: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        for line in (ds.path / f"{split}.jsonl").read_bytes().splitlines():
            call = by_id[orjson.loads(line)["call_ids"][0]]
            where.setdefault("s" + call.session_id, set()).add(split)
            where.setdefault("t" + call.trace_id, set()).add(split)
    assert where and all(len(s) == 1 for s in where.values())


def test_every_tool_seen_a_few_times_is_in_test_and_rare_ones_warn(sqlite_store: Store, tmp_path) -> None:
    calls = [make_call(i, session=f"s{i // 5}") for i in range(200)]
    calls += [contact_call(1000 + i, session=f"c{i}") for i in range(4)]
    calls += [make_call(2000 + i, session=f"r{i}", response=Response(
        tool_calls=[tool_call("lookup_order", {"order_id": f"R{i}"}), tool_call("update_contact", {"email": "a@b.co"})],
        finish_reason="tool_calls")) for i in range(3)]
    calls.append(make_call(3000, session="once", response=Response(content="Hello! How can I help?",
                                                                   finish_reason="stop")))
    sqlite_store.insert_calls(calls)
    for seed in range(5):
        ds = curate(sqlite_store, "support-agent", seed=seed, out_dir=tmp_path, near_dup_threshold=1.0)
        test_classes = ds.report["splits"]["test"]["classes"]
        assert {"lookup_order", "update_contact", "lookup_order+update_contact"} <= set(test_classes)
        assert all(ds.report["splits"]["train"]["classes"].get(c) for c in test_classes)
        assert "(no tool call)" not in test_classes
        assert any("'(no tool call)' has only 1 example" in w for w in ds.report["warnings"])
        total = sum(ds.counts.values())
        assert abs(ds.counts["test"] - 0.2 * total) <= 8 and abs(ds.counts["val"] - 0.1 * total) <= 8


def test_a_class_inside_one_session_cannot_reach_test_and_says_so() -> None:
    groups = {"g-big": Counter({"refund": 5, "lookup": 1}),
              **{f"g{i}": Counter({"lookup": 1}) for i in range(30)}}
    split_of, warnings = assign(groups, seed=0, val=0.1, test=0.2)
    assert split_of["g-big"] == "train"
    assert any("'refund' (5 examples) sits in too few sessions/traces" in w for w in warnings)
