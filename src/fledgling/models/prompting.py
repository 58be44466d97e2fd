"""Turning a chat-completions request into the prompt text a local model reads.

A chat template that renders `tools` itself is used as is. One that ignores them (SmolLM2's
does) gets the tools in the system message, in the format SmolLM2 was tuned on: a `<tools>`
list, and answers as `<tool_call>[{"name": ..., "arguments": {...}}]</tool_call>`. A
`response_format` schema becomes an instruction to answer with JSON only.

The other formats are the specialist prompts a Fledgling-trained model learnt
(`fledgling.models.specialist`): plain ChatML, answers as a compact JSON call object, and one short
system line — with the tool signatures (`compact`, about five times shorter than the agent's
own prompt) or naming the task alone (`lean`).
"""

from __future__ import annotations

import json
from typing import Any

from fledgling.calls import Request
from fledgling.models.specialist import SPECIALIST_PROMPTS

PROMPT_FORMATS = ("chat", *SPECIALIST_PROMPTS)

TOOL_INSTRUCTIONS = (
    "You are an expert at composing function calls. From the conversation and the functions "
    "available, make the one or more function calls that achieve the user's goal. Use the exact "
    "argument names and types of each function's parameters.\n\n"
    "You have access to these functions:\n<tools>{tools}</tools>\n\n"
    "Answer with the calls only, in exactly this format and with no other text:\n"
    '<tool_call>[{{"name": "function_name", "arguments": {{"argument_name": "value"}}}}]</tool_call>'
)
JSON_INSTRUCTIONS = ("Answer with one JSON value only, no prose, that matches this JSON Schema:\n"
                     "{schema}")


def function_specs(request: Request) -> list[dict[str, Any]]:
    out = []
    for raw in request.tools or []:
        inner = raw.get("function")
        fn = inner if isinstance(inner, dict) else raw
        if fn.get("name"):
            out.append({"name": fn["name"], "description": fn.get("description") or "",
                        "parameters": fn.get("parameters") or {"type": "object", "properties": {}}})
    return out


def output_schema(request: Request) -> dict[str, Any] | None:
    rf = request.response_format or {}
    if rf.get("type") == "json_schema":
        spec = rf.get("json_schema") or {}
        return spec.get("schema") if isinstance(spec.get("schema"), dict) else None
    if rf.get("type") == "json_object":
        return {"type": "object"}
    return None


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def _plain_messages(request: Request) -> list[dict[str, str]]:
    """Messages with string content only: tool calls and tool results written out as text."""
    out = []
    for msg in request.messages:
        role = msg.get("role", "user")
        text = _text(msg.get("content"))
        if role == "assistant" and msg.get("tool_calls"):
            calls = [{"name": (tc.get("function") or {}).get("name"),
                      "arguments": _arguments((tc.get("function") or {}).get("arguments"))}
                     for tc in msg["tool_calls"]]
            text = (text + "\n" if text else "") + f"<tool_call>{json.dumps(calls)}</tool_call>"
        if role == "developer":
            role = "system"
        out.append({"role": role, "content": text})
    return out


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw or "{}")
        except json.JSONDecodeError:
            return raw
    return raw or {}


def _with_system(messages: list[dict[str, str]], extra: str) -> list[dict[str, str]]:
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{extra}"}] + messages[1:]
    return [{"role": "system", "content": extra}] + messages


def _before_system(messages: list[dict[str, str]], first: str) -> list[dict[str, str]]:
    """Tool instructions lead the system message: small models follow what they read first."""
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{first}\n\n{messages[0]['content']}"}] + messages[1:]
    return [{"role": "system", "content": first}] + messages


def template_renders_tools(tokenizer: Any) -> bool:
    probe = [{"role": "user", "content": "x"}]
    tool = [{"type": "function", "function": {"name": "probe_tool_x", "parameters": {"type": "object"}}}]
    try:
        with_tools = tokenizer.apply_chat_template(probe, tools=tool, tokenize=False)
    except Exception:  # templates raise anything on arguments they do not expect
        return False
    return "probe_tool_x" in with_tools


def render_prompt(tokenizer: Any, request: Request, *, native_tools: bool) -> str:
    """The prompt text for `request`, ending where the assistant's answer starts."""
    messages = _plain_messages(request)
    tools = function_specs(request) if request.tool_choice != "none" else []
    schema = output_schema(request)
    if schema is not None:
        messages = _with_system(messages, JSON_INSTRUCTIONS.format(schema=json.dumps(schema)))
    if tools and native_tools:
        return tokenizer.apply_chat_template(
            messages, tools=[{"type": "function", "function": t} for t in tools],
            tokenize=False, add_generation_prompt=True)
    if tools:
        messages = _before_system(messages, TOOL_INSTRUCTIONS.format(tools=json.dumps(tools)))
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def render_in_format(tokenizer: Any, request: Request, *, prompt: str, task: Any,
                     native_tools: bool) -> str:
    """The prompt text a local model reads for `request` in prompt format `prompt`, whatever
    engine runs it (transformers or llama.cpp read the same text)."""
    if prompt in SPECIALIST_PROMPTS:
        return render_compact_prompt(tokenizer, request, task=task, signatures=prompt == "compact")
    return render_prompt(tokenizer, request, native_tools=native_tools)


def render_compact_prompt(tokenizer: Any, request: Request, *, task: str, signatures: bool = True) -> str:
    """The specialist prompt for `request`, rendered exactly as the trainer renders its examples
    (`signatures=False`: the `lean` variant)."""
    from fledgling.models.specialist import CHAT_TEMPLATE, compact_request

    messages = compact_request(request, task=task, signatures=signatures).messages
    return tokenizer.apply_chat_template(messages, chat_template=CHAT_TEMPLATE, tokenize=False,
                                         add_generation_prompt=True)
