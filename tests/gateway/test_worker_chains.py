"""`fledgling gateway --workers 2`: a Responses request chained by `previous_response_id` keeps
its conversation's session when it lands on another worker than the link before it (that
worker never saw the response id; it finds it in the store)."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from fledgling.store import Store
from tests.standin_apis import RunningStandIn

from .conftest import write_config
from .supervised import _up, _wait_for, kill_tree, start_gateway


def test_a_chain_crossing_workers_keeps_its_session(store_url: str, tmp_path: Path) -> None:
    stand_in = RunningStandIn()
    with stand_in:
        config = write_config(tmp_path / "fledgling.toml", stand_in.url + "/v1", store_url, tmp_path / "spool")
        sup, url = start_gateway(config, tmp_path)
        chains: list[tuple[str, str]] = []  # (first call id, second call id)
        try:
            _wait_for(lambda: _up(url), timeout=60)
            with Store(store_url, migrate=False) as store, \
                    httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as client:
                def post(**body: object) -> tuple[str, str]:
                    r = client.post(url + "/v1/responses", json={"model": "gpt-test", **body})
                    assert r.status_code == 200, r.text
                    return r.headers["x-fledgling-call-id"], r.json()["id"]

                def crossed() -> int:
                    calls = {c.id: c for c in store.iter_calls()}
                    return sum(calls[a].metadata["gateway_worker"] != calls[b].metadata["gateway_worker"]
                               for a, b in chains if a in calls and b in calls)

                while crossed() < 3:
                    assert len(chains) < 60, "no chain ever crossed workers"
                    first, response_id = post(input="What is the weather in Paris?")
                    # the second link may only look the first up once it is stored
                    _wait_for(lambda first=first: store.get_call(first) is not None, timeout=10)
                    second, _ = post(input="And in Rome?", previous_response_id=response_id)
                    _wait_for(lambda second=second: store.get_call(second) is not None, timeout=10)
                    chains.append((first, second))
                calls = {c.id: c for c in store.iter_calls()}
            sup.send_signal(signal.SIGTERM)
            _, err = sup.communicate(timeout=60)
            assert sup.returncode == 0, err.decode()[-2000:]
        finally:
            kill_tree(sup)
    for first, second in chains:
        a, b = calls[first], calls[second]
        assert a.session_id is not None and b.session_id == a.session_id, (a.metadata, b.metadata)
        assert b.metadata["wire_request"]["previous_response_id"] == a.metadata["response_id"]
    assert {calls[a].metadata["gateway_worker"] for a, _ in chains} | \
        {calls[b].metadata["gateway_worker"] for _, b in chains} == {0, 1}
