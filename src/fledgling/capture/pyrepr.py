"""Python-repr text -> values, read safely (`ast`, never `eval`).

Some tracing integrations log `str(obj)` instead of JSON: Agno logs each message as a pydantic
repr (`role='user' content='hi' tool_calls=None ... metrics=MessageMetrics(...)`), some exports
hold dicts printed by Python (`{'input': 5, 'output': 94}`). Only literals are read; a field
whose value is not a literal (an object's repr) is left out and named in `skipped`.
"""

from __future__ import annotations

import ast
import io
import tokenize
from typing import Any

MAX_TEXT = 2_000_000
_NOTHING = object()
_OPEN, _CLOSE = "([{", ")]}"


def literal(text: str) -> Any:
    """The value of a Python literal (dict, list, str, number, True/False/None), or `_NOTHING`."""
    if len(text) > MAX_TEXT:
        return _NOTHING
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _NOTHING


def is_nothing(value: Any) -> bool:
    return value is _NOTHING


def keyword_fields(text: str) -> tuple[dict[str, Any], list[str]] | None:
    """`name=value name=value ...` (a pydantic repr) -> ({name: value}, names not literal),
    or None when the text is not of that form."""
    if len(text) > MAX_TEXT or "=" not in text:
        return None
    starts = _line_starts(text)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    depth = 0
    keys: list[tuple[str, int, int]] = []  # (name, where the name starts, where its value starts)
    significant = [t for t in tokens if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                                                       tokenize.DEDENT, tokenize.ENDMARKER, tokenize.COMMENT)]
    for i, tok in enumerate(significant):
        if tok.type == tokenize.OP and tok.string in _OPEN:
            depth += 1
        elif tok.type == tokenize.OP and tok.string in _CLOSE:
            depth -= 1
        elif depth == 0 and tok.type == tokenize.NAME and i + 1 < len(significant):
            nxt = significant[i + 1]
            if nxt.type == tokenize.OP and nxt.string == "=":
                keys.append((tok.string, _offset(starts, tok.start), _offset(starts, nxt.end)))
    if not keys or significant[0].type != tokenize.NAME or _offset(starts, significant[0].start) != keys[0][1]:
        return None
    fields: dict[str, Any] = {}
    skipped: list[str] = []
    for n, (name, _, value_start) in enumerate(keys):
        value_end = keys[n + 1][1] if n + 1 < len(keys) else len(text)
        value = literal(text[value_start:value_end])
        if value is _NOTHING:
            skipped.append(name)
        else:
            fields[name] = value
    return fields, skipped


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    return starts


def _offset(starts: list[int], pos: tuple[int, int]) -> int:
    row, col = pos
    return starts[row - 1] + col if row - 1 < len(starts) else len(starts)
