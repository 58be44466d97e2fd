"""The schema enforcer and the fallback router: an invalid, failing or slow candidate never
reaches the client; the LLM answers instead, and the reason is recorded."""

from __future__ import annotations

import time

from fledgling.calls import Request
from fledgling.contracts import validate
from fledgling.swap.enforcer import request_contract
from tests.swap.conftest import SYSTEM, TASK, TOOLS, Programmable, wait_for


def _valid(answer, i: int) -> bool:
    req = Request(messages=[{"role": "system", "content": SYSTEM},
                            {"role": "user", "content": f"Where is my order A{i:04d}?"}], tools=TOOLS)
    from fledgling.calls import Response

    resp = Response.from_message(answer.choices[0].message.model_dump(), answer.choices[0].finish_reason)
    return not validate(resp, request_contract(TASK, req))


def test_schema_invalid_candidate_output_falls_back_to_a_valid_answer(make_swap):
    flip = iter(["invalid", "badargs"] * 10)
    sw = make_swap(candidate=Programmable("slm", lambda r: next(flip)), gate={"enabled": False})
    sw.set_mode("swapped")
    for i in range(6):
        answer, headers = sw.ask(i)
        assert headers["x-fledgling-served-by"] == "llm"
        assert _valid(answer, i)
        assert answer.choices[0].message.tool_calls[0].function.name == "lookup_order"
    calls = sw.calls()
    assert [c.metadata["route"]["fallback"] for c in calls] == ["contract"] * 6
    codes = {c.metadata["candidate"]["violations"][0]["code"] for c in calls}
    assert codes == {"unknown_tool", "missing_required"}
    # the rejected answer is kept for inspection, the served one is the LLM's
    assert {c.metadata["candidate"]["response"]["tool_calls"][0]["function"]["name"] for c in calls} == {
        "lookup_ordr", "cancel_order"}
    assert {c.response.tool_calls[0].name for c in calls} == {"lookup_order"}
    assert sw.figures()["fallbacks"] == {"contract": 6}


def test_candidate_timeout_falls_back_inside_the_budget(make_swap):
    sw = make_swap(candidate=Programmable("slm", lambda r: "slow", slow_s=3.0), budget_ms=300,
                   gate={"enabled": False})
    sw.set_mode("swapped")
    client = sw.client()
    for i in range(3):
        t0 = time.perf_counter()
        answer, headers = sw.ask(i, client=client)
        elapsed = time.perf_counter() - t0
        assert headers["x-fledgling-served-by"] == "llm"
        assert _valid(answer, i)
        assert elapsed < 1.5, f"the client waited {elapsed:.2f}s; the slow candidate takes 3s"
    calls = sw.calls()
    assert [c.metadata["route"]["fallback"] for c in calls] == ["timeout"] * 3
    assert all(280 <= c.metadata["candidate"]["latency_ms"] < 1000 for c in calls)


def test_circuit_breaker_opens_and_closes(make_swap):
    behaviour = {"now": "error"}
    sw = make_swap(candidate=Programmable("slm", lambda r: behaviour["now"]), retries=0,
                   breaker_failures=3, breaker_cooldown_s=0.5, gate={"enabled": False})
    sw.set_mode("swapped")
    client = sw.client()
    for i in range(3):  # three failures open the circuit
        assert sw.ask(i, client=client)[1]["x-fledgling-served-by"] == "llm"
    tried = sw.candidate.seen["error"]
    assert tried == 3
    for i in range(3, 8):  # open: the candidate is not even called
        assert sw.ask(i, client=client)[1]["x-fledgling-served-by"] == "llm"
    assert sw.candidate.seen["error"] == tried
    assert sw.admin.get("/admin/swap").json()["circuits"]["candidate:cand"] == "open"
    behaviour["now"] = "good"
    time.sleep(0.6)  # cooldown over: half-open, one trial call goes through and succeeds
    assert sw.ask(8, client=client)[1]["x-fledgling-served-by"] == "candidate"
    assert sw.admin.get("/admin/swap").json()["circuits"]["candidate:cand"] == "closed"
    assert sw.ask(9, client=client)[1]["x-fledgling-served-by"] == "candidate"
    reasons = [c.metadata["route"]["fallback"] for c in sorted(sw.calls(), key=lambda c: c.created_at)]
    assert reasons == ["error"] * 3 + ["circuit_open"] * 5 + [None, None]


def test_failed_llm_in_canary_is_covered_by_a_valid_candidate_answer(make_swap):
    sw = make_swap(llm=Programmable("stand-in-llm", lambda r: "error"))
    sw.set_mode("canary", 1)
    answer, headers = sw.ask(5, session="llm-share")  # bucket ~ 68: the LLM's share
    assert headers["x-fledgling-served-by"] == "candidate"
    assert _valid(answer, 5)
    assert sw.llm.seen["error"] == 2  # one retry, then the fallback
    wait_for(lambda: len(sw.calls()) == 1)
    assert sw.calls()[0].metadata["route"]["fallback"] == "llm_upstream_error"
