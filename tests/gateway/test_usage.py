"""Usage never invented: a streamed chat completion whose client did not ask for usage gets its
tokens from the upstream all the same (the gateway asks, and keeps the extra chunk from the
client); an upstream that sends no usage leaves the call's tokens and cost unknown (NULL), and
`fledgling traces stats` says how many calls lack usage."""

from __future__ import annotations

import httpx
import orjson
import pytest
from openai import OpenAI
from typer.testing import CliRunner

from fledgling.gateway.server import ServerThread, build_app
from fledgling.swap.relay import UsageStrip
from tests.gateway.apis import PRICE_IN, PRICE_OUT, Setup, apis, settings_for  # noqa: F401


def chunks_of(raw: bytes) -> list[dict]:
    return [orjson.loads(line[6:]) for line in raw.splitlines()
            if line.startswith(b"data: ") and line != b"data: [DONE]"]


def test_a_stream_without_include_usage_is_recorded_with_the_upstream_usage(apis: Setup):  # noqa: F811
    body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "Say hello"}]}
    raw = httpx.post(apis.gateway_url + "/v1/chat/completions", json=body,
                     headers={"X-Fledgling-Task": "weather"}).content
    [sent] = apis.upstream.exchanges("chat")
    assert sent.body["stream_options"] == {"include_usage": True}  # the gateway asked
    got = chunks_of(raw)
    assert got and all(c["choices"] for c in got)  # no usage-only chunk reached the client
    assert all(c.get("usage") is None for c in got)
    assert raw.rstrip().endswith(b"data: [DONE]")
    [call] = apis.calls()
    assert (call.usage.input_tokens, call.usage.output_tokens) == (sent.usage["input_tokens"],
                                                                   sent.usage["output_tokens"])
    assert call.usage.input_tokens > 0 and call.metadata["usage_requested"] is True
    assert call.cost_usd == pytest.approx((sent.usage["input_tokens"] * PRICE_IN
                                           + sent.usage["output_tokens"] * PRICE_OUT) / 1e6)
    assert call.response.content == "".join(c["choices"][0]["delta"].get("content") or "" for c in got)


def test_the_real_client_streams_without_usage_as_it_asked(apis: Setup):  # noqa: F811
    oa = OpenAI(base_url=apis.gateway_url + "/v1", api_key="k", max_retries=0)
    chunks = list(oa.chat.completions.create(model="gpt-test", stream=True,
                                             messages=[{"role": "user", "content": "Say hello"}]))
    assert chunks and all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    [call] = apis.calls()
    assert call.usage.output_tokens > 0 and not call.usage.missing


def test_a_client_that_asked_for_usage_gets_it(apis: Setup):  # noqa: F811
    oa = OpenAI(base_url=apis.gateway_url + "/v1", api_key="k", max_retries=0)
    chunks = list(oa.chat.completions.create(model="gpt-test", stream=True, stream_options={"include_usage": True},
                                             messages=[{"role": "user", "content": "Say hello"}]))
    assert chunks[-1].usage is not None and not chunks[-1].choices
    [call] = apis.calls()
    assert "usage_requested" not in call.metadata and call.usage.output_tokens == chunks[-1].usage.completion_tokens


def test_the_usage_strip_on_pieces_cut_anywhere():
    events = [b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}\n\n',
              b'data: {"id":"a","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n',
              b'data: {"id":"a","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n',
              b"data: [DONE]\n\n"]
    for sep in (b"\n", b"\r\n"):
        events_sep = [e.replace(b"\n", sep) for e in events]
        whole = b"".join(events_sep)
        expected = (events_sep[0] + events_sep[1]).replace(b',"usage":null', b"") + events_sep[3]
        for cut in range(1, len(whole)):
            strip = UsageStrip()
            out = strip.feed(whole[:cut]) + strip.feed(whole[cut:]) + strip.flush()
            assert out == expected, (sep, cut)
    riding = (b'data: {"id":"a","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
              b'"usage":{"prompt_tokens":3}}\n\n')
    strip = UsageStrip()
    assert orjson.loads(strip.feed(riding)[6:]) == {"id": "a", "choices": [
        {"index": 0, "delta": {}, "finish_reason": "stop"}]}


class NoUsage:
    """An OpenAI-compatible upstream that never reports usage (some local servers)."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        body = orjson.dumps({"id": "c1", "object": "chat.completion", "model": "local", "created": 1,
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": "hello"}}]})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def test_no_usage_is_stored_as_unknown_and_counted_by_traces_stats(store, tmp_path, monkeypatch):
    sqlite_store = store  # SQLite and PostgreSQL (migration 0009 made the columns nullable on both)
    with ServerThread(NoUsage()) as upstream_url:
        app = build_app(settings_for(upstream_url, tmp_path), sqlite_store)
        with ServerThread(app) as url:
            oa = OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
            assert oa.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]
                                              ).choices[0].message.content == "hello"
            assert app.recorder.drain(10)
    [call] = list(sqlite_store.iter_calls())
    assert call.status == "ok" and call.usage.missing and call.cost_usd is None
    [row] = sqlite_store.stats()
    assert row.without_usage == 1 and row.input_tokens == 0

    from fledgling.cli import app as cli
    monkeypatch.setenv("FLEDGLING_DB_URL", sqlite_store.url)
    out = CliRunner().invoke(cli, ["traces", "stats"])
    assert out.exit_code == 0, out.output
    assert "1 of 1 calls have no usage" in " ".join(out.output.split())
    js = CliRunner().invoke(cli, ["traces", "stats", "--json"])
    assert orjson.loads(js.output)[0]["calls_without_usage"] == 1
