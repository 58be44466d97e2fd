"""Untrusted trace content renders inert; login, session cookie, CSRF and headers hold."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from fledgling.errors import ConfigError
from fledgling.models import catalog
from fledgling.swap import rollout
from fledgling.ui.security import check_bind
from tests.ui.conftest import TOKEN
from tests.ui.data import XSS, XSS_ARG, XSS_TASK

XSS_GLOBALS = ("__xss_message", "__xss_img", "__xss_task", "__xss_arg")


@pytest.mark.parametrize(("path", "shown"), [
    ("/traces/call_xss_0", XSS_TASK), ("/traces/call_xss_1", XSS),
    ("/traces?task=" + quote(XSS_TASK), XSS_TASK), ("/", XSS_TASK), ("/traces", XSS_TASK)],
    ids=["call", "call-model", "traces-task", "overview", "traces"])
def test_script_payloads_render_inert(server, watched, path, shown) -> None:
    page = watched.page
    page.goto(server.url + path)
    page.wait_for_load_state("networkidle")
    for name in XSS_GLOBALS:
        assert page.evaluate(f"typeof window.{name}") == "undefined"
    assert watched.dialogs == []
    assert watched.errors == []
    assert page.locator("main script").count() == 0
    assert page.locator("main img").count() == 0
    assert shown in page.inner_text("main")  # shown as text, escaped
    if path.startswith("/traces/"):
        text = page.inner_text("main")
        assert XSS in text
        assert XSS_ARG in text.replace('\\"', '"') or XSS_ARG.replace('"', '\\"') in text
        watched.shot("xss-" + path.rsplit("/", 1)[-1])


def test_headers_cookie_and_csp(server) -> None:
    r = httpx.get(server.url + "/traces")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_state_changes_need_the_csrf_token(server, ui_data) -> None:
    with httpx.Client(base_url=server.url) as client:
        confirm = client.get("/models/select", params={"task": "ticket-triage", "model": "smollm2-135m-instruct"})
        token = _csrf(confirm.text)
        form = {"task": "ticket-triage", "model": "smollm2-135m-instruct"}
        assert client.post("/models/select", data=form).status_code == 403
        assert client.post("/models/select", data={**form, "csrf_token": "forged"}).status_code == 403
        assert catalog.selected_model(ui_data.store, "ticket-triage") is None
        with httpx.Client(base_url=server.url) as other:  # another session's token is no good
            assert other.post("/models/select", data={**form, "csrf_token": token}).status_code == 403
        assert client.post("/rollout", data={"task": "ticket-triage", "mode": "record"}).status_code == 403
        assert rollout.events(ui_data.store, "ticket-triage") == []


def test_login_is_required_when_a_token_is_set(secured, watched) -> None:
    r = httpx.get(secured.url + "/traces?task=x", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=" + quote("/traces?task=x", safe="")
    assert httpx.post(secured.url + "/rollout", data={"task": "t", "mode": "record"}).status_code == 403
    assert httpx.get(secured.url + "/static/dashboard.css").status_code == 200

    page = watched.page
    page.goto(secured.url + "/contracts")
    assert "/login" in page.url
    watched.shot("login")
    page.fill("input[name=token]", "wrong")
    page.click("button[type=submit]")
    assert "not right" in page.inner_text("main")
    assert [e for e in watched.errors if "403" not in e] == []  # the refused login is a 403
    watched.errors.clear()
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/contracts$"))
    assert "lookup_order" in page.inner_text("main")
    page.get_by_role("button", name="Log out").click()
    page.goto(secured.url + "/")
    assert "/login" in page.url
    assert watched.errors == []


def test_login_csrf_and_open_redirect(secured) -> None:
    with httpx.Client(base_url=secured.url) as client:
        token = _csrf(client.get("/login").text)
        assert client.post("/login", data={"token": TOKEN}).status_code == 403  # login CSRF too
        r = client.post("/login", data={"token": TOKEN, "csrf_token": token, "next": "//evil.example/x"})
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert client.get("/").status_code == 200
        old_token = token
        fresh = _csrf(client.get("/rollout").text)
        assert fresh != old_token  # a new session (and CSRF token) after logging in


def test_non_loopback_bind_needs_a_token(monkeypatch) -> None:
    with pytest.raises(ConfigError, match="FLEDGLING_UI_TOKEN"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "secret")
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    monkeypatch.delenv("FLEDGLING_UI_TOKEN", raising=False)
    fledgling = Path(sys.executable).parent / "fledgling"
    cli = subprocess.run([str(fledgling), "ui", "--host", "0.0.0.0", "--port", "0"],
                         check=False, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2
    assert "refusing to serve the dashboard on 0.0.0.0" in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1
