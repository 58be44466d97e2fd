"""`POST /v1/traces`: an OTLP/HTTP receiver for OpenTelemetry GenAI spans.

Agents already instrumented with OpenTelemetry can export to the gateway instead of (or beside)
calling through it; their LLM spans become calls in the same spool. The span -> `Call` mapping
is the otel importer's, so a span means the same whether it arrives live or from a file.
"""

from __future__ import annotations

import asyncio
import zlib

import orjson

from fledgling.calls import Call
from fledgling.capture.otel import calls_from_otlp_json, calls_from_otlp_protobuf
from fledgling.errors import InputError
from fledgling.payload import storable_problem
from fledgling.transport.asgi import Problem

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def decode_calls(body: bytes, content_type: str, content_encoding: str | None, limit: int) -> list[Call]:
    """The calls in one export request; `Problem` (400/413/415) when it cannot be read."""
    if content_encoding and content_encoding.lower() == "gzip":
        try:
            body = _gunzip(body, limit)
        except (OSError, EOFError, zlib.error) as exc:
            raise Problem(400, "invalid_body", f"Content-Encoding is gzip but the body is not: {exc}") from None
    kind = content_type.split(";", 1)[0].strip().lower()
    try:
        if kind == PROTOBUF:
            return _storable(calls_from_otlp_protobuf(body))
        if kind == JSON:
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise Problem(400, "invalid_json", f"OTLP/JSON body is not valid JSON: {exc}") from None
            if (problem := storable_problem(payload, "the OTLP/JSON body")) is not None:
                raise Problem(400, "unstorable_body", problem)
            return _storable(calls_from_otlp_json(payload))
    except InputError as exc:
        raise Problem(400, "invalid_otlp", str(exc)) from None
    raise Problem(415, "unsupported_media_type",
                  f"Content-Type '{content_type}' is not OTLP/HTTP; send {PROTOBUF} or {JSON}")


def _storable(calls: list[Call]) -> list[Call]:
    """Refuse the export (400) when a span's call holds what the store cannot keep: attribute
    values are JSON text parsed again, so the body's own check does not cover them."""
    for call in calls:
        if (problem := storable_problem(call.model_dump(), f"span {call.id}")) is not None:
            raise Problem(400, "unstorable_body", problem)
    return calls


async def decode_calls_off_loop(body: bytes, content_type: str, content_encoding: str | None,
                                limit: int) -> list[Call]:
    """Same, in a worker thread: a large export must not stall the chat traffic."""
    return await asyncio.to_thread(decode_calls, body, content_type, content_encoding, limit)


def empty_response(content_type: str) -> tuple[bytes, bytes]:
    """An `ExportTraceServiceResponse` with no partial failure, in the request's encoding."""
    if content_type.split(";", 1)[0].strip().lower() == PROTOBUF:
        return b"", PROTOBUF.encode()
    return b"{}", JSON.encode()


def _gunzip(body: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    out = d.decompress(body, limit + 1)
    if len(out) > limit:
        raise Problem(413, "request_too_large", f"decompressed OTLP body exceeds {limit} bytes")
    if not d.eof:
        raise EOFError("truncated gzip stream")
    return out

