"""Repeated calls: counted in curation, learnt as rules, applied to decoded answers."""

from __future__ import annotations

from pathlib import Path

from fledgling.calls import Request, Response, ToolCall
from fledgling.curate import curate
from fledgling.curate.repeats import MIN_SEEN, RepeatCheck, keep, repeats
from fledgling.models.local import drop_repeated_calls
from fledgling.store import Store
from tests.curate.conftest import make_call, tool_call

LOOKED_UP = [{"role": "user", "content": "where is ORD-100001?"},
             {"role": "assistant", "content": None,
              "tool_calls": [tool_call("lookup_order", {"order_id": "ORD-100001"})]},
             {"role": "tool", "tool_call_id": "call_0", "content": '{"status": "shipped"}'},
             {"role": "user", "content": "and ORD-100002 and ORD-100003?"}]


def answer(*ids: str) -> dict:
    return {"role": "assistant", "tool_calls": [tool_call("lookup_order", {"order_id": i}, n)
                                                for n, i in enumerate(ids)]}


def test_repeats_counts_calls_made_twice_and_calls_made_before() -> None:
    assert repeats(LOOKED_UP, answer("ORD-100002", "ORD-100003")) == (0, 0)
    assert repeats(LOOKED_UP, answer("ORD-100002", "ORD-100002", "ORD-100003")) == (1, 0)
    assert repeats(LOOKED_UP, answer("ORD-100002", "ORD-100001")) == (0, 1)
    assert repeats(LOOKED_UP, {"role": "assistant", "content": "Sure."}) is None
    # the same arguments in another key order, or as a string, are the same call
    before = [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
        "name": "refund", "arguments": '{"order_id": "ORD-1", "amount": 5}'}}]}]
    assert repeats(before, {"tool_calls": [tool_call("refund", {"amount": 5, "order_id": "ORD-1"})]}) == (0, 1)


def test_keep_leaves_out_what_the_rules_forbid_but_never_everything() -> None:
    calls = [("lookup_order", '{"order_id": "ORD-100002"}'), ("lookup_order", '{"order_id":"ORD-100002"}'),
             ("lookup_order", '{"order_id": "ORD-100001"}'), ("lookup_order", '{"order_id": "ORD-100003"}')]
    assert keep(LOOKED_UP, calls, ["distinct", "new"]) == [0, 3]
    assert keep(LOOKED_UP, calls, ["distinct"]) == [0, 2, 3]
    assert keep(LOOKED_UP, calls, ["new"]) == [0, 1, 3]
    assert keep(LOOKED_UP, calls, []) == [0, 1, 2, 3]
    assert keep(LOOKED_UP, calls[2:3], ["distinct", "new"]) == [0]  # the only call stays


def test_a_rule_holds_only_when_the_data_keeps_it() -> None:
    check = RepeatCheck()
    for _ in range(MIN_SEEN - 1):
        check.add((0, 0))
    assert check.rules() == []  # too few answers to say
    check.add((0, 0))
    check.add(None)  # an answer without calls is not counted
    assert check.rules() == ["distinct", "new"]
    for _ in range(2):
        check.add((0, 1))  # 2 of 52 answers repeat an earlier call: 96% < 99%
    assert check.rules() == ["distinct"]
    assert check.report() == {"answers_with_calls": 52, "with_a_call_twice": 0, "with_a_call_made_before": 2,
                              "rules": ["distinct"]}


def test_curation_reports_the_call_rules_of_its_labels(sqlite_store: Store, tmp_path: Path) -> None:
    calls = [make_call(i, metadata={"llm_error": None}) for i in range(80)]
    twice = Response(tool_calls=[tool_call("lookup_order", {"order_id": "ORD-555555"}, n) for n in range(2)],
                     finish_reason="tool_calls")
    calls.append(make_call(200, response=twice, metadata={"llm_error": None}))
    sqlite_store.insert_calls(calls)
    ds = curate(sqlite_store, "support-agent", out_dir=tmp_path, near_dup_threshold=1.0,
                label_checks=("grounding",))
    found = ds.report["label_checks"]["call_rules"]
    assert (found["with_a_call_twice"], found["with_a_call_made_before"]) == (1, 0)
    assert found["answers_with_calls"] == sum(1 for c in calls if c.response and c.response.tool_calls)
    assert found["rules"] == ["new"]  # 1 answer in 81 makes a call twice: 98.8% keep "distinct", under 99%


def test_a_decoded_answer_loses_its_repeated_calls() -> None:
    request = Request(messages=LOOKED_UP)
    got = Response(tool_calls=[ToolCall(id=f"call_{i}", name="lookup_order", arguments=f'{{"order_id":"{oid}"}}')
                               for i, oid in enumerate(("ORD-100002", "ORD-100003", "ORD-100002", "ORD-100001"))],
                   finish_reason="tool_calls")
    assert drop_repeated_calls(got, request, ("distinct", "new")) == 2
    assert [c.arguments for c in got.tool_calls] == ['{"order_id":"ORD-100002"}', '{"order_id":"ORD-100003"}']
    alone = Response(tool_calls=[ToolCall(id="c", name="lookup_order", arguments='{"order_id":"ORD-100001"}')])
    assert drop_repeated_calls(alone, request, ("distinct", "new")) == 0 and len(alone.tool_calls) == 1
    assert drop_repeated_calls(got, request, ()) == 0
