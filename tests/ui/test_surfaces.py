"""Locked surfaces of the dashboard: a DNS-rebinding page cannot drive it, anonymous requests
store no session, and login attempts are rate-limited per client address."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fledgling.config import Settings
from fledgling.models import catalog
from fledgling.ui import create_app
from fledgling.ui.security import LOGIN_ATTEMPTS, Guard
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, TOKEN, Served

TASK = "ticket-triage"


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _guard(served: Served) -> Guard:
    node: Any = served.server.config.app.middleware_stack
    while not isinstance(node, Guard):
        node = node.app
    return node


@pytest.fixture
def fresh_secured(ui_data) -> Iterator[Served]:
    """A token-protected dashboard of its own: its sessions and login failures start at zero."""
    served = Served(create_app(Settings(), ui_data.store, token=TOKEN))
    yield served
    served.stop()


def _visit_as(host: str, port: str, path: str) -> tuple[int, str]:
    """Chromium resolving `host` to 127.0.0.1, as a rebinding attacker's DNS would: (status, text).

    A browser of its own, in a thread of its own: the session's browser holds this thread's loop."""
    from playwright.sync_api import sync_playwright

    seen: list[tuple[int, str]] = []

    def visit() -> None:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                *CHROMIUM_ARGS, "--no-proxy-server", f"--host-resolver-rules=MAP {host} 127.0.0.1"])
            try:
                page = browser.new_page()
                response = page.goto(f"http://{host}:{port}{path}")
                seen.append((response.status if response else 0, page.content()))
            finally:
                browser.close()

    thread = threading.Thread(target=visit)
    thread.start()
    thread.join(60)
    assert seen, "the browser did not load the page"
    return seen[0]


@pytest.mark.browser
def test_rebinding_page_in_a_browser_is_refused(server) -> None:
    port = server.url.rsplit(":", 1)[1]
    form = f"/models/select?task={TASK}&model=smollm2-135m-instruct"  # a page with a CSRF token
    status, html = _visit_as("rebind.test", port, form)
    assert status == 403 and "rebind.test" in html and "FLEDGLING_ALLOWED_HOSTS" in html
    assert 'name="csrf_token"' not in html  # nothing of the dashboard was served
    status, html = _visit_as("localhost", port, form)  # the same server, by its own name
    assert status == 200 and 'name="csrf_token"' in html


def test_cross_site_posts_are_refused_before_any_route(server, ui_data) -> None:
    select = {"task": TASK, "model": "smollm2-135m-instruct"}
    with httpx.Client(base_url=server.url) as client:
        form = {**select, "csrf_token": _csrf(client.get("/models/select", params=select).text)}
        for headers in ({"origin": "https://evil.example"}, {"origin": "null"},
                        {"origin": server.url.replace("127.0.0.1", "localhost")}, {"host": "evil.example"}):
            r = client.post("/models/select", data=form, headers=headers)
            assert r.status_code == 403 and ("cross-site" in r.text or "not a name of this server" in r.text)
        assert catalog.selected_model(ui_data.store, TASK) is None
        # a form of its own pages passes the check (logging out changes nothing here)
        r = client.post("/logout", data={"csrf_token": form["csrf_token"]}, headers={"origin": server.url})
        assert r.status_code == 303


def test_a_token_protected_dashboard_serves_any_host(secured) -> None:
    """Behind a reverse proxy the login token is the protection: the Host is not checked."""
    r = httpx.get(secured.url + "/traces", headers={"host": "fledgling.corp.example"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_sessions_are_made_only_at_login(fresh_secured) -> None:
    url = fresh_secured.url
    for path in ("/login", "/", "/traces", "/static/dashboard.css") * 50:
        httpx.get(url + path, follow_redirects=False)  # no cookie: a new visitor every time
    guard = _guard(fresh_secured)
    assert len(guard.sessions) == 0
    with httpx.Client(base_url=url) as user:
        token = _csrf(user.get("/login").text)
        assert user.post("/login", data={"token": TOKEN, "csrf_token": token}).status_code == 303
        assert len(guard.sessions) == 1
        for _ in range(200):
            httpx.get(url + "/login")
        assert len(guard.sessions) == 1
        assert user.get("/traces").status_code == 200  # still logged in
        user.post("/logout", data={"csrf_token": _csrf(user.get("/rollout").text)})
        assert len(guard.sessions) == 0


def _login(client: httpx.Client, token: str) -> httpx.Response:
    csrf = _csrf(client.get("/login").text)
    return client.post("/login", data={"token": token, "csrf_token": csrf})


def test_login_attempts_are_rate_limited_per_address(fresh_secured) -> None:
    with httpx.Client(base_url=fresh_secured.url) as attacker:
        for _ in range(LOGIN_ATTEMPTS):
            assert _login(attacker, "guess").status_code == 403
        r = _login(attacker, "guess")
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        assert "try again in" in r.text
        r = _login(attacker, TOKEN)  # even the right token waits: the limit does not leak it
        assert r.status_code == 429
        assert attacker.get("/traces", follow_redirects=False).status_code == 303
    # another address is not held up by the first one's failures
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=fresh_secured.url, transport=other) as user:
        assert _login(user, TOKEN).status_code == 303
        assert user.get("/traces").status_code == 200
