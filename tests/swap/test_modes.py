"""Each routing mode sends traffic where it should; canaries are sticky; rollout changes apply
at run time; shadow answers are recorded and compared."""

from __future__ import annotations

import hashlib
from collections import Counter

from fledgling.swap import rollout
from tests.swap.conftest import TASK, Programmable, wait_for

N = 40


def _share_bucket(session: str) -> float:
    """The canary's documented rule, computed independently: sha256 of 'session:<id>'."""
    digest = hashlib.sha256(f"session:{session}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def test_each_mode_routes_as_specified(make_swap):
    sw = make_swap()
    client = sw.client()
    served: dict[str, Counter[str]] = {}
    for mode, percent in (("record", 0), ("shadow", 0), ("canary", 30), ("swapped", 0)):
        if mode != "record":
            sw.set_mode(mode, percent)
        llm_before, cand_before = sum(sw.llm.seen.values()), sum(sw.candidate.seen.values())
        counts: Counter[str] = Counter()
        for i in range(N):
            answer, headers = sw.ask(i, session=f"{mode}-{i}", client=client)
            assert answer.choices[0].message.tool_calls[0].function.name == "lookup_order"
            counts[headers.get("x-fledgling-served-by", "llm")] += 1
        served[mode] = counts
        wait_for(lambda mode=mode: sum(1 for c in sw.calls() if c.metadata.get("route", {}).get("mode") == mode)
                 == N if mode != "record" else True)
        llm_calls = sum(sw.llm.seen.values()) - llm_before
        cand_calls = sum(sw.candidate.seen.values()) - cand_before
        expected_canary = sum(_share_bucket(f"{mode}-{i}") < percent for i in range(N))
        if mode == "record":
            assert (counts["llm"], llm_calls, cand_calls) == (N, N, 0)
        elif mode == "shadow":
            assert (counts["llm"], llm_calls, cand_calls) == (N, N, N)
        elif mode == "canary":
            in_canary = expected_canary
            assert 0 < expected_canary < N
            assert counts["candidate"] == expected_canary
            assert llm_calls == N - expected_canary
            assert cand_calls == N  # the LLM's share runs the candidate in shadow
        else:
            assert (counts["candidate"], llm_calls, cand_calls) == (N, 0, N)
    calls = sw.calls()
    assert len(calls) == 4 * N
    shadowed = [c for c in calls if c.metadata.get("route", {}).get("mode") == "shadow"]
    assert len(shadowed) == N
    for c in shadowed:  # both answers stored and compared
        assert c.response.tool_calls[0].name == "lookup_order"
        assert c.metadata["shadow"]["response"]["tool_calls"][0]["function"]["name"] == "lookup_order"
        assert c.metadata["shadow"]["agree"] is True
        assert c.metadata["shadow"]["seed"] == 0 and c.metadata["shadow"]["decoding"]["temperature"] == 0
    swapped = [c for c in calls if c.metadata.get("route", {}).get("mode") == "swapped"]
    assert {c.model for c in swapped} == {"cand"} and {c.provider for c in swapped} == {"fledgling"}
    # the candidate decoded greedily with the fixed seed, whatever the agent asked
    assert {(r.get("temperature"), r.get("seed")) for r in sw.candidate.requests} == {(0, 0)}
    figures = sw.figures()
    # record-mode calls never enter the swap path; shadow + canary's LLM share are the LLM's
    assert figures["served_by"] == {"llm": N + N - in_canary, "candidate": in_canary + N}
    assert figures["agreement"] == 1.0


def test_canary_is_sticky_per_session_and_per_conversation(make_swap):
    sw = make_swap()
    sw.set_mode("canary", 50)
    client = sw.client()
    by_session = {}
    for s in range(30):
        seen = {sw.ask(100 + s * 10 + turn, session=f"sess-{s}", client=client)[1]
                .get("x-fledgling-served-by") for turn in range(4)}
        assert len(seen) == 1, f"session sess-{s} was split across {seen}"
        by_session[s] = seen.pop()
    assert set(by_session.values()) == {"llm", "candidate"}
    # without a session id, the conversation's start decides: the same request, same model
    repeat = {sw.ask(7, client=client)[1].get("x-fledgling-served-by") for _ in range(6)}
    assert len(repeat) == 1


def test_a_change_made_elsewhere_is_picked_up_without_restart(make_swap):
    sw = make_swap()
    assert sw.ask(1)[1].get("x-fledgling-served-by") is None  # record: the plain capture path
    rollout.set_mode(sw.store, sw.settings, TASK, "swapped", actor="test")  # as `fledgling rollout set` does
    wait_for(lambda: sw.ask(2)[1].get("x-fledgling-served-by") == "candidate", timeout=5)


def test_streaming_clients_get_a_stream_from_the_candidate(make_swap):
    sw = make_swap()
    sw.set_mode("swapped")
    stream, headers = sw.ask(3, stream=True)
    assert headers.get("x-fledgling-served-by") == "candidate"
    args = "".join(chunk.choices[0].delta.tool_calls[0].function.arguments or ""
                   for chunk in stream if chunk.choices and chunk.choices[0].delta.tool_calls)
    assert args == '{"order_id":"A0003"}'




def test_a_streaming_client_gets_the_llm_stream_when_the_candidate_fails(make_swap):
    sw = make_swap(candidate=Programmable("slm", lambda r: "invalid"), gate={"enabled": False})
    sw.set_mode("swapped")
    stream, headers = sw.ask(4, stream=True)
    assert headers.get("x-fledgling-served-by") == "llm"
    assert headers.get("content-type", "").startswith("text/event-stream")
    chunks = list(stream)
    pieces = [c.choices[0].delta.tool_calls[0].function.arguments for c in chunks
              if c.choices and c.choices[0].delta.tool_calls]
    assert "".join(pieces) == '{"order_id":"A0004"}'
    (call,) = sw.calls()
    # relayed as the LLM sent it (its chunk ids), not rebuilt by the gateway from a whole answer
    assert {c.id for c in chunks} != {"chatcmpl-" + call.id.removeprefix("call_")}
    assert len({c.id for c in chunks}) == 1 and sw.llm.requests[-1].get("stream") is True
    assert (call.metadata["route"]["served_by"], call.metadata["route"]["fallback"]) == ("llm", "contract")
    assert call.response.tool_calls[0].arguments == '{"order_id":"A0004"}' and call.metadata["stream"] is True
