"""Constrained decoding: only outputs the contract allows can be generated.

The grammar follows the prompt format, so a constrained answer is exactly what the parser reads:

- `chat` (the model's own template): `<tool_call>` + a non-empty JSON list of calls +
  `</tool_call>`, SmolLM2's tool-call format;
- `compact` (the specialist prompt of `fledgling.models.specialist`): one call object
  `{"name":...,"arguments":{...}}`, or a JSON list of two or more, with compact separators,
  exactly as `render_response` writes the training answers.

Each call names one of the tools (only the forced one when `tool_choice` names it) with
arguments that match that tool's JSON Schema. When text answers are allowed (the contract has
seen answers without a tool call and the request does not require one), the grammar is the union
of the call and a plain-text answer that cannot be mistaken for one: its first character is not
whitespace, `{`, `[` (or `<` in chat format). Which branch to take is the model's choice. For a
`response_format` schema the grammar is that schema. Whitespace inside JSON is fixed, so the
model cannot stall in blank space. Grammars are compiled by xgrammar once per distinct shape and
reused across requests and batches.

A constrained call or JSON answer is never cut into invalid JSON at the token cap, without
making every answer pay for the worst case. `GrammarBook.attempts` gives each request two
grammars in order: first the contract's own (strings, lists, optional properties and text as
long as the schema and the cap allow), then the schema *bounded* to the cap
(`fledgling.models.grammar`), whose every answer ends before the cap. An engine decodes with the
first; only a call or JSON answer that reaches the cap under it (a model looping in a string, a
list that does not end) is decoded again under the bounded grammar. A plain-text answer cut at
the cap is kept as it is (readable, finish_reason "length"), as a hosted model's would be. The
bound counts the worst case (one byte a token, four bytes a character), so it would cut typical
strings to a few characters if every answer were held to it; as a fallback it costs a second
decode only where the first would have been invalid. `request_grammar` says which schema a
request gets, so every engine compiles the same ones. A schema that cannot be bounded (or a cap
below its shortest answer) has no
fallback; the book counts each such shape and logs why, once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from fledgling.calls import Request
from fledgling.errors import ContractError
from fledgling.models.grammar import CHAR_BYTES, SAFE_CHARS, STOP_TOKENS, GrammarBoundError, bound_schema_and_losses
from fledgling.models.prompting import function_specs, output_schema

log = logging.getLogger(__name__)

COMPACT_SEPARATORS = (",", ":")
CHAT_SEPARATORS = (", ", ": ")  # xgrammar's own without any_whitespace
TOOL_CALL_TAGS = ("<tool_call>", "</tool_call>")
_TEXT_FIRST_EXCLUDED = {"chat": r"<{\[ \t\n\r", "specialist": r"{\[ \t\n\r"}


def _class_chars(chars: set[str]) -> str:
    """Characters escaped for the inside of an EBNF character class."""
    return "".join("\\" + c if c in "\\]^-[" else c for c in sorted(chars)
                   if c.isprintable() and not c.isspace())


def special_first_chars(tokenizer: Any) -> set[str]:
    """First characters of the tokenizer's special tokens. Some xgrammar releases (0.2.9) let a
    stop token such as `<|im_end|>` match a text branch as its literal text, so an answer that
    may start with that character could end before it began: an empty answer."""
    specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False):
            specials.add(str(added))
    return {t[0] for t in specials if t}


def call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """JSON Schema of one call to any of the given tools."""
    variants = [{"type": "object",
                 "properties": {"name": {"const": t["name"]}, "arguments": t["parameters"]},
                 "required": ["name", "arguments"], "additionalProperties": False} for t in tools]
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def tool_calls_schema(tools: list[dict[str, Any]], *, parallel: bool = True) -> dict[str, Any]:
    """JSON Schema of a non-empty list of calls to the given tools (the chat format's body)."""
    return {"type": "array", "minItems": 1, "items": call_schema(tools)} | ({} if parallel else {"maxItems": 1})


def sorted_properties(schema: Any) -> Any:
    """`schema` with every object's `properties` in sorted key order (xgrammar's grammar follows
    the order the properties are listed in)."""
    if isinstance(schema, list):
        return [sorted_properties(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: sorted_properties(v) for k, v in schema.items() if k != "properties"}
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: sorted_properties(schema["properties"][k]) for k in sorted(schema["properties"])}
    return out


# xgrammar's `format: date` admits any day 01-31 in any month ("2026-11-31"); this pattern admits
# only days each month has, in years 0001-9999 (February to the 28th: never wider than a valid date)
DATE_PATTERN = ("^([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-"
                "((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
                "|02-(0[1-9]|1[0-9]|2[0-8]))$")


def precise_formats(schema: Any) -> Any:
    """`schema` with each `format: date` string written as `DATE_PATTERN` for the grammar, and
    each plain string with a `minLength` or `maxLength` as a pattern of `SAFE_CHARS`: xgrammar's
    own rule for a length-bounded string (0.2.9) admits raw control characters, a tab among them,
    which JSON forbids inside a string, so the answer did not parse (it too admits no escapes)."""
    if isinstance(schema, list):
        return [precise_formats(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: precise_formats(v) for k, v in schema.items()}
    if out.get("format") == "date" and "pattern" not in out:
        del out["format"]
        out["pattern"] = DATE_PATTERN
    if out.get("type") == "string" and ("minLength" in out or "maxLength" in out) \
            and not {"pattern", "format", "enum", "const"} & out.keys():
        lo, hi = int(out.pop("minLength", 0)), out.pop("maxLength", None)
        out["pattern"] = f"^{SAFE_CHARS}{{{lo},{'' if hi is None else int(hi)}}}$"
    return out


def compact_calls_schema(tools: list[dict[str, Any]], *, parallel: bool = True) -> dict[str, Any]:
    """One call object, or (when parallel calls are allowed) a list of two or more. Arguments
    are written with their keys in sorted order, as the specialist is taught them (curation
    writes its datasets with sorted keys, and `specialist.render_response` sorts them too): a
    grammar in the schema's own order made a tuned model write keys in an order it never saw,
    and then values it never meant (`"qty": 100` after `"sku"`)."""
    tools = [{**t, "parameters": sorted_properties(t["parameters"])} for t in tools]
    one = call_schema(tools)
    if not parallel:
        return one
    return {"anyOf": [one, {"type": "array", "minItems": 2, "items": one}]}


def request_tools(request: Request) -> list[dict[str, Any]]:
    """The tools this request lets the model call (the forced one alone when `tool_choice` names one)."""
    if request.tool_choice == "none":
        return []
    tools = function_specs(request)
    forced = request.tool_choice.get("function", request.tool_choice).get("name") \
        if isinstance(request.tool_choice, dict) else None
    return [t for t in tools if t["name"] == forced] if forced else tools


def text_allowed(request: Request, contract_allows_text: bool) -> bool:
    """A plain-text answer is allowed when the contract has seen one and the request does not
    require a tool call."""
    return contract_allows_text and request.tool_choice != "required" and not isinstance(request.tool_choice, dict)


def cut_is_text(text: str, request: Request, *, allow_text: bool) -> bool:
    """Whether an answer cut at the cap took the grammar's plain-text branch (a text answer never
    starts with `{`, `[` or `<`): a cut text is still readable, so it is kept as it is
    (finish_reason "length", as a hosted model does), not decoded again under the bound."""
    return bool(request_tools(request)) and text_allowed(request, allow_text) and text[:1] not in ("{", "[", "<")


@dataclass(frozen=True)
class RequestGrammar:
    """What a request's constrained answer may be: `schema` (bounded when `bounded_to` is set),
    wrapped in the chat format's tool-call tags when `tagged`, or (when `text_chars` is not
    None) plain text of at most that many characters after its first."""

    kind: str
    schema: dict[str, Any]
    separators: tuple[str, str]
    tagged: bool
    text: bool
    text_chars: int | None
    bounded_to: int | None
    unbounded_reason: str | None = None
    left_out: tuple[str, ...] = ()  # what the cap leaves out of the contract (tools, enum values, ...)


def request_grammar(request: Request, *, prompt: str = "chat", allow_text: bool = False,
                    max_tokens: int | None = None, bound: bool = True) -> RequestGrammar | None:
    """The grammar this request's contract asks for, bounded to `max_tokens` (the request's own
    `max_tokens` when None; `bound=False`: not bounded); None when the request declares no schema."""
    tools = request_tools(request)
    cap = max_tokens if max_tokens is not None else request.max_tokens
    separators = COMPACT_SEPARATORS if prompt != "chat" else CHAT_SEPARATORS
    if tools:
        parallel = (request.model_extra or {}).get("parallel_tool_calls") is not False
        text = text_allowed(request, allow_text)
        tagged = prompt == "chat"
        schema = (tool_calls_schema if tagged else compact_calls_schema)(tools, parallel=parallel)
        kind = f"tools/{prompt}/{text}"
    else:
        out_schema = output_schema(request)
        if out_schema is None:
            return None
        schema, tagged, text, kind = out_schema, False, False, f"json/{prompt}"
    reserved = sum(len(t) for t in TOOL_CALL_TAGS) if tagged else 0
    bounded, reason, left_out = schema, None, list[str]()
    if cap is None or not bound:
        reason = "no token cap" if bound else "bounding is off"
    else:
        try:
            bounded, left_out = bound_schema_and_losses(schema, cap, separators=separators, reserved=reserved)
        except GrammarBoundError as exc:
            reason = str(exc)
    chars = None  # a text answer's longest, in characters: bounded with the schema, else as long as the cap
    if text and bound and cap is not None and cap - STOP_TOKENS >= 2 * CHAR_BYTES:
        chars = (cap - STOP_TOKENS - CHAR_BYTES) // CHAR_BYTES
    return RequestGrammar(kind, bounded, separators, tagged, text, chars,
                          cap if reason is None else None, reason, tuple(left_out))


class GrammarBook:
    """Compiled grammars for one tokenizer, cached by the shape they enforce."""

    def __init__(self, tokenizer: Any, vocab_size: int):
        import xgrammar as xgr

        self._xgr = xgr
        self.vocab_size = vocab_size
        self.compiler = xgr.GrammarCompiler(
            xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size), max_threads=1)
        self._cache: dict[str, Any] = {}
        self._special_first = _class_chars(special_first_chars(tokenizer))
        self.bound = True  # False: grammars as the schema says, cut at the cap (a baseline for benchmarks)
        self.unbounded: dict[str, str] = {}  # schema shape -> why its grammar is not bounded
        self.left_out: dict[str, tuple[str, ...]] = {}  # schema shape and cap -> what the cap leaves out
        self.retries = 0  # answers that reached the cap under the contract's grammar and were decoded again

    def attempts(self, request: Request, *, prompt: str = "chat", allow_text: bool = False,
                 max_tokens: int | None = None) -> list[Any]:
        """The compiled grammars to decode `request` with, in order: the contract's own, then
        (for an answer that reaches the cap under it) the bounded one, which ends before the cap.
        One grammar when they are the same (no cap, bounding off, a schema that cannot be
        bounded), none when the request declares no schema."""
        strict = self.for_request(request, prompt=prompt, allow_text=allow_text, max_tokens=max_tokens)
        if strict is None or not self.bound:
            return [] if strict is None else [strict]
        roomy = request_grammar(request, prompt=prompt, allow_text=allow_text, max_tokens=max_tokens, bound=False)
        assert roomy is not None  # the same request declared a schema above
        first = self._compile(roomy, "chat" if prompt == "chat" else "specialist")
        return [strict] if first is strict else [first, strict]

    def for_request(self, request: Request, *, prompt: str = "chat", allow_text: bool = False,
                    max_tokens: int | None = None) -> Any | None:
        """The compiled grammar for this request's contract bounded to `max_tokens` (see
        `request_grammar`), or None when it declares no schema."""
        grammar = request_grammar(request, prompt=prompt, allow_text=allow_text, max_tokens=max_tokens,
                                  bound=self.bound)
        if grammar is None:
            return None
        if grammar.left_out:
            shape = f"{grammar.kind}/{grammar.bounded_to}" + json.dumps(grammar.schema, sort_keys=True)
            if shape not in self.left_out:
                log.warning("a cap of %s tokens leaves out %s of the grammar that answers reaching the cap "
                            "are decoded again with (their shortest answer does not fit at worst); raise "
                            "max_tokens to keep them", grammar.bounded_to, ", ".join(grammar.left_out))
            self.left_out[shape] = grammar.left_out
        if grammar.unbounded_reason is not None and self.bound:
            shape = grammar.kind + json.dumps(grammar.schema, sort_keys=True)
            if shape not in self.unbounded:
                log.warning("constrained answers of %s may be cut at the token cap: %s",
                            grammar.kind, grammar.unbounded_reason)
            self.unbounded[shape] = grammar.unbounded_reason
        return self._compile(grammar, "chat" if prompt == "chat" else "specialist")

    def _compile(self, grammar: RequestGrammar, prompt: str) -> Any:
        key = f"{grammar.kind}/{grammar.text_chars}" + json.dumps(grammar.schema, sort_keys=True)
        if key not in self._cache:
            xgr = self._xgr
            try:
                body = xgr.Grammar.from_json_schema(precise_formats(grammar.schema), any_whitespace=False,
                                                    strict_mode=True, separators=grammar.separators)
            except Exception as exc:  # xgrammar raises RuntimeError/ValueError variants
                raise ContractError(f"cannot build a grammar for this schema ({exc}); run without "
                                    "--constrained or simplify the schema") from None
            if grammar.tagged:
                opening, closing = TOOL_CALL_TAGS
                body = xgr.Grammar.concat(xgr.Grammar.from_ebnf(f'root ::= "{opening}"'), body,
                                          xgr.Grammar.from_ebnf(f'root ::= "{closing}"'))
            if grammar.text:
                excluded = _TEXT_FIRST_EXCLUDED[prompt] + self._special_first  # never empty
                rest = "[^]*" if grammar.text_chars is None else f"[^]{{0,{grammar.text_chars}}}"
                body = xgr.Grammar.union(body, xgr.Grammar.from_ebnf(f"root ::= [^{excluded}] {rest}"))
            self._cache[key] = self.compiler.compile_grammar(body)
        return self._cache[key]

    def matcher(self, compiled: Any) -> Any:
        return self._xgr.GrammarMatcher(compiled)

    def bitmask(self, rows: int) -> Any:
        return self._xgr.allocate_token_bitmask(rows, self.vocab_size)

    def apply(self, logits: Any, bitmask: Any, indices: list[int]) -> None:
        self._xgr.apply_token_bitmask_inplace(logits, bitmask, indices=indices)
