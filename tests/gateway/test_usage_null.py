"""Once the gateway asks the upstream for usage on a streaming client's behalf, OpenAI puts
`"usage": null` on every chunk; a client that did not ask sees chunks without the key, as it would
from OpenAI, while a client that asked keeps it (checked with the real openai client and on the
raw stream)."""

from __future__ import annotations

import httpx
import orjson
from openai import OpenAI

from tests.gateway.apis import Setup, apis  # noqa: F401

ASK = {"model": "gpt-test", "messages": [{"role": "user", "content": "Say hello"}]}


def test_a_client_that_did_not_ask_sees_no_usage_key(apis: Setup):  # noqa: F811
    oa = OpenAI(base_url=apis.gateway_url + "/v1", api_key="k", max_retries=0)
    chunks = list(oa.chat.completions.create(stream=True, **ASK))
    assert chunks and all(c.choices for c in chunks)
    assert all("usage" not in c.to_dict() for c in chunks)  # the key is absent, not null
    [sent] = apis.upstream.exchanges("chat")
    assert sent.body["stream_options"] == {"include_usage": True}  # the gateway did ask
    raw = httpx.post(apis.gateway_url + "/v1/chat/completions", json={**ASK, "stream": True}).content
    data = [line[6:] for line in raw.splitlines() if line.startswith(b"data: ") and line != b"data: [DONE]"]
    assert data and all("usage" not in orjson.loads(d) for d in data)
    calls = apis.calls()
    assert len(calls) == 2 and all(c.usage.output_tokens > 0 and not c.usage.missing for c in calls)


def test_a_client_that_asked_keeps_the_null_usage_on_its_chunks(apis: Setup):  # noqa: F811
    oa = OpenAI(base_url=apis.gateway_url + "/v1", api_key="k", max_retries=0)
    chunks = list(oa.chat.completions.create(stream=True, stream_options={"include_usage": True}, **ASK))
    content = [c for c in chunks if c.choices]
    assert content and all("usage" in c.to_dict() and c.usage is None for c in content)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
