"""Which requests a canary sends to the candidate: a sticky share, by hash.

The key is the session id when the agent sends one (`X-Fledgling-Session`), so a conversation
stays with one model for its whole life; else the start of the conversation (system prompt and
first user message), so later turns of the same conversation land where the first one did.
The same key always gets the same answer for a given share, and raising the share only adds
keys (a key inside 5% stays inside 10%).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def sticky_key(session_id: str | None, request: dict[str, Any]) -> str:
    if session_id:
        return "session:" + session_id
    raw = request.get("messages")
    messages: list[Any] = raw if isinstance(raw, list) else []
    start: list[Any] = []
    for m in messages:
        if not isinstance(m, dict):
            continue
        start.append([m.get("role"), m.get("content")])
        if m.get("role") == "user":
            break
    return "start:" + orjson.dumps(start).decode()


def bucket(key: str) -> float:
    """A uniform position in [0, 100) for the key."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def in_canary(key: str, percent: float) -> bool:
    return bucket(key) < percent
