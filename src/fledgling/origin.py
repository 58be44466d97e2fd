"""Host and Origin checks for servers that no key protects: the defence against DNS rebinding.

A keyless gateway or a tokenless dashboard listens on loopback only, but a web page can still
reach it: it rebinds its own name to 127.0.0.1 (the browser then sends `Host: evil.example`) or
posts cross-site (`Origin: https://evil.example`). So an unprotected server (bound to loopback,
since without a key it may bind nowhere else) answers only requests whose Host is a name for
this machine (localhost, 127.0.0.1, [::1] or any loopback address, or a name listed in
`FLEDGLING_ALLOWED_HOSTS`), and refuses a state-changing request whose Origin is not its own.
Clients that are not browsers (the OpenAI SDK, curl) send no Origin and pass.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

ALLOWED_HOSTS_ENV = "FLEDGLING_ALLOWED_HOSTS"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(value: str) -> str:
    """The name in a Host header or an Origin's authority, without port or brackets, lowercased."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") > 1:  # a bare IPv6 address
        return value
    return value.split(":", 1)[0].rstrip(".")


class HostCheck:
    """Which Host and Origin values an unprotected server accepts; `refusal` says why not."""

    def __init__(self, extra: Iterable[str] | None = None):
        if extra is None:
            extra = os.environ.get(ALLOWED_HOSTS_ENV, "").split(",")
        self.extra = frozenset(host_name(h) for h in extra if h.strip())
        self.allowed = self.extra | LOCAL_NAMES

    def allows(self, name: str) -> bool:
        return name in self.allowed or is_loopback(name)

    def refusal(self, method: str, headers: Mapping[str, str]) -> str | None:
        """None if the request may go on, else the one-line reason to refuse it with 403.

        A state-changing request that names an Origin must come from this server's own pages
        (same scheme-less authority as its Host) or from a host listed in the extras."""
        host = headers.get("host")
        if host is not None and not self.allows(host_name(host)):
            return (f"Host '{host}' is not a name of this server; open it as http://127.0.0.1 or "
                    f"http://localhost, or add the name to {ALLOWED_HOSTS_ENV}")
        origin = headers.get("origin")
        if origin is not None and method.upper() not in SAFE_METHODS:
            try:
                parts = urlsplit(origin)
            except ValueError:
                parts = None
            same = parts is not None and host is not None and parts.netloc.lower() == host.strip().lower()
            listed = parts is not None and host_name(parts.netloc) in self.extra
            if parts is None or parts.scheme not in ("http", "https") or not (same or listed):
                return (f"cross-site request from Origin '{origin}' refused; this server takes "
                        f"changes only from its own pages (or add the name to {ALLOWED_HOSTS_ENV})")
        return None
