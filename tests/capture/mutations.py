"""Malformed importer inputs made from valid ones: a seeded mutator for the CLI fuzz run.

Every case starts from a real export (the fixtures, and real Langfuse traces) and breaks it one
way: a value of the wrong type, nesting deeper than the store can write, a NUL, a lone surrogate,
numbers no column holds, another text encoding, random bytes, a cut-off file, and so on. The
same seed always gives the same cases, so a failure can be replayed by its number.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).parent / "fixtures"

SEEDS: dict[str, list[str]] = {
    "openai-jsonl": ["openai_pairs.jsonl", "openai_finetune.jsonl"],
    "otel": ["otel_genai_current.json", "otel_genai_legacy.jsonl"],
    "langfuse": ["langfuse_openai.json", "langfuse_langchain.jsonl",
                 "langfuse_real/vercel-aisdk-2025-11-17.trace.json",
                 "langfuse_real/microsoft-agent-2025-12-17.trace.json",
                 "langfuse_real/crewai-2025-07-11.trace.json"],
}

_RAW = "\ue000raw{}\ue000"  # a placeholder string, replaced by raw JSON text after dumping
_DEPTHS = (129, 160, 254, 255, 256, 300, 512, 1000, 1023)
_SWAPS: list[Any] = [0, -1, 1.5, "", "x", "{}", "[]", '{"role": 1}', True, False, None, [], {},
                     [1, "a"], {"a": 1}, [[]], [{}], {"role": {}}]
_NUMBERS = ["1e400", "-1e400", "1" + "0" * 40, "18446744073709551616", "18446744073709551615",
            "9223372036854775808", "-9223372036854775809", "1e308", "-0.0", "4294967296",
            "2147483648", "-1", "0.5", "1E-400", "123456789012345678901234567890.5"]
_TIMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01", "2024-13-01",
          "2024-02-30T00:00:00Z", "yesterday", "", "-1", "99999999999999999999999999",
          "9223372036854775808", "-62135596801000000000", -1e12, 1e18, 253402300800, -1, 0, 1.5,
          "1e400", "NaN", True]
_TIME_FIELDS = {"startTime", "endTime", "created_at", "created", "startTimeUnixNano",
                "endTimeUnixNano"}
_MARKUP = ["[/]", "[bold]x[/bold]", "[/red]", "[link=file:///etc/passwd]x", "[i]", "\\[x]",
           "[0]", "[gen_ai.x]"]
_STRANGE_TEXT = ["line one\nline two", "a\r\nb", "tab\there", "\u2028sep\u2029", "\x1b[31mred",
                 "\x7f\x01\x02", "é€😀", "\ufeffbom"]
_NON_OBJECTS = [b"42", b'"text"', b"[1, 2]", b"null", b"true", b"[]", b"[[]]", b"{}", b"[{}]",
                b'"{}"', b"[null]", b'["a"]', b"-0", b'{"data": 5}', b'{"data": [1]}',
                b'{"resourceSpans": {}}', b'{"observations": "x"}', b'{"request": []}',
                b'{"messages": {}}', b"[1e400]", b'{"a": 1}\n[2]\n"x"\n']


@dataclass(frozen=True)
class Case:
    number: int
    kind: str
    seed: str
    mutation: str
    filename: str
    data: bytes

    def __str__(self) -> str:
        return f"case {self.number} ({self.kind}, {self.seed}, {self.mutation})"


# -- documents -------------------------------------------------------------------------------

@dataclass
class _Seed:
    name: str
    raw: bytes
    docs: list[Any]
    jsonl: bool

    @classmethod
    def load(cls, name: str) -> _Seed:
        raw = (FIXTURES / name).read_bytes()
        jsonl = name.endswith(".jsonl")
        docs = [orjson.loads(line) for line in raw.splitlines() if line.strip()] if jsonl \
            else [orjson.loads(raw)]
        return cls(name, raw, docs, jsonl)


def _dump(docs: list[Any], jsonl: bool, raws: list[str]) -> bytes:
    if jsonl:
        data = b"\n".join(orjson.dumps(d) for d in docs) + b"\n"
    else:
        data = orjson.dumps(docs[0], option=orjson.OPT_INDENT_2)
    for n, literal in enumerate(raws):
        data = data.replace(orjson.dumps(_RAW.format(n)), literal.encode())
    return data


def json_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON document (the root included), as tuples of keys and indexes."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += json_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += json_paths(v, (*prefix, i))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _set(doc: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    _get(doc, path[:-1])[path[-1]] = new
    return doc


def _nest(rng: random.Random, depth: int, inner: Any) -> str:
    """`inner` inside `depth` arrays and objects, as JSON text (orjson writes only 254 levels)."""
    style = rng.choice(("list", "dict", "mixed"))
    opens, closes = [], []
    for level in range(depth):
        if style == "list" or (style == "mixed" and level % 2):
            opens.append("[")
            closes.append("]")
        else:
            opens.append('{"content":')
            closes.append("}")
    return "".join(opens) + orjson.dumps(inner).decode() + "".join(reversed(closes))


# -- structural mutations: change one value of a parsed document -----------------------------

Structural = Callable[[random.Random, Any, list[str]], Any]


def _pick(rng: random.Random, doc: Any, want: Callable[[Any], bool] = lambda _: True) -> tuple | None:
    paths = [p for p in json_paths(doc) if want(_get(doc, p))]
    return rng.choice(paths) if paths else None


def _type_swap(rng: random.Random, doc: Any, raws: list[str]) -> Any:
    path = _pick(rng, doc)
    old = _get(doc, path)
    new = rng.choice([v for v in _SWAPS if type(v) is not type(old)])
    return _set(doc, path, copy.deepcopy(new))


def _string_for_object(rng: random.Random, doc: Any, raws: list[str]) -> Any:
    path = _pick(rng, doc, lambda v: isinstance(v, (dict, list)))
    if path is None:
        return doc
    node = _get(doc, path)
    text = rng.choice([orjson.dumps(node).decode(), "oops", orjson.dumps(node).decode()[:-1]])
    return _set(doc, path, text)


def _deep_nesting(rng: random.Random, doc: Any, raws: list[str]) -> Any:
    path = _pick(rng, doc)
    raws.append(_nest(rng, rng.choice(_DEPTHS), _get(doc, path)))
    return _set(doc, path, _RAW.format(len(raws) - 1))


def _deep_json_text(rng: random.Random, doc: Any, raws: list[str]) -> Any:
    """JSON text nested deep, inside a string: importers decode JSON-encoded fields."""
    path = _pick(rng, doc, lambda v: isinstance(v, (str, dict, list))) or ()
    depth = rng.choice(_DEPTHS)
    return _set(doc, path, "[" * depth + '"x"' + "]" * depth)


def _nul(rng: random.Random, doc: Any, raws: list[str]) -> Any:
    path = _pick(rng, doc, lambda v: isinstance(v, str))
    if path is None or rng.random() < 0.2:
        parent = _pick(rng, doc, lambda v: isinstance(v, dict))
        if parent is not None:
            _get(doc, parent)["k\x00"] = 1
        return doc
    s = _get(doc, path)
    k = rng.randint(0, len(s))
    return _set(doc, path, s[:k] + "\x00" + s[k:])


def _lone_surrogate(rng: random.Random, doc: Any, raws: list[str]) -> Any:
    path = _pick(rng, doc, lambda v: isinstance(v, str)) or ()
    raws.append(rng.choice(['"a\\ud800b"', '"\\udfff"', '"x\\ud83d"']))
    return _set(doc, path, _RAW.format(len(raws) - 1))


def _huge_number(rng: random.Random, doc: Any, raws: list[str]) -> Any:
    path = _pick(rng, doc, lambda v: isinstance(v, (int, float, str)) and not isinstance(v, bool)) or ()
    raws.append(rng.choice(_NUMBERS))
    return _set(doc, path, _RAW.format(len(raws) - 1))


def _delete_key(rng: random.Random, doc: Any, raws: list[str]) -> Any:
    path = _pick(rng, doc, lambda v: isinstance(v, dict) and bool(v))
    if path is None:
        return doc
    node = _get(doc, path)
    del node[rng.choice(list(node))]
    return doc


def _long_string(rng: random.Random, doc: Any, raws: list[str]) -> Any:
    path = _pick(rng, doc, lambda v: isinstance(v, str))
    if path is None:
        return doc
    return _set(doc, path, "x" * rng.choice((201, 5_000, 100_000)))


def _strange_text(rng: random.Random, doc: Any, raws: list[str]) -> Any:
    """Rich markup, newlines and control characters, as values and as keys."""
    pool = _MARKUP + _STRANGE_TEXT
    if rng.random() < 0.5:
        parent = _pick(rng, doc, lambda v: isinstance(v, dict))
        if parent is not None:
            node = _get(doc, parent)
            if node and rng.random() < 0.5:  # rename an existing key
                key = rng.choice(list(node))
                node[rng.choice(pool) + key] = node.pop(key)
            else:
                node[rng.choice(pool)] = rng.choice(pool)
            return doc
    path = _pick(rng, doc, lambda v: isinstance(v, str)) or ()
    return _set(doc, path, rng.choice(pool))


def _extreme_time(rng: random.Random, doc: Any, raws: list[str]) -> Any:
    """A time at the edge of the calendar, or not a time, where the record keeps its times."""
    read = [p for p in json_paths(doc) if p and p[-1] in _TIME_FIELDS]
    other = [p for p in json_paths(doc) if p and isinstance(p[-1], str) and "time" in p[-1].lower()]
    paths = read if read and (rng.random() < 0.8 or not other) else other
    path = rng.choice(paths) if paths else (_pick(rng, doc) or ())
    return _set(doc, path, rng.choice(_TIMES[:3] * 4 + _TIMES[3:]))


_STRUCTURAL: dict[str, Structural] = {
    "type swap": _type_swap, "string for object": _string_for_object,
    "deep nesting": _deep_nesting, "deep JSON text": _deep_json_text, "NUL": _nul,
    "lone surrogate": _lone_surrogate, "huge number": _huge_number, "deleted key": _delete_key,
    "long string": _long_string, "strange text": _strange_text, "extreme time": _extreme_time,
}


# -- byte mutations: break the file itself ---------------------------------------------------

def _truncate(rng: random.Random, seed: _Seed) -> bytes:
    return seed.raw[:rng.randrange(len(seed.raw))]


def _random_splice(rng: random.Random, seed: _Seed) -> bytes:
    a = rng.randrange(len(seed.raw))
    b = min(len(seed.raw), a + rng.randint(0, 40))
    return seed.raw[:a] + rng.randbytes(rng.randint(1, 40)) + seed.raw[b:]


def _flip_byte(rng: random.Random, seed: _Seed) -> bytes:
    data = bytearray(seed.raw)
    i = rng.randrange(len(data))
    data[i] ^= rng.randint(1, 255)
    return bytes(data)


def _random_bytes(rng: random.Random, seed: _Seed) -> bytes:
    return rng.randbytes(rng.choice((1, 7, 64, 1000, 20_000)))


def _encoding(rng: random.Random, seed: _Seed) -> bytes:
    text = seed.raw.decode()
    where = text.find('": "') + 4  # inside the first string value
    text = text[:where] + "é€ü" + text[where:]
    choice = rng.choice(("utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "bom", "invalid",
                         "overlong"))
    if choice == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    if choice == "invalid":
        return text[:where].encode() + b"\xff\xfe\x80" + text[where:].encode()
    if choice == "overlong":
        return text[:where].encode() + b"\xc0\xaf\xe0\x80\xaf" + text[where:].encode()
    return text.encode(choice, errors="replace")


def _raw_nul_byte(rng: random.Random, seed: _Seed) -> bytes:
    i = rng.randrange(len(seed.raw))
    return seed.raw[:i] + b"\x00" + seed.raw[i:]


def _non_object(rng: random.Random, seed: _Seed) -> bytes:
    return rng.choice(_NON_OBJECTS)


def _empty(rng: random.Random, seed: _Seed) -> bytes:
    return rng.choice((b"", b"\n\n", b"   ", b"\xef\xbb\xbf", b"\r\n"))


def _crlf(rng: random.Random, seed: _Seed) -> bytes:
    return seed.raw.replace(b"\n", b"\r\n")


def _bad_line(rng: random.Random, seed: _Seed) -> bytes:
    """Valid records with one line of garbage among them."""
    lines = [orjson.dumps(d) for d in seed.docs] * 2
    lines.insert(rng.randint(0, len(lines)), rng.choice((b"{", b"not json", b"}{", b"[1,]",
                                                         rng.randbytes(30))))
    return b"\n".join(lines) + b"\n"


def _many_then_bad(rng: random.Random, seed: _Seed) -> bytes:
    """More records than one insert batch (500), then a malformed one: nothing may stay."""
    lines = []
    for i in range(510):
        doc = copy.deepcopy(seed.docs[i % len(seed.docs)])
        _suffix_ids(doc, f"-{i}")
        lines.append(orjson.dumps(doc))
    bad = copy.deepcopy(seed.docs[0])
    path = _pick(rng, bad, lambda v: isinstance(v, str)) or ()
    raws = ['"a\\u0000b"']
    bad = _set(bad, path, _RAW.format(0)) if rng.random() < 0.5 else None
    lines.append(_dump([bad], True, raws).rstrip() if bad is not None else lines[-1][:-7])
    return b"\n".join(lines) + b"\n"


def _suffix_ids(value: Any, suffix: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("id", "spanId") and isinstance(item, str):
                value[key] = item + suffix
            else:
                _suffix_ids(item, suffix)
    elif isinstance(value, list):
        for item in value:
            _suffix_ids(item, suffix)


_BYTES: dict[str, Callable[[random.Random, _Seed], bytes]] = {
    "truncation": _truncate, "random splice": _random_splice, "flipped byte": _flip_byte,
    "random bytes": _random_bytes, "encoding": _encoding, "raw NUL byte": _raw_nul_byte,
    "non-object JSON": _non_object, "empty": _empty, "CRLF": _crlf, "bad line": _bad_line,
    "many then bad": _many_then_bad,
}

MUTATIONS = (*_STRUCTURAL, *_BYTES)


def _filename(rng: random.Random, number: int, seed: _Seed) -> str:
    ext = ".jsonl" if seed.jsonl else ".json"
    if rng.random() < 0.1:
        ext = rng.choice((".json", ".jsonl", ".txt", ""))
    stem = rng.choice((f"case-{number:03d}",) * 8 + (f"case {number:03d} [x]", f"case-{number:03d}[bold]"))
    return stem + ext


def cases(per_kind: int = 200, seed: int = 12) -> list[Case]:
    """`per_kind` malformed inputs for each importer kind, the same ones for the same seed."""
    rng = random.Random(seed)
    loaded = {name: _Seed.load(name) for names in SEEDS.values() for name in names}
    out: list[Case] = []
    for kind, names in SEEDS.items():
        for i in range(per_kind):
            number = len(out)
            mutation = MUTATIONS[i // len(names)] if i < len(MUTATIONS) * len(names) \
                else rng.choice(MUTATIONS)
            base = loaded[names[i % len(names)]]
            if mutation == "many then bad":
                base = min((loaded[n] for n in names), key=lambda s: len(s.raw) / len(s.docs))
            if mutation in _STRUCTURAL:
                docs = copy.deepcopy(base.docs)
                raws: list[str] = []
                for _ in range(rng.choice((1, 1, 1, 2))):
                    j = rng.randrange(len(docs))
                    docs[j] = _STRUCTURAL[mutation](rng, docs[j], raws)
                data = _dump(docs, base.jsonl, raws)
            else:
                data = _BYTES[mutation](rng, base)
            out.append(Case(number, kind, base.name, mutation, _filename(rng, number, base), data))
    return out
