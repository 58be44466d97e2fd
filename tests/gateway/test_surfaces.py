"""Locked surfaces of the gateway: no keyless bind beyond loopback, an admin API that only its
own key opens, Host/Origin checks on a keyless gateway, and no secret of a URL printed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fledgling.errors import ConfigError
from fledgling.gateway.server import build_app, check_bind
from fledgling.store import Store
from fledgling.swap import rollout

from .conftest import SYSTEM, free_port, gateway_settings

MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hello"}]
CHAT = {"model": "gpt-4o", "messages": MESSAGES}
TASK = "support-agent"


def _fledgling(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", "from fledgling.cli import main; main()", *args],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _env(config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FLEDGLING_GATEWAY_KEYS", "FLEDGLING_ADMIN_KEY", "FLEDGLING_ALLOWED_HOSTS")}
    return {**env, "FLEDGLING_CONFIG": str(config), **extra}


def _config(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "fledgling.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/f.db"\n\n'
                    f'[models.llm]\nkind = "openai"\nbase_url = "{base_url}"\n\n'
                    f'[gateway]\nupstream = "llm"\nspool_dir = "{tmp_path}/spool"\n')
    return path


def test_non_loopback_bind_needs_gateway_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FLEDGLING_GATEWAY_KEYS"):
        check_bind("0.0.0.0", frozenset())
    with pytest.raises(ConfigError, match="FLEDGLING_GATEWAY_KEYS"):
        check_bind("::", frozenset())
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.5"):
        check_bind(host, frozenset())
    check_bind("0.0.0.0", frozenset({"k"}))

    config = _config(tmp_path, "http://127.0.0.1:1/v1")
    proc = _fledgling(["gateway", "--host", "0.0.0.0", "--port", "0"], tmp_path, _env(config))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "refusing to serve the gateway on 0.0.0.0 without gateway keys" in err
    assert "FLEDGLING_GATEWAY_KEYS" in err and len(err.strip().splitlines()) == 1


def test_banner_masks_secrets_in_urls(tmp_path: Path) -> None:
    """Started on all interfaces with a key: it serves, and its banner hides the URL's secrets."""
    config = _config(tmp_path, "https://alice:hunter2-pw@127.0.0.1:1/v1?api_key=sk-in-query-77")
    port = free_port()
    proc = _fledgling(["gateway", "--host", "0.0.0.0", "--port", str(port)], tmp_path,
                      _env(config, FLEDGLING_GATEWAY_KEYS="gw-key-0a9", COLUMNS="400"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert "upstream llm -> https://alice:***@127.0.0.1:1/v1?api_key=***" in out
    assert "admin API: off" in out
    for secret in ("hunter2-pw", "sk-in-query-77", "gw-key-0a9"):
        assert secret not in out and secret not in err


def test_gateway_keys_do_not_open_the_admin_api(make_gateway, sqlite_store: Store,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEDGLING_ADMIN_KEY", raising=False)
    gw = make_gateway(sqlite_store, keys=frozenset({"gw-key-1"}))
    agent = {"authorization": "Bearer gw-key-1"}
    r = httpx.post(f"{gw.url}/admin/rollout/{TASK}", json={"mode": "record", "reason": "x"}, headers=agent)
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_disabled"
    assert "FLEDGLING_ADMIN_KEY" in r.json()["error"]["message"]
    assert httpx.get(f"{gw.url}/admin/swap", headers=agent).status_code == 403
    assert httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers=agent).status_code == 200

    monkeypatch.setenv("FLEDGLING_ADMIN_KEY", "adm-key-9")
    gw = make_gateway(sqlite_store, keys=frozenset({"gw-key-1"}))
    r = httpx.post(f"{gw.url}/admin/rollout/{TASK}", json={"mode": "record", "reason": "x"}, headers=agent)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_key"
    assert rollout.events(sqlite_store, TASK) == []  # no gateway key moved anything
    ok = httpx.post(f"{gw.url}/admin/rollout/{TASK}", json={"mode": "record", "reason": "x"},
                    headers={"authorization": "Bearer adm-key-9"})
    assert ok.status_code == 200 and rollout.events(sqlite_store, TASK)[0].actor == "admin-api"


def test_admin_key_must_not_be_a_gateway_key(upstream, tmp_path: Path, sqlite_store: Store,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEDGLING_ADMIN_KEY", "shared-key")
    settings = gateway_settings(upstream[1], tmp_path)
    with pytest.raises(ConfigError, match="a key of its own"):
        build_app(settings, sqlite_store, keys=frozenset({"shared-key", "other"}))


def _host(url: str) -> str:
    return url.removeprefix("http://")


def test_keyless_gateway_answers_only_its_own_host_and_origin(make_gateway, upstream, sqlite_store: Store,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEDGLING_ALLOWED_HOSTS", raising=False)
    gw = make_gateway(sqlite_store)
    port = gw.url.rsplit(":", 1)[1]
    chat = gw.url + "/v1/chat/completions"
    # a DNS-rebinding page: the browser connects to 127.0.0.1 but names the attacker's host
    for host in (f"rebind.evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        r = httpx.post(chat, json=CHAT, headers={"host": host})
        assert r.status_code == 403 and r.json()["error"]["code"] == "host_not_allowed"
        assert "FLEDGLING_ALLOWED_HOSTS" in r.json()["error"]["message"]
        assert httpx.get(gw.url + "/health", headers={"host": host}).status_code == 403
    # a cross-site form or fetch: the right Host, another site's Origin
    for origin in ("https://evil.example", "null", f"http://localhost:{int(port) + 1}"):
        r = httpx.post(chat, json=CHAT, headers={"origin": origin})
        assert r.status_code == 403 and "cross-site" in r.json()["error"]["message"]
    assert upstream[0].seen_headers == []  # nothing refused went upstream
    gw.drain()
    assert sqlite_store.count_calls() == 0

    for host in (_host(gw.url), f"localhost:{port}", "127.0.0.1", f"[::1]:{port}", f"LOCALHOST:{port}"):
        assert httpx.post(chat, json=CHAT, headers={"host": host}).status_code == 200
    assert httpx.post(chat, json=CHAT, headers={"origin": gw.url}).status_code == 200
    assert httpx.get(gw.url + "/health", headers={"origin": "https://evil.example"}).status_code == 200
    gw.drain()
    assert sqlite_store.count_calls() == 6

    monkeypatch.setenv("FLEDGLING_ALLOWED_HOSTS", "gateway.internal, host.docker.internal")
    extra = make_gateway(sqlite_store)
    for host in ("gateway.internal:8787", "host.docker.internal"):
        assert httpx.post(extra.url + "/v1/chat/completions", json=CHAT,
                          headers={"host": host}).status_code == 200
    assert httpx.post(extra.url + "/v1/chat/completions", json=CHAT,
                      headers={"host": "evil.example"}).status_code == 403


def test_a_gateway_with_keys_serves_any_host(make_gateway, sqlite_store: Store) -> None:
    """Behind a proxy or on a LAN name, the key is the protection: Host is not checked."""
    gw = make_gateway(sqlite_store, keys=frozenset({"gw-key-1"}))
    r = httpx.post(gw.url + "/v1/chat/completions", json=CHAT,
                   headers={"host": "llm-proxy.corp.example", "authorization": "Bearer gw-key-1"})
    assert r.status_code == 200
    r = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers={"host": "llm-proxy.corp.example"})
    assert r.status_code == 401


def test_upstream_errors_mask_the_url(make_gateway, sqlite_store: Store) -> None:
    gw = make_gateway(sqlite_store, upstream_url=f"http://alice:pw-3a@127.0.0.1:{free_port()}/v1?key=k-3b")
    r = httpx.post(gw.url + "/v1/chat/completions", json=CHAT)
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_unreachable"
    message = r.json()["error"]["message"]
    assert "http://alice:***@127.0.0.1:" in message and "key=***" in message
    assert "pw-3a" not in message and "k-3b" not in message
