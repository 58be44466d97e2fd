"""Swap: serving each task's turns in its rollout mode, and moving traffic safely.

    turn.py          one request on its way through the gateway
    router.py        which task a request belongs to, and its route (upstream, mode, candidate)
    modes.py         record / shadow / canary / swapped, fallback both ways
    relay.py         the LLM's side: forward, relay (streams as they come), classify answers
    candidate.py     opening and serving candidates (local or remote), batching.py beside it
    enforcer.py      the contract every candidate answer must meet
    confidence.py    a candidate answer's confidence; calibrate.py finds the threshold
    breaker.py       circuit breakers; live_gate.py the live gate that rolls a canary back
    rollout.py       the stored rollout state and its history; live_rollout.py keeps a
                     gateway's view of it fresh
    canary.py        the sticky canary share; figures.py the live figures
    replay.py        `fledgling replay`: re-run a recorded call and compare
"""
