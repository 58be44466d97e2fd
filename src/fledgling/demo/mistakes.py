"""The hosted model's mistakes: what the demo "LLM" gets wrong, and how.

About 4% of answers (6% of tool calls, 2% of text replies, 4.5% of
structured answers) carry one planted mistake, named in `metadata.llm_error`, of the kinds real
agents see: a wrong or missing argument, the wrong tool, invalid JSON arguments, a wrong type,
output cut off at the token limit, a missed or needless tool call, a structured answer wrapped in
prose, and upstream API errors (status "error", no answer).
"""

from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass
from typing import Any

import orjson

from fledgling.demo import entities, support, triage
from fledgling.demo.scripted_call import ScriptedCall, assistant_text, compact

# Chance of a mistake by answer kind: tool calls go wrong more often than small talk.
ERROR_RATES = {"tool": 0.06, "text": 0.02, "json": 0.045}

TOOL_MISTAKES = (("wrong_argument", 22), ("wrong_tool", 16), ("missing_argument", 12), ("invalid_json", 12),
                 ("wrong_type", 8), ("truncated", 6), ("no_tool_call", 10), ("api_error", 14))
TEXT_MISTAKES = (("unexpected_tool_call", 45), ("truncated", 25), ("api_error", 30))
JSON_MISTAKES = (("wrong_field", 35), ("missing_field", 12), ("invalid_enum", 12), ("not_json", 14),
                 ("truncated", 10), ("api_error", 17))

API_ERRORS = (
    "Error code: 429 - Rate limit reached for gpt-4o in organization org-northwind on tokens per min "
    "(TPM): Limit 800000, Used 799412, Requested 1873. Please try again in 140ms.",
    "Error code: 500 - The server had an error while processing your request. Sorry about that!",
    "Error code: 503 - The engine is currently overloaded, please try again later.",
    "Request timed out.",
    "Connection error.",
)
ENUMS = (support.CANCEL_REASONS, support.CURRENCIES, support.PRIORITIES, support.ESCALATION_REASONS,
         ("chat", "email", "phone"), triage.CATEGORIES)
_SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in support.TOOLS}
_EMAIL = re.compile(r"<([^>]+@[^>]+)>")
_ORDER = re.compile(r"ORD-\d{6}")


@dataclass
class Answer:
    """What the "LLM" returned: an assistant message, or an API error (message None)."""

    message: dict[str, Any] | None
    finish_reason: str | None
    mistake: str | None = None
    error: str | None = None


def answer(rng: random.Random, ex: ScriptedCall) -> Answer:
    """The model's answer to an exchange: usually the ground truth, sometimes a planted mistake."""
    truth = ex.ground_truth
    if rng.random() >= ERROR_RATES[ex.answer_kind]:
        return Answer(copy.deepcopy(truth), "tool_calls" if truth.get("tool_calls") else "stop")
    table = {"tool": TOOL_MISTAKES, "text": TEXT_MISTAKES, "json": JSON_MISTAKES}[ex.answer_kind]
    names, weights = zip(*table, strict=True)
    kind = rng.choices(names, weights)[0]
    if kind == "api_error":
        return Answer(None, None, kind, rng.choice(API_ERRORS))
    msg = copy.deepcopy(truth)
    finish = "tool_calls" if msg.get("tool_calls") else "stop"
    if ex.answer_kind == "tool":
        msg, finish = _tool_mistake(rng, kind, msg, ex)
    elif ex.answer_kind == "text":
        msg, finish = _text_mistake(rng, kind, msg, ex)
    else:
        msg, finish = _json_mistake(rng, kind, msg)
    return Answer(msg, finish, kind)


# -- tool calls ---------------------------------------------------------------------------------

def _tool_mistake(rng: random.Random, kind: str, msg: dict[str, Any], ex: ScriptedCall) -> tuple[dict[str, Any], str]:
    calls = msg["tool_calls"]
    j = rng.randrange(len(calls))
    fn = calls[j]["function"]
    args = orjson.loads(fn["arguments"])
    if kind == "no_tool_call":
        return assistant_text(rng.choice(("Let me check that for you.", "One moment, I'm looking into it.",
                                          "Sure, I'll take care of that right away."))), "stop"
    if kind == "wrong_tool":
        fn["name"], args = _other_tool(fn["name"], args, ex)
    elif kind == "wrong_argument":
        _mutate_leaf(rng, args)
    elif kind == "missing_argument":
        required = [k for k in _SCHEMAS[fn["name"]].get("required", []) if k in args]
        args.pop(rng.choice(required))
    elif kind == "wrong_type":
        _stringify_leaf(rng, args)
    fn["arguments"] = compact(args)
    if kind == "invalid_json":
        fn["arguments"] = _break_json(rng, fn["arguments"])
    elif kind == "truncated":
        cut = max(1, int(len(fn["arguments"]) * rng.uniform(0.3, 0.85)))
        fn["arguments"] = fn["arguments"][:cut]
        del calls[j + 1:]
        return msg, "length"
    return msg, "tool_calls"


def _other_tool(name: str, args: dict[str, Any], ex: ScriptedCall) -> tuple[str, dict[str, Any]]:
    """A plausible but wrong tool with arguments that are valid for it."""
    if name == "lookup_order":
        return "cancel_order", {"order_id": args["order_id"], "reason": "other"}
    if "order_id" in args and name != "create_support_ticket":
        return "lookup_order", {"order_id": args["order_id"]}
    if name == "escalate_to_human":
        email = next((m.group(1) for msg in ex.messages if isinstance(msg.get("content"), str)
                      for m in [_EMAIL.search(msg["content"])] if m), "unknown@example.org")
        return "create_support_ticket", {"subject": args["summary"], "priority": "high",
                                         "customer": {"email": email}}
    summary = args.get("subject") or f"Customer asked about {args.get('query', 'a product')}."
    return "escalate_to_human", {"reason": "complex_issue", "summary": summary}


def _leaves(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, path + (k,))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, path + (i,))]
    return [path]


def _get(value: Any, path: tuple) -> Any:
    for p in path:
        value = value[p]
    return value


def _set(value: Any, path: tuple, new: Any) -> None:
    for p in path[:-1]:
        value = value[p]
    value[path[-1]] = new


def _mutate_leaf(rng: random.Random, args: dict[str, Any]) -> None:
    """Change one value so the call is still schema-valid but wrong."""
    path = rng.choice(_leaves(args))
    old = _get(args, path)
    if isinstance(old, bool):
        new: Any = not old
    elif isinstance(old, int):
        new = old + 1
    elif isinstance(old, float):
        new = round(old * rng.choice((0.5, 2.0, 10.0)), 2)
    elif isinstance(old, str) and _ORDER.fullmatch(old):
        digits = list(old[4:])
        i = rng.randrange(5)
        digits[i], digits[i + 1] = digits[i + 1], digits[i]
        if digits == list(old[4:]):
            digits[i] = str((int(digits[i]) + 1) % 10)
        new = "ORD-" + "".join(digits)
    elif isinstance(old, str) and (enum := next((e for e in ENUMS if old in e), None)):
        new = rng.choice([v for v in enum if v != old])
    elif isinstance(old, str) and old.startswith("SKU-"):
        new = old[:-1] + str((int(old[-1]) + 1) % 10)
    elif isinstance(old, str):
        words = old.split()
        new = " ".join(words[: max(1, len(words) // 2)]) if len(words) > 1 else old + "s"
    else:
        new = old
    _set(args, path, new)


def _stringify_leaf(rng: random.Random, args: dict[str, Any]) -> None:
    typed = [p for p in _leaves(args) if isinstance(_get(args, p), (bool, int, float))]
    if typed:
        path = rng.choice(typed)
        old = _get(args, path)
        _set(args, path, str(old).lower() if isinstance(old, bool) else str(old))
    elif isinstance(args.get("order_id"), str):
        args["order_id"] = int(args["order_id"][4:])
    else:
        key = rng.choice(list(args))
        args[key] = [args[key]]


def _break_json(rng: random.Random, text: str) -> str:
    style = rng.randrange(4)
    if style == 0:
        return text.replace('"', "'")
    if style == 1:
        return text[:-1] + ",}"
    if style == 2:
        return text[:-1]
    return re.sub(r'"([a-z_]+)":', r"\1:", text, count=1)


# -- text and structured answers ----------------------------------------------------------------

def _text_mistake(rng: random.Random, kind: str, msg: dict[str, Any], ex: ScriptedCall) -> tuple[dict[str, Any], str]:
    if kind == "truncated":
        text = msg["content"]
        return assistant_text(text[: max(1, int(len(text) * rng.uniform(0.25, 0.75)))]), "length"
    seen = [m.group(0) for msg_ in ex.messages if isinstance(msg_.get("content"), str)
            for m in _ORDER.finditer(msg_["content"])]
    if seen:
        call = ("lookup_order", {"order_id": seen[-1]})
    else:
        last_user = next(m["content"] for m in reversed(ex.messages) if m["role"] == "user")
        call = ("search_products", {"query": last_user[:40]})
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": entities.tool_call_id(rng), "type": "function",
         "function": {"name": call[0], "arguments": compact(call[1])}}]}, "tool_calls"


def _json_mistake(rng: random.Random, kind: str, msg: dict[str, Any]) -> tuple[dict[str, Any], str]:
    text = msg["content"]
    out = orjson.loads(text)
    if kind == "wrong_field":
        field = rng.choice(("category", "priority", "needs_human", "tier"))
        if field == "category":
            out["category"] = rng.choice([c for c in triage.CATEGORIES if c != out["category"]])
        elif field == "priority":
            out["priority"] = rng.choice([p for p in triage.PRIORITIES if p != out["priority"]])
        elif field == "needs_human":
            out["needs_human"] = not out["needs_human"]
        else:
            out["customer"]["tier"] = rng.choice([t for t in triage.TIERS if t != out["customer"]["tier"]])
    elif kind == "missing_field":
        del out[rng.choice(("priority", "tags", "needs_human", "summary"))]
    elif kind == "invalid_enum":
        if rng.random() < 0.5:
            out["priority"] = rng.choice(("medium", "critical", "Normal"))
        else:
            out["category"] = rng.choice(("delivery", "refund", "bug", "Billing"))
    elif kind == "not_json":
        return assistant_text(rng.choice(("```json\n{}\n```", "Here is the triage:\n{}")).format(text)), "stop"
    elif kind == "truncated":
        return assistant_text(text[: max(1, int(len(text) * rng.uniform(0.3, 0.8)))]), "length"
    return assistant_text(compact(out)), "stop"
