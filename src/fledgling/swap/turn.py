"""One request on its way through the gateway: what arrived, where it goes, what was seen of it
(the exchange), and the way back to the client.

`api` is the API the caller speaks (`chat`, `responses`, `messages`); `request` is always the
canonical chat-completions request (what the task, the candidate and the enforcer read), and
`wire` the caller's own body (what goes upstream; the same dict for chat).

The turn holds back the response's last message until the call is handed to the recorder
(`close`), so a client that has read its whole answer knows the call is recorded or on its way:
nothing about the exchange can change after the client saw the end of it. (A stream's last
message carries its `data: [DONE]`, where SSE clients stop reading.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fledgling.capture.recording.exchange import Exchange
from fledgling.swap.router import Route
from fledgling.transport.asgi import Receive, Send

CALL_ID_HEADER = b"x-fledgling-call-id"


@dataclass
class Turn:
    route: Route
    body: bytes
    request: dict[str, Any]
    headers: dict[str, str]
    caller_auth: str | None
    exchange: Exchange
    receive: Receive
    client_send: Send
    started: float = field(default_factory=time.perf_counter)
    api: str = "chat"
    wire: dict[str, Any] | None = None
    strip_usage: bool = False  # the gateway asked for the stream's usage; the client did not
    _last: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def call_header(self) -> tuple[bytes, bytes]:
        return (CALL_ID_HEADER, self.exchange.id.encode())

    @property
    def wire_request(self) -> dict[str, Any]:
        return self.request if self.wire is None else self.wire

    @property
    def streaming(self) -> bool:
        """The client asked for a stream."""
        return self.request.get("stream") is True

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    async def send(self, message: dict[str, Any]) -> None:
        """ASGI send, except that the response's last message waits for `close`."""
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self._last = message
            return
        await self.client_send(message)

    async def close(self) -> None:
        """Send the held-back last message (call it once the exchange is recorded)."""
        if self._last is not None:
            last, self._last = self._last, None
            await self.client_send(last)
