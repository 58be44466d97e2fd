"""Copied values held to the conversation while they are decoded.

Curation learns which argument fields an agent copies from the conversation (an order id, an
email, a postal code: `fledgling.curate.grounding`, its `copy_rules`), and training writes those
rules into the model's manifest. A small model still invents such values now and then (an
email it has seen in other conversations, `ORD-123456` where the customer gave no order id),
and an invented value is a wrong call even when the grammar accepts it. A
`CopyGuard` follows one constrained answer as it is decoded, and while the decoder is inside
the string value of a copied field it only lets through tokens that keep the value one the
conversation holds, by the field's rule:

- `exact`: the value is written as the conversation writes it (runs of whitespace aside),
  starting where a word starts, and it may end only where a word ends there (so not
  `h@outlook.com` from "okafor.h@outlook.com", nor `jun_wal_ker@...` from "Arjun Walker");
- `verbatim`: the value's lower-cased letters and digits stay inside the conversation's, so
  every prefix of it is found and the value may end at any point;
- `digits`: each run of digits is one of the conversation's digit runs (the run being written a
  prefix of one); letters and punctuation are the model's (`ORD-204518` for "#204518"). The
  value may end when it is found (or is too short to be looked at).

An `exact` field whose schema says more of a value than being a string (`format: email`, a
`pattern`, an `enum`, a length) is held to the stretches of the conversation that are such a
value: the value being written must begin one of them, so a model writing an email cannot start
it with the customer's first name, which the conversation writes, but never as an email.

What the guard refuses is only the model's best choices: the decoder takes the most likely
token the grammar allows and the guard accepts (the `TOP_K` most likely first, then the rest);
when none is accepted, the grammar's best is taken (the guard never blocks an answer, nor makes
the grammar's answers fewer). Number fields are not held. The conversation is the request's
messages after a leading system message, as curation reads it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fledgling.curate.grounding import Haystack, looked_at, squeeze
from fledgling.models.constrained import request_tools
from fledgling.models.prompting import function_specs, output_schema

TOP_K = 2048  # the most likely grammar-allowed tokens the guard looks through before it yields
LONGEST_SPAN = 120  # characters: the longest stretch of the conversation a schema-checked value may be
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_RUNS = re.compile(r"\d+")


@dataclass
class _Frame:
    kind: str  # "obj" or "arr"
    key: str | None = None  # the key whose value comes next (objects)
    expects_key: bool = True


@dataclass
class JsonCursor:
    """Where a JSON answer being written is, one character at a time: the keys from the root to
    the current value (list positions left out) and, inside a string, its text so far. Text
    before the first `{` or `[` is skipped when it is a `<tool_call>` tag; an answer that starts
with anything else is text, and nothing in it is a value."""

    stack: list[_Frame] = field(default_factory=list)
    in_string: bool = False
    is_key: bool = False
    escaped: bool = False
    text: str = ""  # the string's characters so far (escapes as written)
    started: bool = False
    tagged: bool = False
    done: bool = False  # the JSON value ended, or the answer is text
    names: dict[int, str] = field(default_factory=dict)  # depth of a call object -> its tool name

    def feed(self, chars: str) -> None:
        for ch in chars:
            self._step(ch)

    def keys(self) -> list[str]:
        return [f.key for f in self.stack if f.kind == "obj" and f.key is not None]

    def in_value_string(self) -> bool:
        return self.in_string and not self.is_key

    def _step(self, ch: str) -> None:
        if self.done:
            return
        if self.in_string:
            if self.escaped:
                self.escaped = False
                self.text += ch
            elif ch == "\\":
                self.escaped = True
                self.text += ch
            elif ch == '"':
                self._end_string()
            else:
                self.text += ch
            return
        if not self.started:
            if ch in "{[":
                self.started = True
            elif not self.tagged and ch != "<":
                self.done = True  # a text answer (one never starts with `{`, `[` or `<`)
                return
            else:
                self.tagged = True  # inside `<tool_call>`: skipped up to the JSON
                return
        top = self.stack[-1] if self.stack else None
        if ch in "{[":
            self.stack.append(_Frame("obj" if ch == "{" else "arr"))
        elif ch in "}]":
            if self.stack:
                self.stack.pop()
                self.names.pop(len(self.stack) + 1, None)
            if not self.stack:
                self.done = True
            elif self.stack[-1].kind == "obj":
                self.stack[-1].key = None
        elif ch == '"':
            self.in_string, self.text = True, ""
            self.is_key = top is not None and top.kind == "obj" and top.expects_key
        elif ch == ":" and top is not None and top.kind == "obj":
            top.expects_key = False
        elif ch == "," and top is not None and top.kind == "obj":
            top.expects_key, top.key = True, None

    def _end_string(self) -> None:
        self.in_string = False
        top = self.stack[-1] if self.stack else None
        if top is None or top.kind != "obj":
            return
        if self.is_key:
            top.key = self.text
        elif top.key == "name":
            self.names[len(self.stack)] = self.text

    def field_name(self, tools: bool) -> str | None:
        """The current value's field as curation names it: `tool.arg.sub` inside a call's
        arguments, `$.a.b` in a JSON answer; None elsewhere (a tool's name, outside JSON)."""
        keys = self.keys()
        if not tools:
            return "$." + ".".join(keys) if keys else None
        # the call object is the object frame whose key is "arguments"
        for depth, frame in enumerate(self.stack, start=1):
            if frame.kind == "obj" and frame.key == "arguments":
                tool = self.names.get(depth)
                below = [f.key for f in self.stack[depth:] if f.kind == "obj" and f.key is not None]
                return f"{tool}.{'.'.join(below)}" if tool is not None and below else None
        return None


class CopyGuard:
    """Holds the copied fields of one constrained answer to its conversation (see the module)."""

    def __init__(self, messages: Sequence[dict[str, Any]], rules: dict[str, str], *, tools: bool,
                 schemas: dict[str, dict[str, Any]] | None = None):
        """`schemas`: each field's JSON Schema (`field_schemas`), for the values an `exact` field
        may be."""
        self.rules = rules
        self.tools = tools
        self.schemas = schemas or {}
        self.hay = Haystack.of(list(messages))
        self._spans: dict[str, frozenset[str] | None] = {}
        self.field: str | None = None  # the field of the value being written (set by `rule`)
        self.cursor = JsonCursor()
        self.held = 0  # tokens chosen inside a copied value
        self.refused = 0  # times the model's best token was refused for one the conversation holds
        self.yielded = 0  # times no allowed token was accepted (the grammar's best taken)

    def rule(self) -> str | None:
        """The rule of the value being written now, None when it is not a copied value."""
        if not self.cursor.in_value_string() or self.cursor.escaped:
            return None
        name = self.cursor.field_name(self.tools)
        self.field = name
        return self.rules.get(name) if name is not None else None

    def _candidates(self) -> frozenset[str] | None:
        """The whole-word stretches of the conversation the current field's schema admits, or
        None when its schema says nothing more than "a string"."""
        name = self.field or ""
        if name not in self._spans:
            schema = self.schemas.get(name) or {}
            check = _value_check(schema)
            self._spans[name] = None if check is None else frozenset(
                s for s in self.hay.spans(min(LONGEST_SPAN, int(schema.get("maxLength") or LONGEST_SPAN)))
                if check(s))
        return self._spans[name]

    def accepts(self, piece: str, rule: str) -> bool:
        """Whether `piece` (a token's text) may come next in the current copied value."""
        value = self.cursor.text
        end = _closing_quote(piece)
        if end is None:
            return "\\" not in piece and self._prefix_ok(value + piece, rule)
        return self._complete_ok(value + piece[:end], rule)

    def feed(self, piece: str) -> None:
        self.cursor.feed(piece)

    def _prefix_ok(self, value: str, rule: str) -> bool:
        if rule == "exact":
            spans = self._candidates()
            if spans is not None and spans:
                written = squeeze(value)
                return any(s.startswith(written) for s in spans)
            return self.hay.exact(value, whole=False)
        if self.hay.verbatim(value):
            return True
        if rule != "digits":
            return False
        runs = _RUNS.findall(value)
        if not runs:
            return True
        trailing = runs.pop() if value[-1:].isdigit() else None
        if any(r not in self.hay.digit_runs for r in runs):
            return False
        return trailing is None or any(r.startswith(trailing) for r in self.hay.digit_runs)

    def _complete_ok(self, value: str, rule: str) -> bool:
        if rule == "exact":
            spans = self._candidates()
            if spans is not None and spans:
                return not value or squeeze(value) in spans
            return not value or self.hay.exact(value)
        return not looked_at(value) or self.hay.found(value)


def guard_for(request: Any, rules: dict[str, str]) -> CopyGuard | None:
    """The guard of one constrained answer to `request` (a `fledgling.calls.Request`), or None
    when there are no copy rules."""
    if not rules:
        return None
    return CopyGuard(request.messages, rules, tools=bool(request_tools(request)), schemas=field_schemas(request))


def token_pieces(tokenizer: Any, n_vocab: int) -> list[str]:
    """Each token's text, decoded alone: what the guard checks a candidate token by."""
    return list(tokenizer.batch_decode([[i] for i in range(n_vocab)]))


def field_schemas(request: Any) -> dict[str, dict[str, Any]]:
    """Each string field's JSON Schema in a request's tools (`tool.a.b`) or its response format
    (`$.a.b`), named as curation names fields (list items are their list's field)."""
    out: dict[str, dict[str, Any]] = {}

    def walk(schema: Any, path: str) -> None:
        if not isinstance(schema, dict):
            return
        for key, sub in (schema.get("properties") or {}).items():
            walk(sub, f"{path}.{key}")
        if isinstance(schema.get("items"), dict):
            walk(schema["items"], path)
        if schema.get("type") == "string" or "enum" in schema or "pattern" in schema or "format" in schema:
            out[path] = schema

    for tool in function_specs(request):
        walk(tool["parameters"], tool["name"])
    schema = output_schema(request)
    if schema is not None:
        walk(schema, "$")
    return out


def _value_check(schema: dict[str, Any]) -> Callable[[str], bool] | None:
    """A test of a candidate value for what the schema says beyond "a string", or None when it
    says nothing more."""
    tests: list[Callable[[str], bool]] = []
    if schema.get("format") == "email":
        tests.append(lambda v: bool(_EMAIL.match(v)))
    if isinstance(schema.get("pattern"), str):
        try:
            pattern = re.compile(schema["pattern"])
        except re.error:
            pattern = None
        if pattern is not None:
            tests.append(_pattern_test(pattern))
    if isinstance(schema.get("enum"), list):
        allowed = {str(e) for e in schema["enum"]}
        tests.append(lambda v: v in allowed)
    if isinstance(schema.get("maxLength"), int) or isinstance(schema.get("minLength"), int):
        lo, hi = int(schema.get("minLength") or 0), int(schema.get("maxLength") or 10**9)
        tests.append(lambda v: lo <= len(v) <= hi)
    if not tests:
        return None
    return lambda v: all(t(v) for t in tests)


def _pattern_test(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda v: pattern.search(v) is not None


def _closing_quote(piece: str) -> int | None:
    """Where an unescaped `"` ends the string in a token's text, or None."""
    escaped = False
    for i, ch in enumerate(piece):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            return i
    return None


def choose(order: Sequence[int], pieces: Sequence[str], guard: CopyGuard, rule: str,
           rest: Callable[[], Sequence[int]] | None = None) -> int:
    """The first token of `order` (the grammar-allowed tokens, most likely first: the `TOP_K`
    best) whose text the guard accepts; when none is, the first of `rest()` (every allowed
    token, most likely first: a copied value may go on in a token the model ranks low, "s"
    after "toma" where it split "tomas" as "to" + "ma"); the first of `order` when none is."""
    guard.held += 1
    for rank, token in enumerate(order):
        if guard.accepts(pieces[token], rule):
            guard.refused += rank > 0
            return token
    for token in (rest() if rest is not None else [])[len(order):]:
        if guard.accepts(pieces[token], rule):
            guard.refused += 1
            return token
    guard.yielded += 1
    return order[0]
