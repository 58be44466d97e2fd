"""Constrained decoding: only outputs the contract allows can be generated.

For a request with tools the grammar is `<tool_call>` + a JSON list of calls, each naming one of
the tools with arguments that match that tool's JSON Schema, + `</tool_call>` (the same shape
the prompt asks for, so `tool_text` reads it back). For a `response_format` schema it is that
schema. Whitespace inside JSON is fixed (compact), so the model cannot stall in blank space.
Grammars are compiled by xgrammar once per distinct schema and masked into the logits at each
step.
"""

from __future__ import annotations

import json
from typing import Any

from fledgling.calls import Request
from fledgling.errors import ContractError
from fledgling.models.prompting import function_specs, output_schema


def tool_calls_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """JSON Schema of a non-empty list of calls to the given tools."""
    variants = [{"type": "object",
                 "properties": {"name": {"const": t["name"]}, "arguments": t["parameters"]},
                 "required": ["name", "arguments"], "additionalProperties": False} for t in tools]
    return {"type": "array", "minItems": 1, "items": {"anyOf": variants}}


class GrammarBook:
    """Compiled grammars for one tokenizer, cached by the schema they enforce."""

    def __init__(self, tokenizer: Any, vocab_size: int):
        import xgrammar as xgr

        self._xgr = xgr
        self.vocab_size = vocab_size
        self.compiler = xgr.GrammarCompiler(
            xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size), max_threads=1)
        self._cache: dict[str, Any] = {}

    def for_request(self, request: Request) -> Any | None:
        """The compiled grammar for this request's contract, or None when it declares no schema."""
        tools = function_specs(request) if request.tool_choice != "none" else []
        if tools:
            return self._compile("tools", tool_calls_schema(tools))
        schema = output_schema(request)
        return self._compile("json", schema) if schema is not None else None

    def _compile(self, kind: str, schema: dict[str, Any]) -> Any:
        key = kind + json.dumps(schema, sort_keys=True)
        if key not in self._cache:
            xgr = self._xgr
            try:
                body = xgr.Grammar.from_json_schema(schema, any_whitespace=False, strict_mode=True)
            except Exception as exc:  # xgrammar raises RuntimeError/ValueError variants
                raise ContractError(f"cannot build a grammar for this schema ({exc}); run without "
                                    "--constrained or simplify the schema") from None
            if kind == "tools":
                body = xgr.Grammar.concat(xgr.Grammar.from_ebnf('root ::= "<tool_call>"'), body,
                                          xgr.Grammar.from_ebnf('root ::= "</tool_call>"'))
            self._cache[key] = self.compiler.compile_grammar(body)
        return self._cache[key]

    def matcher(self, compiled: Any) -> Any:
        return self._xgr.GrammarMatcher(compiled)

    def bitmask(self, rows: int) -> Any:
        return self._xgr.allocate_token_bitmask(rows, self.vocab_size)

    def apply(self, logits: Any, bitmask: Any, indices: list[int]) -> None:
        self._xgr.apply_token_bitmask_inplace(logits, bitmask, indices=indices)
