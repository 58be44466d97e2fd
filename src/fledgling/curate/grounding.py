"""Grounding: argument values that should come from the conversation but appear nowhere in it.

An agent copies ids, emails, amounts, names and dates from what the customer wrote or what a
tool returned; a label that carries a value found nowhere in the messages before it (an order
id with two digits swapped, a doubled amount) is well-formed and wrong. Which fields are copied
is decided from the data, not from a list: per field (tool, argument path, or structured-output
path), the share of its values found in their conversation. A field whose values are found in
at least `MIN_SHARE` of the calls (and seen at least `MIN_SEEN` times) is a *grounded field*;
its values that are not found are flagged. Free text the model writes (a summary, a subject)
is rarely found verbatim, so it never becomes a grounded field.

What is looked at: strings and numbers, never booleans or nulls. Values of a schema `enum` are
looked at too: most are chosen, not copied, and their field never becomes grounded, but some are
copied (the account currency a system message names), and then a value from elsewhere is wrong.

"Found" means, for a string, its lower-cased letters and digits inside the conversation's (so
"ORD-204518" is found in "ord 204518"), or every run of three or more digits of it found as a
digit run of the conversation (so "ORD-204518" is found in "#204518"); for a number, the same
number written in the conversation (1250, 1,250, 1250.00 and 1.25e3 are one number). Strings
shorter than `MIN_CHARS` letters and digits and the integers 0 to 9 are not looked at: they are
found everywhere by accident.

The conversation is every message before the answer except a leading system message: the
agent's instructions are the same in every call (and list every enum value), so a value found
only there is no evidence.

`observe` runs per call where it is prepared (possibly in a worker) and returns small
`(field, found)` pairs; `GroundingCheck` collects them, in one pass, and then names the calls
whose values are not found in a grounded field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

MIN_SHARE = 0.95
MIN_SEEN = 20
MIN_CHARS = 3

_ALNUM = re.compile(r"[^0-9a-z]+")
_DIGIT_RUN = re.compile(r"\d{3,}")
_SPACES = re.compile(r"\s+")
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Haystack:
    """The conversation before the answer, in the forms the lookups need."""

    alnum: str
    digit_runs: frozenset[str]
    numbers: frozenset[float]
    text: str = ""
    """the conversation with each run of whitespace one space (what `exact` looks in)"""

    @classmethod
    def of(cls, messages: list[dict[str, Any]]) -> Haystack:
        if messages and messages[0].get("role") in ("system", "developer"):
            messages = messages[1:]  # the instructions: the same in every call, no evidence
        text = "\n".join(_text(m) for m in messages)
        lowered = text.lower()
        return cls(_ALNUM.sub("", lowered), frozenset(re.findall(r"\d+", text)),
                   frozenset(n for n in (_number(m.group(0)) for m in _NUMBER.finditer(text))
                             if n is not None), squeeze(text))

    def found(self, value: str | float) -> bool:
        if isinstance(value, str):
            if self.verbatim(value):
                return True
            runs = _DIGIT_RUN.findall(value)
            return bool(runs) and all(r in self.digit_runs for r in runs)
        return float(value) in self.numbers

    def verbatim(self, value: str) -> bool:
        """Whether a string's lower-cased letters and digits are inside the conversation's (the
        first way of being found; the other is by its digit runs alone)."""
        return _ALNUM.sub("", value.lower()) in self.alnum

    def spans(self, longest: int) -> Iterator[str]:
        """Every whole-word stretch of the conversation (as `exact` reads it) that starts with a
        letter or digit, of at most `longest` characters."""
        text = self.text
        starts = [i for i in range(len(text)) if text[i].isalnum() and _starts_word(text, i)]
        ends = [i for i in range(1, len(text) + 1) if not text[i - 1].isspace() and _ends_word(text, i)]
        for start in starts:
            for end in ends:
                if end > start + longest:
                    break
                if end > start:
                    yield text[start:end]

    def exact(self, value: str, *, whole: bool = True) -> bool:
        """Whether the string is written in the conversation as it is (runs of whitespace
        aside), as a whole: not starting or ending inside a word (`h@outlook.com` is not in
        "okafor.h@outlook.com"; `ORD-29` is not in "ORD-296213"). `whole=False`: the start is
        checked, not the end (a value being written)."""
        needle = squeeze(value)
        if not needle:
            return False
        at = self.text.find(needle)
        while at >= 0:
            if _starts_word(self.text, at) and (not whole or _ends_word(self.text, at + len(needle))):
                return True
            at = self.text.find(needle, at + 1)
        return False


_INNER = set(".@_-+/:'")  # characters inside a word when letters or digits are on both sides


def squeeze(text: str) -> str:
    """`text` with each run of whitespace written as one space."""
    return _SPACES.sub(" ", text)


def _starts_word(text: str, at: int) -> bool:
    if at == 0:
        return True
    before = text[at - 1]
    return not before.isalnum() and not (before in _INNER and at >= 2 and text[at - 2].isalnum())


def _ends_word(text: str, end: int) -> bool:
    if end >= len(text):
        return True
    after = text[end]
    return not after.isalnum() and not (after in _INNER and end + 1 < len(text) and text[end + 1].isalnum())


def observe(messages: list[dict[str, Any]], answer: dict[str, Any]) -> tuple[tuple[str, bool, str | None], ...]:
    """The `(field, found, how)` triples of one label: each string or number it carries, with
    whether it appears in `messages`, and for a string how it is found: `exact`
    (`Haystack.exact`), `verbatim` (its letters and digits, `Haystack.verbatim`), `digits`
    (its digit runs alone), or "" when it is not; None for a number. Fields are named
    `tool.arg.sub` for tool calls (list indices dropped: every item of a list is the same
    field) and `$.path` for a structured answer."""
    pairs: list[tuple[str, bool, str | None]] = []
    hay: Haystack | None = None
    for name, value in field_values(answer):
        if not looked_at(value):
            continue
        if hay is None:
            hay = Haystack.of(messages)
        found = hay.found(value)
        how = None
        if isinstance(value, str):
            how = "" if not found else "exact" if hay.exact(value) else "verbatim" if hay.verbatim(value) \
                else "digits"
        pairs.append((name, found, how))
    return tuple(pairs)


@dataclass
class GroundingCheck:
    """Collects `observe` results for every kept example, then flags the ungrounded ones."""

    min_share: float = MIN_SHARE
    min_seen: int = MIN_SEEN
    seen: dict[str, list[int]] = field(default_factory=dict)
    """field -> [values seen, values found, strings found exact, found verbatim (or exact), strings seen]"""
    misses: dict[int, list[str]] = field(default_factory=dict)
    """item -> the fields whose value was not found"""

    def add(self, item: int, pairs: Iterable[tuple[str, bool, str | None]]) -> None:
        for name, found, how in pairs:
            row = self.seen.setdefault(name, [0, 0, 0, 0, 0])
            row[0] += 1
            row[1] += found
            row[2] += how == "exact"
            row[3] += how in ("exact", "verbatim")
            row[4] += how is not None
            if not found:
                self.misses.setdefault(item, []).append(name)

    def grounded_fields(self) -> dict[str, float]:
        """field -> share found, for the fields the data says are copied from the conversation."""
        return {name: found / seen for name, (seen, found, *_) in sorted(self.seen.items())
                if seen >= self.min_seen and found / seen >= self.min_share}

    def copy_rules(self) -> dict[str, str]:
        """grounded field -> how its values are copied, for decoding to hold a model to
        (`fledgling.models.copying`), the strictest that at least `min_share` of its values
        meet: `exact` (written as in the conversation, whole words: emails, names, streets),
        `verbatim` (the same letters and digits: `ord 204518` for ORD-204518), else `digits`
        (their digit runs are the conversation's, the rest is written: `ORD-204518` for
        "#204518"). Only fields of strings have a rule (numbers are not held)."""
        rules = {}
        for name in self.grounded_fields():
            seen, _, exact, verbatim, strings = self.seen[name]
            if strings == seen:
                rules[name] = "exact" if exact / seen >= self.min_share else \
                    "verbatim" if verbatim / seen >= self.min_share else "digits"
        return rules

    def flagged(self) -> dict[int, list[str]]:
        """item -> the grounded fields whose value it does not find in its conversation."""
        grounded = self.grounded_fields()
        out: dict[int, list[str]] = {}
        for item, names in self.misses.items():
            bad = sorted({n for n in names if n in grounded})
            if bad:
                out[item] = bad
        return out


def looked_at(value: object) -> bool:
    """Whether a value is looked for at all (not a boolean, a null, a digit or a two-character string)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int):
        return not 0 <= value <= 9
    if isinstance(value, float):
        return math.isfinite(value) and not (value.is_integer() and 0 <= value <= 9)
    if isinstance(value, str):
        return len(_ALNUM.sub("", value.lower())) >= MIN_CHARS
    return False


def field_values(answer: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Each leaf value of a label with its field name (tool calls' arguments, or a JSON answer)."""
    calls = answer.get("tool_calls") or []
    for tc in calls:
        fn = tc.get("function") or {}
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = orjson.loads(args or "{}")
            except orjson.JSONDecodeError:
                continue
        yield from _leaves(args, str(fn.get("name", "")))
    if not calls:
        content = answer.get("content")
        if isinstance(content, str) and content.lstrip()[:1] == "{":
            try:
                parsed = orjson.loads(content)
            except orjson.JSONDecodeError:
                return
            yield from _leaves(parsed, "$")


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}")
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v, path)
    else:
        yield path, value


def _text(msg: dict[str, Any]) -> str:
    content = msg.get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    parts = [content if isinstance(content, str) else ""]
    if isinstance(content, dict):
        parts.append(orjson.dumps(content).decode())
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function") or {}
        args = fn.get("arguments")
        parts.append(args if isinstance(args, str) else orjson.dumps(args).decode())
    return " ".join(parts)


def _number(text: str) -> float | None:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None
