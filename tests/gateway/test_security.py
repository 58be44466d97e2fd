"""No secret reaches the store or the spool; gateway keys, size limits and malformed JSON."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import text

from fledgling.store import Store

from .conftest import SYSTEM

MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hello"}]
CALLER_KEY = "sk-caller-SECRET-7f3a9c1e"
UPSTREAM_KEY = "sk-upstream-SECRET-52b8d0aa"


def _stored_text(store: Store) -> str:
    """Everything in the database, as text: the file bytes for SQLite, every row for PostgreSQL."""
    if store.dialect == "sqlite":
        db = Path(store.engine.url.database)
        return "".join(p.read_bytes().decode("latin-1") for p in db.parent.glob(db.name + "*"))
    with store.engine.connect() as c:
        rows = [str(r) for t in ("calls", "tool_calls") for r in c.execute(text(f"SELECT * FROM {t}"))]
    return "\n".join(rows)


def test_no_api_key_reaches_store_or_spool(make_gateway, upstream, store: Store,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_UPSTREAM_KEY", UPSTREAM_KEY)
    gw = make_gateway(store)
    agent = openai.OpenAI(base_url=gw.url + "/v1", api_key=CALLER_KEY, max_retries=0)
    agent.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    agent.chat.completions.create(model="keyed", messages=MESSAGES)
    list(agent.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    with pytest.raises(openai.InternalServerError):
        agent.chat.completions.create(model="fault:http500", messages=MESSAGES)
    gw.drain()

    # the keys did their job upstream ...
    auths = [h.get("authorization") for h in upstream[0].seen_headers]
    assert f"Bearer {CALLER_KEY}" in auths and f"Bearer {UPSTREAM_KEY}" in auths
    # ... and are nowhere in what was recorded
    assert store.count_calls() == 4
    spooled = "".join(p.read_text() for p in gw.spool_dir.glob("*.spool"))
    assert "lookup_order" in spooled or "hello" in spooled  # the spool does hold the calls
    stored = _stored_text(store)
    assert "hello" in stored
    for secret in (CALLER_KEY, UPSTREAM_KEY, "SECRET"):
        assert secret not in spooled
        assert secret not in stored


def test_gateway_keys_are_required_when_set(make_gateway, upstream, sqlite_store: Store) -> None:
    gw = make_gateway(sqlite_store, keys=frozenset({"gw-key-1", "gw-key-2"}))
    agent = openai.OpenAI(base_url=gw.url + "/v1", api_key="gw-key-3", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        agent.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert exc.value.status_code == 401 and "gateway key" in exc.value.message
    r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.post(gw.url + "/v1/traces", json={}).status_code == 401
    assert httpx.get(gw.url + "/v1/models").status_code == 401
    assert upstream[0].seen_headers == []  # nothing unauthenticated was forwarded

    ok = openai.OpenAI(base_url=gw.url + "/v1", api_key="gw-key-2", max_retries=0)
    assert ok.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content
    assert httpx.post(gw.url + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES},
                      headers={"api-key": "gw-key-1"}).status_code == 200
    # the gateway key is the gateway's: it is not passed upstream
    assert all("gw-key" not in str(h) for h in upstream[0].seen_headers)
    gw.drain()
    assert sqlite_store.count_calls() == 2


def test_body_over_the_limit_gets_413(make_gateway, sqlite_store: Store) -> None:
    gw = make_gateway(sqlite_store, max_body_bytes=4096)
    agent = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-test", max_retries=0)
    big = [{"role": "user", "content": "x" * 5000}]
    with pytest.raises(openai.APIStatusError) as exc:
        agent.chat.completions.create(model="gpt-4o", messages=big)
    assert exc.value.status_code == 413 and "max_body_bytes" in exc.value.message

    def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(10):
            yield b"x" * 1000

    r = httpx.post(gw.url + "/v1/chat/completions", content=chunks())
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert agent.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b""], ids=["broken", "array", "empty"])
def test_malformed_json_gets_openai_shaped_400(gateway, body: bytes) -> None:
    r = httpx.post(gateway.url + "/v1/chat/completions", content=body,
                   headers={"content-type": "application/json"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_json" and err["type"] == "invalid_request_error" and err["message"]
