"""Scoring one prediction against one reference, exactly as docs/paritybench.md's Scoring section says.

Pure functions, no I/O, so every number means the same everywhere and can be property-tested.

- Tool calls are compared as parsed structures: name, then arguments after JSON parsing, with
  the tool's JSON Schema deciding which values are equal (`"5"` vs `5` for an integer is a
  mismatch; `1` vs `1.0` for a number is not; an int where a number is expected is accepted,
  a float where an integer is expected is not; a bool is never a number).
- Optional arguments absent on both sides match; present on one side only is a mismatch.
- Parallel calls match as a multiset: the pairing of predicted to reference calls is the one
  that maximises exact matches, then matched arguments (exhaustive for up to 6 calls per side,
  greedy and deterministic beyond).
- "No tool call" is a prediction like any other: the empty multiset of calls.
- Strict by default. `lenient=True` normalises strings (case, spaces, punctuation) before
  comparing them, the way public leaderboards do; reports name that mode.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from itertools import permutations
from typing import Any

import orjson

from fledgling.calls import Response, ToolCall
from fledgling.contracts import Contract, validate

_INVALID = object()  # arguments that did not parse as a JSON object
_EXACT_BONUS = 1_000_000  # one exact pair outweighs any number of matched arguments
_EXHAUSTIVE_LIMIT = 6


@dataclass(frozen=True)
class ItemScore:
    """Per-item metrics; None means the metric does not apply to this item's kind."""

    tool_name_match: float | None = None
    args_exact_match: float | None = None
    arg_precision: float | None = None
    arg_recall: float | None = None
    schema_valid: float | None = None
    exact_match: float | None = None
    field_accuracy: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)

    @property
    def success(self) -> float:
        """The one pass/fail of an item: the exact answer (tool calls or structured output)."""
        if self.args_exact_match is not None:
            return self.args_exact_match
        return self.exact_match if self.exact_match is not None else 0.0


METRICS = tuple(ItemScore.__dataclass_fields__)


# -- values under a schema ------------------------------------------------------------------------

def normalise_text(value: str) -> str:
    """Lenient string form: case-folded, punctuation dropped, whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    no_punct = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in folded)
    return re.sub(r"\s+", " ", no_punct).strip()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def values_equal(pred: Any, ref: Any, schema: dict[str, Any] | None = None, *,
                 lenient: bool = False) -> bool:
    """Whether a predicted JSON value equals the reference one under `schema`'s type rules."""
    schema = schema if isinstance(schema, dict) else {}
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return any(values_equal(pred, ref, {**{k: v for k, v in schema.items() if k != key}, **s},
                                    lenient=lenient) for s in schema[key] if isinstance(s, dict))
    types = schema.get("type")
    if isinstance(types, list):
        return any(values_equal(pred, ref, {**schema, "type": t}, lenient=lenient) for t in types)
    if isinstance(types, str) and not _CONFORMS.get(types, lambda _v: True)(ref):
        return values_equal(pred, ref, lenient=lenient)  # an off-schema reference: plain equality
    if types == "integer":
        return _is_int(pred) and pred == ref
    if types == "number":
        return _is_number(pred) and pred == ref
    if types == "string":
        return isinstance(pred, str) and _str_equal(pred, ref, lenient)
    if types == "boolean":
        return isinstance(pred, bool) and pred == ref
    if types == "null":
        return pred is None
    if types == "array" or (types is None and isinstance(ref, list)):
        return (isinstance(pred, list) and isinstance(ref, list) and len(pred) == len(ref)
                and all(values_equal(p, r, _item_schema(schema, i), lenient=lenient)
                        for i, (p, r) in enumerate(zip(pred, ref, strict=True))))
    if types == "object" or (types is None and isinstance(ref, dict)):
        return (isinstance(pred, dict) and isinstance(ref, dict) and pred.keys() == ref.keys()
                and all(values_equal(pred[k], ref[k], _property_schema(schema, k), lenient=lenient)
                        for k in ref))
    return _json_equal(pred, ref, lenient)


_CONFORMS = {
    "integer": _is_int, "number": _is_number, "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool), "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list), "object": lambda v: isinstance(v, dict),
}


def _json_equal(pred: Any, ref: Any, lenient: bool) -> bool:
    """Equality without a schema: numbers compare by value, a bool is never a number."""
    if isinstance(pred, bool) or isinstance(ref, bool):
        return isinstance(pred, bool) and isinstance(ref, bool) and pred == ref
    if _is_number(pred) or _is_number(ref):
        return _is_number(pred) and _is_number(ref) and pred == ref
    if isinstance(pred, str) and isinstance(ref, str):
        return _str_equal(pred, ref, lenient)
    return pred is None and ref is None


def _str_equal(a: str, b: str, lenient: bool) -> bool:
    return normalise_text(a) == normalise_text(b) if lenient else a == b


def _property_schema(schema: dict[str, Any], key: str) -> dict[str, Any] | None:
    props = schema.get("properties")
    if isinstance(props, dict) and isinstance(props.get(key), dict):
        return props[key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _item_schema(schema: dict[str, Any], index: int) -> dict[str, Any] | None:
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list) and index < len(prefix) and isinstance(prefix[index], dict):
        return prefix[index]
    items = schema.get("items")
    return items if isinstance(items, dict) else None


# -- tool calls -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ToolCallComparison:
    tool_name_match: float
    args_exact_match: float
    arg_precision: float
    arg_recall: float
    pairs: tuple[tuple[int, int], ...]  # (predicted index, reference index) of matched calls


def _parse_args(tc: ToolCall) -> Any:
    try:
        parsed = orjson.loads(tc.arguments or "{}")
    except orjson.JSONDecodeError:
        return _INVALID
    return parsed if isinstance(parsed, dict) else _INVALID


def _pair_counts(pred: Any, ref: Any, schema: dict[str, Any] | None,
                 lenient: bool) -> tuple[bool, int]:
    """(exact, number of reference arguments matched) for two calls of the same tool."""
    if pred is _INVALID or ref is _INVALID:
        return False, 0
    props = schema if isinstance(schema, dict) else {}
    matched = sum(1 for k, v in ref.items()
                  if k in pred and values_equal(pred[k], v, _property_schema(props, k), lenient=lenient))
    return matched == len(ref) == len(pred), matched


def _arg_count(args: Any) -> int:
    return 1 if args is _INVALID else len(args)


def compare_tool_calls(predicted: list[ToolCall], reference: list[ToolCall],
                       schemas: dict[str, dict[str, Any]] | None = None, *,
                       lenient: bool = False) -> ToolCallComparison:
    """Compare two multisets of tool calls. `schemas` maps tool name to its parameters schema."""
    schemas = schemas or {}
    p_args = [_parse_args(tc) for tc in predicted]
    r_args = [_parse_args(tc) for tc in reference]
    weight: dict[tuple[int, int], tuple[bool, int]] = {}
    for i, p in enumerate(predicted):
        for j, r in enumerate(reference):
            if p.name == r.name:
                weight[(i, j)] = _pair_counts(p_args[i], r_args[j], schemas.get(r.name), lenient)
    pairs = _best_assignment(len(predicted), len(reference),
                             {k: _EXACT_BONUS * exact + n for k, (exact, n) in weight.items()})
    names_match = Counter(tc.name for tc in predicted) == Counter(tc.name for tc in reference)
    exact = (names_match and len(pairs) == len(reference) == len(predicted)
             and all(weight[p][0] for p in pairs))
    correct = sum(weight[p][1] for p in pairs)
    n_pred = sum(_arg_count(a) for a in p_args)
    n_ref = sum(_arg_count(a) for a in r_args)
    return ToolCallComparison(
        tool_name_match=float(names_match), args_exact_match=float(exact),
        arg_precision=_ratio(correct, n_pred, n_ref), arg_recall=_ratio(correct, n_ref, n_pred),
        pairs=tuple(sorted(pairs)))


def _ratio(correct: int, denominator: int, other: int) -> float:
    """correct / denominator; an empty denominator scores 1 only when the other side is empty too."""
    if denominator == 0:
        return 1.0 if other == 0 else 0.0
    return correct / denominator


def _best_assignment(n_pred: int, n_ref: int,
                     weight: dict[tuple[int, int], int]) -> list[tuple[int, int]]:
    """The pairing (each call used at most once, only same-name pairs) of maximal total weight."""
    if not weight:
        return []
    if min(n_pred, n_ref) <= _EXHAUSTIVE_LIMIT and max(n_pred, n_ref) <= _EXHAUSTIVE_LIMIT:
        best: tuple[int, list[tuple[int, int]]] = (-1, [])
        swap = n_pred > n_ref
        small, large = (n_ref, n_pred) if swap else (n_pred, n_ref)
        for chosen in permutations(range(large), small):
            pairs = [((c, s) if swap else (s, c)) for s, c in enumerate(chosen)]
            pairs = [p for p in pairs if p in weight]
            total = sum(weight[p] for p in pairs)
            if total > best[0]:
                best = (total, pairs)
        return best[1]
    used_p: set[int] = set()
    used_r: set[int] = set()
    out = []
    for (i, j), _w in sorted(weight.items(), key=lambda kv: (-kv[1], kv[0])):
        if i not in used_p and j not in used_r:
            used_p.add(i)
            used_r.add(j)
            out.append((i, j))
    return out


# -- structured output ----------------------------------------------------------------------------

def leaf_fields(value: Any, path: str = "$") -> dict[str, Any]:
    """Leaf values by JSON path (`$.a.b[0]`); an empty object or array is itself a leaf."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(leaf_fields(v, f"{path}.{k}"))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, v in enumerate(value):
            out.update(leaf_fields(v, f"{path}[{i}]"))
        return out
    return {path: value}


def _schema_at(schema: dict[str, Any] | None, path: str) -> dict[str, Any] | None:
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        if not isinstance(schema, dict):
            return None
        key, index = part
        schema = _property_schema(schema, key) if key else _item_schema(schema, int(index))
    return schema


def compare_structured(predicted: Any, reference: Any, schema: dict[str, Any] | None = None, *,
                       lenient: bool = False) -> tuple[float, float]:
    """(exact_match, field_accuracy) of two parsed JSON values.

    Field accuracy is the share of leaf paths, over the union of both sides, whose values are
    equal; so missing and extra fields both count against it.
    """
    exact = values_equal(predicted, reference, schema, lenient=lenient)
    p_leaves, r_leaves = leaf_fields(predicted), leaf_fields(reference)
    paths = r_leaves.keys() | p_leaves.keys()
    correct = sum(1 for path in paths if path in p_leaves and path in r_leaves
                  and values_equal(p_leaves[path], r_leaves[path], _schema_at(schema, path),
                                   lenient=lenient))
    return float(exact), correct / len(paths)


def _parse_content(content: str | None) -> Any:
    if content is None:
        return _INVALID
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return _INVALID


# -- one item -------------------------------------------------------------------------------------

def score_item(predicted: Response | None, reference: Response, contract: Contract, *,
               lenient: bool = False) -> ItemScore:
    """All per-item metrics for the contract's kind. `predicted=None` is a failed generation."""
    schema_valid = None if predicted is None else float(not validate(predicted, contract))
    if predicted is None:
        predicted, schema_valid = Response(content=None), 0.0
    if contract.kind == "toolcall":
        cmp = compare_tool_calls(predicted.tool_calls, reference.tool_calls,
                                 {t.name: t.parameters for t in contract.tools}, lenient=lenient)
        return ItemScore(tool_name_match=cmp.tool_name_match, args_exact_match=cmp.args_exact_match,
                         arg_precision=cmp.arg_precision, arg_recall=cmp.arg_recall,
                         schema_valid=schema_valid)
    if contract.kind == "structured":
        ref = _parse_content(reference.content)
        pred = _parse_content(predicted.content) if not predicted.tool_calls else _INVALID
        if ref is _INVALID:
            return ItemScore(schema_valid=schema_valid)
        if pred is _INVALID:
            return ItemScore(schema_valid=schema_valid, exact_match=0.0, field_accuracy=0.0)
        exact, fields = compare_structured(pred, ref, contract.output_schema, lenient=lenient)
        return ItemScore(schema_valid=schema_valid, exact_match=exact, field_accuracy=fields)
    same = (not predicted.tool_calls and predicted.content is not None and reference.content is not None
            and _str_equal(predicted.content, reference.content, lenient))
    return ItemScore(schema_valid=schema_valid, exact_match=float(same))
