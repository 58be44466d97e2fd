"""Nothing refused silently: a request the gateway does not serve is logged in one line, counted
on /health, and answered with a body that names what is served; an access log can be switched on."""

from __future__ import annotations

import logging

import httpx
import orjson
import pytest

from fledgling.gateway.server import ServerThread, build_app
from tests.gateway.apis import Setup, apis, settings_for  # noqa: F401


def test_an_unknown_path_is_a_404_that_names_the_apis_served_and_is_logged_and_counted(
        apis: Setup, caplog: pytest.LogCaptureFixture):  # noqa: F811
    with caplog.at_level(logging.WARNING, logger="fledgling.gateway"):
        r = httpx.post(apis.gateway_url + "/v1/assistants", json={})
        httpx.post(apis.gateway_url + "/v1/assistants", json={})
        wrong_method = httpx.get(apis.gateway_url + "/v1/responses")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    message = r.json()["error"]["message"]
    for served in ("/chat/completions", "/responses", "/messages"):
        assert served in message
    assert wrong_method.status_code == 405
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "fledgling.gateway"]
    assert lines.count(lines[0]) == 2 and lines[0].startswith("refused POST /v1/assistants: 404 not_found")
    assert any(line.startswith("refused GET /v1/responses: 405") for line in lines)
    refused = httpx.get(apis.gateway_url + "/health").json()["refused"]
    assert refused == {"404 POST /v1/assistants": 2, "405 GET /v1/responses": 1}
    assert apis.calls() == []  # nothing reached an upstream, nothing to record


def test_the_refused_counts_stay_bounded(apis: Setup):  # noqa: F811
    from fledgling.gateway.app import REFUSED_KEYS
    with httpx.Client(base_url=apis.gateway_url) as http:
        for i in range(REFUSED_KEYS + 5):
            http.get(f"/nothing/{i}")
    refused = http_health(apis)["refused"]
    assert len(refused) == REFUSED_KEYS + 1 and refused["404 other"] == 5
    assert sum(refused.values()) == REFUSED_KEYS + 5


def http_health(setup: Setup) -> dict:
    return httpx.get(setup.gateway_url + "/health").json()


def test_a_messages_404_is_in_the_anthropic_shape(apis: Setup):  # noqa: F811
    r = httpx.get(apis.gateway_url + "/v1/messages")
    assert r.status_code == 405 and r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("switch", ["config", "argument"])
def test_the_access_log_logs_every_request(sqlite_store, tmp_path, switch: str,
                                           capfd: pytest.CaptureFixture[str]):
    from tests.standin_apis import RunningStandIn
    access = logging.getLogger("fledgling.gateway.access")
    access.handlers.clear()
    stand_in = RunningStandIn()
    with stand_in:
        settings = settings_for(stand_in.url, tmp_path, access_log=switch == "config")
        app = build_app(settings, sqlite_store) if switch == "config" else None
        if app is None:
            from fledgling.capture.recording.recorder import Recorder
            from fledgling.gateway.app import GatewayApp
            app = GatewayApp(settings, Recorder.from_settings(sqlite_store, settings.gateway), access_log=True)
        try:
            with ServerThread(app) as url:
                httpx.post(url + "/v1/responses", json={"model": "m", "input": "hi"},
                           headers={"X-Fledgling-Task": "weather"})
                httpx.get(url + "/nope")
        finally:
            access.handlers.clear()
            access.propagate = True
    err = capfd.readouterr().err
    assert " POST /v1/responses 200 " in err and " GET /nope 404 " in err


def test_no_access_log_by_default(apis: Setup, capfd: pytest.CaptureFixture[str]):  # noqa: F811
    httpx.post(apis.gateway_url + "/v1/responses", json={"model": "m", "input": "hi"},
               headers={"X-Fledgling-Task": "weather"})
    assert "POST /v1/responses 200" not in capfd.readouterr().err


class SideRoutes:
    """An upstream that answers the APIs' side routes, saying what it was asked."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str]] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = dict((k.decode(), v.decode()) for k, v in scope["headers"])
        self.seen.append((scope["method"], scope["path"], scope["query_string"].decode(),
                          headers.get("x-api-key") or headers.get("authorization", "")))
        answer = orjson.dumps({"method": scope["method"], "path": scope["path"], "body": body.decode()})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})


def test_the_apis_side_routes_pass_through_unrecorded(sqlite_store, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant")
    upstream = SideRoutes()
    with ServerThread(upstream) as upstream_url:
        app = build_app(settings_for(upstream_url, tmp_path), sqlite_store, keys=frozenset())
        with ServerThread(app) as url:
            got = httpx.get(url + "/v1/responses/resp_1/input_items?limit=2", headers={"authorization": "Bearer k"})
            assert got.status_code == 200 and got.json()["path"] == "/v1/responses/resp_1/input_items"
            counted = httpx.post(url + "/v1/messages/count_tokens", json={"model": "c", "messages": []},
                                 headers={"x-api-key": "caller", "X-Fledgling-Task": "claude-weather"})
            assert counted.json()["path"] == "/v1/messages/count_tokens" and '"messages"' in counted.json()["body"]
            deleted = httpx.delete(url + "/v1/responses/resp_1", headers={"authorization": "Bearer k"})
            assert deleted.json()["method"] == "DELETE"
            assert app.recorder.drain(10)
            assert app.health()["refused"] == {}
    assert upstream.seen == [("GET", "/v1/responses/resp_1/input_items", "limit=2", "Bearer k"),
                             ("POST", "/v1/messages/count_tokens", "", "sk-ant"),
                             ("DELETE", "/v1/responses/resp_1", "", "Bearer k")]
    assert list(sqlite_store.iter_calls()) == []  # no model answered: nothing to record
