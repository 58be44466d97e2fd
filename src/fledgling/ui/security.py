"""The dashboard's guard: token login, sessions, CSRF on every state change, strict headers.

Trace content is untrusted input and the dashboard can change what the gateway does, so:
- with `FLEDGLING_UI_TOKEN` set, every page but the login form needs a logged-in session, and
  serving on a non-loopback address without a token is refused (`check_bind`);
- without a token, the Host (and on a state change the Origin) must be this machine's
  (`fledgling.origin`), so a DNS-rebinding page cannot drive a dashboard on loopback;
- every client gets a cookie (HttpOnly, SameSite=Strict). A server-side session exists only for
  a logged-in client, made at login (at most `MAX_SESSIONS`, and only a token holder can make
  one); a visitor's CSRF token is derived from its cookie, so anonymous requests store nothing
  and cannot push a logged-in session out. Every request that is not GET/HEAD must send the
  CSRF token back as the `csrf_token` form field, or it is refused with 403 before any route runs;
- the JSON API (`/api/...`) answers in JSON: 401 without credentials; with a token set, a script
  sends `Authorization: Bearer <token>` (no cookie, so no CSRF token needed); a cookie session
  sends its CSRF token in the `X-CSRF-Token` header on every change, or gets 403;
- a client address that fails to log in `LOGIN_ATTEMPTS` times within `LOGIN_WINDOW_S` is
  answered 429 (with Retry-After) until the oldest failure is that old;
- every response carries a Content-Security-Policy that allows no inline script or style and
  nothing from another origin, so even a template mistake cannot run a trace's `<script>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

from fledgling.errors import ConfigError
from fledgling.origin import HostCheck, is_loopback

SESSION_COOKIE = "fledgling_session"
CSRF_FIELD = "csrf_token"
TOKEN_ENV = "FLEDGLING_UI_TOKEN"
MAX_FORM_BYTES = 64 * 1024
MAX_SESSIONS = 10_000
LOGIN_ATTEMPTS = 5
LOGIN_WINDOW_S = 60.0
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{20,64}")
SAFE_METHODS = frozenset({"GET", "HEAD"})
PUBLIC_PREFIXES = ("/login", "/static/")
API_PREFIX = "/api/"
CSRF_HEADER = "x-csrf-token"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` even on the
    # dashboard's own forms, which the Origin check (fledgling.origin) must refuse
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose the console beyond this machine without a login token."""
    if not token and not is_loopback(host):
        raise ConfigError(f"refusing to serve the dashboard on {host} without a login token: set "
                          f"{TOKEN_ENV} to a long random secret (e.g. `export {TOKEN_ENV}=$(openssl "
                          "rand -hex 24)`), or bind to 127.0.0.1")


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    authenticated: bool = False
    created: float = field(default_factory=time.monotonic)


class Sessions:
    """Logged-in sessions in memory (bounded): a restart logs everyone out, which is fine."""

    def __init__(self, limit: int = MAX_SESSIONS):
        self._items: OrderedDict[str, Session] = OrderedDict()
        self._limit = limit

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._items.get(sid)
        if session is not None:
            self._items.move_to_end(sid)
        return session

    def new(self, authenticated: bool = False) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = Session(authenticated=authenticated)
        self._items[sid] = session
        while len(self._items) > self._limit:
            self._items.popitem(last=False)
        return sid, session

    def drop(self, sid: str) -> None:
        self._items.pop(sid, None)

    def __len__(self) -> int:
        return len(self._items)


class LoginLimiter:
    """Failed logins per client address, in a sliding window (bounded in addresses too)."""

    def __init__(self, attempts: int = LOGIN_ATTEMPTS, window_s: float = LOGIN_WINDOW_S,
                 clients: int = MAX_SESSIONS):
        self.attempts = attempts
        self.window_s = window_s
        self._clients = clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> int:
        """Seconds this client must wait before its next try; 0 if it may try now."""
        failures = self._failures.get(client)
        if not failures:
            return 0
        now = time.monotonic()
        while failures and now - failures[0] >= self.window_s:
            failures.popleft()
        if len(failures) < self.attempts:
            return 0
        return max(1, math.ceil(failures[0] + self.window_s - now))

    def failed(self, client: str) -> None:
        failures = self._failures.setdefault(client, deque(maxlen=self.attempts))
        failures.append(time.monotonic())
        self._failures.move_to_end(client)
        while len(self._failures) > self._clients:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


class Guard:
    """The ASGI middleware that enforces all of the above around the dashboard's routes."""

    def __init__(self, app: Any, token: str | None):
        self.app = app
        self.token = token or None
        self.sessions = Sessions()
        self.logins = LoginLimiter()
        self.hosts = None if self.token else HostCheck()
        self._secret = secrets.token_bytes(32)

    def token_matches(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def visitor(self, cookie: str) -> Session:
        """A client without a stored session: nothing is kept, its CSRF token is its cookie's MAC."""
        csrf = hmac.new(self._secret, cookie.encode(), hashlib.sha256).hexdigest()
        return Session(csrf=csrf, authenticated=not self.token)

    def log_in(self, old_sid: str | None) -> str:
        """A fresh session id for a client that gave the token (never the one it came with)."""
        if old_sid:
            self.sessions.drop(old_sid)
        sid, _ = self.sessions.new(authenticated=True)
        return sid

    def log_out(self, sid: str | None) -> str:
        """Forget the session; the client continues as a visitor under a new cookie."""
        if sid:
            self.sessions.drop(sid)
        return secrets.token_urlsafe(32)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookies = _cookies(scope)
        sid = cookies.get(SESSION_COOKIE)
        session = self.sessions.get(sid)
        set_cookie: str | None = None
        if session is None:
            if not sid or not _COOKIE_VALUE.fullmatch(sid):
                sid = set_cookie = secrets.token_urlsafe(32)
            session = self.visitor(sid)
        state = scope.setdefault("state", {})
        state.update(session=session, session_id=sid, guard=self, new_session_id=set_cookie)
        path = scope["path"]
        method = scope["method"]
        public = path.startswith(PUBLIC_PREFIXES)
        api = path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/")

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                own = {k.lower() for k, _ in headers}  # a route may set a stricter-scoped policy
                headers.extend(h for h in HEADERS if h[0] not in own)
                cookie_sid = state.get("new_session_id")
                if cookie_sid:
                    headers.append((b"set-cookie", session_cookie(cookie_sid, scope).encode()))
                message = {**message, "headers": headers}
            await send(message)

        if self.hosts is not None:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
            refused = self.hosts.refusal(method, headers)
            if refused:
                await (_json if api else _plain)(send_with_headers, 403, f"forbidden: {refused}")
                return
        if api:
            await self._api(scope, receive, send_with_headers, session, state)
            return
        if not session.authenticated and not public:
            if method in SAFE_METHODS:
                target = scope.get("root_path", "") + "/login?next=" + quote(_full_path(scope), safe="")
                await _plain(send_with_headers, 303, "login required", [(b"location", target.encode())])
            else:
                await _plain(send_with_headers, 403, "forbidden: log in first")
            return
        if method not in SAFE_METHODS:
            body = await _read_body(receive)
            if body is None:
                await _plain(send_with_headers, 413, "form too large")
                return
            form = _parse_form(scope, body)
            given = form.get(CSRF_FIELD, "")
            if not given or not hmac.compare_digest(given.encode(), session.csrf.encode()):
                await _plain(send_with_headers, 403,
                             "forbidden: missing or stale CSRF token; reload the page and try again")
                return
            state["form"] = form
            receive = _replay(body)
        await self.app(scope, receive, send_with_headers)


    async def _api(self, scope: dict[str, Any], receive: Any, send: Any, session: Session,
                   state: dict[str, Any]) -> None:
        """The API's rules: a bearer token or a session; a session's changes carry X-CSRF-Token."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and given:
            if not self.token_matches(given.strip()):
                await _json(send, 401, "unauthorized: the bearer token is wrong",
                            [(b"www-authenticate", b'Bearer realm="fledgling"')])
                return
            state["auth_via"] = "token"
            await self.app(scope, receive, send)
            return
        if not session.authenticated:
            await _json(send, 401, "unauthorized: send Authorization: Bearer <the dashboard's token>, "
                        "or log in first", [(b"www-authenticate", b'Bearer realm="fledgling"')])
            return
        if scope["method"] not in SAFE_METHODS:
            sent = headers.get(CSRF_HEADER, "")
            if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                await _json(send, 403, "forbidden: a change made with a session cookie needs its CSRF "
                            "token in the X-CSRF-Token header (GET /api/session gives it)")
                return
        state["auth_via"] = "session"
        await self.app(scope, receive, send)


def session_cookie(sid: str, scope: dict[str, Any]) -> str:
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    return f"{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict{secure}"


def safe_next(target: str | None) -> str:
    """Only same-site paths: `//evil.example` and `https://...` become `/`."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _cookies(scope: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, val = part.strip().partition("=")
                if name:
                    out.setdefault(name, val)
    return out


def _full_path(scope: dict[str, Any]) -> str:
    qs = scope.get("query_string", b"").decode("latin-1")
    return scope["path"] + (f"?{qs}" if qs else "")


async def _read_body(receive: Any) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _parse_form(scope: dict[str, Any], body: bytes) -> dict[str, str]:
    ctype = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"content-type"), "")
    if not ctype.startswith("application/x-www-form-urlencoded"):
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def _replay(body: bytes) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _plain(send: Any, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Any, status: int, reason: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": reason}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
