"""Fixtures for the importer tests: the realistic payload files under fixtures/."""

from __future__ import annotations

import base64
import copy
from pathlib import Path

import pytest
from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def protobuf_body(payload: dict) -> bytes:
    """An OTLP/JSON payload as the protobuf body an OTLP/HTTP exporter sends (ids as bytes)."""
    pb = copy.deepcopy(payload)
    for rs in pb["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return ParseDict(pb, ExportTraceServiceRequest()).SerializeToString()
