"""Schemathesis against the served OpenAPI schema: generated inputs to every operation, with the
dashboard's token, never get a 500. The autopilot's switch is left to tests/ui/test_api.py: each
generated task name would start an autopilot worker. Job starts are fuzzed (a generated kind is
almost never a real one); any job one started is cancelled at the end."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from fledgling.config import Settings
from fledgling.store import Store
from fledgling.ui import create_app
from tests.conftest import _fresh_pg_database
from tests.ui.conftest import TOKEN, Served
from tests.ui.data import build

BEARER = {"Authorization": f"Bearer {TOKEN}"}
SPAWNING = {("POST", "/autopilot/{task}")}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("api-schema")
    urls = iter([f"sqlite:///{workdir}/fledgling.db"]) if request.param == "sqlite" else _fresh_pg_database()
    store = Store(next(urls))
    build(store, workdir, n=120)
    s = Served(create_app(Settings(), store, token=TOKEN, jobs_dir=workdir / "jobs"))
    yield s
    s.stop()
    store.close()
    next(urls, None)  # drops the PostgreSQL database


def test_no_generated_input_gets_a_server_error(served: Served) -> None:
    spec = httpx.get(served.url + "/api/openapi.json", headers=BEARER).raise_for_status().json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [op.ok() for op in schema.get_all_operations()]
    fuzzed = [op for op in operations if (op.method.upper(), op.path) not in SPAWNING]
    assert len(fuzzed) == len(operations) - len(SPAWNING) >= 20
    failures: list[str] = []
    for op in fuzzed:
        _fuzz(op, served.url + "/api", failures)
    started = httpx.get(served.url + "/api/jobs", params={"active": True, "limit": 200}, headers=BEARER).json()
    for job in started:
        httpx.post(served.url + f"/api/jobs/{job['id']}/cancel", headers=BEARER)
    assert failures == [], "\n".join(failures)


def _fuzz(op: schemathesis.APIOperation, base_url: str, failures: list[str]) -> None:
    @settings(max_examples=30, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(op.as_strategy())
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, headers=BEARER)
        if response.status_code >= 500:
            failures.append(f"{op.method.upper()} {op.path}: {response.status_code} {response.text[:200]}")
            return
        ctype = {k.lower(): v for k, v in response.headers.items()}.get("content-type", [""])
        assert ctype[0].startswith("application/json"), (op.path, ctype)
        if response.status_code >= 400:
            assert isinstance(response.json().get("error"), str), (op.path, response.text)

    check()
