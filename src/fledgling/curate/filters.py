"""Quality filters: which calls must not become training examples, each with a named reason.

A call gets at most one reason (the first that applies, in the order below), so the counts in
the report add up to the calls dropped:

- `error`: the call failed upstream (status error, or no answer at all).
- `truncated`: generation stopped at the token limit (finish_reason `length`).
- `negative_feedback`: a human or check marked the answer bad and gave no correction.
- `tool_failed`: a tool result in the conversation shows the tool failed (see `tool_failure`).
- `contract:<code>`: the answer breaks the task contract (`invalid_json`, `schema`,
  `unknown_tool`, `missing_required`, `not_json`, `no_tool_call`, `unexpected_tool_call`).

Feedback with a corrected answer is not a reason to drop: the correction becomes the label (and
is itself checked against the contract), whatever happened to the original answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from fledgling.calls import Call, Response
from fledgling.contracts import Contract, validate

ERROR = "error"
TRUNCATED = "truncated"
NEGATIVE_FEEDBACK = "negative_feedback"
TOOL_FAILED = "tool_failed"
CONTRACT_PREFIX = "contract:"

_FAILED_STATUS = {"error", "failed", "failure", "fail", "exception", "timeout", "timed_out"}
_FAILED_TEXT = re.compile(
    r"^\s*(?:(?:error|exception|failed|failure|fatal)\b|traceback \(most recent call last\))"
    r"|^\s*(?:http\s*)?(?:status\s*)?5\d\d\b[ :-]*(?:internal server error|bad gateway|service unavailable"
    r"|gateway timeout)", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """The outcome for one call: the training label, or why there is none."""

    label: Response | None
    reason: str | None = None
    corrected: bool = False


def check(call: Call, contract: Contract | None, *, drop_tool_failures: bool = True) -> Verdict:
    """Decide whether `call` becomes an example, and with which answer as its label.

    `drop_tool_failures=False` keeps conversations with failed tool results, for agents whose
    recovery from a failing tool ("I couldn't find that order") is worth learning.
    """
    corrected = call.feedback.corrected if call.feedback is not None else None
    if corrected is None:
        if call.status == "error" or call.response is None:
            return Verdict(None, ERROR)
        if call.response.finish_reason == "length":
            return Verdict(None, TRUNCATED)
        if call.feedback is not None and call.feedback.negative:
            return Verdict(None, NEGATIVE_FEEDBACK)
    if drop_tool_failures and tool_failure(call.request.messages):
        return Verdict(None, TOOL_FAILED)
    label = corrected if corrected is not None else call.response
    assert label is not None
    if contract is not None:
        parallel = (call.request.model_extra or {}).get("parallel_tool_calls")
        violations = validate(label, contract, tool_choice=call.request.tool_choice,
                              parallel_tool_calls=parallel if isinstance(parallel, bool) else None)
        violations = [v for v in violations if v.code != "truncated"]
        if violations:
            return Verdict(None, CONTRACT_PREFIX + violations[0].code)
    return Verdict(label, None, corrected is not None)


def tool_failure(messages: list[dict[str, Any]]) -> bool:
    """Whether any tool result in the conversation reports a failure.

    Heuristics, applied to each `role: tool` message (and legacy `role: function`):
    JSON content that is an object with a non-empty `error` or `errors` field, a `status` /
    `state` of error, failed, failure, fail, exception, timeout or timed_out, or `success` /
    `ok` equal to false; plain text that starts with Error, Exception, Traceback, Failed,
    Failure or Fatal, or with an HTTP 5xx status line. A tool result that merely mentions an
    error in passing ("no errors found") does not count.
    """
    for msg in messages:
        if msg.get("role") not in ("tool", "function"):
            continue
        content = msg.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if isinstance(content, dict):
            if _failed_json(content):
                return True
            continue
        if not isinstance(content, str):
            continue
        stripped = content.lstrip()
        if stripped[:1] == "{":
            try:
                parsed = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                if _failed_json(parsed):
                    return True
                continue
        if _FAILED_TEXT.search(content):
            return True
    return False


def _failed_json(obj: dict[str, Any]) -> bool:
    for key in ("error", "errors"):
        if obj.get(key):
            return True
    for key in ("status", "state"):
        value = obj.get(key)
        if isinstance(value, str) and value.strip().lower() in _FAILED_STATUS:
            return True
    return obj.get("success") is False or obj.get("ok") is False
