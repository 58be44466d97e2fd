"""The specialist prompt: what the small model sees instead of the hosted LLM's long prompt.

A hosted LLM needs the agent's full system prompt and every tool's JSON description. A
specialist trained on one task does not: it learns the task from examples, and the contract is
enforced on its answers anyway. So the specialist gets one short system line, the tools as
compact signatures (`refund(order_id: str, amount: num, reason?: late|damaged)`), and the
conversation; it answers a tool call as one compact JSON object
`{"name":"refund","arguments":{...}}` (several calls: a JSON list of them), and text as text.

Training (`render_example`) and inference (`compact_request`, then `parse_completion`) use the
same functions, so the model is always asked in the form it was taught. The rendered chat is
plain ChatML (`<|im_start|>role ... <|im_end|>`), which SmolLM2's own template produces for the
same messages; `CHAT_TEMPLATE` is that format with the `{% generation %}` markers TRL needs to
put the loss on the assistant's tokens only (but not on a turn marked `"train": false`, which
is context; see `conversations.py`).

Two variants (`SPECIALIST_PROMPTS`): `compact` lists the tool signatures (what an untrained model
needs to have a chance), `lean` names the task only. A tuned specialist has learnt its tools'
names and arguments from the examples, and the signatures were half of an example's tokens
(607 -> 294 on the demo's support-agent data), so `lean` is what the trainer teaches by
default: twice the examples for the same training time, and a shorter prefill when serving.
"""

from __future__ import annotations

import json
from typing import Any

from fledgling.calls import Request, Response, ToolCall

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' and message.get('train') != false %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_TYPE_NAMES = {"string": "str", "integer": "int", "number": "num", "boolean": "bool", "null": "null"}


SPECIALIST_PROMPTS = ("compact", "lean")
FORMAT_IDS = {"compact": "fledgling-specialist-v1", "lean": "fledgling-specialist-v2-lean"}


def format_of(format_id: str | None) -> str | None:
    """The prompt format a manifest's `prompt_format` names (None: not a specialist prompt)."""
    for name, known in FORMAT_IDS.items():
        if format_id == known:
            return name
    return "compact" if str(format_id or "").startswith("fledgling-specialist") else None


def system_line(task: str, tools: list[dict[str, Any]], output_schema: dict[str, Any] | None, *,
                signatures: bool = True) -> str:
    """The one system message the specialist gets: the task, then (unless `signatures` is
    False, the `lean` prompt) what it may answer with."""
    lines = [f"Task: {task}."]
    if not signatures:
        return lines[0]
    if tools:
        lines.append('Call a tool as {"name":...,"arguments":{...}} (several: a JSON list). Tools:')
        lines.extend(signature(t) for t in tools)
    if output_schema is not None:
        lines.append("Answer with JSON: " + schema_shape(output_schema))
    return "\n".join(lines)


def signature(tool: dict[str, Any]) -> str:
    """`name(arg: type, optional?: type)` from an OpenAI tool or a contract `ToolSpec` dump."""
    fn = tool.get("function", tool)
    params = fn.get("parameters") or {}
    required = set(params.get("required") or [])
    args = [f"{name}{'' if name in required else '?'}: {schema_shape(sub)}"
            for name, sub in (params.get("properties") or {}).items()]
    return f"{fn.get('name', '')}({', '.join(args)})"


def schema_shape(schema: Any) -> str:
    """A JSON Schema written as a short type expression."""
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return "|".join(_literal(v) for v in schema["enum"])
    if "const" in schema:
        return _literal(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return "|".join(schema_shape(s) for s in schema[key])
    kind = schema.get("type")
    if isinstance(kind, list):
        return "|".join(schema_shape({**schema, "type": k}) for k in kind)
    if kind == "array":
        return f"[{schema_shape(schema.get('items'))}]"
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        if not props:
            return "obj"
        required = set(schema.get("required") or [])
        inner = ", ".join(f"{k}{'' if k in required else '?'}: {schema_shape(v)}" for k, v in props.items())
        return "{" + inner + "}"
    return _TYPE_NAMES.get(kind, "any") if isinstance(kind, str) else "any"


def _literal(value: Any) -> str:
    """An enum value: a plain word stays bare (quotes cost tokens), anything else is JSON."""
    if isinstance(value, str) and value and all(c.isalnum() or c in "_-." for c in value):
        return value
    return json.dumps(value, ensure_ascii=False)


def render_response(response: Response) -> str:
    """The assistant turn as the specialist writes it."""
    if len(response.tool_calls) == 1:
        return _dumps(_call_object(response.tool_calls[0]))
    if response.tool_calls:
        return _dumps([_call_object(tc) for tc in response.tool_calls])
    return response.content or ""


def parse_completion(text: str, *, structured: bool = False) -> Response:
    """The specialist's text back as a `Response`: a JSON call object (or list of them) is tool calls.

    With `structured=True` (a response_format task) the text is always content, even when it
    happens to look like a tool call.
    """
    stripped = text.strip()
    if not structured and stripped[:1] in ("{", "["):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        items = value if isinstance(value, list) else [value]
        calls = [_tool_call(item) for item in items]
        found = [c for c in calls if c is not None]
        if items and len(found) == len(calls):
            return Response(content=None, tool_calls=found, finish_reason="tool_calls")
    return Response(content=stripped, finish_reason="stop")


def compact_request(request: Request, contract: Any = None, *, task: str | None = None,
                    signatures: bool = True) -> Request:
    """The request rewritten into the specialist prompt (what the SLM is trained on and served).

    The system prompt is replaced by `system_line`; tools come from the contract (an object with
    `task`, `tools` and `output_schema`, e.g. `fledgling.contracts.Contract`) or else from the
    request; the agent's own system prompt (the first system message) is dropped, later system
    messages (per-call context such as the signed-in customer) are kept, and earlier assistant
    tool calls and tool results become plain text turns. Render the
    result's `messages` alone (plain ChatML, no tool injection): everything the model needs is
    in them. `tools`, `tool_choice` and `response_format` are kept for what comes after the
    model — parsing its answer, constrained decoding, validation. `signatures=False` gives the
    `lean` prompt (the task line alone).
    """
    if contract is not None:
        tools = [t.model_dump() if hasattr(t, "model_dump") else dict(t) for t in contract.tools]
        output_schema = contract.output_schema
        name = task or contract.task
    else:
        tools = list(request.tools or [])
        output_schema = _response_format_schema(request.response_format)
        name = task or "assistant"
    messages = [{"role": "system", "content": system_line(name, tools, output_schema, signatures=signatures)}]
    rest = list(request.messages)
    if rest and rest[0].get("role") in ("system", "developer"):
        rest = rest[1:]  # the agent's standing instructions; later system turns carry call context
    messages.extend(_compact_message(m) for m in rest)
    params = {k: v for k, v in request.model_dump(exclude_none=True).items() if k != "messages"}
    return Request(messages=messages, **params)


def render_example(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, *,
                   task: str, response_format: dict[str, Any] | None = None,
                   signatures: bool = True) -> list[dict[str, str]]:
    """A curated example (its last message is the answer) as the specialist's training chat."""
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError("the last message must be the assistant's answer")
    request = Request(messages=messages[:-1], tools=tools or None, response_format=response_format)
    prompt = compact_request(request, task=task, signatures=signatures).messages
    answer = Response.from_message(messages[-1])
    return [*prompt, {"role": "assistant", "content": render_response(answer)}]


def _compact_message(message: dict[str, Any]) -> dict[str, str]:
    role = message.get("role", "user")
    if role == "assistant":
        return {"role": "assistant", "content": render_response(Response.from_message(message))}
    if role == "developer":
        role = "system"
    return {"role": role if role in ("user", "tool", "system") else "user",
            "content": _text(message.get("content"))}


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _call_object(tc: ToolCall) -> dict[str, Any]:
    """A call as the specialist writes it: its arguments with sorted keys, as curation's datasets
    hold them (so a conversation's earlier calls read the same in training and when serving)."""
    try:
        args: Any = _sorted_keys(tc.parsed_arguments())
    except ValueError:
        args = tc.arguments
    return {"name": tc.name, "arguments": args}


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def _tool_call(obj: Any) -> ToolCall | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or "arguments" not in obj:
        return None
    args = obj["arguments"]
    return ToolCall(name=obj["name"], arguments=args if isinstance(args, str) else _dumps(args))


def _response_format_schema(rf: dict[str, Any] | None) -> dict[str, Any] | None:
    if not rf or rf.get("type") != "json_schema":
        return None
    return (rf.get("json_schema") or {}).get("schema") or {}
