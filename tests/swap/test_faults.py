"""Sustained load with both upstreams failing: the LLM fails 10% of requests, the candidate
another 10% (errors, timeouts, invalid output). In canary mode each covers for the other, so no
failure reaches the client, and every call is recorded with how it was served."""

from __future__ import annotations

import asyncio
from collections import Counter

from openai import AsyncOpenAI

from tests.swap.conftest import SYSTEM, TASK, TOOLS, Programmable, bucket

N = 400
CONCURRENCY = 16


def llm_behaviour(request) -> str:
    return "error" if bucket(request) < 10 else "good"


def candidate_behaviour(request) -> str:
    b = bucket(request)
    if 10 <= b < 13:
        return "error"
    if 13 <= b < 16:
        return "slow"
    if 16 <= b < 20:
        return "invalid"
    return "good"


async def _load(url: str) -> list[tuple[int, object]]:
    client = AsyncOpenAI(base_url=url + "/v1", api_key="agent", max_retries=0, timeout=20)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int):
        async with gate:
            try:
                r = await client.chat.completions.create(
                    model="gpt-4o", tools=TOOLS,
                    extra_headers={"X-Fledgling-Task": TASK, "X-Fledgling-Session": f"s{i}"},
                    messages=[{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": f"Where is my order A{i:04d}?"}])
                return i, r
            except Exception as exc:  # noqa: BLE001 - a client-visible failure is what we count
                return i, exc

    try:
        return await asyncio.gather(*(one(i) for i in range(N)))
    finally:
        await client.close()


def test_no_client_visible_failure_when_both_sides_fail_under_load(make_swap):
    sw = make_swap(llm=Programmable("stand-in-llm", llm_behaviour),
                   candidate=Programmable("slm", candidate_behaviour, slow_s=5.0),
                   budget_ms=2000, breaker_failures=50, gate={"enabled": False})
    sw.set_mode("canary", 50)
    results = asyncio.run(_load(sw.url))
    failures = [(i, r) for i, r in results if isinstance(r, Exception)]
    calls = sw.calls()
    lat = sorted(c.metadata["candidate"]["latency_ms"] for c in calls
                 if "candidate" in c.metadata and c.metadata["candidate"].get("failure") is None)
    print("cand latency p50/p95/max", lat[len(lat) // 2], lat[int(len(lat) * .95)], lat[-1])
    assert failures == [], [c.metadata for c in calls if c.status != "ok"][:3]
    for i, r in results:
        call = r.choices[0].message.tool_calls[0]
        assert (call.function.name, call.function.arguments) == ("lookup_order", f'{{"order_id":"A{i:04d}"}}')
    calls = sw.calls()
    assert len(calls) == N and len({c.id for c in calls}) == N
    assert all(c.status == "ok" for c in calls)

    served = Counter(c.metadata["route"]["served_by"] for c in calls)
    reasons = Counter(c.metadata["route"]["fallback"] for c in calls if c.metadata["route"]["fallback"])
    llm_fail = sum(1 for c in calls if bucket(c.request.model_dump()) < 10 and not c.metadata["route"]["canary"])
    cand_fail = Counter(candidate_behaviour(c.request.model_dump()) for c in calls
                        if c.metadata["route"]["canary"] and candidate_behaviour(c.request.model_dump()) != "good")
    print(f"\n{N} requests, canary 50%: served {dict(served)}; fallbacks {dict(reasons)}; "
          f"planted: LLM failures on its share {llm_fail}, candidate failures on its share {dict(cand_fail)}; "
          f"client-visible failures {len(failures)}")
    assert reasons["llm_upstream_error"] == llm_fail > 0
    assert (reasons["error"], reasons["timeout"], reasons["contract"]) == (
        cand_fail["error"], cand_fail["slow"], cand_fail["invalid"])
    assert min(cand_fail.values()) > 0
    fig = sw.figures()
    assert fig["client_errors"] == 0 and fig["fallbacks"] == dict(reasons)
