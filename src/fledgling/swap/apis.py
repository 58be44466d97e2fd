"""An answer the gateway makes itself, in the caller's API: the candidate's (rendered from the
canonical shape), or a buffered LLM answer that goes to a client that asked for a stream.

    chat        a chat.completion, or its chunks (transport/sse.py)
    responses   a Responses `response`, or its typed events (`response.created` ... `.completed`)
    messages    an Anthropic `message`, or its events (`message_start` ... `message_stop`)

The renderers are the wire converters' (`fledgling.capture.apis`); this module picks one and
sends its bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

from fledgling.calls import Response, Usage
from fledgling.capture.apis import anthropic, api_of, is_answer, parse_answer, parse_stream, responses
from fledgling.capture.recording.exchange import Exchange, parse_completion, reassemble_stream, stream_events
from fledgling.transport.asgi import Send, send_bytes
from fledgling.transport.sse import stream_chunks

SSE = b"text/event-stream"


def render(api: str, answer: Response, usage: Usage, *, model: str, call_id: str,
           wire: dict[str, Any]) -> dict[str, Any]:
    """The candidate's canonical answer as a non-chat API's answer object."""
    stem = call_id.removeprefix("call_")
    if api == "responses":
        return responses.render_response(answer, response_id=f"resp_{stem}", model=model, usage=usage, request=wire)
    return anthropic.render_message(answer, message_id=f"msg_{stem}", model=model, usage=usage)


async def send_answer(send: Send, api: str, body: dict[str, Any], request: dict[str, Any],
                      headers: list[tuple[bytes, bytes]]) -> None:
    """An answer object to the client: as JSON, or as the stream its API would send."""
    if request.get("stream") is not True:
        await send_bytes(send, 200, orjson.dumps(body), headers=headers)
        return
    if api == "responses":
        pieces = responses.encode_events(responses.render_events(body))
    elif api == "messages":
        pieces = anthropic.encode_events(anthropic.render_events(body))
    else:
        choice = body["choices"][0]
        message = {k: v for k, v in choice["message"].items() if k in ("role", "content", "tool_calls")}
        include = bool((request.get("stream_options") or {}).get("include_usage"))
        pieces = stream_chunks(body["id"], body["model"], message, body.get("usage") if include else None)
    await send({"type": "http.response.start", "status": 200, "headers": [*headers, (b"content-type", SSE)]})
    for piece in pieces[:-1]:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": pieces[-1], "more_body": False})


def recorded_answer(api: str, ex: Exchange) -> Response | None:
    """The LLM's answer as recorded on the exchange (plain or streamed, in its API), or None."""
    if ex.error is not None:
        return None
    kind = api_of(api)
    try:
        if ex.stream_chunks is not None:
            if kind == "chat":
                return reassemble_stream(ex.stream_chunks)[0]
            return parse_stream(kind, stream_events(ex.stream_chunks))[0]
        if ex.response is not None:
            if kind == "chat":
                return parse_completion(ex.response)[0]
            return parse_answer(kind, ex.response)[0] if is_answer(kind, ex.response) else None
    except (ValueError, TypeError):
        return None
    return None
