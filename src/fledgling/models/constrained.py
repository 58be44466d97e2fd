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
"""

from __future__ import annotations

import json
from typing import Any

from fledgling.calls import Request
from fledgling.errors import ContractError
from fledgling.models.prompting import function_specs, output_schema

COMPACT_SEPARATORS = (",", ":")
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


def compact_calls_schema(tools: list[dict[str, Any]], *, parallel: bool = True) -> dict[str, Any]:
    """One call object, or (when parallel calls are allowed) a list of two or more."""
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

    def for_request(self, request: Request, *, prompt: str = "chat", allow_text: bool = False) -> Any | None:
        """The compiled grammar for this request's contract, or None when it declares no schema."""
        tools = request_tools(request)
        if tools:
            parallel = (request.model_extra or {}).get("parallel_tool_calls") is not False
            text = text_allowed(request, allow_text)
            if prompt != "chat":
                schema = compact_calls_schema(tools, parallel=parallel)
            else:
                schema = tool_calls_schema(tools, parallel=parallel)
            return self._compile(f"tools/{prompt}/{text}", schema, prompt, text)
        out_schema = output_schema(request)
        return self._compile(f"json/{prompt}", out_schema, prompt, False) if out_schema is not None else None

    def _compile(self, kind: str, schema: dict[str, Any], prompt: str, text: bool) -> Any:
        key = kind + json.dumps(schema, sort_keys=True)
        if key not in self._cache:
            xgr = self._xgr
            separators = COMPACT_SEPARATORS if prompt != "chat" else None
            try:
                body = xgr.Grammar.from_json_schema(schema, any_whitespace=False, strict_mode=True,
                                                    separators=separators)
            except Exception as exc:  # xgrammar raises RuntimeError/ValueError variants
                raise ContractError(f"cannot build a grammar for this schema ({exc}); run without "
                                    "--constrained or simplify the schema") from None
            if kind.startswith("tools/chat"):
                body = xgr.Grammar.concat(xgr.Grammar.from_ebnf('root ::= "<tool_call>"'), body,
                                          xgr.Grammar.from_ebnf('root ::= "</tool_call>"'))
            if text:
                excluded = _TEXT_FIRST_EXCLUDED["chat" if prompt == "chat" else "specialist"]
                excluded += self._special_first  # a text answer is never empty
                plain = xgr.Grammar.from_ebnf(f"root ::= [^{excluded}] [^]*")
                body = xgr.Grammar.union(body, plain)
            self._cache[key] = self.compiler.compile_grammar(body)
        return self._cache[key]

    def matcher(self, compiled: Any) -> Any:
        return self._xgr.GrammarMatcher(compiled)

    def bitmask(self, rows: int) -> Any:
        return self._xgr.allocate_token_bitmask(rows, self.vocab_size)

    def apply(self, logits: Any, bitmask: Any, indices: list[int]) -> None:
        self._xgr.apply_token_bitmask_inplace(logits, bitmask, indices=indices)
