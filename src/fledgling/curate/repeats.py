"""Repeated calls: a call an answer makes twice, or one the conversation has already made.

An agent's LLM asks for each thing once: in the demo's 724 recorded answers with tool calls, no
answer names the same call (tool and arguments) twice, and one repeats a call an earlier turn
made and got a result for. A small model does both (a third `lookup_order` for an order looked
up two turns ago, the same lookup twice in one list). Whether a task's agent repeats itself is
decided from its data: curation counts, over the labels it keeps, the answers with a call made
twice in them and those with a call already in their conversation; a rule whose answers obey it
in at least `MIN_SHARE` of at least `MIN_SEEN` answers is written to the curation report
(`label_checks.call_rules`) and, through training, into the model's manifest:

- `distinct`: no call twice in one answer;
- `new`: no call the conversation already made (same tool, same arguments).

A local engine applies the rules to what it decoded (`keep`): the calls that break one are left
out, as long as one call remains (an answer is never emptied).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

MIN_SHARE = 0.99
MIN_SEEN = 50
DISTINCT, NEW = "distinct", "new"

Key = tuple[str, str]


def call_key(name: str, arguments: Any) -> Key:
    """A call as one comparable value: its tool and its arguments in sorted-key JSON (arguments
    that are not JSON compare as written)."""
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            return name, arguments
    return name, orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS).decode()


def earlier_calls(messages: Iterable[dict[str, Any]]) -> set[Key]:
    """The calls the assistant made in the conversation so far."""
    return {call_key(str(fn.get("name", "")), fn.get("arguments"))
            for m in messages if m.get("role") == "assistant"
            for tc in m.get("tool_calls") or [] if isinstance(fn := tc.get("function"), dict)}


def repeats(messages: Sequence[dict[str, Any]], answer: dict[str, Any]) -> tuple[int, int] | None:
    """For a label with tool calls (an OpenAI-shaped message): (calls it makes a second time,
    calls of it the conversation already made); None for an answer without calls."""
    calls = [tc["function"] for tc in answer.get("tool_calls") or [] if isinstance(tc.get("function"), dict)]
    if not calls:
        return None
    keys = [call_key(str(fn.get("name", "")), fn.get("arguments")) for fn in calls]
    before = earlier_calls(messages)
    return len(keys) - len(set(keys)), sum(k in before for k in keys)


def keep(messages: Sequence[dict[str, Any]], calls: Sequence[tuple[str, Any]], rules: Iterable[str]) -> list[int]:
    """The indices of `calls` (name, arguments) an answer keeps under `rules`; all of them when
    leaving out the ones that break a rule would leave none."""
    rules = set(rules)
    before = earlier_calls(messages) if NEW in rules else set()
    seen: set[Key] = set()
    kept = []
    for i, (name, arguments) in enumerate(calls):
        key = call_key(name, arguments)
        if (DISTINCT in rules and key in seen) or key in before:
            continue
        seen.add(key)
        kept.append(i)
    return kept or list(range(len(calls)))


@dataclass
class RepeatCheck:
    """Counts `repeats` over the kept labels; `rules()` says which the data holds to."""

    answers: int = 0
    twice: int = 0
    """answers that make a call twice"""
    before: int = 0
    """answers with a call their conversation already made"""

    def add(self, counts: tuple[int, int] | None) -> None:
        if counts is None:
            return
        self.answers += 1
        self.twice += counts[0] > 0
        self.before += counts[1] > 0

    def rules(self) -> list[str]:
        if self.answers < MIN_SEEN:
            return []
        return [rule for rule, broken in ((DISTINCT, self.twice), (NEW, self.before))
                if 1 - broken / self.answers >= MIN_SHARE]

    def report(self) -> dict[str, Any]:
        return {"answers_with_calls": self.answers, "with_a_call_twice": self.twice,
                "with_a_call_made_before": self.before, "rules": self.rules()}
