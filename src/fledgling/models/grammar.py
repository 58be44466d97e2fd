"""Bounded JSON schemas: every answer a constrained grammar admits fits within the token cap.

A grammar built from a contract's schema lets strings, arrays and numbers grow without end, so
the token cap cuts a long answer into invalid JSON. `bound_schema` narrows the schema (never
widens it: whatever the bounded schema admits, the original admits too) until its longest
answer fits the cap, and `floor_tokens` says the smallest cap for which that is possible.

The worst case is counted in bytes, not in typical tokens: a constrained decoder may spell any
string one byte-level token at a time (a model with random weights does), so a token is at least
one byte of the answer, and one more token is kept for the stop token. What is narrowed:

- strings: at most `string_chars` characters (or the schema's own `maxLength`), none of them a
  quote, a backslash or a control character, so each costs at most four bytes (UTF-8); a
  `pattern` keeps its regex and costs its longest match; `format: email` becomes a bounded
  email pattern; fixed-width formats (date, uuid, ipv4) keep their format;
- arrays: at most `array_items` items (or the schema's own `maxItems`);
- integers and numbers: `minimum`/`maximum` bound their digits (numbers also carry at most six
  fraction digits in the grammar);
- optional properties and `anyOf` branches that do not fit are left out.

When the longest answer at these defaults is longer than the cap, the room is shared out in
proportion to what each part would have wanted. A schema part whose length cannot be bounded
(a value of any type, an unbounded pattern, `allOf`, recursion) raises `GrammarBoundError`,
naming it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from fledgling.errors import ContractError

STRING_CHARS = 64  # default longest string, in characters, when the schema sets none
ARRAY_ITEMS = 8  # default longest array when the schema sets none
INTEGER_DIGITS = 9  # default digits of an unbounded integer
NUMBER_DIGITS = 6  # default integer-part digits of an unbounded number
FRACTION_BYTES = 7  # "." and the six fraction digits xgrammar's bounded numbers allow
CHAR_BYTES = 4  # longest UTF-8 character
ESCAPED_CHAR_BYTES = 6  # a character a regex may match written as \uXXXX
STOP_TOKENS = 1  # the stop token the decoder emits after the answer
FIXED_FORMATS = {"date": 10, "uuid": 36, "ipv4": 15}
SAFE_CHARS = '[^"\\\\\\x00-\\x1f\\x7f]'  # no quote, backslash or control character: no escapes
_ANNOTATIONS = {"description", "title", "examples", "default", "$comment", "deprecated", "readOnly",
                "writeOnly"}


class GrammarBoundError(ContractError):
    """A schema's answers cannot be bounded (or not within the cap)."""


@dataclass(frozen=True)
class Separators:
    item: str = ", "
    key: str = ": "


@dataclass
class _Limits:
    seps: Separators
    string_chars: int
    array_items: int
    left_out: list[str] = field(default_factory=list)


def bound_schema(schema: dict[str, Any], max_tokens: int, *, separators: tuple[str, str] = (", ", ": "),
                 reserved: int = 0, string_chars: int = STRING_CHARS,
                 array_items: int = ARRAY_ITEMS) -> dict[str, Any]:
    """A schema admitting a subset of `schema`'s answers, each at most `max_tokens` tokens
    (stop token included), `reserved` bytes of fixed text around the answer aside."""
    return bound_schema_and_losses(schema, max_tokens, separators=separators, reserved=reserved,
                                   string_chars=string_chars, array_items=array_items)[0]


def bound_schema_and_losses(schema: dict[str, Any], max_tokens: int, *, separators: tuple[str, str] = (", ", ": "),
                            reserved: int = 0, string_chars: int = STRING_CHARS,
                            array_items: int = ARRAY_ITEMS) -> tuple[dict[str, Any], list[str]]:
    """`bound_schema`, and what the cap left out entirely (tools, anyOf branches, enum values,
    optional properties whose shortest form does not fit), named."""
    limits = _Limits(Separators(*separators), string_chars, array_items)
    node = _normalize(schema, _defs(schema), ())
    budget = max_tokens - STOP_TOKENS - reserved
    floor = _floor(node, limits)
    if budget < floor:
        raise GrammarBoundError(f"a cap of {max_tokens} tokens is below the schema's shortest answer "
                                f"({floor + STOP_TOKENS + reserved} tokens at worst); raise max_tokens")
    bounded, size = _fit(node, budget, limits)
    assert size <= budget
    return bounded, limits.left_out


def floor_tokens(schema: dict[str, Any], *, separators: tuple[str, str] = (", ", ": "), reserved: int = 0) -> int:
    """The smallest cap `bound_schema` accepts for `schema`: its shortest answer, counted at worst."""
    limits = _Limits(Separators(*separators), STRING_CHARS, ARRAY_ITEMS)
    return _floor(_normalize(schema, _defs(schema), ()), limits) + STOP_TOKENS + reserved


def longest_bytes(schema: dict[str, Any], *, separators: tuple[str, str] = (", ", ": ")) -> int:
    """The longest answer (in bytes) a bounded schema admits; for a schema `bound_schema` made."""
    limits = _Limits(Separators(*separators), STRING_CHARS, ARRAY_ITEMS)
    return _want(_normalize(schema, _defs(schema), ()), limits)


# normalising: resolve local $refs, split type lists into anyOf, refuse what cannot be bounded

def _defs(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema.get("definitions", {}), **schema.get("$defs", {})}


def _normalize(schema: Any, defs: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    where = "/".join(path) or "the root"
    if not isinstance(schema, dict):
        raise GrammarBoundError(f"{where}: a schema that is not an object cannot be bounded")
    if "$ref" in schema:
        ref = schema["$ref"]
        local = isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/"))
        name = ref.rsplit("/", 1)[-1] if local else None
        if name is None or name not in defs:
            raise GrammarBoundError(f"{where}: reference {ref!r} is not a local definition")
        if f"$ref:{name}" in path:
            raise GrammarBoundError(f"{where}: recursive reference {ref!r} has no longest answer")
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _normalize({**defs[name], **rest}, defs, (*path, f"$ref:{name}"))
    node = {k: v for k, v in schema.items() if k not in ("$defs", "definitions", "$schema")}
    if "allOf" in node or "not" in node or "if" in node:
        raise GrammarBoundError(f"{where}: allOf/not/if cannot be bounded")
    for key in ("anyOf", "oneOf"):
        if key in node:
            extra = set(node) - {key} - _ANNOTATIONS
            if extra:
                raise GrammarBoundError(f"{where}: {key} beside {sorted(extra)} cannot be bounded")
            return {key: [_normalize(v, defs, (*path, f"{key}{i}")) for i, v in enumerate(node[key])]}
    if "const" in node or "enum" in node:
        return node
    kind = node.get("type")
    if isinstance(kind, list):
        rest = {k: v for k, v in node.items() if k != "type"}
        return {"anyOf": [_normalize({**rest, "type": t}, defs, path) for t in kind]}
    if kind is None:
        if "properties" in node:
            kind = "object"
        elif "items" in node:
            kind = "array"
        else:
            raise GrammarBoundError(f"{where}: a value of any type cannot be bounded")
        node["type"] = kind
    if kind == "object":
        props = node.get("properties", {})
        node["properties"] = {k: _normalize(v, defs, (*path, k)) for k, v in props.items()}
        if int(node.get("minProperties", 0)) > len(node.get("required", [])):
            raise GrammarBoundError(f"{where}: minProperties beyond the required properties cannot be bounded")
        missing = [k for k in node.get("required", []) if k not in props]
        if missing:
            raise GrammarBoundError(f"{where}: required {missing} have no schema")
    elif kind == "array":
        if "prefixItems" in node:
            raise GrammarBoundError(f"{where}: prefixItems cannot be bounded")
        if node.get("maxItems") != 0:
            node["items"] = _normalize(node.get("items", {}), defs, (*path, "items"))
    elif kind == "string":
        if "format" in node and node["format"] not in FIXED_FORMATS and node["format"] != "email":
            raise GrammarBoundError(f"{where}: format {node['format']!r} cannot be bounded")
        if "pattern" in node and _pattern_width(node["pattern"]) is None:
            raise GrammarBoundError(f"{where}: pattern {node['pattern']!r} has no longest match")
    elif kind not in ("integer", "number", "boolean", "null"):
        raise GrammarBoundError(f"{where}: unknown type {kind!r}")
    return node


# sizes: the shortest bounded form (_floor), the longest at the defaults (_want), a fit (_fit)

def _literal_bytes(value: Any, seps: Separators) -> int:
    return max(len(json.dumps(value, ensure_ascii=a, separators=(seps.item, seps.key)).encode())
               for a in (True, False))


def _key_bytes(key: str, seps: Separators) -> int:
    return _literal_bytes(key, seps) + len(seps.key)


def _pattern_width(pattern: str) -> tuple[int, int] | None:
    """(shortest, longest) match of a regex in characters, None when unbounded or unreadable."""
    try:
        parsed = re._parser.parse(pattern.removeprefix("^").removesuffix("$"))  # type: ignore[attr-defined]
        lo, hi = parsed.getwidth()
    except (re.error, AttributeError, TypeError):
        return None
    return None if hi >= 65535 else (lo, hi)


def _pattern_char_bytes(pattern: str) -> int:
    """Bytes one matched character costs: 1 when the regex only matches printable ASCII other
    than a quote or backslash, else the worst escaped character."""
    if pattern.removeprefix("^").startswith(SAFE_CHARS):
        return CHAR_BYTES
    try:
        parsed = re._parser.parse(pattern)  # type: ignore[attr-defined]
    except (re.error, AttributeError):
        return ESCAPED_CHAR_BYTES
    return 1 if _plain_ascii(parsed) else ESCAPED_CHAR_BYTES


def _plain_ascii(items: Any) -> bool:
    """Whether a parsed regex matches only printable ASCII characters other than `"` and `\\`."""
    c = re._constants  # type: ignore[attr-defined]

    def plain(code: int) -> bool:
        return 0x20 <= code < 0x7f and chr(code) not in '"\\'

    for op, arg in items:
        if op is c.LITERAL:
            ok = plain(arg)
        elif op is c.IN:
            ok = all((o is c.LITERAL and plain(a)) or (o is c.RANGE and plain(a[0]) and plain(a[1]))
                     or (o is c.CATEGORY and a is c.CATEGORY_DIGIT) for o, a in arg)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            ok = _plain_ascii(arg[2])
        elif op is c.SUBPATTERN:
            ok = _plain_ascii(arg[-1])
        elif op is c.BRANCH:
            ok = all(_plain_ascii(b) for b in arg[1])
        else:
            ok = op is c.AT
        if not ok:
            return False
    return True


def _string_chars(node: dict[str, Any], limits: _Limits) -> tuple[int, int]:
    lo = int(node.get("minLength", 0))
    hi = int(node["maxLength"]) if "maxLength" in node else max(lo, limits.string_chars)
    return lo, hi


def _int_range(node: dict[str, Any], integer: bool) -> tuple[float | None, float | None]:
    lo = node.get("minimum", node.get("exclusiveMinimum"))
    hi = node.get("maximum", node.get("exclusiveMaximum"))
    if integer:
        lo = None if lo is None else math.ceil(lo)
        hi = None if hi is None else math.floor(hi)
    return lo, hi


def _digits_range(node: dict[str, Any], digits: int) -> tuple[float, float] | None:
    """The schema's range cut to `digits` integer digits, None when they do not meet."""
    integer = node["type"] == "integer"
    lo, hi = _int_range(node, integer)
    top = 10 ** digits - 1
    cut_lo = -top if lo is None else max(lo, -top)
    cut_hi = top if hi is None else min(hi, top)
    return (cut_lo, cut_hi) if cut_lo <= cut_hi else None


def _number_bytes(node: dict[str, Any], span: tuple[float, float]) -> int:
    lo, hi = span
    widest = max(abs(lo), abs(hi))
    digits = len(str(int(widest)))
    sign = 1 if lo < 0 else 0
    return sign + digits + (0 if node["type"] == "integer" else FRACTION_BYTES)


def _min_digits(node: dict[str, Any]) -> int:
    for digits in range(1, 20):
        if _digits_range(node, digits) is not None:
            return digits
    raise GrammarBoundError("a number's bounds need more than 19 digits")


def _own_digits(node: dict[str, Any]) -> int:
    """Digits the schema's own bounds allow, or the default when a side is open."""
    lo, hi = _int_range(node, node["type"] == "integer")
    default = INTEGER_DIGITS if node["type"] == "integer" else NUMBER_DIGITS
    if lo is None or hi is None:
        return max(default, _min_digits(node))
    return max(1, len(str(int(max(abs(lo), abs(hi))))))


def _floor(node: dict[str, Any], limits: _Limits) -> int:
    seps = limits.seps
    for key in ("anyOf", "oneOf"):
        if key in node:
            return min(_floor(v, limits) for v in node[key])
    if "const" in node:
        return _literal_bytes(node["const"], seps)
    if "enum" in node:
        return min(_literal_bytes(v, seps) for v in node["enum"])
    kind = node["type"]
    if kind == "object":
        required = [k for k in node["properties"] if k in node.get("required", [])]
        parts = [_key_bytes(k, seps) + _floor(node["properties"][k], limits) for k in required]
        return 2 + sum(parts) + max(0, len(parts) - 1) * len(seps.item)
    if kind == "array":
        n = int(node.get("minItems", 0))
        return 2 if n == 0 else 2 + n * _floor(node["items"], limits) + (n - 1) * len(seps.item)
    if kind == "string":
        return _string_floor(node)
    if kind in ("integer", "number"):
        span = _digits_range(node, _min_digits(node))
        assert span is not None
        return _number_bytes(node, span)
    return 5 if kind == "boolean" else 4


def _string_floor(node: dict[str, Any]) -> int:
    if node.get("format") in FIXED_FORMATS:
        return 2 + FIXED_FORMATS[node["format"]]
    if node.get("format") == "email":
        return 2 + _email_bytes(1)
    if "pattern" in node:
        width = _pattern_width(node["pattern"])
        assert width is not None
        return 2 + width[1] * _pattern_char_bytes(node["pattern"])
    return 2 + int(node.get("minLength", 0)) * CHAR_BYTES


def _shape(node: dict[str, Any], limits: _Limits) -> int:
    """The shortest answer that keeps every value the schema names: `_floor`, but each enum at its
    longest value and each number at its own digits."""
    seps = limits.seps
    for key in ("anyOf", "oneOf"):
        if key in node:
            return max(_shape(v, limits) for v in node[key])
    if "const" in node or "enum" in node or node.get("type") in ("integer", "number", "boolean", "null"):
        return _want(node, limits)
    if node["type"] == "object":
        required = [k for k in node["properties"] if k in node.get("required", [])]
        parts = [_key_bytes(k, seps) + _shape(node["properties"][k], limits) for k in required]
        return 2 + sum(parts) + max(0, len(parts) - 1) * len(seps.item)
    if node["type"] == "array":
        n = int(node.get("minItems", 0))
        return 2 if n == 0 else 2 + n * _shape(node["items"], limits) + (n - 1) * len(seps.item)
    return _floor(node, limits)


def _want(node: dict[str, Any], limits: _Limits) -> int:
    """The longest answer at the defaults (or at the schema's own bounds where it sets them)."""
    seps = limits.seps
    for key in ("anyOf", "oneOf"):
        if key in node:
            return max(_want(v, limits) for v in node[key])
    if "const" in node or "enum" in node:
        return max(_literal_bytes(v, seps) for v in node.get("enum", [node.get("const")]))
    kind = node["type"]
    if kind == "object":
        parts = [_key_bytes(k, seps) + _want(v, limits) for k, v in node["properties"].items()]
        return 2 + sum(parts) + max(0, len(parts) - 1) * len(seps.item)
    if kind == "array":
        n = _array_items(node, limits)
        return 2 if n == 0 else 2 + n * _want(node["items"], limits) + (n - 1) * len(seps.item)
    if kind == "string":
        if node.get("format") == "email" and "pattern" not in node:
            return 2 + _email_bytes(_email_room(node))
        if "pattern" in node or "format" in node:
            return _string_floor(node)
        return 2 + _string_chars(node, limits)[1] * CHAR_BYTES
    if kind in ("integer", "number"):
        span = _digits_range(node, _own_digits(node))
        assert span is not None
        return _number_bytes(node, span)
    return 5 if kind == "boolean" else 4


def _array_items(node: dict[str, Any], limits: _Limits) -> int:
    lo = int(node.get("minItems", 0))
    return int(node["maxItems"]) if "maxItems" in node else max(lo, limits.array_items)


def _fit(node: dict[str, Any], budget: int, limits: _Limits) -> tuple[dict[str, Any], int]:
    """(bounded schema, its longest answer in bytes <= budget); budget >= _floor(node)."""
    for key in ("anyOf", "oneOf"):
        if key in node:
            limits.left_out += [_branch_name(v, key, i) for i, v in enumerate(node[key])
                                if _floor(v, limits) > budget]
            fits = [_fit(v, budget, limits) for v in node[key] if _floor(v, limits) <= budget]
            return {key: [s for s, _ in fits]}, max(size for _, size in fits)
    if "const" in node or "enum" in node:
        if "enum" in node:
            kept = [v for v in node["enum"] if _literal_bytes(v, limits.seps) <= budget]
            limits.left_out += [f"enum value {v!r}" for v in node["enum"] if v not in kept]
            node = {**node, "enum": kept}
        return node, _want(node, limits)
    kind = node["type"]
    if kind == "object":
        return _fit_object(node, budget, limits)
    if kind == "array":
        return _fit_array(node, budget, limits)
    if kind == "string":
        return _fit_string(node, budget, limits)
    if kind in ("integer", "number"):
        digits = _own_digits(node)
        while True:
            span = _digits_range(node, digits)
            if span is not None and _number_bytes(node, span) <= budget:
                break
            digits -= 1
        return _cut_range(node, span), _number_bytes(node, span)
    return node, _want(node, limits)


def _cut_range(node: dict[str, Any], span: tuple[float, float]) -> dict[str, Any]:
    """The number schema with its range cut to `span` (a side not cut keeps its own keywords)."""
    bounds = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
    out = {k: v for k, v in node.items() if k not in bounds}
    lo, hi = _int_range(node, node["type"] == "integer")
    for side, own, cut, keys in (("minimum", lo, span[0], bounds[:2]), ("maximum", hi, span[1], bounds[2:])):
        if own is not None and cut == own:
            out.update({k: node[k] for k in keys if k in node})
        else:
            out[side] = int(cut) if cut == int(cut) else cut
    return out


def _branch_name(node: dict[str, Any], key: str, index: int) -> str:
    """A tool call's branch by its tool's name, any other by its place."""
    name = (node.get("properties") or {}).get("name", {}).get("const")
    if isinstance(name, str):
        return f"tool {name!r}"
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        return f"{key} branch {index} (a list of {node.get('minItems', 0)} or more)"
    return f"{key} branch {index}"


def _fit_string(node: dict[str, Any], budget: int, limits: _Limits) -> tuple[dict[str, Any], int]:
    if "pattern" in node or node.get("format") in FIXED_FORMATS:
        return node, _string_floor(node)
    if node.get("format") == "email":
        room = max(1, min(_email_room(node), (budget - 2 - _email_bytes(1)) // 2 + 1))
        out = {k: v for k, v in node.items() if k not in ("format", "minLength", "maxLength")}
        out["pattern"] = _email_pattern(room)
        return out, 2 + _email_bytes(room)
    lo, hi = _string_chars(node, limits)
    hi = max(lo, min(hi, (budget - 2) // CHAR_BYTES))
    out = {k: v for k, v in node.items() if k not in ("minLength", "maxLength")}
    out["pattern"] = f"^{SAFE_CHARS}{{{lo},{hi}}}$"
    return out, 2 + hi * CHAR_BYTES


def _email_room(node: dict[str, Any]) -> int:
    return max(1, min(int(node.get("maxLength", 2 * 32 + 6)) - 6, 2 * 32) // 2)


def _email_pattern(room: int) -> str:
    """Local part and domain label of at most `room` characters each, a 2-6 letter top level."""
    return f"^[A-Za-z0-9._%+-]{{1,{room}}}@[A-Za-z0-9-]{{1,{room}}}\\.[A-Za-z]{{2,6}}$"


def _email_bytes(room: int) -> int:
    return room + 1 + room + 1 + 6


def _fit_array(node: dict[str, Any], budget: int, limits: _Limits) -> tuple[dict[str, Any], int]:
    sep = len(limits.seps.item)
    lo, hi = int(node.get("minItems", 0)), _array_items(node, limits)
    if hi == 0:
        return {**node, "maxItems": 0}, 2
    item = node["items"]
    floor, want = _floor(item, limits), _want(item, limits)
    n = max(lo, min(hi, (budget - 2 + sep) // (want + sep)))
    if n == 0 and budget - 2 >= floor:
        n = 1
    if n == 0:
        return {**node, "maxItems": 0, "items": _fit(item, floor, limits)[0]}, 2
    per_item = min(want, (budget - 2 - (n - 1) * sep) // n)
    before = len(limits.left_out)
    bounded, size = _fit(item, per_item, limits)
    limits.left_out[before:] = [f"{x} (in lists of {n})" if n > 1 else x for x in limits.left_out[before:]]
    return {**node, "items": bounded, "maxItems": n}, 2 + n * size + (n - 1) * sep


def _water_fill(desires: dict[str, int], room: int) -> dict[str, int]:
    """Share `room` so that small wants are met in full and large ones are cut to one level (an
    enum keeps all its values before a free-text field gets its last characters)."""
    give, left = {}, room
    pending = sorted(desires, key=lambda k: desires[k])
    while pending:
        level = left // len(pending)
        k = pending[0]
        if desires[k] <= level:
            give[k] = desires[k]
            left -= desires[k]
            pending.pop(0)
            continue
        for k in pending:
            give[k] = level
        break
    return give


def _fit_object(node: dict[str, Any], budget: int, limits: _Limits) -> tuple[dict[str, Any], int]:
    seps, sep = limits.seps, len(limits.seps.item)
    props = node["properties"]
    required = [k for k in props if k in node.get("required", [])]
    optional = [k for k in props if k not in required]
    floors = {k: _floor(props[k], limits) for k in props}
    wants = {k: max(floors[k], _want(props[k], limits)) for k in props}
    shapes = {k: min(wants[k], max(floors[k], _shape(props[k], limits))) for k in props}
    room = budget - _floor(node, limits)
    # the contract's shape first: every enum value of the required properties, then every optional
    # property that fits (at its shape, else its shortest), then the lengths, shared out
    lift = _water_fill({k: shapes[k] - floors[k] for k in required}, room)
    give = {k: floors[k] + lift[k] for k in required}
    room -= sum(lift.values())
    kept = list(required)
    for k in optional:
        for size in (shapes[k], floors[k]):
            cost = _key_bytes(k, seps) + size + (sep if kept else 0)
            if cost <= room:
                room -= cost
                give[k] = size
                kept.append(k)
                break
    extra = _water_fill({k: wants[k] - give[k] for k in kept}, room)
    give = {k: give[k] + extra[k] for k in kept}
    limits.left_out += [f"optional property {k!r}" for k in optional if k not in kept]
    fitted = {k: _fit(props[k], give[k], limits) for k in kept}
    order = [k for k in props if k in fitted]
    size = 2 + sum(_key_bytes(k, seps) + fitted[k][1] for k in order) + max(0, len(order) - 1) * sep
    out = {k: v for k, v in node.items() if k not in ("patternProperties", "unevaluatedProperties")}
    out |= {"properties": {k: fitted[k][0] for k in order}, "additionalProperties": False}
    return out, size
