"""Wire converters between the APIs agents speak and the canonical chat-completions shape.

    chat        OpenAI chat completions: the canonical shape itself
    responses   OpenAI Responses (`POST /v1/responses`): `responses.py`
    messages    Anthropic Messages (`POST /v1/messages`): `anthropic.py`

Each converter module is pure (no I/O) and item-level reusable: one public function per item or
block kind, so an importer that meets a Responses item or an Anthropic block in a trace reads it
with the same code as the gateway. This module dispatches on the API's name, for the readers that
hold a recorded exchange (`capture/recording/exchange.py`) and the swap modes.
"""

from __future__ import annotations

from typing import Any, Literal

from fledgling.calls import Response, Usage
from fledgling.capture.apis import anthropic, responses

Api = Literal["chat", "responses", "messages"]
APIS: tuple[Api, ...] = ("chat", "responses", "messages")
PATHS: dict[Api, str] = {"chat": "/chat/completions", "responses": "/responses", "messages": "/messages"}


def api_of(value: Any) -> Api:
    """The API a recorded exchange names in its metadata (`chat` when it names none)."""
    return value if value in ("responses", "messages") else "chat"


def to_chat_request(api: Api, body: dict[str, Any], notes: list[str] | None = None) -> dict[str, Any]:
    """The canonical chat-completions request for a request body in `api`'s shape."""
    if api == "responses":
        return responses.request_to_chat(body, notes)
    if api == "messages":
        return anthropic.request_to_chat(body, notes)
    return body


def is_answer(api: Api, body: Any) -> bool:
    """Whether a 200 body is an answer of `api` (rather than something malformed)."""
    if not isinstance(body, dict):
        return False
    if api == "responses":
        return body.get("object") == "response" and isinstance(body.get("output"), list)
    if api == "messages":
        return body.get("type") == "message" and isinstance(body.get("content"), list)
    return isinstance(body.get("choices"), list)


def parse_answer(api: Api, body: dict[str, Any], notes: list[str] | None = None
                 ) -> tuple[Response, Usage, str | None, dict[str, int]]:
    """A non-streamed answer of `api` -> (answer, usage, model, usage detail). `ValueError` when
    it cannot be read. Only for `responses` and `messages` (chat has its own reader)."""
    if api == "responses":
        return responses.response_to_canonical(body, notes)
    return anthropic.message_to_canonical(body, notes)


def parse_stream(api: Api, events: list[dict[str, Any]], notes: list[str] | None = None
                 ) -> tuple[Response, Usage, str | None, dict[str, int]]:
    """A streamed answer's events (the SSE `data` payloads) of `api` -> as `parse_answer`."""
    if api == "responses":
        return responses.events_to_canonical(events, notes)
    return anthropic.events_to_canonical(events, notes)
