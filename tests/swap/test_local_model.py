"""A real in-process model as the candidate: a tiny random Llama, loaded by the gateway, decoding
under the contract's grammar, batched across concurrent requests by the queue; replay reproduces
the answers decoded in a batch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from fledgling.calls import Request, Response
from fledgling.contracts import validate
from fledgling.swap.enforcer import request_contract
from fledgling.swap.replay import rerun_call
from tests.models.tiny import build_tiny_model
from tests.swap.conftest import SYSTEM, TASK, wait_for

N = 8
# A declared id format keeps a random model's constrained output short and valid.
TOOLS = [{"type": "function", "function": {
    "name": "lookup_order", "description": "Find an order",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^A[0-9]{4}$"}},
                   "required": ["order_id"], "additionalProperties": False}}}]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def test_local_candidate_is_batched_constrained_and_replays(make_swap, tiny_dir):
    sw = make_swap(cand={"kind": "hf", "path": str(tiny_dir)}, budget_ms=30_000, max_tokens=400,
                   batch_size=8, batch_wait_ms=50, gate={"enabled": False})
    sw.set_mode("swapped")  # returns once the model is loaded
    client = sw.client()
    with ThreadPoolExecutor(N) as pool:
        results = list(pool.map(lambda i: sw.ask(i, client=client, tools=TOOLS), range(N)))
    contract = request_contract(TASK, Request(messages=[{"role": "system", "content": SYSTEM}], tools=TOOLS))
    served = [h["x-fledgling-served-by"] for _, h in results]
    for answer, _ in results:  # whoever answered, the client got a valid answer
        msg = answer.choices[0].message
        assert not validate(Response.from_message(msg.model_dump(), answer.choices[0].finish_reason), contract)
    assert served == ["candidate"] * N
    queue = sw.app.swap.candidates._ready["cand"].queue
    assert queue.items >= N and queue.batches < queue.items  # requests shared forward passes
    wait_for(lambda: len(sw.calls()) == N)
    by_cand = [c for c in sw.calls() if c.metadata["route"]["served_by"] == "candidate"]
    fp = by_cand[0].metadata["candidate"]
    assert fp["kind"] == "hf" and fp["decoding"]["constrained"] is True and fp["seed"] == 0
    # confidence: the mean log-probability of the model's free choices (the order id digits)
    assert all(c.metadata["candidate"]["confidence"] < 0 for c in by_cand)
    batched = [c for c in by_cand if c.metadata["candidate"]["batch"]["size"] > 1]
    assert batched, [c.metadata["candidate"]["batch"] for c in by_cand]
    # Replay decodes each call's recorded batch again (same peers, order, padding and threads)
    # and must reproduce every recorded answer exactly.
    for call in by_cand:
        r = rerun_call(sw.store, sw.settings, call.id)
        size = call.metadata["candidate"]["batch"]["size"]
        assert (r.error, r.batch_size, r.batch_replayed) == (None, size, size > 1), r
        assert r.identical, (call.id, call.metadata["candidate"]["batch"], r.recorded.message(), r.now.message())
