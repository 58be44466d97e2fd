"""The upstream pool: one keep-alive aiohttp session for every OpenAI-compatible endpoint.

aiohttp rather than httpx: its loopback round trip is several times cheaper than
httpx.AsyncClient's, and the gateway's overhead budget is < 1 ms (docs/gateway.md, "Overhead").

Azure OpenAI deployments (a model with `api_version`) get `?api-version=` on the URL and the
key in an `api-key` header; Anthropic endpoints (kind `anthropic`) get `x-api-key` and an
`anthropic-version` (the caller's, else `ANTHROPIC_VERSION`); every other endpoint gets
`Authorization: Bearer`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from fledgling.config import GatewaySettings, ModelSettings
from fledgling.urls import mask_url

# Caller headers worth passing on (everything else, notably Authorization, is ours to set).
FORWARDED = ("openai-organization", "openai-project", "openai-beta", "x-request-id", "traceparent",
             "anthropic-version", "anthropic-beta")
ANTHROPIC_VERSION = "2023-06-01"
# Upstream response headers that describe the transport, not the answer.
# (content-type is passed separately, so it is never sent twice.)
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                        "content-encoding", "date", "server", "proxy-connection", "upgrade",
                        "content-type"})


@dataclass(frozen=True)
class Upstream:
    """One endpoint the gateway forwards to: OpenAI-compatible, or Anthropic's (`kind`)."""

    name: str
    base_url: str
    kind: str = "openai"
    api_key_env: str | None = None
    api_version: str | None = None
    model: str | None = None
    price_in: float | None = None
    price_out: float | None = None
    timeout_s: float = 60.0  # idle: before the answer starts, and between two reads of it
    connect_timeout_s: float = 10.0
    total_timeout_s: float = 600.0

    @classmethod
    def from_model(cls, name: str, m: ModelSettings, gateway: GatewaySettings) -> Upstream:
        """The deadlines come from [gateway]; a model that sets its own `timeout_s` keeps it."""
        idle = m.timeout_s if "timeout_s" in m.model_fields_set else gateway.upstream_idle_timeout_s
        return cls(name=name, base_url=(m.base_url or "").rstrip("/"), kind=m.kind, api_key_env=m.api_key_env,
                   api_version=m.api_version, model=m.model, price_in=m.usd_per_mtok_in,
                   price_out=m.usd_per_mtok_out, timeout_s=idle,
                   connect_timeout_s=gateway.upstream_connect_timeout_s,
                   total_timeout_s=gateway.upstream_total_timeout_s)

    @property
    def azure(self) -> bool:
        return self.api_version is not None

    @property
    def provider(self) -> str:
        host = urlsplit(self.base_url).hostname or ""
        if self.kind == "anthropic" or host.endswith("anthropic.com"):
            return "anthropic"
        if self.azure or host.endswith(".azure.com"):
            return "azure"
        if host.endswith("openai.com"):
            return "openai"
        return host or "unknown"

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class UpstreamFault(Exception):
    """The upstream could not give an answer: status is what the gateway replies with."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class UpstreamPool:
    def __init__(self, *, limit: int = 512):
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit,
                                         ttl_dns_cache=300, keepalive_timeout=30)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                              skip_auto_headers=("User-Agent",))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, upstream: Upstream, path: str, body: bytes, caller_headers: dict[str, str],
                   caller_auth: str | None, method: str = "POST") -> aiohttp.ClientResponse:
        """Start one request; the caller reads (or streams) the response and releases it.

        Connection failures and timeouts become `UpstreamFault`s with the status to reply with.
        The connect and idle deadlines hold until the response ends; the total deadline covers
        the whole request, reading (or streaming) the body included.
        """
        assert self._session is not None, "UpstreamPool.start() first"
        url = upstream.base_url + path
        params = {"api-version": upstream.api_version} if upstream.api_version is not None else None
        headers = {k: v for k in FORWARDED if (v := caller_headers.get(k))}
        headers["content-type"] = "application/json"
        headers["accept-encoding"] = "identity"
        key = upstream.api_key()
        if upstream.kind == "anthropic":
            headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
            if key is None and caller_auth:
                key = caller_auth[7:] if caller_auth[:7].lower() == "bearer " else caller_auth
            if key is not None:
                headers["x-api-key"] = key
        elif key is not None:
            headers["api-key" if upstream.azure else "authorization"] = (
                key if upstream.azure else f"Bearer {key}")
        elif caller_auth:
            headers["authorization"] = caller_auth
        timeout = aiohttp.ClientTimeout(total=upstream.total_timeout_s, connect=upstream.connect_timeout_s,
                                        sock_read=upstream.timeout_s)
        try:
            return await self._session.request(method, url, data=body if method == "POST" else None,
                                               headers=headers, params=params, timeout=timeout,
                                               allow_redirects=False)
        except TimeoutError as exc:
            raise UpstreamFault(504, "upstream_timeout", timeout_reason(
                upstream, exc, f"did not answer within {upstream.timeout_s:g}s")) from None
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamFault(502, "upstream_unreachable",
                                f"cannot connect to upstream '{mask_url(upstream.name)}' at "
                                f"{mask_url(upstream.base_url)}: {exc.os_error.strerror or exc}") from None
        except aiohttp.ClientError as exc:
            raise UpstreamFault(502, "upstream_connection_error",
                                f"upstream '{upstream.name}' broke the connection: "
                                f"{type(exc).__name__} {exc}".strip()) from None

    @staticmethod
    async def read(upstream: Upstream, resp: aiohttp.ClientResponse) -> bytes:
        """The whole body, with the same fault mapping as `send`."""
        try:
            return await resp.read()
        except TimeoutError as exc:
            raise UpstreamFault(504, "upstream_timeout", timeout_reason(
                upstream, exc, f"stopped sending for {upstream.timeout_s:g}s mid-answer")) from None
        except aiohttp.ClientError as exc:
            raise UpstreamFault(502, "upstream_connection_error",
                                f"upstream '{upstream.name}' broke the connection mid-answer: "
                                f"{type(exc).__name__}") from None
        finally:
            resp.release()


def timeout_reason(upstream: Upstream, exc: TimeoutError, idle: str) -> str:
    """Which deadline ran out, in one line; `idle` says what the upstream did if it was the idle
    one. aiohttp raises `ConnectionTimeoutError` (connect), `SocketTimeoutError` (idle: no byte
    within sock_read) and a bare `TimeoutError` when the total deadline ends the request."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"cannot connect to upstream '{upstream.name}' within {upstream.connect_timeout_s:g}s"
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return f"upstream '{upstream.name}' {idle}"
    return f"upstream '{upstream.name}' did not finish within its total deadline of {upstream.total_timeout_s:g}s"


def response_headers(resp: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    """The upstream's headers worth relaying (rate limits, request ids, ...), content type last."""
    out = [(k.lower().encode("latin-1"), v.encode("latin-1"))
           for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP]
    out.append((b"content-type", resp.headers.get("content-type", "application/json").encode("latin-1")))
    return out
