"""Each filter drops exactly the planted bad calls, under its own named reason."""

from __future__ import annotations

import orjson
import pytest

from fledgling.calls import Feedback, Response
from fledgling.curate import curate
from fledgling.curate.filters import tool_failure
from fledgling.store import Store
from tests.curate.conftest import contact_call, make_call, tool_call


def failed_tool_turn(i: int, result: str) -> list[dict]:
    return [{"role": "assistant", "content": None,
             "tool_calls": [tool_call("lookup_order", {"order_id": f"ORD-{i}"}, 99)]},
            {"role": "tool", "tool_call_id": "tc_99", "content": result}]


def planted_calls() -> list:
    calls, i = [], 0

    def nxt() -> int:
        nonlocal i
        i += 1
        return i

    calls += [make_call(nxt()) for _ in range(30)]                               # good
    calls += [contact_call(nxt()) for _ in range(5)]                             # good
    calls += [make_call(nxt(), status="error") for _ in range(3)]
    calls += [make_call(nxt(), response=Response(content="Let me check the ord",
                                                 finish_reason="length")) for _ in range(2)]
    calls += [make_call(nxt(), feedback=Feedback(score=0.0)) for _ in range(2)]
    calls += [make_call(nxt(), feedback=Feedback(label="thumbs_down")) for _ in range(2)]
    calls += [make_call(nxt(), extra_messages=failed_tool_turn(i, r)) for r in (
        '{"error": "order service unavailable"}', '{"status": "failed", "order": null}',
        "Error: connection reset by peer", "Traceback (most recent call last):\n  ...")]
    calls += [make_call(nxt(), response=Response(tool_calls=[
        {"id": "x", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "A1"'}}],
        finish_reason="tool_calls")) for _ in range(2)]
    calls += [make_call(nxt(), response=Response(tool_calls=[tool_call("refund_everything", {})],
                                                 finish_reason="tool_calls"))]
    calls += [make_call(nxt(), response=Response(tool_calls=[tool_call("update_contact", {"phone": "1"})],
                                                 finish_reason="tool_calls")) for _ in range(3)]
    calls += [make_call(nxt(), response=Response(tool_calls=[tool_call("lookup_order", {"order_id": 12})],
                                                 finish_reason="tool_calls"))]
    # tool results that look alarming but report success: kept
    calls += [make_call(nxt(), extra_messages=failed_tool_turn(i, r)) for r in (
        '{"status": "shipped", "errors": []}', "No errors found; the parcel is in transit.")]
    return calls


def test_exact_count_dropped_per_reason(store: Store, tmp_path) -> None:
    calls = planted_calls()
    store.insert_calls(calls)
    ds = curate(store, "support-agent", out_dir=tmp_path / "ds", near_dup_threshold=1.0)
    assert ds.report["calls_in"] == len(calls) == 57
    assert ds.report["dropped"] == {
        "error": 3, "truncated": 2, "negative_feedback": 4, "tool_failed": 4,
        "contract:invalid_json": 2, "contract:unknown_tool": 1, "contract:missing_required": 3,
        "contract:schema": 1}
    out_ids = [cid for split in ("train", "val", "test")
               for line in (ds.path / f"{split}.jsonl").read_bytes().splitlines()
               for cid in orjson.loads(line)["call_ids"]]
    good = [c.id for c in calls[:35] + calls[-2:]]
    assert sorted(out_ids) == sorted(good)
    assert ds.report["examples_out"] == sum(ds.counts.values()) == 37


def test_corrected_feedback_replaces_the_label_instead_of_dropping(sqlite_store: Store, tmp_path) -> None:
    fixed = Response(tool_calls=[tool_call("lookup_order", {"order_id": "ORD-FIXED"})], finish_reason="tool_calls")
    calls = [make_call(i) for i in range(20)]
    calls.append(make_call(100, feedback=Feedback(score=0.0, label="bad", corrected=fixed)))
    calls.append(make_call(101, status="error", feedback=Feedback(corrected=fixed)))
    calls.append(make_call(102, response=Response(content="cut", finish_reason="length"),
                           feedback=Feedback(corrected=fixed)))
    bad_fix = Response(tool_calls=[tool_call("lookup_order", {})], finish_reason="tool_calls")
    calls.append(make_call(103, feedback=Feedback(score=0.0, corrected=bad_fix)))
    sqlite_store.insert_calls(calls)
    ds = curate(sqlite_store, "support-agent", out_dir=tmp_path, near_dup_threshold=1.0)
    assert ds.report["corrected_labels"] == 3
    assert ds.report["dropped"] == {"contract:missing_required": 1}  # a correction is checked too
    lines = {orjson.loads(line)["call_ids"][0]: orjson.loads(line)
             for split in ("train", "val", "test") for line in (ds.path / f"{split}.jsonl").read_bytes().splitlines()}
    for cid in ("call-000100", "call-000101", "call-000102"):
        answer = lines[cid]["messages"][-1]
        assert answer["tool_calls"][0]["function"]["arguments"] == {"order_id": "ORD-FIXED"}


@pytest.mark.parametrize("content,failed", [
    ('{"error": "boom"}', True), ('{"errors": ["x"]}', True), ('{"status": "FAILED"}', True),
    ('{"state": "timeout"}', True), ('{"success": false}', True), ('{"ok": false, "x": 1}', True),
    ("Error: 404 order not found", True), ("exception raised in handler", True),
    ("HTTP 503 Service Unavailable", True), ("failed to reach the warehouse", True),
    ('{"error": null, "status": "ok"}', False), ('{"errors": [], "ok": true}', False),
    ("The order has no errors.", False), ("status: delivered", False), ("[1, 2, 3]", False),
])
def test_tool_failure_heuristics(content: str, failed: bool) -> None:
    assert tool_failure([{"role": "user", "content": "Error: this is the user, not a tool"},
                         {"role": "tool", "tool_call_id": "1", "content": content}]) is failed
