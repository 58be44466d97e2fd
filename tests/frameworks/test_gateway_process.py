"""The same agents through `fledgling gateway` itself (a subprocess reading fledgling.toml), not
the in-process server: the Responses default of the Agents SDK, and the anthropic client
streaming, recorded in the file's store."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from fledgling.store import CallFilter, Store
from tests.frameworks.conftest import ANTHROPIC_KEY_ENV, FINAL, STATUS, Matrix, normalised
from tests.frameworks.test_agents_sdk import run_agent
from tests.frameworks.test_anthropic import run_agent as run_anthropic
from tests.gateway.conftest import GatewayProcess, free_port

pytestmark = pytest.mark.frameworks


@pytest.fixture
def process(matrix: Matrix, tmp_path: Path) -> Iterator[tuple[GatewayProcess, str]]:
    db_url = f"sqlite:///{tmp_path}/process.db"
    config = tmp_path / "fledgling.toml"
    config.write_text(
        f'[store]\nurl = "{db_url}"\n\n'
        f'[models.llm]\nkind = "openai"\nbase_url = "{matrix.llm.url}/v1"\n'
        'usd_per_mtok_in = 2.5\nusd_per_mtok_out = 10.0\n\n'
        f'[models.claude]\nkind = "anthropic"\nbase_url = "{matrix.llm.url}/v1"\n'
        f'api_key_env = "{ANTHROPIC_KEY_ENV}"\nusd_per_mtok_in = 3.0\nusd_per_mtok_out = 15.0\n\n'
        '[tasks.agents]\nupstream = "llm"\nmatch = { path = "/agents/" }\n\n'
        '[tasks.claude]\nupstream = "claude"\nmatch = { path = "/claude/" }\n\n'
        f'[gateway]\nupstream = "llm"\nspool_dir = "{tmp_path / "spool"}"\n')
    gw = GatewayProcess(config, free_port(), tmp_path)
    try:
        yield gw, db_url
    finally:
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.communicate(timeout=30)


def test_agents_and_anthropic_through_the_gateway_process(matrix: Matrix, process: tuple[GatewayProcess, str]
                                                          ) -> None:
    gw, db_url = process
    matrix.begin()
    assert asyncio.run(run_agent(gw.url + "/agents/v1", "default", stream=True)) == FINAL
    client = anthropic.Anthropic(base_url=gw.url + "/claude", api_key="sk-ant-agent", max_retries=0, timeout=30)
    assert run_anthropic(client, stream=True) == FINAL
    assert gw.proc.poll() is None
    gw.proc.send_signal(signal.SIGTERM)  # a graceful stop drains the recorder into the store
    assert gw.proc.wait(timeout=30) == 0, gw.proc.stderr.read().decode()[-2000:] if gw.proc.stderr else ""
    served = matrix.llm.exchanges()
    assert [e.api for e in served] == ["responses", "responses", "messages", "messages"]
    with Store(db_url) as store:
        for task, api in (("agents", "responses"), ("claude", "messages")):
            calls = sorted(store.iter_calls(CallFilter(task=task)), key=lambda c: c.created_at)
            assert [c.metadata.get("api") for c in calls] == [api, api]
            assert calls[1].response is not None and calls[1].response.content == FINAL
            assert normalised(calls[1].request.messages)[-1] == ("tool", STATUS, ())
            usage = [(e.usage["input_tokens"], e.usage["output_tokens"]) for e in served if e.api == api]
            assert [(c.usage.input_tokens, c.usage.output_tokens) for c in calls] == usage
    assert os.environ[ANTHROPIC_KEY_ENV]  # the process read the upstream key from its environment
    assert {e.headers.get("x-api-key") for e in served if e.api == "messages"} == {os.environ[ANTHROPIC_KEY_ENV]}

