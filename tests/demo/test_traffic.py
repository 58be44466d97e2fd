"""The demo generator: deterministic, realistic, with a measured error rate and detectable mistakes."""

from __future__ import annotations

import math
from collections import Counter
from functools import cache

import orjson
import pytest

from fledgling.calls import Call, Response
from fledgling.contracts import infer_contract, validate, validate_call
from fledgling.demo import TASKS, generate_calls, pricing, support, triage
from fledgling.demo.traffic import SPAN, end_time


@cache
def traffic(seed: int, n: int) -> tuple[Call, ...]:
    return tuple(generate_calls(seed, n))


def test_same_seed_same_calls_and_different_seed_different_calls() -> None:
    a = list(generate_calls(11, 400))
    assert a == list(generate_calls(11, 400))
    b = list(generate_calls(12, 400))
    assert {c.id for c in a}.isdisjoint({c.id for c in b})
    assert [c.request.messages for c in a] != [c.request.messages for c in b]


def test_exactly_n_calls_for_both_tasks_all_marked_synthetic() -> None:
    calls = traffic(0, 3000)
    assert len(calls) == 3000 and len({c.id for c in calls}) == 3000
    shares = Counter(c.task for c in calls)
    assert set(shares) == set(TASKS)
    assert 0.5 < shares[support.TASK] / 3000 < 0.8
    assert all(c.metadata["synthetic"] is True and c.source == "demo" for c in calls)
    assert all(c.model == pricing.MODEL for c in calls)


def test_created_at_spans_fourteen_days_ending_at_a_fixed_time() -> None:
    calls = traffic(0, 3000)
    end = end_time(0)
    times = [c.created_at for c in calls]
    assert end - SPAN <= min(times) and max(times) <= end + SPAN / 100
    assert max(times) - min(times) > SPAN * 0.9
    assert end_time(0) == end_time(0) and end_time(1) != end_time(0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_error_rate_is_between_three_and_five_percent(seed: int) -> None:
    calls = traffic(seed, 4000)
    rate = sum(c.metadata["llm_error"] is not None for c in calls) / len(calls)
    assert 0.03 <= rate <= 0.05, rate


def test_every_tool_parallel_calls_and_no_call_turns_are_present() -> None:
    calls = [c for c in traffic(0, 3000) if c.task == support.TASK]
    truths = [c.metadata["ground_truth"] for c in calls]
    used = Counter(tc["function"]["name"] for t in truths for tc in t.get("tool_calls") or [])
    assert set(used) == set(support.TOOL_NAMES)
    assert len(support.TOOL_NAMES) >= 6
    assert sum(len(t.get("tool_calls") or []) > 1 for t in truths) >= 20
    no_call = Counter(c.metadata["intent"] for c, t in zip(calls, truths, strict=True) if not t.get("tool_calls")
                      and c.request.messages[-1]["role"] == "user")
    assert {"greeting", "thanks", "policy_question", "ask_order_id"} <= set(no_call)


def test_sessions_are_multi_turn_with_tool_results_some_failing() -> None:
    calls = [c for c in traffic(0, 3000) if c.task == support.TASK]
    by_session = Counter(c.session_id for c in calls)
    assert max(by_session.values()) >= 6
    tool_msgs = [m for c in calls for m in c.request.messages if m["role"] == "tool"]
    assert tool_msgs
    failures = [m for m in tool_msgs if orjson.loads(m["content"]).get("ok") is False]
    assert 0 < len(failures) < len(tool_msgs) / 3
    assert any(c.metadata.get("tool_failure") for c in calls)
    for c in calls:  # every tool result answers a tool call made earlier in the same request
        asked = {tc["id"] for m in c.request.messages for tc in m.get("tool_calls") or []}
        assert {m["tool_call_id"] for m in c.request.messages if m["role"] == "tool"} <= asked
    traces_per_session = {c.session_id: set() for c in calls}
    for c in calls:
        traces_per_session[c.session_id].add(c.trace_id)
    assert max(len(t) for t in traces_per_session.values()) >= 3


def test_phrasing_varies() -> None:
    calls = [c for c in traffic(0, 3000) if c.task == support.TASK and c.metadata["intent"] == "order_status"
             and c.request.messages[-1]["role"] == "user"]
    texts = [c.request.messages[-1]["content"] for c in calls]
    assert len(set(texts)) == len(texts)
    assert any(t != t.lower() for t in texts) and any(t == t.lower() for t in texts)
    gt_ids = [orjson.loads(c.metadata["ground_truth"]["tool_calls"][0]["function"]["arguments"])["order_id"]
              for c in calls]
    assert all(i.startswith("ORD-") for i in gt_ids)
    assert sum(i not in t for i, t in zip(gt_ids, texts, strict=True)) > len(texts) / 4  # typed differently by the user


@pytest.mark.parametrize("task", TASKS)
def test_ground_truth_is_always_valid_against_the_inferred_contract(task: str) -> None:
    calls = [c for c in traffic(0, 3000) if c.task == task]
    contract = infer_contract(calls, task)
    assert contract.kind == ("toolcall" if task == support.TASK else "structured")
    for c in calls:
        truth = Response.from_message(c.metadata["ground_truth"])
        assert validate(truth, contract, tool_choice=c.request.tool_choice) == [], c.id


def test_ground_truth_copies_only_what_the_conversation_says() -> None:
    """Every address, email and order id in a reference answer is in the conversation before it
    (an agent cannot know an apartment the customer never wrote)."""
    from fledgling.curate.grounding import Haystack, field_values, looked_at

    copied = ("update_shipping_address.address.", "create_support_ticket.customer.email", ".order_id")
    checked = missing = 0
    for c in traffic(0, 3000):
        if c.task != support.TASK:
            continue
        hay = Haystack.of(c.request.messages)
        for name, value in field_values(c.metadata["ground_truth"]):
            if any(k in name for k in copied) and not name.endswith(".country") and looked_at(value):
                checked += 1
                missing += not hay.found(value)
    assert checked > 500 and missing == 0, f"{missing} of {checked} copied values are not in their conversation"


DETECTABLE = {"invalid_json": "invalid_json", "missing_argument": "missing_required", "wrong_type": "schema",
              "truncated": "truncated", "missing_field": "missing_required", "invalid_enum": "schema",
              "not_json": "not_json"}


@pytest.mark.parametrize("task", TASKS)
def test_planted_contract_errors_are_detected_and_correct_answers_pass(task: str) -> None:
    calls = [c for c in traffic(1, 4000) if c.task == task]
    contract = infer_contract(calls, task)
    seen = Counter()
    for c in calls:
        kind = c.metadata["llm_error"]
        codes = {v.code for v in validate_call(c, contract)}
        if kind in DETECTABLE:
            assert DETECTABLE[kind] in codes, (kind, codes, c.id)
            seen[kind] += 1
        elif kind is None:
            assert codes == set()
            assert c.response.message() == {"content": None, **c.metadata["ground_truth"]}
    assert len(seen) >= 3


def test_api_errors_have_no_answer_and_are_retried_with_the_same_request() -> None:
    calls = traffic(0, 4000)
    errors = [i for i, c in enumerate(calls[:-1]) if c.metadata["llm_error"] == "api_error"]
    assert errors
    for i in errors:
        c, retry = calls[i], calls[i + 1]
        assert c.status == "error" and c.response is None and c.error
        assert c.usage.output_tokens == 0
        assert retry.request.messages == c.request.messages and retry.created_at > c.created_at


def test_tokens_cost_and_latency_are_realistic() -> None:
    in_price, out_price = pricing.PRICES[pricing.MODEL]
    ok = [c for c in traffic(0, 2000) if c.status == "ok"]
    for c in ok:
        chars = sum(len(m.get("content") or "") for m in c.request.messages)
        assert c.usage.input_tokens >= chars / 4
        assert c.usage.output_tokens >= 1
        assert c.cost_usd == pytest.approx((c.usage.input_tokens * in_price + c.usage.output_tokens * out_price) / 1e6)
    latencies = sorted(c.latency_ms for c in ok)
    median = latencies[len(latencies) // 2]
    assert 300 < median < 3000
    assert latencies[-1] / latencies[0] > 3
    logs = [math.log(x) for x in latencies]
    mean = sum(logs) / len(logs)
    assert sum((x - mean) ** 2 for x in logs) / len(logs) > 0.02  # spread, not a constant


def test_some_feedback_mostly_negative_on_wrong_answers_with_corrections() -> None:
    calls = traffic(0, 4000)
    rated = [c for c in calls if c.feedback is not None]
    assert 0.01 < len(rated) / len(calls) < 0.08
    negative = [c for c in rated if c.feedback.negative]
    assert negative and any(not c.feedback.negative for c in rated)
    corrected = [c for c in negative if c.feedback.corrected is not None]
    assert corrected
    for c in corrected:
        assert c.feedback.corrected.message() == {"content": None, **c.metadata["ground_truth"]}


def test_triage_requests_are_strict_json_schema_with_all_field_types() -> None:
    calls = [c for c in traffic(0, 1000) if c.task == triage.TASK]
    rf = calls[0].request.response_format
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    props = rf["json_schema"]["schema"]["properties"]
    assert "enum" in props["category"] and "enum" in props["priority"]
    assert props["customer"]["type"] == "object" and props["tags"]["type"] == "array"
    assert props["needs_human"]["type"] == "boolean" and props["summary"]["type"] == "string"
    truths = [orjson.loads(c.metadata["ground_truth"]["content"]) for c in calls]
    assert {t["category"] for t in truths} == set(triage.CATEGORIES)
    assert {t["priority"] for t in truths} == set(triage.PRIORITIES)
    assert {t["needs_human"] for t in truths} == {True, False}
    assert any(t["customer"]["account_id"] is None for t in truths)
