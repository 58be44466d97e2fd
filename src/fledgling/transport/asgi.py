"""How the gateway answers on its own behalf: raw ASGI sends and OpenAI-shaped errors.

Errors follow OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so every
OpenAI client turns them into its usual exceptions with our message; a caller of the Anthropic
Messages API (`api="messages"`) gets Anthropic's, `{"type": "error", "error": {"type", "message"}}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

JSON = b"application/json"


class Problem(Exception):
    """A request the gateway refuses before (or instead of) forwarding it."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                         404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                         529: "overloaded_error"}


def error_body(status: int, code: str, message: str, api: str = "chat") -> bytes:
    if api == "messages":
        return orjson.dumps({"type": "error", "error": {"type": ANTHROPIC_ERROR_TYPES.get(
            status, "invalid_request_error" if status < 500 else "api_error"),
                                                        "message": message}})
    kind = "invalid_request_error" if status < 500 else "upstream_error" if status in (502, 504) else "server_error"
    if status == 401:
        kind = "authentication_error"
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


async def send_bytes(send: Send, status: int, body: bytes, *, content_type: bytes = JSON,
                     headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """`headers` may carry their own content-type (relayed from upstream); then it wins."""
    hdrs = [(b"content-length", str(len(body)).encode()), *headers]
    if not any(k == b"content-type" for k, _ in hdrs):
        hdrs.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, obj: Any,
                    headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send_bytes(send, status, orjson.dumps(obj), headers=headers)


async def send_error(send: Send, status: int, code: str, message: str,
                     headers: Iterable[tuple[bytes, bytes]] = (), api: str = "chat") -> None:
    extra = list(headers)
    if status == 401:
        extra.append((b"www-authenticate", b'Bearer realm="fledgling"'))
    await send_bytes(send, status, error_body(status, code, message, api), headers=extra)


async def read_body(receive: Receive, limit: int, content_length: str | None) -> bytes:
    """The request body, refusing (413) past `limit` bytes without reading further."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise Problem(400, "invalid_content_length", "Content-Length is not a number") from None
        if declared > limit:
            raise Problem(413, "request_too_large",
                          f"request body is {declared} bytes; this gateway accepts at most {limit} "
                          "(raise [gateway] max_body_bytes to allow more)")
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise Problem(499, "client_disconnected", "the client went away")
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Problem(413, "request_too_large",
                          f"request body exceeds {limit} bytes (raise [gateway] max_body_bytes "
                          "to allow more)")
        chunks.append(chunk)
        if not msg.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
