"""Curated examples folded back into whole conversations: each answer learnt once, prefix paid once.

A curated example is one call: the conversation so far, and the answer to learn. The calls of
one agent session repeat each other — turn 3's prompt holds turns 1 and 2 with their answers —
so training on every call one by one pays for the same history again and again. On the demo's
support-agent data the 734 train examples are 216k tokens; folded into their 212 sessions
they are 82k tokens and still teach every answer.

`fold` takes the longest example first and walks its earlier assistant turns: where another
example's prompt is exactly the conversation up to that turn, that example is folded in (its
answer, which may be a corrected label, takes the turn's place) and the turn is learnt. A turn
no curated example stands behind (curation dropped that call, or it came from elsewhere) stays
in the history as context only, marked `"train": false`, so nothing curation rejected is ever
learnt. Examples that no longer one contains stay chats of their own.
"""

from __future__ import annotations

import json
from typing import Any

from fledgling.models.specialist import render_example
from fledgling.train.dataset import Example


def fold(examples: list[Example], *, task: str, signatures: bool) -> list[list[dict[str, Any]]]:
    """The examples as specialist training chats, one per conversation; `"train": false` marks
    the assistant turns that are context only."""
    by_prompt: dict[str, int] = {}
    for i, ex in enumerate(examples):
        by_prompt.setdefault(_key(ex.messages[:-1]), i)
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i].messages), i))
    folded: set[int] = set()
    chats = []
    for i in order:
        if i in folded:
            continue
        folded.add(i)
        ex = examples[i]
        messages = list(ex.messages)
        learnt = {len(messages) - 1}
        for pos in range(len(messages) - 1):
            if messages[pos].get("role") != "assistant":
                continue
            j = by_prompt.get(_key(messages[:pos]))
            if j is not None and j not in folded:
                folded.add(j)
                messages[pos] = examples[j].messages[-1]
                learnt.add(pos)
        chat: list[dict[str, Any]] = render_example(messages, ex.tools, task=task,
                                                    response_format=ex.response_format, signatures=signatures)
        shift = len(chat) - len(messages)  # render_example adds its system line unless it replaced one
        for pos, message in enumerate(messages[:-1]):
            if message.get("role") == "assistant" and pos not in learnt:
                chat[pos + shift] = {**chat[pos + shift], "train": False}
        chats.append(chat)
    return chats


def _key(messages: list[dict[str, Any]]) -> str:
    return json.dumps(messages, sort_keys=True, ensure_ascii=False)
