"""Contracts: what a task's answers must look like, inferred from the calls it made.

A contract is the tool set the agent declared (each tool's JSON Schema and its `strict` flag),
the `response_format` schema (and its `strict` flag), and the observed distribution (which tool
how often, which arguments and fields). Its version is a hash of its content, so the same tools
and schemas always give the same version and any schema change gives a new one. `validate`
checks an answer against it with JSON Schema 2020-12 and reports every violation with a precise
path such as `tool_calls[1].arguments.items[0].qty`. A strict schema is held to what OpenAI's strict mode
promises: no property beyond those declared, and every declared property present.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from pydantic import BaseModel, PrivateAttr

from fledgling.calls import Call, Response
from fledgling.errors import ContractError

if TYPE_CHECKING:
    from fledgling.store import Store

Kind = Literal["toolcall", "structured", "text"]

# Violation codes, in the order a reader cares about them.
CODES = ("invalid_json", "not_json", "unknown_tool", "missing_required", "schema",
         "no_tool_call", "unexpected_tool_call", "truncated")

_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


class ToolSpec(BaseModel):
    """One tool the agent declared: its name, description, arguments' JSON Schema and whether
    it asked for strict mode (None: it did not say)."""

    name: str
    description: str | None = None
    parameters: dict[str, Any]
    strict: bool | None = None


class Contract(BaseModel):
    task: str
    version: str
    kind: Kind
    tools: list[ToolSpec]
    output_schema: dict[str, Any] | None = None
    output_strict: bool | None = None
    stats: dict[str, Any]

    _validators: dict[str | None, Draft202012Validator] | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        """Equal content is an equal contract, whether or not its validators were built yet."""
        return isinstance(other, Contract) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)

    def validators(self) -> dict[str | None, Draft202012Validator]:
        """One checked validator per tool (by name) and for the output schema (key None)."""
        if self._validators is None:
            built: dict[str | None, Draft202012Validator] = {
                t.name: _validator(t.parameters, f"tool '{t.name}' parameters", strict=bool(t.strict))
                for t in self.tools}
            if self.output_schema is not None:
                built[None] = _validator(self.output_schema, "the response_format schema",
                                         strict=bool(self.output_strict))
            self._validators = built
        return self._validators


class Violation(BaseModel):
    code: str
    path: str
    message: str


# -- inference ----------------------------------------------------------------------------------

def contract_version(kind: str, tools: list[ToolSpec], output_schema: dict[str, Any] | None,
                     output_strict: bool | None = None) -> str:
    """The content hash: equal tools and schemas give an equal version, in any order. A `strict`
    flag counts when it is set, so contracts declared without one keep their old versions."""
    body: dict[str, Any] = {
        "kind": kind, "output_schema": output_schema,
        "tools": [t.model_dump(exclude={"strict"} if t.strict is None else None)
                  for t in sorted(tools, key=lambda t: t.name)]}
    if output_strict is not None:
        body["output_strict"] = output_strict
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def infer_contract(calls: Iterable[Call], task: str) -> Contract:
    """Derive a task's contract from its calls (streamed: memory does not grow with their number).

    Tools are the union of what the requests declared; when a tool's declaration changed over
    time the newest one wins and `stats["tool_schema_changes"]` counts its distinct versions.
    """
    acc = _Accumulator()
    for call in calls:
        acc.add(call)
    if acc.n == 0:
        raise ContractError(f"task '{task}' has no calls to infer a contract from; import or "
                            "capture some first (see `fledgling traces stats`)")
    tools = [ToolSpec(name=name, description=decl[1].get("description"),
                      parameters=decl[1].get("parameters") or dict(_EMPTY_PARAMETERS),
                      strict=decl[1].get("strict"))
             for name, decl in sorted(acc.tool_decls.items())]
    output_schema = acc.output_schema[1] if acc.output_schema else None
    output_strict = acc.output_strict if output_schema is not None else None
    kind: Kind = "toolcall" if tools else "structured" if output_schema is not None else "text"
    contract = Contract(task=task, version=contract_version(kind, tools, output_schema, output_strict),
                        kind=kind, tools=tools, output_schema=output_schema,
                        output_strict=output_strict, stats=acc.stats())
    contract.validators()  # an invalid declared schema is an error now, not at first use
    return contract


class _Accumulator:
    """Counts what the calls show, one call at a time."""

    def __init__(self) -> None:
        self.n = 0
        self.answered = 0
        self.no_tool = 0
        self.parallel = 0
        self.errors = 0
        self.tool_decls: dict[str, tuple[datetime, dict[str, Any]]] = {}
        self.decl_variants: dict[str, set[str]] = {}
        self.output_schema: tuple[datetime, dict[str, Any]] | None = None
        self.output_strict: bool | None = None
        self.schema_variants: set[str] = set()
        self.tool_calls: Counter[str] = Counter()
        self.arg_presence: dict[str, Counter[str]] = {}
        self.bad_args: Counter[str] = Counter()
        self.undeclared: Counter[str] = Counter()
        self.structured = 0
        self.unparseable = 0
        self.fields: Counter[str] = Counter()
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.models: Counter[str] = Counter()

    def add(self, call: Call) -> None:
        self.n += 1
        at = call.created_at
        self.first = at if self.first is None or at < self.first else self.first
        self.last = at if self.last is None or at > self.last else self.last
        if call.model:
            self.models[call.model] += 1
        for raw in call.request.tools or []:
            inner = raw.get("function")
            fn = inner if isinstance(inner, dict) else raw
            name = fn.get("name")
            if not name:
                continue
            decl = {"description": fn.get("description"), "parameters": fn.get("parameters")}
            strict = fn.get("strict", raw.get("strict"))
            if isinstance(strict, bool):
                decl["strict"] = strict
            self.decl_variants.setdefault(name, set()).add(_canonical(decl))
            if name not in self.tool_decls or at >= self.tool_decls[name][0]:
                self.tool_decls[name] = (at, decl)
        schema = _response_format_schema(call.request.response_format)
        if schema is not None:
            self.schema_variants.add(_canonical(schema))
            if self.output_schema is None or at >= self.output_schema[0]:
                self.output_schema = (at, schema)
                self.output_strict = response_format_strict(call.request.response_format)
        resp = call.response
        if call.status == "error" or resp is None:
            self.errors += 1
            return
        self.answered += 1
        if not resp.tool_calls:
            self.no_tool += 1
        elif len(resp.tool_calls) > 1:
            self.parallel += 1
        for tc in resp.tool_calls:
            self.tool_calls[tc.name] += 1
            try:
                args = tc.parsed_arguments()
            except ValueError:
                self.bad_args[tc.name] += 1
                continue
            self.arg_presence.setdefault(tc.name, Counter()).update(set(_field_paths(args)))
        if schema is not None and not resp.tool_calls:
            self.structured += 1
            try:
                out = orjson.loads(resp.content or "")
            except ValueError:
                self.unparseable += 1
                return
            self.fields.update(set(_field_paths(out)))

    def stats(self) -> dict[str, Any]:
        declared = set(self.tool_decls)
        tools = {}
        for name in sorted(set(self.tool_calls) | declared):
            n = self.tool_calls.get(name, 0)
            parsed = n - self.bad_args.get(name, 0)
            present = self.arg_presence.get(name, Counter())
            tools[name] = {
                "calls": n,
                "declared": name in declared,
                "invalid_json_arguments": self.bad_args.get(name, 0),
                # share of the calls with parseable arguments in which each field is present
                "arguments": {p: round(c / parsed, 4) for p, c in sorted(present.items())} if parsed else {},
            }
        out: dict[str, Any] = {
            "n": self.n, "answered": self.answered, "errors": self.errors,
            "no_tool_call_share": round(self.no_tool / self.answered, 4) if self.answered else 0.0,
            "parallel_share": round(self.parallel / self.answered, 4) if self.answered else 0.0,
            "tools": tools,
            "tool_schema_changes": {k: len(v) for k, v in sorted(self.decl_variants.items())
                                    if len(v) > 1},
            "first_call": self.first.isoformat() if self.first else None,
            "last_call": self.last.isoformat() if self.last else None,
            "models": dict(self.models.most_common()),
        }
        if self.output_schema is not None:
            out["structured_outputs"] = self.structured
            out["unparseable_outputs"] = self.unparseable
            parsed = self.structured - self.unparseable
            out["fields"] = ({p: round(c / parsed, 4) for p, c in sorted(self.fields.items())}
                             if parsed else {})
            out["output_schema_changes"] = len(self.schema_variants)
        return out


def _response_format_schema(rf: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON Schema a `response_format` asks for; `json_object` means any object."""
    if not rf:
        return None
    if rf.get("type") == "json_schema" or "json_schema" in rf:
        js = rf.get("json_schema") or {}
        schema = js.get("schema")
        return schema if isinstance(schema, dict) else None
    if rf.get("type") == "json_object":
        return {"type": "object"}
    return None


def response_format_strict(rf: dict[str, Any] | None) -> bool | None:
    """The `strict` flag of a json_schema `response_format` (None when it does not say)."""
    strict = ((rf or {}).get("json_schema") or {}).get("strict")
    return strict if isinstance(strict, bool) else None


def strict_schema(schema: Any) -> Any:
    """`schema` as OpenAI's strict mode reads it: every object schema closed
    (`additionalProperties: false` unless it says otherwise) and all its properties required."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions", "patternProperties"):
            out[key] = {k: strict_schema(v) for k, v in value.items()} if isinstance(value, dict) else value
        elif key in ("items", "prefixItems", "anyOf", "oneOf", "allOf", "not", "additionalProperties",
                     "contains", "if", "then", "else"):
            out[key] = strict_schema(value)
        else:
            out[key] = value
    kind = out.get("type")
    if "properties" in out or kind == "object" or (isinstance(kind, list) and "object" in kind):
        out.setdefault("additionalProperties", False)
        props = out.get("properties") or {}
        out["required"] = list(dict.fromkeys([*(out.get("required") or []), *props]))
    return out


def _field_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Every field path present in a JSON value: `address.city`, `items[].qty`."""
    if isinstance(value, dict):
        for key, sub in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            yield from _field_paths(sub, path)
    elif isinstance(value, list):
        for item in value:
            yield from _field_paths(item, f"{prefix}[]")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- validation ---------------------------------------------------------------------------------

def _validator(schema: Any, what: str, *, strict: bool = False) -> Draft202012Validator:
    if not isinstance(schema, dict):
        raise ContractError(f"{what} is not a JSON Schema object (got {type(schema).__name__}); "
                            "fix the declaration in the agent and infer again")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = _path(exc.absolute_path) or "(root)"
        raise ContractError(f"{what} is not a valid JSON Schema 2020-12 at {where}: "
                            f"{exc.message}; fix the declaration in the agent and infer again"
                            ) from None
    return Draft202012Validator(strict_schema(schema) if strict else schema)


def validate(response: Response, contract: Contract, *,
             tool_choice: str | dict[str, Any] | None = None,
             parallel_tool_calls: bool | None = None) -> list[Violation]:
    """Every way `response` breaks `contract`; `[]` means valid.

    `tool_choice` and `parallel_tool_calls` are what the request asked for, when known; they add
    `no_tool_call` / `unexpected_tool_call` checks. Raises `ContractError` when a schema in the
    contract is itself invalid.
    """
    validators = contract.validators()
    out: list[Violation] = []
    calls = response.tool_calls
    if response.finish_reason == "length":
        out.append(Violation(code="truncated", path="finish_reason",
                             message="generation stopped at the token limit; the answer is incomplete"))
    if contract.kind == "toolcall":
        out.extend(_check_tool_choice(response, tool_choice, parallel_tool_calls))
        for i, tc in enumerate(calls):
            out.extend(_check_tool_call(i, tc.name, tc.arguments, contract, validators))
        if not calls and None in validators and response.content:
            out.extend(_check_content(response.content, validators[None]))
        return out
    for i, tc in enumerate(calls):
        out.append(Violation(code="unexpected_tool_call", path=f"tool_calls[{i}]",
                             message=f"called tool '{tc.name}' but task '{contract.task}' "
                                     f"declares no tools"))
    if contract.kind == "structured" and not calls:
        out.extend(_check_content(response.content, validators[None]))
    return out


def validate_call(call: Call, contract: Contract) -> list[Violation]:
    """`validate` with what the call's request asked for (tool_choice, parallel_tool_calls).

    A call that failed upstream has no answer to check and gives `[]`.
    """
    if call.response is None:
        return []
    extra = call.request.model_extra or {}
    parallel = extra.get("parallel_tool_calls")
    return validate(call.response, contract, tool_choice=call.request.tool_choice,
                    parallel_tool_calls=parallel if isinstance(parallel, bool) else None)


def _check_tool_choice(response: Response, tool_choice: str | dict[str, Any] | None,
                       parallel: bool | None) -> Iterator[Violation]:
    calls = response.tool_calls
    forced = None
    if isinstance(tool_choice, dict):
        forced = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    if (tool_choice == "required" or forced) and not calls:
        yield Violation(code="no_tool_call", path="tool_calls",
                        message=f"the request required a tool call"
                                f"{f' to {forced!r}' if forced else ''} but the answer has none")
    if tool_choice == "none":
        for i, tc in enumerate(calls):
            yield Violation(code="unexpected_tool_call", path=f"tool_calls[{i}]",
                            message=f"called '{tc.name}' although the request set tool_choice 'none'")
    if forced:
        for i, tc in enumerate(calls):
            if tc.name != forced:
                yield Violation(code="unexpected_tool_call", path=f"tool_calls[{i}].name",
                                message=f"called '{tc.name}' although the request forced '{forced}'")
    if parallel is False and len(calls) > 1:
        yield Violation(code="unexpected_tool_call", path=f"tool_calls[{len(calls) - 1}]",
                        message=f"{len(calls)} tool calls although the request set "
                                "parallel_tool_calls false")


def _check_tool_call(i: int, name: str, arguments: str, contract: Contract,
                     validators: dict[str | None, Draft202012Validator]) -> list[Violation]:
    base = f"tool_calls[{i}]"
    if not name or name not in validators:
        known = ", ".join(t.name for t in contract.tools)
        return [Violation(code="unknown_tool", path=f"{base}.name",
                          message=f"'{name}' is not a declared tool (declared: {known})")]
    try:
        args = orjson.loads(arguments or "{}")
    except ValueError as exc:
        return [Violation(code="invalid_json", path=f"{base}.arguments",
                          message=f"arguments are not valid JSON ({exc})")]
    return list(_schema_violations(validators[name], args, f"{base}.arguments"))


def _check_content(content: str | None, validator: Draft202012Validator) -> list[Violation]:
    if content is None or not content.strip():
        return [Violation(code="not_json", path="content",
                          message="the answer has no content; a JSON object was expected")]
    try:
        value = orjson.loads(content)
    except ValueError as exc:
        return [Violation(code="not_json", path="content",
                          message=f"the content is not valid JSON ({exc})")]
    return list(_schema_violations(validator, value, "content"))


def _schema_violations(validator: Draft202012Validator, instance: Any, base: str) -> Iterator[Violation]:
    seen: set[tuple[str, str]] = set()
    for err in sorted(validator.iter_errors(instance), key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        for v in _explain(err, base):
            if (v.code, v.path) not in seen or v.code == "schema":
                seen.add((v.code, v.path))
                yield v


def _explain(err: ValidationError, base: str) -> Iterator[Violation]:
    """One violation per offending field, pointing at the field rather than its parent."""
    where = _join(base, _path(err.absolute_path))
    if err.validator == "required" and isinstance(err.instance, dict):
        for name in err.validator_value:
            if name not in err.instance:
                yield Violation(code="missing_required", path=_join(where, _key(name)),
                                message=f"required field '{name}' is missing")
        return
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        schema = err.schema if isinstance(err.schema, dict) else {}
        allowed = set(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        extras = [k for k in err.instance if k not in allowed and not any(p.search(k) for p in patterns)]
        for name in extras:
            yield Violation(code="schema", path=_join(where, _key(name)),
                            message=f"field '{name}' is not allowed here")
        if extras:
            return
    yield Violation(code="schema", path=where, message=err.message)


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else _key(str(p))
    return out.lstrip(".")


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def _key(name: str) -> str:
    return f".{name}" if _IDENT.match(name) else f"[{json.dumps(name, ensure_ascii=False)}]"


def _join(base: str, rest: str) -> str:
    if not rest:
        return base
    return base + (rest if rest.startswith(("[", ".")) else "." + rest)


@dataclass
class CheckResult:
    """How a task's recorded answers fare against its contract."""

    checked: int = 0
    valid: int = 0
    no_answer: int = 0
    by_code: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[str, Violation]] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return self.checked - self.valid


def check_calls(calls: Iterable[Call], contract: Contract, *, examples: int = 5) -> CheckResult:
    """Validate every recorded answer (streamed); counts calls per violation code."""
    result = CheckResult()
    for call in calls:
        if call.response is None:
            result.no_answer += 1
            continue
        result.checked += 1
        violations = validate_call(call, contract)
        if not violations:
            result.valid += 1
            continue
        result.by_code.update({v.code for v in violations})
        if len(result.examples) < examples:
            result.examples.append((call.id, violations[0]))
    return result


# -- storage ------------------------------------------------------------------------------------

def save_contract(store: Store, contract: Contract) -> bool:
    """Store a contract version; False when that exact version was stored before.

    Tools keep `strict` inside their JSON; the output format's flag has its own column."""
    return store.put_contract(task=contract.task, version=contract.version, kind=contract.kind,
                              n_calls=int(contract.stats.get("n", 0)),
                              tools=[t.model_dump(exclude={"strict"} if t.strict is None else None)
                                     for t in contract.tools],
                              output_schema=contract.output_schema, output_strict=contract.output_strict,
                              stats=contract.stats)


def load_contract(store: Store, task: str, version: str | None = None) -> Contract | None:
    """The newest stored contract of a task, or the named version (a unique prefix works)."""
    rows = store.contracts(task)
    if version is not None:
        rows = [r for r in rows if r["version"].startswith(version)]
        if len(rows) > 1:
            raise ContractError(f"version prefix '{version}' matches {len(rows)} contracts of "
                                f"task '{task}'; give more characters")
    if not rows:
        return None
    row = rows[0]
    stats = dict(row["stats"] or {})
    in_stats = stats.pop("output_strict", None)  # where rows written before migration 0011 kept it
    output_strict = row.get("output_strict")
    if output_strict is None and isinstance(in_stats, bool):
        output_strict = in_stats
    return Contract(task=row["task"], version=row["version"], kind=row["kind"],
                    tools=[ToolSpec.model_validate(t) for t in row["tools"]],
                    output_schema=row["output_schema"], output_strict=output_strict, stats=stats)


def infer_and_save(s: Store, task: str) -> tuple[Contract, bool]:
    """Infer the task's contract from its stored calls and store it; True when the version is new."""
    from fledgling.store import CallFilter

    contract = infer_contract(s.iter_calls(CallFilter(task=task)), task)
    return contract, save_contract(s, contract)
