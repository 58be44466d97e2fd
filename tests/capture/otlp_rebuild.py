"""Rebuild a Langfuse trace export as the OTLP/JSON payload its spans arrived in.

Langfuse keeps each span's original attributes in `metadata.attributes` (and the resource's
and scope's beside them), so an observation becomes a span again: trace id and span id from
the observation (these are OTel ids already), times from start/end, attributes as they were.
Langfuse decoded some JSON attribute values into objects; they go back as JSON text, as the
emitter sent them. What Langfuse moved out of the attributes (e.g. `gen_ai.input.messages`,
`ai.prompt.messages` into `input`) is not in the rebuilt span.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


def any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return {"arrayValue": {"values": [{"stringValue": v} for v in value]}}
    if isinstance(value, (dict, list)):
        return {"stringValue": json.dumps(value)}
    return {"stringValue": "" if value is None else str(value)}


def key_values(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": any_value(v)} for k, v in attrs.items()]


def _nanos(iso: str) -> str:
    return str(int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1e9))


def payload(doc: dict[str, Any]) -> dict[str, Any]:
    """One `ExportTraceServiceRequest` with a span per observation that kept its attributes."""
    trace_id = doc["trace"]["id"]
    groups: dict[str, dict[str, Any]] = {}
    for obs in doc["observations"]:
        meta = obs.get("metadata")
        meta = json.loads(meta) if isinstance(meta, str) else meta or {}
        attrs = meta.get("attributes")
        if not isinstance(attrs, dict):
            continue
        resource = meta.get("resourceAttributes") or {}
        scope = meta.get("scope") or {}
        key = json.dumps([resource, scope.get("name")], sort_keys=True)
        group = groups.setdefault(key, {"resource": {"attributes": key_values(resource)},
                                        "scopeSpans": [{"scope": {"name": scope.get("name", "")}, "spans": []}]})
        span = {"traceId": trace_id, "spanId": obs["id"], "name": obs["name"], "kind": 1,
                "startTimeUnixNano": _nanos(obs["startTime"]),
                "attributes": key_values(attrs)}
        if obs.get("endTime"):
            span["endTimeUnixNano"] = _nanos(obs["endTime"])
        if obs.get("parentObservationId"):
            span["parentSpanId"] = obs["parentObservationId"]
        group["scopeSpans"][0]["spans"].append(span)
    return {"resourceSpans": list(groups.values())}
