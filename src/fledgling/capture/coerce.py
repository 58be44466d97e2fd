"""Loosely typed source fields -> the plain values a `Call` needs, or a `BadField` naming the field.

Exports from real tools are untidy: numbers arrive as strings, JSON objects arrive as JSON text,
timestamps come as ISO strings or nanoseconds. Every importer reads through these functions so
that a bad value always becomes the same kind of error, naming the field it was found in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

import orjson

from fledgling.calls import Call
from fledgling.payload import (
    MAX_JSON_DEPTH,
    json_depth,
    unstorable,  # noqa: F401  (re-exported for the importers)
)

INT32_MAX = 2**31 - 1
_LIMITS = {"task": 200, "trace_id": 200, "session_id": 200, "provider": 100, "model": 200}
_FINISH_REASON_MAX = 40


class BadField(Exception):
    """A value in a record cannot be used; the importer adds file and record and re-raises."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def maybe_json(value: Any, field: str | None = None) -> Any:
    """Decode a JSON string that holds an object or array; leave anything else as it is.

    Langfuse stores `input`, `output` and `metadata` as JSON text in some exports. Decoded text
    nested deeper than the store can write is refused, as it would be in the record itself.
    """
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "[") and text[-1:] in ("}", "]"):
            try:
                decoded = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                if exc.msg.startswith("depth limit"):
                    raise BadField(field, _TOO_DEEP_TEXT) from None
                return value
            if text.count("[") + text.count("{") > MAX_JSON_DEPTH and \
                    json_depth(decoded) > MAX_JSON_DEPTH:
                raise BadField(field, _TOO_DEEP_TEXT)
            return decoded
    return value


_TOO_DEEP_TEXT = f"holds JSON text nested deeper than {MAX_JSON_DEPTH} levels, which the store cannot keep"


def obj(value: Any, field: str, *, required: bool = False) -> dict[str, Any]:
    """A JSON object (possibly JSON-encoded); {} when absent and not required."""
    value = maybe_json(value, field)
    if value is None:
        if required:
            raise BadField(field, "is missing")
        return {}
    if not isinstance(value, dict):
        raise BadField(field, f"must be an object, got {type_name(value)}")
    return value


def array(value: Any, field: str) -> list[Any]:
    value = maybe_json(value, field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadField(field, f"must be an array, got {type_name(value)}")
    return value


def text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise BadField(field, f"must be a string, got {type_name(value)}")


@overload
def integer(value: Any, field: str, *, default: int) -> int: ...


@overload
def integer(value: Any, field: str, *, default: None = None) -> int | None: ...


def integer(value: Any, field: str, *, default: int | None = None) -> int | None:
    """A non-negative int; accepts "12" and 12.0 as sources send them."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise BadField(field, "must be an integer, got a boolean")
    if isinstance(value, str):
        try:
            value = float(value.strip()) if "." in value or "e" in value.lower() else int(value.strip())
        except ValueError:
            raise BadField(field, f"must be an integer, got {value[:40]!r}") from None
    if isinstance(value, float):
        if value != value or not value.is_integer():
            raise BadField(field, f"must be an integer, got {value}")
        value = int(value)
    if not isinstance(value, int):
        raise BadField(field, f"must be an integer, got {type_name(value)}")
    if not 0 <= value <= INT32_MAX:
        raise BadField(field, f"must be between 0 and {INT32_MAX}, got {value}")
    return value


def number(value: Any, field: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadField(field, "must be a number, got a boolean")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise BadField(field, f"must be a number, got {value[:40]!r}") from None
    if not isinstance(value, (int, float)):
        raise BadField(field, f"must be a number, got {type_name(value)}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise BadField(field, "must be a finite number")
    return value


def timestamp(value: Any, field: str) -> datetime:
    """ISO 8601 text (with `Z` or an offset; naive means UTC) or Unix seconds."""
    if isinstance(value, str):
        raw = value.strip()
        try:
            dt = datetime.fromisoformat(raw)
            return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
        except ValueError:
            raise BadField(field, f"must be an ISO 8601 time, got {raw[:40]!r}") from None
        except OverflowError:  # an offset that moves year 1 or 9999 out of range
            raise BadField(field, f"is out of the range of times, got {raw[:40]!r}") from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise BadField(field, f"is not a valid Unix time: {value}") from None
    if value is None:
        raise BadField(field, "is missing")
    raise BadField(field, f"must be an ISO 8601 time, got {type_name(value)}")


def unix_nanos(value: Any, field: str) -> datetime:
    """OTLP `*UnixNano` (a decimal string in JSON, an int in protobuf)."""
    if value is None:
        raise BadField(field, "is missing")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BadField(field, f"must be nanoseconds since the epoch, got {type_name(value)}")
    try:
        ns = int(value)
        return datetime.fromtimestamp(ns / 1e9, UTC)
    except (ValueError, OverflowError, OSError):
        raise BadField(field, f"must be nanoseconds since the epoch, got {str(value)[:40]!r}") from None


def type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def check_storable(call: Call) -> Call:
    """Reject what the store's columns cannot hold, so PostgreSQL and SQLite agree on bad input."""
    for name, limit in _LIMITS.items():
        value = getattr(call, name)
        if value is not None and len(value) > limit:
            raise BadField(name, f"is longer than {limit} characters")
    if call.response and call.response.finish_reason and len(call.response.finish_reason) > _FINISH_REASON_MAX:
        raise BadField("finish_reason", f"is longer than {_FINISH_REASON_MAX} characters")
    if call.response:
        for tc in call.response.tool_calls:
            if len(tc.name) > 200:
                raise BadField("tool_calls.name", "is longer than 200 characters")
    for name, document in _documents(call):
        if json_depth(document) > MAX_JSON_DEPTH:
            raise BadField(name, f"is nested deeper than {MAX_JSON_DEPTH} levels (with the JSON text "
                           "decoded inside it), which the store cannot keep")
    return call


def _documents(call: Call) -> list[tuple[str, Any]]:
    """The parts of a call the store writes as JSON documents, each about as deep as stored."""
    req = call.request
    docs: list[tuple[str, Any]] = [
        ("request", [req.messages, req.tools, req.tool_choice, req.response_format, req.model_extra]),
        ("metadata", call.metadata)]
    if call.response is not None:
        docs.append(("response", [call.response.model_extra]))
    if call.feedback is not None:
        docs.append(("feedback", [call.feedback.model_extra]))
    return docs
