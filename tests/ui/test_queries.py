"""The dashboard's own queries, on SQLite and PostgreSQL: keyset pages walk every matching call
once, in order, both ways; counts are exact or honestly capped."""

from __future__ import annotations

from itertools import islice

from fledgling.demo import generate_calls
from fledgling.store import CallFilter
from fledgling.ui import queries


def _walk(store, flt, limit):
    seen, cursor = [], None
    while True:
        page = queries.trace_page(store, flt, before=cursor, limit=limit)
        seen.extend(page.rows)
        if page.older is None:
            return seen, page
        cursor = page.older


def test_keyset_pages_cover_every_call_once_in_order(store) -> None:
    calls = list(islice(generate_calls(seed=3, n=230), 230))
    store.insert_calls(calls)
    for flt in (CallFilter(), CallFilter(task="ticket-triage"), CallFilter(status="ok", source="demo")):
        rows, _ = _walk(store, flt, limit=17)
        expected = sorted((c for c in calls if (flt.task is None or c.task == flt.task)
                           and (flt.status is None or c.status == flt.status)),
                          key=lambda c: (c.created_at, c.id), reverse=True)
        assert [r.id for r in rows] == [c.id for c in expected]
        first = queries.trace_page(store, flt, limit=17)
        assert first.total == len(expected) and first.newer is None
        second = queries.trace_page(store, flt, before=first.older, limit=17)
        back = queries.trace_page(store, flt, after=second.newer, limit=17)
        assert [r.id for r in back.rows] == [r.id for r in first.rows]
        assert back.newer is None


def test_counts_are_capped_only_when_exact_would_scan(store, monkeypatch) -> None:
    store.insert_calls(islice(generate_calls(seed=4, n=60), 60))
    monkeypatch.setattr(queries, "COUNT_CAP", 10)
    ok = queries.trace_page(store, CallFilter(status="ok"), limit=5)
    assert ok.total == 11 and ok.total_capped
    everything = queries.trace_page(store, CallFilter(), limit=5)
    assert everything.total == 60 and not everything.total_capped


def test_bad_cursor_is_the_first_page(store) -> None:
    store.insert_calls(islice(generate_calls(seed=5, n=20), 20))
    page = queries.trace_page(store, CallFilter(), before="not-a-cursor", limit=5)
    assert page.rows[0].id == queries.trace_page(store, CallFilter(), limit=5).rows[0].id


def test_task_traffic_sums(store) -> None:
    calls = list(islice(generate_calls(seed=6, n=80), 80))
    store.insert_calls(calls)
    traffic = {t.task: t for t in queries.task_traffic(store)}
    for task in {c.task for c in calls}:
        mine = [c for c in calls if c.task == task]
        assert traffic[task].calls == len(mine)
        assert traffic[task].errors == sum(c.status == "error" for c in mine)
        assert abs(traffic[task].cost_usd - sum(c.cost_usd or 0 for c in mine)) < 1e-9


def test_fallback_rate_counts_candidate_routed_calls_only(store) -> None:
    from datetime import UTC, datetime

    from fledgling.calls import Call, Request, Response

    def routed(i: int, route: dict | None, task: str = "support-agent") -> Call:
        return Call(id=f"fb-{task}-{i}", task=task, source="gateway", created_at=datetime.now(UTC),
                    request=Request(messages=[{"role": "user", "content": "hi"}]),
                    response=Response(content="ok"), metadata={"route": route} if route else {})

    calls = ([routed(i, {"mode": "swapped", "served_by": "candidate", "fallback": None}) for i in range(6)]
             + [routed(10 + i, {"mode": "swapped", "served_by": "llm", "fallback": "contract"}) for i in range(2)]
             + [routed(20 + i, {"mode": "canary", "canary": True, "served_by": "llm", "fallback": "timeout"})
                for i in range(2)]
             + [routed(30 + i, {"mode": "canary", "canary": False, "served_by": "llm", "fallback": None})
                for i in range(5)]
             + [routed(40 + i, None) for i in range(5)]
             + [routed(50, {"mode": "record", "served_by": "llm", "fallback": None}, task="ticket-triage")])
    store.insert_calls(calls)
    assert queries.fallback_rates(store) == {"support-agent": 4 / 10}
