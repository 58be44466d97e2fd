"""`fledgling.instrument(client)`: same results for the caller, every call recorded."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

import fledgling
from fledgling.capture.recording.recorder import Recorder
from fledgling.store import CallFilter, Store

from .conftest import SYSTEM, TOOLS

MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is A1234?"}]


@pytest.fixture
def recorder(sqlite_store: Store, tmp_path: Path) -> Iterator[Recorder]:
    rec = Recorder(sqlite_store, tmp_path / "spool", fsync_ms=1).start()
    yield rec
    rec.close()


def test_sync_calls_unchanged_and_recorded(upstream, recorder: Recorder, sqlite_store: Store) -> None:
    plain = openai.OpenAI(base_url=upstream[1], api_key="sk-test", max_retries=0)
    client = fledgling.instrument(openai.OpenAI(base_url=upstream[1], api_key="sk-test", max_retries=0),
                                  task="support-agent", recorder=recorder, session_id="s-1")
    assert fledgling.instrument(client, recorder=recorder) is client  # idempotent

    got = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=TOOLS)
    assert got.model_dump() == plain.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, tools=TOOLS).model_dump()

    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": True})
    assert isinstance(stream, openai.Stream)
    chunks = [c.model_dump() for c in stream]
    assert chunks == [c.model_dump() for c in plain.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True})]

    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="fault:http500", messages=MESSAGES)

    assert recorder.drain(10)
    calls = sqlite_store.query_calls(CallFilter(task="support-agent"), newest_first=False).items
    assert [(c.source, c.status, c.session_id) for c in calls] == [("sdk", "ok", "s-1")] * 2 + [
        ("sdk", "error", "s-1")]
    tool_call, streamed, failed = calls
    assert [t.name for t in tool_call.response.tool_calls] == ["lookup_order"]
    assert tool_call.usage.input_tokens == got.usage.prompt_tokens
    assert streamed.response.content == "You said: Where is A1234?. Anything else I can do?"
    assert streamed.usage.output_tokens == chunks[-1]["usage"]["completion_tokens"]
    assert failed.error == "upstream 500: the model is overloaded"


def test_async_client_streaming_and_not(upstream, recorder: Recorder, sqlite_store: Store) -> None:
    async def run() -> tuple[str, str]:
        client = fledgling.instrument(
            openai.AsyncOpenAI(base_url=upstream[1], api_key="sk-test", max_retries=0),
            recorder=recorder)
        done = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                                      tools=TOOLS, stream=True)
        assert isinstance(stream, openai.AsyncStream)
        args = "".join([tc.function.arguments or "" async for c in stream
                        for tc in (c.choices[0].delta.tool_calls or []) if c.choices])
        await client.close()
        return done.choices[0].message.content, args

    content, args = asyncio.run(run())
    assert args == '{"order_id": "A1234"}'
    assert recorder.drain(10)
    calls = sqlite_store.query_calls(newest_first=False).items
    from fledgling.calls import default_task

    assert [c.task for c in calls] == [default_task(MESSAGES)] * 2
    assert calls[0].response.content == content
    assert [(t.name, t.arguments) for t in calls[1].response.tool_calls] == [("lookup_order", args)]


def test_import_fledgling_stays_light() -> None:
    code = ("import sys, fledgling; heavy = [m for m in ('openai', 'aiohttp', 'fledgling.gateway') "
            "if m in sys.modules]; print(heavy); assert callable(fledgling.instrument)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
