"""Preparing one call: everything curation does to a call that does not depend on other calls.

Filter verdict, label, redaction, the finished JSONL line, the digests that identify its input
and answer, its MinHash signature, class and quality. None of it looks at other calls, so it
can run in worker processes (see `parallel`) while the curating process only does what is
order-dependent: counting, clustering duplicates and spooling the lines (`pipeline`).

A `Prepared` is compact and cheap to pickle: strings, bytes and small ints, no pydantic objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from fledgling.calls import Call, Response
from fledgling.contracts import Contract
from fledgling.curate import filters
from fledgling.curate.dedupe import SHINGLE, digest, normalise, signature
from fledgling.curate.disagreement import closed_fields, decisions, features
from fledgling.curate.formats import Format, example_line
from fledgling.curate.grounding import observe
from fledgling.curate.redact import redact_messages
from fledgling.curate.repeats import repeats
from fledgling.store.db import call_from_row

QUALITY_CORRECTED, QUALITY_APPROVED, QUALITY_PLAIN = 2, 1, 0
GROUNDING, CONSISTENCY, MODEL_DISAGREEMENT = "grounding", "consistency", "model_disagreement"
LABEL_CHECKS = (GROUNDING, CONSISTENCY, MODEL_DISAGREEMENT)
"""The checks for well-formed wrong labels, in the order a flagged example gets its reason."""


class Prepared(NamedTuple):
    """One call, ready to be absorbed. `reason` is set (and the example fields empty) when dropped."""

    call_id: str
    session_id: str | None
    trace_id: str | None
    truth: tuple[Any] | None
    """`(metadata["llm_error"],)` when the call carries ground truth, else None."""
    reason: str | None
    corrected: bool = False
    redactions: dict[str, int] | None = None
    exact: bytes = b""
    answer: bytes = b""
    cls: str = ""
    quality: int = QUALITY_PLAIN
    signature: bytes | None = None
    """MinHash signature (uint32 values) of the input without the system prompt; None when
    near-duplicate detection is off or the text is shorter than a shingle."""
    line: bytes = b""
    tail: bytes = b""
    """Digest of the last input message, normalised (`label_noise.suspects` compares on it)."""
    grounding: tuple[tuple[str, bool, str | None], ...] = ()
    """`grounding.observe`: each value of the label with whether (and how) the conversation has it."""
    repeats: tuple[int, int] | None = None
    """`repeats.repeats`: calls the label makes twice, and calls its conversation already made"""
    features: bytes = b""
    """`disagreement.features` of the input (empty when that check is off)."""
    decisions: tuple[tuple[str, str], ...] = ()
    """`disagreement.decisions` of the label: its class and closed-set fields."""


@dataclass(frozen=True)
class PrepareOptions:
    """What preparing needs to know about the run, as plain data that pickles for any start
    method (a `Contract` caches compiled validators, which do not pickle)."""

    contract_json: str | None
    fmt: Format
    drop_tool_failures: bool
    near_duplicates: bool
    label_checks: tuple[str, ...] = ()

    @classmethod
    def of(cls, contract: Contract | None, fmt: Format, *, drop_tool_failures: bool,
           near_duplicates: bool, label_checks: tuple[str, ...] = ()) -> PrepareOptions:
        return cls(contract.model_dump_json() if contract is not None else None, fmt,
                   drop_tool_failures, near_duplicates, label_checks)


class Preparer:
    """Prepares calls for one curation run."""

    def __init__(self, options: PrepareOptions) -> None:
        self.options = options
        self.contract = (Contract.model_validate_json(options.contract_json)
                         if options.contract_json is not None else None)
        self.class_field = _class_field(self.contract)
        self.closed = frozenset(closed_fields(self.contract))

    def row(self, row: Mapping[str, Any]) -> Prepared:
        """A raw row of `Store.iter_call_rows`."""
        return self.call(call_from_row(row))

    def call(self, call: Call) -> Prepared:
        s = self.options
        verdict = filters.check(call, self.contract, drop_tool_failures=s.drop_tool_failures)
        truth = (call.metadata["llm_error"],) if "llm_error" in call.metadata else None
        if verdict.label is None:
            return Prepared(call.id, call.session_id, call.trace_id, truth,
                            verdict.reason or "unknown")
        label = verdict.label.message()
        checks = s.label_checks
        grounded = observe(call.request.messages, label) if GROUNDING in checks else ()
        repeated = repeats(call.request.messages, label) if GROUNDING in checks else None
        feats = features(call.request.messages) if MODEL_DISAGREEMENT in checks else b""
        messages, counts = redact_messages([*call.request.messages, label])
        tools = call.request.tools
        inputs, answer = messages[:-1], messages[-1]
        tool_names = sorted(t.get("function", {}).get("name", "") for t in tools or [])
        texts = [(m.get("role"), _normalised_text(m)) for m in inputs]
        near_text = " ".join(text for role, text in texts if role != "system")
        sig = (signature(near_text).tobytes()
               if s.near_duplicates and len(near_text) >= SHINGLE else None)
        cls = self._class(verdict.label)
        return Prepared(
            call.id, call.session_id, call.trace_id, truth, None, verdict.corrected,
            dict(counts) if counts else None,
            exact=digest(orjson.dumps([tool_names, texts])),
            answer=digest(orjson.dumps(_canonical_message(answer), option=orjson.OPT_SORT_KEYS)),
            cls=cls, quality=_quality(call, verdict.corrected),
            signature=sig, line=example_line(messages, tools, [call.id], s.fmt),
            tail=digest(orjson.dumps(texts[-1])) if texts else b"", grounding=grounded, features=feats,
            repeats=repeated, decisions=decisions(label, cls, self.closed) if feats else ())

    def _class(self, label: Response) -> str:
        if label.tool_calls:
            return "+".join(sorted({tc.name for tc in label.tool_calls}))
        if self.contract is None or self.contract.kind == "text":
            return "text"
        if self.contract.kind == "toolcall":
            return "(no tool call)"
        if self.class_field:
            try:
                value = orjson.loads(label.content or "")
            except orjson.JSONDecodeError:
                value = None
            if isinstance(value, dict) and isinstance(value.get(self.class_field), str | bool | int):
                return f"{self.class_field}={value[self.class_field]}"
        return "structured"


def _class_field(contract: Contract | None) -> str | None:
    """The enum field that names a structured answer's class: the one with most values."""
    if contract is None or contract.kind != "structured" or not contract.output_schema:
        return None
    props = contract.output_schema.get("properties") or {}
    enums = [(len(s["enum"]), name) for name, s in props.items()
             if isinstance(s, dict) and isinstance(s.get("enum"), list)]
    return min(enums, key=lambda e: (-e[0], e[1]))[1] if enums else None


def _quality(call: Call, corrected: bool) -> int:
    if corrected:
        return QUALITY_CORRECTED
    fb = call.feedback
    if fb is not None and not fb.negative and (
            (fb.score is not None and fb.score > 0)
            or (fb.label or "").lower() in {"good", "positive", "correct", "thumbs_up"}):
        return QUALITY_APPROVED
    return QUALITY_PLAIN


def _message_text(msg: dict[str, Any]) -> str:
    content = msg.get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    parts = [content if isinstance(content, str) else ""]
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function") or {}
        args = fn.get("arguments")
        parts.append(f"{fn.get('name', '')} {args if isinstance(args, str) else orjson.dumps(args).decode()}")
    return " ".join(parts)


def _normalised_text(msg: dict[str, Any]) -> str:
    text = _message_text(msg)
    return _normalise_repeated(text) if msg.get("role") in ("system", "developer") else normalise(text)


@lru_cache(maxsize=256)
def _normalise_repeated(text: str) -> str:
    """System prompts repeat in every call of a task; normalise each once."""
    return normalise(text)


def _canonical_message(msg: dict[str, Any]) -> list[Any]:
    """What makes two messages the same: role, normalised text, tool calls with parsed arguments."""
    content = msg.get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    text = content if isinstance(content, str) else ""
    try:
        parsed = orjson.loads(text) if text.lstrip()[:1] in ("{", "[") else None
    except orjson.JSONDecodeError:
        parsed = None
    calls = []
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function") or {}
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = orjson.loads(args or "{}")
            except orjson.JSONDecodeError:
                pass
        calls.append([fn.get("name", ""), args])
    calls.sort(key=lambda c: orjson.dumps(c, option=orjson.OPT_SORT_KEYS))
    return [msg.get("role"), parsed if parsed is not None else normalise(text), calls]
