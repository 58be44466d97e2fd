"""What the trace store can hold: limits every way in (gateway, OTLP, importers) checks first.

orjson reads JSON nested 1,024 levels deep but writes only 254, and a stored call wraps the
request in a few levels of its own; PostgreSQL cannot store U+0000 or a lone surrogate. A payload
that breaks either rule is refused where it arrives, with a reason, instead of being acknowledged
and then lost by the recorder.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MAX_JSON_DEPTH = 128
"""Deepest nesting accepted in a request, response or imported record (objects and arrays)."""


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of `value`, counting stops once it passes `limit` (iterative: no recursion
    error on a hostile payload)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    children: Iterable[Any]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    return json_depth(value, limit) > limit


def unstorable(value: Any) -> bool:
    """True when a string anywhere inside (keys included) holds U+0000 or a lone surrogate: text
    that PostgreSQL (and UTF-8 itself) cannot store."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
            try:
                item.encode()
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def storable_problem(value: Any, what: str = "the body") -> str | None:
    """A one-line reason why `value` cannot be stored, or None when it can."""
    if too_deep(value):
        return f"{what} is nested deeper than {MAX_JSON_DEPTH} levels, which the store cannot keep"
    if unstorable(value):
        return (f"{what} holds a NUL character (U+0000) or invalid Unicode, which the store "
                "cannot keep")
    return None


def parsed_storable_problem(raw: bytes, value: Any, what: str = "the body") -> str | None:
    """`storable_problem` for a `value` orjson parsed from `raw`, walking it only where the bytes
    leave a doubt: orjson refuses lone surrogates and raw control characters, so a NUL can only
    come from a `\\u0000` escape, and nesting cannot exceed the number of opening brackets."""
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and too_deep(value):
        return storable_problem(value, what)
    if b"\\u0000" in raw and unstorable(value):
        return storable_problem(value, what)
    return None
