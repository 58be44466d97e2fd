"""The openai backend against a real HTTP server on loopback speaking chat completions."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse
from starlette.routing import Route

from fledgling.calls import Request
from fledgling.models import open_backend, resolve_model
from fledgling.models.openai_compatible import OpenAICompatibleBackend


class Upstream:
    """What the server saw, and how it should misbehave."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_first: dict[str, int] = {}
        self.delay_s = 0.05

    async def chat(self, request: HttpRequest) -> JSONResponse:
        body = await request.json()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        key = body["messages"][-1]["content"]
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s if key != "slow" else 2.0)
        finally:
            self.in_flight -= 1
        if self.fail_first.get(key, 0) > 0:
            self.fail_first[key] -= 1
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        if key == "bad":
            return JSONResponse({"error": {"message": "invalid"}}, status_code=400)
        if body.get("tools"):
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": body["tools"][0]["function"]["name"], "arguments": '{"q": "x"}'}}]}
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": f"echo {key}"}
            finish = "stop"
        return JSONResponse({"id": "x", "object": "chat.completion", "model": body.get("model"),
                             "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                             "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}})


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, str]]:
    state = Upstream()
    app = Starlette(routes=[Route("/v1/chat/completions", state.chat, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield state, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(5)


def _req(text: str, **kw) -> Request:
    return Request(messages=[{"role": "user", "content": text}], **kw)


def _run(backend, reqs):
    async def go():
        try:
            return await backend.generate(reqs)
        finally:
            await backend.aclose()
    return asyncio.run(go())


def test_answers_tokens_and_model_override(upstream):
    state, url = upstream
    backend = open_backend(resolve_model(f"openai:{url}#small-model"))
    gens = _run(backend, [_req("a"), _req("b")])
    assert [g.response.content for g in gens] == ["echo a", "echo b"]
    assert all(g.input_tokens == 11 and g.output_tokens == 3 and g.latency_ms >= 50 for g in gens)
    assert {b["model"] for b in state.bodies} == {"small-model"}


def test_tools_and_response_format_pass_through(upstream):
    state, url = upstream
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    rf = {"type": "json_schema", "json_schema": {"name": "t", "schema": {"type": "object"}}}
    gens = _run(OpenAICompatibleBackend("m", url),
                [_req("t", tools=tools, tool_choice="auto", seed=7), _req("j", response_format=rf)])
    sent = {b["messages"][-1]["content"]: b for b in state.bodies}  # the two run concurrently
    assert sent["t"]["tools"] == tools and sent["t"]["tool_choice"] == "auto"
    assert sent["t"]["seed"] == 7
    assert sent["j"]["response_format"] == rf
    assert gens[0].response.tool_calls[0].name == "lookup"
    assert json.loads(gens[0].response.tool_calls[0].arguments) == {"q": "x"}


def test_concurrency_is_limited(upstream):
    state, url = upstream
    _run(OpenAICompatibleBackend("m", url, concurrency=3), [_req(str(i)) for i in range(12)])
    assert state.max_in_flight == 3


def test_retries_with_backoff_then_succeeds(upstream):
    state, url = upstream
    state.fail_first = {"flaky": 2}
    started = time.perf_counter()
    gens = _run(OpenAICompatibleBackend("m", url, retries=3, backoff_s=0.1), [_req("flaky")])
    assert gens[0].response.content == "echo flaky"
    assert len(state.bodies) == 3
    assert time.perf_counter() - started >= 0.1 + 0.2


def test_exhausted_retries_timeouts_and_client_errors_become_item_errors(upstream):
    state, url = upstream
    state.fail_first = {"down": 10}
    gens = _run(OpenAICompatibleBackend("m", url, retries=1, backoff_s=0.01, timeout_s=0.5),
                [_req("down"), _req("slow"), _req("bad"), _req("fine")])
    assert gens[0].response is None and "503" in gens[0].error and "2 attempts" in gens[0].error
    assert gens[1].response is None and "timeout" in gens[1].error
    assert gens[2].response is None and gens[2].error.startswith("HTTP 400")
    assert gens[3].response.content == "echo fine"


def test_connection_refused_is_an_item_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    gens = _run(OpenAICompatibleBackend("m", f"http://127.0.0.1:{port}/v1", retries=1, backoff_s=0.01),
                [_req("a")])
    assert gens[0].response is None and "connection" in gens[0].error


def test_api_key_from_the_environment(upstream, monkeypatch):
    from fledgling.config import parse_settings

    state, url = upstream
    monkeypatch.setenv("UPSTREAM_KEY", "sk-test-123")
    settings = parse_settings({"models": {"ref": {"kind": "openai", "base_url": url, "api_key_env": "UPSTREAM_KEY"}}})
    _run(open_backend(resolve_model("ref", settings)), [_req("a")])
    assert state.headers[0]["authorization"] == "Bearer sk-test-123"
