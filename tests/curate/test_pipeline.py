"""The whole curation: determinism, duplicates, label noise, versions in the store, atomic writes."""

from __future__ import annotations

import orjson
import pytest

from fledgling.calls import Feedback, Response
from fledgling.curate import curate, list_datasets
from fledgling.curate.registry import call_ids
from fledgling.errors import InputError
from fledgling.store import Store
from tests.curate.conftest import contact_call, make_call, tool_call

FILES = ("train.jsonl", "val.jsonl", "test.jsonl", "report.json", "manifest.json")


def lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_same_seed_same_bytes_other_seed_other_split(store: Store, tmp_path) -> None:
    store.insert_calls([make_call(i, session=f"s{i // 3}") if i % 4 else contact_call(i, session=f"s{i // 3}")
                        for i in range(150)])
    a = curate(store, "support-agent", seed=7, out_dir=tmp_path / "a")
    b = curate(store, "support-agent", seed=7, out_dir=tmp_path / "b")
    c = curate(store, "support-agent", seed=8, out_dir=tmp_path / "a")
    again = curate(store, "support-agent", seed=8, out_dir=tmp_path / "a")
    assert (a.version, b.version, c.version) == (1, 2, 3)
    for name in FILES:
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes(), name
    assert (a.path / "train.jsonl").read_bytes() != (c.path / "train.jsonl").read_bytes()
    assert (again.version, again.new, again.path) == (3, False, c.path)  # a rerun adds no copy
    assert a.report["redactions"]["by_type"] == {"EMAIL": 76, "PHONE": 76}
    rows = list_datasets(store, "support-agent")
    assert [r["version"] for r in rows] == [3, 2, 1]
    assert rows[-1]["n_train"] == a.counts["train"] and rows[-1]["seed"] == 7
    assert call_ids(store, "support-agent", 1, "test") == [ln["call_ids"][0] for ln in lines(a.path / "test.jsonl")]


def test_duplicates_keep_the_best_labelled_and_noise_is_flagged(sqlite_store: Store, tmp_path) -> None:
    q = "where is my order ORD-555? it was due last week"
    right = Response(tool_calls=[tool_call("lookup_order", {"order_id": "ORD-555"})], finish_reason="tool_calls")
    wrong = Response(tool_calls=[tool_call("lookup_order", {"order_id": "ORD-556"})], finish_reason="tool_calls")
    calls = [make_call(i) for i in range(30)]
    calls += [make_call(100, user=q, response=wrong),
              make_call(101, user="Where is my order ORD-555?  It was due last week!", response=right),
              make_call(102, user=q, response=wrong,
                        feedback=Feedback(label="bad", corrected=right)),
              make_call(103, user=q, response=wrong)]
    # near-duplicates: one character changed in a long message; same class, other argument
    long = "hello, I ordered a blue kettle three weeks ago and it still has not arrived at my home " * 2
    calls += [make_call(200, user=long + "ORD-777", response=Response(
                  tool_calls=[tool_call("lookup_order", {"order_id": "ORD-777"})], finish_reason="tool_calls")),
              make_call(201, user=long + "ORD-778", response=Response(
                  tool_calls=[tool_call("lookup_order", {"order_id": "ORD-778"})], finish_reason="tool_calls"))]
    sqlite_store.insert_calls(calls)
    ds = curate(sqlite_store, "support-agent", out_dir=tmp_path)
    kept = {ln["call_ids"][0]: ln for s in ("train", "val", "test") for ln in lines(ds.path / f"{s}.jsonl")}
    assert "call-000102" in kept and not {"call-000100", "call-000101", "call-000103"} & set(kept)
    assert kept["call-000102"]["messages"][-1]["tool_calls"][0]["function"]["arguments"] == {"order_id": "ORD-555"}
    assert ("call-000200" in kept) != ("call-000201" in kept)
    assert ds.report["duplicates"]["exact"] == 3 and ds.report["duplicates"]["near"] == 1
    assert ds.report["label_noise"]["clusters"] == 1
    assert ds.report["label_noise"]["calls"] == 2          # 100 and 103 disagree with the correction
    assert len(kept) == 32

    dropped = curate(sqlite_store, "support-agent", out_dir=tmp_path, drop_label_noise=True)
    assert dropped.report["examples_out"] == 32            # a corrected representative survives
    sqlite_store.insert_calls([make_call(300, user="cancel ORD-9", response=wrong),
                               make_call(301, user="cancel ORD-9", response=right)])
    dropped = curate(sqlite_store, "support-agent", out_dir=tmp_path, drop_label_noise=True)
    assert dropped.report["label_noise"]["clusters_dropped"] == 1
    assert dropped.report["examples_out"] == 32
    flagged = curate(sqlite_store, "support-agent", out_dir=tmp_path)
    assert flagged.report["examples_out"] == 33 and flagged.report["label_noise"]["clusters"] == 2


def test_failure_midway_leaves_no_version_and_no_row(sqlite_store: Store, tmp_path) -> None:
    sqlite_store.insert_calls([make_call(i) for i in range(1200)])

    def interrupt(done: int, total: int) -> None:
        if done >= 1000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        curate(sqlite_store, "support-agent", out_dir=tmp_path, progress=interrupt)
    assert list((tmp_path / "support-agent").iterdir()) == []
    assert list_datasets(sqlite_store) == []
    ds = curate(sqlite_store, "support-agent", out_dir=tmp_path)
    assert ds.version == 1 and sorted(p.name for p in ds.path.iterdir()) == sorted(FILES)


def test_bad_options_and_unknown_task_are_one_line_errors(sqlite_store: Store, tmp_path) -> None:
    sqlite_store.insert_calls([make_call(1)])
    with pytest.raises(InputError, match="task 'nope' has no calls.*tasks: support-agent"):
        curate(sqlite_store, "nope", out_dir=tmp_path)
    with pytest.raises(InputError, match="val \\+ test < 1"):
        curate(sqlite_store, "support-agent", val=0.5, test=0.5, out_dir=tmp_path)
    with pytest.raises(InputError, match="near-dup-threshold 0"):
        curate(sqlite_store, "support-agent", near_dup_threshold=0, out_dir=tmp_path)
    with pytest.raises(InputError, match="--format 'csv'"):
        curate(sqlite_store, "support-agent", fmt="csv", out_dir=tmp_path)  # type: ignore[arg-type]
    assert not (tmp_path / "support-agent").exists() or not any((tmp_path / "support-agent").iterdir())


def test_ground_truth_precision_and_recall(sqlite_store: Store, tmp_path) -> None:
    fixed = Response(tool_calls=[tool_call("lookup_order", {"order_id": "ORD-1"})], finish_reason="tool_calls")
    failed_turn = [{"role": "assistant", "content": None,
                    "tool_calls": [tool_call("lookup_order", {"order_id": "X"}, 9)]},
                   {"role": "tool", "tool_call_id": "tc_9", "content": '{"ok": false, "error": {"code": "not_found"}}'}]
    calls = [make_call(i, metadata={"llm_error": None}) for i in range(40)]
    calls += [make_call(100 + i, status="error", metadata={"llm_error": "upstream"}) for i in range(3)]
    calls += [make_call(200 + i, metadata={"llm_error": "wrong_args"}) for i in range(2)]   # invisible to filters
    calls += [make_call(300, response=Response(tool_calls=[tool_call("lookup_order", {})]),
                        metadata={"llm_error": "missing_arg"})]
    calls += [make_call(301, response=Response(tool_calls=[tool_call("lookup_order", {})]),
                        feedback=Feedback(corrected=fixed), metadata={"llm_error": "missing_arg"})]
    calls += [make_call(400, feedback=Feedback(score=0.0), metadata={"llm_error": None})]   # human said bad
    calls += [make_call(401, extra_messages=failed_turn, metadata={"llm_error": None})]     # policy, not bad
    calls += [make_call(500 + i) for i in range(5)]                                        # no ground truth
    sqlite_store.insert_calls(calls)
    ds = curate(sqlite_store, "support-agent", out_dir=tmp_path, near_dup_threshold=1.0)
    gt = ds.report["ground_truth"]
    assert gt["calls_with_ground_truth"] == 49 and gt["planted_errors"] == 7
    assert gt["wrong_labels"] == 6  # the corrected one has a right label now
    assert (gt["true_positives"], gt["false_positives"], gt["false_negatives"]) == (4, 1, 2)
    assert gt["precision"] == 0.8 and gt["recall"] == round(4 / 6, 4)
    assert gt["planted_kept_out"] == round(5 / 7, 4)
    assert gt["by_kind"] == {
        "missing_arg": {"planted": 2, "dropped": 1, "flagged": 0, "corrected": 1, "tool_failed": 0, "recall": 1.0},
        "upstream": {"planted": 3, "dropped": 3, "flagged": 0, "corrected": 0, "tool_failed": 0, "recall": 1.0},
        "wrong_args": {"planted": 2, "dropped": 0, "flagged": 0, "corrected": 0, "tool_failed": 0, "recall": 0.0}}
    assert gt["by_reason"]["negative_feedback"] == {"wrong_labels": 0, "false_alarms": 1}
    assert ds.report["dropped"]["tool_failed"] == 1

    kept = curate(sqlite_store, "support-agent", out_dir=tmp_path, near_dup_threshold=1.0, keep_tool_failures=True)
    assert "tool_failed" not in kept.report["dropped"]
    assert kept.report["examples_out"] == ds.report["examples_out"] + 1
