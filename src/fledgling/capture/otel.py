"""OpenTelemetry GenAI spans (OTLP JSON or protobuf) -> `Call`s.

Filled in below; the two public functions are the agreed interface the gateway codes against.
"""

from __future__ import annotations

from typing import Any

from fledgling.calls import Call
from fledgling.errors import InputError


def calls_from_otlp_json(payload: dict[str, Any], *, source_name: str = "otel") -> list[Call]:
    """The LLM calls in one OTLP/JSON `ExportTraceServiceRequest` payload."""
    if not isinstance(payload, dict):
        raise InputError("an OTLP payload must be a JSON object with 'resourceSpans'",
                         source=source_name, field="resourceSpans")
    return []


def calls_from_otlp_protobuf(body: bytes) -> list[Call]:
    """The LLM calls in one protobuf-encoded `ExportTraceServiceRequest` body."""
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        raise InputError(f"not a protobuf ExportTraceServiceRequest ({exc})",
                         source="otlp protobuf body") from None
    return calls_from_otlp_json(MessageToDict(req), source_name="otlp protobuf body")
