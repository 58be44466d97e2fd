"""Nothing refused silently: a request the gateway does not serve is logged in one line, counted
on /health, and answered with a body that names what is served; an access log can be switched on."""

from __future__ import annotations

import logging

import httpx
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
